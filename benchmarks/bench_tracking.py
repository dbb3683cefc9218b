"""Tracking cost: coalesced status polling in the triggerer, and the requests and CPU of report exports.

    python benchmarks/bench_tracking.py            # K = 1, 10, 100, 1000 waits; 100,000 report rows; median of 3
    python benchmarks/bench_tracking.py --smoke    # K = 1, 10, 100; 10,000 rows; time scaled further; one run

Against the sandbox in its own process (``python -m airflow_provider_easify.sandbox``), so that the client's
CPU time is the client's alone and 1000 triggers do not share one interpreter with the server.

1. Status polling. K messages are sent first (send limit off, ``after_message_id=0``: no read), then
   K waits for ``Delivered`` run in one asyncio event loop, at the API's real read ratio with the time
   scaled: 60 reads per 6 s window (smoke: 3 s) instead of 60 s, the connection pacing at the same rate
   (``read_per_minute`` 600; smoke 1200), a message ``Pending`` for 1/3 of a window and ``Delivered`` 3/4
   of one after its send, ``poke_interval`` 1/6 of a window. Two ways, each from a reset sandbox and fresh pacing:

   * coalesced (this version): K real ``EasifySmsStatusTrigger`` run loops; they share one
     ``StatusPoller``, which reads the SMS report (one read per page of 1000 rows; one chat-history read
     for a single waiter) each round. Reads per round = the sandbox's requests during the wait / the
     poller's ``rounds_done``; goal <= ceil(K / 1000) + 1;
   * per message (the previous version, simulated): K independent loops, each with its own
     ``EasifyTriggerHook``, calling ``hook.find_message`` (one chat-history read) in ``asyncio.to_thread``
     every ``poke_interval``, waiting out the shared read budget as the previous trigger did
     (``PacingDeferred``), until ``Delivered``. A round is one poll of every message (rounds = polls / K),
     so reads per round ~ K; a round of K reads takes K / 60 windows. The run is cut off after 5 windows
     (smoke: 3) and reports how many waits were resolved by then.

   Figures: reads per round, seconds until every wait resolved (scaled; x10 for real time, x20 in smoke
   mode), and the seconds after the last message was delivered.
2. Exports. Rows generated in the sandbox (rate limits off) in one 30-day window, read with
   ``EasifyHook.iter_sms_report`` at the default page size (1000; the sandbox's ``max_page_size`` is
   1000) and at 100 (the previous default), next to a bare ``requests`` loop over the same pages at the
   same page size, runs interleaved. Figures per 100,000 rows: requests (goal at 1000: the minimum,
   ceil(100,000 / 1000)) and CPU seconds of this process (``time.process_time``), with the hook's CPU
   against the bare loop's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

NAME = "tracking"
SIZES = {
    "full": {"waits": (1, 10, 100, 1000), "window_s": 6.0, "cap_windows": 5, "export_rows": 100_000},
    "smoke": {"waits": (1, 10, 100), "window_s": 3.0, "cap_windows": 3, "export_rows": 10_000},
}
#: The API's read budget: 60 reads a window (of 60 s; scaled here).
READ_LIMIT = 60
REAL_WINDOW_S = 60.0
#: The report page of this version and of the previous one (the sandbox clamps at 1000).
PAGE_SIZE = 1000
PREVIOUS_PAGE_SIZE = 100
EXPORT_DAYS = 25  # one 30-day window: requests are ceil(rows / page size)
ROWS_PER_FIGURE = 100_000
COALESCED = "coalesced"
PER_MESSAGE = "per message"
BARE = "bare requests loop"
HOOK = "EasifyHook.iter_sms_report"
TARGET = ("Delivered",)
FAILURE = ("Failed", "Undelivered")
POLL_CONN = "easify_bench_tracking"
EXPORT_CONN = "easify_bench_tracking_export"


def receiver(index: int) -> str:
    """A conversation of its own for every message (never a sandbox magic number, never a seeded one)."""
    return f"+1315{5600000 + index}"


def bound_of(waits: int) -> int:
    """The most reads a coalesced round may take: one per page of 1000 rows, plus one."""
    return math.ceil(waits / PAGE_SIZE) + 1


# ---------------------------------------------------------------------- status polling


class Timing:
    """The scaled clock of the polling scenarios, all derived from the read window."""

    def __init__(self, window_s: float, cap_windows: int) -> None:
        self.window_s = window_s
        self.scale = REAL_WINDOW_S / window_s
        self.read_per_minute = READ_LIMIT * self.scale
        self.pending_s = window_s / 3
        # Not a whole number of poke intervals after the send: a round does not land just as it is delivered.
        self.delivered_s = 3 * window_s / 4
        self.poke_interval = window_s / 6
        self.cap_s = cap_windows * window_s
        self.deadline_s = 20 * window_s  # a coalesced wait never takes this long unless something is wrong

    def to_dict(self) -> dict[str, float]:
        return dict(vars(self))


def send_messages(conn_id: str, count: int) -> list[tuple[str, str]]:
    from airflow_provider_easify.hooks.easify import EasifyHook

    hook = EasifyHook(easify_conn_id=conn_id)
    messages = []
    for index in range(count):
        to = receiver(index)
        messages.append((hook.send_sms(common.SENDER, to, f"tracking benchmark {index}", after_message_id=0), to))
    hook.session.close()
    return messages


def delivered(payload: dict[str, Any]) -> bool:
    return payload.get("status") == "success" and payload.get("sms_status") == "Delivered"


async def coalesced_wait(messages: list[tuple[str, str]], conn_id: str, timing: Timing) -> dict[str, Any]:
    """K real status triggers in this event loop; they share one poller."""
    from airflow_provider_easify.triggers.coalesce import StatusPoller
    from airflow_provider_easify.triggers.sms import EasifySmsStatusTrigger

    deadline = time.time() + timing.deadline_s
    triggers = [
        EasifySmsStatusTrigger(
            sms_id=sms_id, sender=common.SENDER, receiver=to, target_statuses=list(TARGET),
            failure_statuses=list(FAILURE), poke_interval=timing.poke_interval, deadline=deadline,
            easify_conn_id=conn_id,
        )
        for sms_id, to in messages
    ]
    started = time.perf_counter()
    outcomes: dict[str, tuple[float, dict[str, Any]]] = {}

    async def run(trigger: EasifySmsStatusTrigger) -> None:
        async for event in trigger.run():
            outcomes[trigger.sms_id] = (time.perf_counter() - started, event.payload)
            return

    tasks = [asyncio.ensure_future(run(trigger)) for trigger in triggers]
    await asyncio.sleep(0)  # every trigger has run up to its first wait: it has joined its poller
    # Held on to for their rounds_done: a poller leaves the registry when its last waiter leaves.
    pollers = [poller for poller in StatusPoller._pollers.values() if poller.conn_id == conn_id]
    await asyncio.gather(*tasks)
    resolved = [seconds for seconds, payload in outcomes.values() if delivered(payload)]
    return {
        "waits": len(messages),
        "resolved": len(resolved),
        "outcomes": sorted({str(payload.get("status")) for _, payload in outcomes.values()}),
        "all_resolved_s": round(max(resolved), 3) if len(resolved) == len(messages) else None,
        "rounds": sum(poller.rounds_done for poller in pollers),
        "pollers": len(pollers),
        "polls": None,
    }


async def per_message_wait(messages: list[tuple[str, str]], conn_id: str, timing: Timing) -> dict[str, Any]:
    """The previous version: every wait polls its own message's chat history, through its own hook."""
    from airflow_provider_easify.exceptions import EasifyApiError, EasifyRateLimitError
    from airflow_provider_easify.hooks.easify import EasifyTriggerHook
    from airflow_provider_easify.transport import PacingDeferred
    from airflow_provider_easify.utils.waiting import status_event

    started = time.perf_counter()
    resolved: dict[str, float] = {}
    polls = 0
    hooks: list[EasifyTriggerHook] = []

    async def wait_for(sms_id: str, to: str) -> None:
        nonlocal polls
        hook = EasifyTriggerHook(easify_conn_id=conn_id)
        hooks.append(hook)

        def poll() -> dict[str, Any] | None:
            hook.transport.new_unit_of_work()
            return status_event(hook.find_message(sms_id, common.SENDER, to), TARGET, FAILURE)

        while True:
            wait = timing.poke_interval
            try:
                event = await asyncio.to_thread(poll)
            except PacingDeferred as deferred:
                wait = deferred.delay  # the slot is reserved: poll again the moment it opens
            except EasifyRateLimitError as exc:
                wait = max(exc.retry_after, timing.poke_interval)
            except EasifyApiError as exc:
                if not exc.retryable:
                    raise
            else:
                polls += 1
                if event is not None:
                    if delivered(event):
                        resolved[sms_id] = time.perf_counter() - started
                    return
            await asyncio.sleep(wait)

    tasks = [asyncio.ensure_future(wait_for(sms_id, to)) for sms_id, to in messages]
    _, pending = await asyncio.wait(tasks, timeout=timing.cap_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    for hook in hooks:
        if "transport" in hook.__dict__:
            hook.session.close()
    return {
        "waits": len(messages),
        "resolved": len(resolved),
        "outcomes": ["success"] * bool(resolved) + ["cut off"] * bool(pending),
        "all_resolved_s": round(max(resolved.values()), 3) if len(resolved) == len(messages) else None,
        "rounds": round(polls / len(messages), 3),
        "pollers": None,
        "polls": polls,
        "cut_off_after_s": timing.cap_s if pending else None,
    }


def polling_run(
    sandbox: common.SandboxProcess, mode: str, waits: int, timing: Timing, workdir: str
) -> dict[str, Any]:
    client = sandbox.client
    client.reset()
    common.fresh_pacing_dir(workdir)
    messages = send_messages(POLL_CONN, waits)
    last_created = max(m["created_ts"] for m in client.ledger())
    before = client.stats()
    started_at = time.time()
    waiter = coalesced_wait if mode == COALESCED else per_message_wait
    measured = asyncio.run(waiter(messages, POLL_CONN, timing))
    after = client.stats()
    requests = after["requests"][len(before["requests"]):]
    by_endpoint: dict[str, int] = {}
    for entry in requests:
        by_endpoint[entry["endpoint"]] = by_endpoint.get(entry["endpoint"], 0) + 1
    reads = len(requests)
    rounds = measured["rounds"]
    last_delivered_s = last_created + timing.delivered_s - started_at
    all_resolved = measured["all_resolved_s"]
    return {
        **measured,
        "reads": reads,
        "reads_by_endpoint": by_endpoint,
        "drawn_429": sum(1 for entry in requests if entry["status"] == 429),
        "reads_per_round": round(reads / rounds, 2) if rounds else None,
        "bound": bound_of(waits) if mode == COALESCED else None,
        "last_delivered_s": round(last_delivered_s, 3),
        "after_last_delivery_s": None if all_resolved is None else round(all_resolved - last_delivered_s, 3),
    }


def measure_polling(
    sandbox: common.SandboxProcess, sizes: dict[str, Any], timing: Timing, runs: int, workdir: str
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {COALESCED: {}, PER_MESSAGE: {}}
    for run in range(1, runs + 1):
        for waits in sizes["waits"]:
            for mode in (COALESCED, PER_MESSAGE):
                entry = polling_run(sandbox, mode, waits, timing, workdir)
                measured[mode].setdefault(str(waits), []).append(entry)
                done = (f"all resolved in {entry['all_resolved_s']:.1f} s" if entry["all_resolved_s"] is not None
                        else f"cut off after {timing.cap_s:g} s, {entry['resolved']} of {waits} resolved")
                print(f"  run {run} K={waits:<4} {mode:11} reads {entry['reads']:4}  rounds {entry['rounds']:7}  "
                      f"reads/round {entry['reads_per_round']}  429s {entry['drawn_429']}  {done}", flush=True)
    return measured


# ---------------------------------------------------------------------- exports


def hook_iterator(first: dt.date, last: dt.date, page_size: int | None) -> int:
    from airflow_provider_easify.hooks.easify import EasifyHook

    hook = EasifyHook(easify_conn_id=EXPORT_CONN)
    rows = sum(1 for _ in hook.iter_sms_report(first, last, order="asc", page_size=page_size))
    hook.session.close()
    return rows


def measure_exports(workdir: str, rows: int, runs: int) -> dict[str, Any]:
    from airflow_provider_easify.hooks.easify import EasifyHook

    per_day = rows // EXPORT_DAYS
    total = per_day * EXPORT_DAYS
    first = dt.date(2021, 1, 1)
    last = first + dt.timedelta(days=EXPORT_DAYS - 1)
    with common.SandboxProcess(workdir, "--read-limit", "0", "--send-limit", "0", "--report-days", "0") as sandbox:
        client = sandbox.client
        common.use_connection(EXPORT_CONN, sandbox.api_url, {"read_per_minute": 0, "timeout": 120})
        default_page = EasifyHook(easify_conn_id=EXPORT_CONN).settings.page_size
        client.generate_report(first, last, per_day, clear=True)
        readers: dict[tuple[str, int], Callable[[], int]] = {
            (BARE, PAGE_SIZE): lambda: common.bare_report_loop(sandbox.api_url, first, last, PAGE_SIZE),
            (HOOK, PAGE_SIZE): lambda: hook_iterator(first, last, None),  # the default page size
            (BARE, PREVIOUS_PAGE_SIZE): lambda: common.bare_report_loop(
                sandbox.api_url, first, last, PREVIOUS_PAGE_SIZE
            ),
            (HOOK, PREVIOUS_PAGE_SIZE): lambda: hook_iterator(first, last, PREVIOUS_PAGE_SIZE),
        }
        cpu: dict[tuple[str, int], list[float]] = {key: [] for key in readers}
        wall: dict[tuple[str, int], list[float]] = {key: [] for key in readers}
        requests: dict[tuple[str, int], int] = {}
        for _ in range(runs):  # interleaved, so that a busy moment hurts each alike
            for key, reader in readers.items():
                before = client.stats()
                cpu_started, wall_started = time.process_time(), time.perf_counter()
                read = reader()
                cpu[key].append(time.process_time() - cpu_started)
                wall[key].append(time.perf_counter() - wall_started)
                requests[key] = common.requests_since(before, client.stats(), "report")
                if read != total:
                    raise RuntimeError(f"{key[0]} (page size {key[1]}) read {read} rows, expected {total}")
    per = ROWS_PER_FIGURE / total
    readings = {}
    for (name, page_size), seconds in cpu.items():
        key = (name, page_size)
        readings.setdefault(str(page_size), {})[name] = {
            "requests": requests[key],
            "requests_per_100k_rows": round(requests[key] * per, 1),
            "minimum_requests": math.ceil(total / page_size),
            "cpu_s": round(common.median(seconds), 3),
            "cpu_s_per_100k_rows": round(common.median(seconds) * per, 3),
            "wall_s": round(common.median(wall[key]), 3),
            "runs_cpu_s": [round(s, 3) for s in seconds],
        }
    return {"rows": total, "days": EXPORT_DAYS, "default_page_size": default_page, "pages": readings}


# ---------------------------------------------------------------------- figures and tables


def polling_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one (mode, K)."""
    complete = [r["all_resolved_s"] for r in runs if r["all_resolved_s"] is not None]
    lags = [r["after_last_delivery_s"] for r in runs if r["after_last_delivery_s"] is not None]
    per_round = [r["reads_per_round"] for r in runs if r["reads_per_round"] is not None]
    return {
        "reads": common.median(r["reads"] for r in runs),
        "rounds": common.median(r["rounds"] for r in runs),
        "reads_per_round": common.median(per_round) if per_round else None,
        "worst_reads_per_round": max(per_round) if per_round else None,
        "resolved": common.median(r["resolved"] for r in runs),
        "all_runs_complete": len(complete) == len(runs),
        "all_resolved_s": common.median(complete) if len(complete) == len(runs) else None,
        "after_last_delivery_s": common.median(lags) if len(lags) == len(runs) else None,
        "drawn_429": sum(r["drawn_429"] for r in runs),
    }


def resolved_text(summary: dict[str, Any], waits: int, timing: Timing) -> float | str:
    if summary["all_resolved_s"] is not None:
        return round(summary["all_resolved_s"], 2)
    return f"> {timing.cap_s:g} s ({summary['resolved']:g}/{waits} resolved, cut off)"


def polling_figures(polling: dict[str, Any], timing: Timing) -> list[dict[str, Any]]:
    figures = []
    for waits_text in polling[COALESCED]:
        waits = int(waits_text)
        coalesced = polling_summary(polling[COALESCED][waits_text])
        per_message = polling_summary(polling[PER_MESSAGE][waits_text])
        worst, bound = coalesced["worst_reads_per_round"], bound_of(waits)
        figures.append(common.figure(
            f"K={waits}, coalesced: reads per poll round (worst run)", worst, goal=f"<= {bound} (ceil(K/1000)+1)",
            met=worst is not None and worst <= bound,
            note=f"{coalesced['reads']:g} reads in {coalesced['rounds']:g} rounds; 429s {coalesced['drawn_429']}",
        ))
        resolved_all = coalesced["all_runs_complete"]
        figures.append(common.figure(
            f"K={waits}, coalesced: s until all resolved (scaled)", resolved_text(coalesced, waits, timing),
            goal="every wait Delivered", met=resolved_all,
            note=f"{coalesced['after_last_delivery_s']} s after the last delivery; x{timing.scale:g} for real time",
        ))
        figures.append(common.figure(
            f"K={waits}, per message (previous): reads per round", per_message["reads_per_round"],
            note=f"{per_message['reads']:g} reads, {per_message['rounds']:g} rounds (polls / K)",
        ))
        one_round = waits / READ_LIMIT * timing.window_s
        figures.append(common.figure(
            f"K={waits}, per message (previous): s until all resolved (scaled)",
            resolved_text(per_message, waits, timing),
            note=f"one round of {waits} reads takes {waits}/{READ_LIMIT} windows of {timing.window_s:g} s "
                 f"= {one_round:g} s; x{timing.scale:g} for real time",
        ))
    return figures


def export_figures(exports: dict[str, Any]) -> list[dict[str, Any]]:
    pages, figures = exports["pages"], []
    for page_size in (PAGE_SIZE, PREVIOUS_PAGE_SIZE):
        reading = pages[str(page_size)]
        hook, bare = reading[HOOK], reading[BARE]
        label = "default" if page_size == PAGE_SIZE else "previous default"
        minimum = math.ceil(ROWS_PER_FIGURE / page_size)
        figures.append(common.figure(
            f"export, page size {page_size} ({label}): requests per 100,000 rows", hook["requests_per_100k_rows"],
            goal=f"= {minimum} (ceil(100,000/{page_size}))" if page_size == PAGE_SIZE else None,
            met=hook["requests"] == hook["minimum_requests"] if page_size == PAGE_SIZE else None,
            note=f"{hook['requests']} requests for {exports['rows']} rows",
        ))
        ratio = round(hook["cpu_s"] / bare["cpu_s"], 3) if bare["cpu_s"] > 0 else None
        figures.append(common.figure(
            f"export, page size {page_size}: {HOOK} CPU s per 100,000 rows", hook["cpu_s_per_100k_rows"], unit="s",
            note=f"bare requests loop {bare['cpu_s_per_100k_rows']} s; hook / bare {ratio}",
        ))
    return figures


def print_tables(polling: dict[str, Any], exports: dict[str, Any], timing: Timing, runs: int) -> None:
    rows = []
    for waits_text in polling[COALESCED]:
        for mode in (COALESCED, PER_MESSAGE):
            s = polling_summary(polling[mode][waits_text])
            done = s["all_resolved_s"]
            rows.append([
                waits_text, mode, f"{s['reads']:g}", f"{s['rounds']:g}",
                "-" if s["reads_per_round"] is None else f"{s['reads_per_round']:g}",
                bound_of(int(waits_text)) if mode == COALESCED else "-", f"{s['resolved']:g}/{waits_text}",
                f"{done:.1f}" if done is not None else f"cut off at {timing.cap_s:g}",
                "-" if s["after_last_delivery_s"] is None else f"{s['after_last_delivery_s']:.1f}",
                f"{done * timing.scale / 60:.1f}" if done is not None else f"> {timing.cap_s * timing.scale / 60:g}",
                s["drawn_429"],
            ])
    common.print_table(
        ["K", "polling", "reads", "rounds", "reads/round", "bound", "resolved", "s to all", "s after last",
         "real min", "429s"],
        rows,
        title=(f"Status polling (median of {runs}; {READ_LIMIT} reads per {timing.window_s:g} s window, "
               f"poke_interval {timing.poke_interval:g} s, Delivered {timing.delivered_s:g} s after the send; "
               f"real min = s x {timing.scale:g} / 60)"),
    )
    rows = []
    for page_size, reading in exports["pages"].items():
        for name, e in reading.items():
            bare = reading[BARE]["cpu_s"]
            rows.append([page_size, name, e["requests"], e["requests_per_100k_rows"], e["cpu_s"],
                         e["cpu_s_per_100k_rows"], f"{e['cpu_s'] / bare:.2f}x" if bare > 0 else "-", e["wall_s"]])
    common.print_table(
        ["page size", "reader", "requests", "requests/100k rows", "CPU s", "CPU s/100k rows", "CPU vs bare",
         "wall s"],
        rows, title=f"Export of {exports['rows']} report rows (median of {runs}; hook default page size "
                    f"{exports['default_page_size']})",
    )


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    sizes = SIZES["smoke" if args.smoke else "full"]
    timing = Timing(sizes["window_s"], sizes["cap_windows"])
    started = time.perf_counter()
    common.terminate_on_sigterm()
    common.print_machine(common.machine_facts())
    print(f"Status polling: K = {', '.join(map(str, sizes['waits']))} waits, {READ_LIMIT} reads per "
          f"{timing.window_s:g} s window; the per-message runs are cut off after {timing.cap_s:g} s. "
          f"Export: {sizes['export_rows']} rows. {runs} run(s)")
    with tempfile.TemporaryDirectory(prefix="easify-bench-tracking-") as workdir:
        common.prepare_environment(workdir)
        options = ["--send-limit", "0", "--read-limit", str(READ_LIMIT), "--read-window", str(timing.window_s),
                   "--pending-seconds", str(timing.pending_s), "--delivered-seconds", str(timing.delivered_s)]
        with common.SandboxProcess(workdir, *options) as sandbox:
            common.use_connection(POLL_CONN, sandbox.api_url,
                                  {"send_per_minute": 0, "read_per_minute": timing.read_per_minute, "timeout": 30})
            polling = measure_polling(sandbox, sizes, timing, runs, workdir)
        exports = measure_exports(workdir, sizes["export_rows"], runs)
    figures = polling_figures(polling, timing) + export_figures(exports)
    print_tables(polling, exports, timing, runs)
    common.print_figures("Tracking benchmark", figures)
    payload = common.result(NAME, smoke=args.smoke, runs=runs, started=started, figures=figures,
                            timing=timing.to_dict(), polling=polling, exports=exports)
    common.write_result(NAME, payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
