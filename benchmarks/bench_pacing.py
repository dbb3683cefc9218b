"""Send pacing: how close to the API's send limit the provider sends, without drawing 429s or duplicates.

    python benchmarks/bench_pacing.py            # 150 messages per scenario, median of 3 runs
    python benchmarks/bench_pacing.py --smoke    # 30 messages, one run

The sandbox runs in its own process at the API's real ratio (15 sends per window) with a short window
(2 s instead of 60 s) and no read limit; the connection says so (``send_per_minute=450``,
``send_window_seconds=2``, ``read_per_minute=0``). Scenarios, each from a fresh sandbox state and a fresh
pacing directory:

* ``hook loop``: ``EasifyHook.send_sms`` in a loop (each send also reads the conversation once);
* ``bulk operator``: ``EasifyBulkSendSmsOperator.execute`` with ``deferrable=False`` (every send paced);
* ``bulk operator, deferrable``: the burst-per-window path: the operator reserves a window's budget,
  sends it at once and defers; this script plays the triggerer (runs the trigger with asyncio) and
  resumes the operator the moment the trigger fires, so a real triggerer's pick-up latency is not included;
* ``4 processes, one token``: four forked processes, each with its own hook, share the messages.

Figures: achieved send rate / allowed rate (15 per 2 s), measured at the sandbox between the first and
the last accepted send; 429s drawn; messages in the sandbox's ledger against those intended (every one
exactly once).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SEND_LIMIT = 15
SEND_WINDOW_SECONDS = 2.0
ALLOWED_RATE = SEND_LIMIT / SEND_WINDOW_SECONDS
CONNECTION_EXTRA = {
    "send_per_minute": SEND_LIMIT * 60 / SEND_WINDOW_SECONDS,
    "send_window_seconds": SEND_WINDOW_SECONDS,
    "read_per_minute": 0,
    "timeout": 10,
}
CONN_ID = "easify_bench_pacing"
PROCESSES = 4
RATE_GOAL = 0.95
DEFERRAL_NOTE = (
    "each deferral waits in an EasifySendWindowTrigger until the next window opens; the task resumes the "
    "moment it fires (a real triggerer adds its pick-up latency)"
)


def recipients(count: int) -> list[str]:
    """Distinct US numbers, none ending in the sandbox's magic 999x."""
    return [f"+1315556{1000 + i:04d}" for i in range(count)]


# ---------------------------------------------------------------------- the scenarios


def hook_loop(numbers: list[str], tag: str) -> dict[str, Any]:
    from airflow_provider_easify.hooks.easify import EasifyHook

    hook = EasifyHook(easify_conn_id=CONN_ID)
    for number in numbers:
        hook.send_sms(common.SENDER, number, f"{tag} {number}")
    return {"requests_by_client": hook.requests_made}


def bulk_operator(numbers: list[str], tag: str) -> dict[str, Any]:
    from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

    operator = EasifyBulkSendSmsOperator(
        task_id="bench_bulk", from_number=common.SENDER, message=tag + " {{ recipient.to_number }}",
        recipients=numbers, deferrable=False, progress_every=10_000, easify_conn_id=CONN_ID,
    )
    summary = operator.execute(common.task_context())
    return {"summary_sent": len(summary["sent"]), "summary_failed": len(summary["failed"])}


def bulk_operator_deferrable(numbers: list[str], tag: str) -> dict[str, Any]:
    """Run the operator as Airflow would, deferral by deferral, playing the triggerer in-process."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

    operator = EasifyBulkSendSmsOperator(
        task_id="bench_bulk_deferrable", from_number=common.SENDER, message=tag + " {{ recipient.to_number }}",
        recipients=numbers, deferrable=True, progress_every=10_000, easify_conn_id=CONN_ID,
    )
    deferrals = 0
    trigger_seconds = 0.0
    resume: tuple[str, dict[str, Any]] | None = None
    while True:
        try:
            if resume is None:
                summary = operator.execute(common.task_context())
            else:
                summary = getattr(operator, resume[0])(common.task_context(), **resume[1])
            break
        except TaskDeferred as deferred:
            deferrals += 1
            started = time.perf_counter()
            event = asyncio.run(first_event(deferred.trigger))
            trigger_seconds += time.perf_counter() - started
            resume = (deferred.method_name, {**(deferred.kwargs or {}), "event": event})
    return {
        "summary_sent": len(summary["sent"]), "summary_failed": len(summary["failed"]), "deferrals": deferrals,
        "seconds_in_triggers": round(trigger_seconds, 3),
    }


async def first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the trigger ended without an event")


def _send_share(numbers: list[str], tag: str, errors: Any) -> None:
    """One of the processes sharing the token: its own hook, its share of the recipients."""
    try:
        hook_loop(numbers, tag)
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def processes_sharing_token(numbers: list[str], tag: str) -> dict[str, Any]:
    forking = multiprocessing.get_context("fork")
    errors = forking.Queue()
    shares = [numbers[i::PROCESSES] for i in range(PROCESSES)]
    children = [forking.Process(target=_send_share, args=(share, tag, errors)) for share in shares]
    try:
        for child in children:
            child.start()
        for child in children:
            child.join()
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()
    failed = [child.exitcode for child in children if child.exitcode != 0]
    if failed:
        reasons = [errors.get(timeout=5) for _ in range(errors.qsize())] if not errors.empty() else []
        raise RuntimeError(f"sending process(es) exited with {failed}:\n" + "\n".join(reasons))
    return {"processes": PROCESSES, "shares": [len(share) for share in shares]}


SCENARIOS: dict[str, Callable[[list[str], str], dict[str, Any]]] = {
    "hook loop": hook_loop,
    "bulk operator": bulk_operator,
    "bulk operator, deferrable": bulk_operator_deferrable,
    f"{PROCESSES} processes, one token": processes_sharing_token,
}


def import_code_paths() -> None:
    """Import what the scenarios use before timing them, so that no scenario pays for the imports."""
    from airflow.providers.common.compat.sdk import TaskDeferred  # noqa: F401

    from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator  # noqa: F401
    from airflow_provider_easify.triggers.sms import EasifySendWindowTrigger  # noqa: F401


# ---------------------------------------------------------------------- one measurement


def measure(sandbox: common.SandboxProcess, workdir: str, name: str, numbers: list[str], run: int) -> dict[str, Any]:
    sandbox.client.reset()
    common.fresh_pacing_dir(workdir)
    tag = f"pacing run {run} {name}:"
    started = time.perf_counter()
    extra = SCENARIOS[name](numbers, tag)
    wall = time.perf_counter() - started
    stats = sandbox.client.stats()
    ledger = sandbox.client.ledger()

    accepted = sorted(r["t"] for r in stats["requests"] if r["endpoint"] == "send" and r["status"] == 200)
    rate, span = whole_window_rate(accepted)
    intended = Counter(f"{tag} {number}" for number in numbers)
    in_ledger = Counter(entry["message"] for entry in ledger)
    missing = sum(1 for body in intended if in_ledger[body] == 0)
    duplicates = sum(max(0, in_ledger[body] - 1) for body in intended)
    unexpected = sum(count for body, count in in_ledger.items() if body not in intended)
    return {
        "messages": len(numbers),
        "wall_seconds": round(wall, 3),
        "counted_span_seconds": round(span, 3),
        "achieved_rate": round(rate, 3),
        "rate_ratio": round(rate / ALLOWED_RATE, 4),
        "wall_rate_ratio": round(len(numbers) / wall / ALLOWED_RATE, 4),
        "send_429": int(stats["by_endpoint_status"].get("send", {}).get("429", 0)),
        "requests": int(stats["total"]),
        "requests_by_endpoint": stats["by_endpoint"],
        "in_ledger": len(ledger),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        **extra,
    }


def whole_window_rate(accepted: list[float]) -> tuple[float, float]:
    """Sends per second counted in whole window budgets, and the time span that was counted.

    ``k`` budgets of 15 sends are counted from the first accepted send to the first send of the next
    budget: for evenly paced sends that is the mean spacing, for a burst per window the window cycle.
    (Counting from the first to the last send would favour bursts, which send a whole budget at once.)
    """
    budgets = (len(accepted) - 1) // SEND_LIMIT
    if budgets < 1:
        return float("nan"), 0.0
    span = accepted[budgets * SEND_LIMIT] - accepted[0]
    return budgets * SEND_LIMIT / span, span


def summarize(name: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ratio = common.median(r["rate_ratio"] for r in runs)
    drawn = max(r["send_429"] for r in runs)
    wrong = max(r["missing"] + r["duplicates"] + r["unexpected"] for r in runs)
    intended = runs[0]["messages"]
    in_ledger = [r["in_ledger"] for r in runs]
    return [
        common.figure(f"{name}: achieved / allowed send rate", round(ratio, 3), goal=f">= {RATE_GOAL}",
                      met=ratio >= RATE_GOAL, note=f"allowed {ALLOWED_RATE:g}/s; median of {len(runs)}"
                      + (f"; {DEFERRAL_NOTE}" if "deferrable" in name else "")),
        common.figure(f"{name}: 429s drawn (worst run)", drawn, goal="0", met=drawn == 0),
        common.figure(f"{name}: messages in ledger / intended", f"{min(in_ledger)}/{intended}",
                      note="worst run"),
        common.figure(f"{name}: missing + duplicated messages (worst run)", wrong, goal="0 (exactly once)",
                      met=wrong == 0),
    ]


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    count = 30 if args.smoke else 150
    started = time.perf_counter()
    common.terminate_on_sigterm()
    facts = common.machine_facts()
    common.print_machine(facts)
    print(f"Send pacing: {count} messages per scenario, sandbox at {SEND_LIMIT} sends per {SEND_WINDOW_SECONDS:g} s, "
          f"{runs} run(s)")
    numbers = recipients(count)
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="easify-bench-pacing-") as workdir:
        common.prepare_environment(workdir)
        common.allow_direct_execute()
        import_code_paths()
        options = ["--send-limit", str(SEND_LIMIT), "--send-window", str(SEND_WINDOW_SECONDS), "--read-limit", "0"]
        with common.SandboxProcess(workdir, *options) as sandbox:
            common.use_connection(CONN_ID, sandbox.api_url, CONNECTION_EXTRA)
            for run in range(1, runs + 1):
                for name in SCENARIOS:
                    entry = measure(sandbox, workdir, name, numbers, run)
                    measured[name].append(entry)
                    print(f"  run {run} {name:28} rate/allowed {entry['rate_ratio']:.3f}  429s {entry['send_429']}  "
                          f"ledger {entry['in_ledger']}/{entry['messages']}  {entry['wall_seconds']:.1f} s")

    figures = [f for name, entries in measured.items() for f in summarize(name, entries)]
    rows = []
    for name, entries in measured.items():
        rows.append([
            name,
            f"{common.median(e['rate_ratio'] for e in entries):.3f}",
            f"{common.median(e['counted_span_seconds'] / ((e['messages'] - 1) // SEND_LIMIT) for e in entries):.2f}",
            max(e["send_429"] for e in entries),
            f"{min(e['in_ledger'] for e in entries)}/{count}",
            max(e["duplicates"] for e in entries),
            f"{common.median(e['requests'] / count for e in entries):.2f}",
        ])
    common.print_table(
        ["scenario", "rate/allowed", f"s per {SEND_LIMIT} sends", "429s", "ledger/intended", "duplicates",
         "requests/msg"],
        rows, title=f"Send pacing (median of {runs}; allowed {ALLOWED_RATE:g} sends/s)",
    )
    common.print_figures("Goals", figures)
    payload = common.result(
        "pacing", smoke=args.smoke, runs=runs, started=started, figures=figures,
        messages=count, send_limit=SEND_LIMIT, send_window_seconds=SEND_WINDOW_SECONDS,
        allowed_rate=ALLOWED_RATE, connection_extra=CONNECTION_EXTRA, scenarios=measured,
    )
    common.write_result("pacing", payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
