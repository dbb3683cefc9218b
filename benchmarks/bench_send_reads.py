"""What a send costs the read side, and what a deferrable bulk send writes per deferral.

    python benchmarks/bench_send_reads.py            # 100 sends per path; 10, 1,000 and 10,000 recipients
    python benchmarks/bench_send_reads.py --smoke    # 20 sends per path; 10 and 200 recipients

1. **Report reads per 100 sends** (counted at the sandbox), through each way of sending:

   * ``hook loop``: one ``EasifyHook.send_sms`` after another;
   * ``mapped operator``: ``EasifySendSmsOperator`` as a mapped task runs on a worker: each task
     instance in a process of its own (forked, two at a time), none of them knowing any message id;
   * ``bulk operator`` and ``bulk operator, deferrable`` (the triggerer played in-process);
   * ``hook loop, 10 % ambiguous``: a tenth of the sends recorded and then answered 502: each costs
     the lookup that finds it (one read, or two after the settle time), nothing else does.

   Before this work every send read the conversation's watermark from the report: 100 reads per 100.
   Goal: at most 2 per 100 with no faults.

2. **Bytes per deferral** of ``EasifyBulkSendSmsOperator(deferrable=True)``: what each deferral writes
   to the metadata database (the trigger's kwargs, the ``next_kwargs`` the task resumes with, and the
   XComs written since the previous deferral, each serialized as JSON), with a task instance that keeps
   its XComs in memory. The recipients' list, written once per try before the first send, is reported
   apart. Goal: flat in the number of recipients, under 20 KB.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

CONN_ID = "easify_bench_send_reads"
FAST = {"read_per_minute": 0, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5, "send_settle_seconds": 0.3}


def recipients(count: int) -> list[str]:
    """Distinct US numbers, none ending in the sandbox's magic 999x."""
    numbers = (f"+131555{n:05d}" for n in range(100_000) if not f"{n:05d}"[-4:].startswith("999"))
    return [next(numbers) for _ in range(count)]


# ---------------------------------------------------------------------- reads per send


def hook_loop(numbers: list[str]) -> dict[str, Any]:
    from airflow_provider_easify.hooks.easify import EasifyHook

    hook = EasifyHook(easify_conn_id=CONN_ID)
    for number in numbers:
        hook.send_sms(common.SENDER, number, "reads per send")
    return {}


def _mapped_task_instance(number: str) -> str:
    from airflow_provider_easify.operators.sms import EasifySendSmsOperator

    common.allow_direct_execute()
    operator = EasifySendSmsOperator(
        task_id="send", from_number=common.SENDER, to_number=number, message="reads per send", easify_conn_id=CONN_ID
    )
    return str(operator.execute(common.task_context()))


def mapped_operator(numbers: list[str]) -> dict[str, Any]:
    # A fresh process per task instance, as a worker runs them; they share this machine's pacing directory.
    pool = multiprocessing.get_context("fork").Pool(2, maxtasksperchild=1)
    try:
        pool.map(_mapped_task_instance, numbers, chunksize=1)
    finally:
        pool.close()
        pool.join()
    return {}


def bulk_operator(numbers: list[str]) -> dict[str, Any]:
    from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=common.SENDER, message="reads per send", recipients=numbers,
        deferrable=False, progress_every=10_000, easify_conn_id=CONN_ID,
    )
    operator.execute(common.task_context())
    return {}


def bulk_operator_deferrable(numbers: list[str]) -> dict[str, Any]:
    _, deferrals = run_deferrable(numbers, _MemoryTaskInstance())
    return {"deferrals": len(deferrals)}


SCENARIOS = {
    "hook loop": (hook_loop, {}),
    "mapped operator": (mapped_operator, {}),
    "bulk operator": (bulk_operator, {}),
    "bulk operator, deferrable": (bulk_operator_deferrable, {"send_per_minute": 600, "send_window_seconds": 2}),
    "hook loop, 10 % ambiguous": (hook_loop, {}),
}


def measure_reads(workdir: str, name: str, count: int) -> dict[str, Any]:
    function, extra = SCENARIOS[name]
    sandbox = common.SandboxProcess(workdir, "--send-limit", "0", "--read-limit", "0")
    try:
        common.fresh_pacing_dir(workdir)
        common.use_connection(CONN_ID, sandbox.api_url, {**FAST, "send_per_minute": 0, **extra}, token=sandbox.token)
        if "ambiguous" in name:
            sandbox.client.add_fault("send", "recorded_502", probability=0.1)
        numbers = recipients(count)
        started = time.perf_counter()
        details = function(numbers)
        seconds = time.perf_counter() - started
        stats = sandbox.client.stats()
        ledger = sandbox.client.ledger()
    finally:
        sandbox.stop()
    reads = int(stats["by_endpoint"].get("report", 0))
    return {
        "scenario": name, "sends": count, "report_reads": reads, "reads_per_100": round(reads * 100 / count, 2),
        "in_ledger": len(ledger), "distinct_recipients": len({m["to_number"] for m in ledger}),
        "ambiguous_sends": int(stats["faults_by_kind"].get("recorded_502", 0)), "seconds": round(seconds, 2),
        **details,
    }


# ---------------------------------------------------------------------- bytes per deferral


class _MemoryTaskInstance:
    """The XCom side of a task instance, in memory, measuring what each push would write."""

    task_id = "bulk"
    map_index = -1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}
        self.pushed: list[tuple[str, int]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
        self.pushed.append((key, len(json.dumps(value))))

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.xcoms.get(key)


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event.payload


def run_deferrable(numbers: list[str], ti: _MemoryTaskInstance) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """Run the deferrable bulk operator deferral by deferral; the bytes each deferral wrote."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_easify.operators.sms import RECIPIENTS_XCOM, EasifyBulkSendSmsOperator

    common.allow_direct_execute()
    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=common.SENDER, message="bytes per deferral", recipients=numbers,
        deferrable=True, progress_every=10_000, easify_conn_id=CONN_ID,
    )
    context = {**common.task_context(), "ti": ti}
    deferrals: list[dict[str, int]] = []
    resume: tuple[str, dict[str, Any]] | None = None
    seen = 0
    while True:
        try:
            if resume is None:
                summary = operator.execute(context)
            else:
                summary = getattr(operator, resume[0])(context, **resume[1])
            return summary, deferrals
        except TaskDeferred as deferred:
            pushed = [size for key, size in ti.pushed[seen:] if key != RECIPIENTS_XCOM]
            seen = len(ti.pushed)
            deferrals.append({
                "trigger_kwargs": len(json.dumps(deferred.trigger.serialize()[1])),
                "next_kwargs": len(json.dumps(deferred.kwargs or {})),
                "xcoms": sum(pushed),
            })
            event = asyncio.run(_first_event(deferred.trigger))
            resume = (deferred.method_name, {**(deferred.kwargs or {}), "event": event})


def measure_bytes(workdir: str, count: int) -> dict[str, Any]:
    from airflow_provider_easify.hooks.easify import EasifyHook
    from airflow_provider_easify.operators.sms import RECIPIENTS_XCOM

    sandbox = common.SandboxProcess(workdir, "--send-limit", "0", "--read-limit", "0")
    try:
        common.fresh_pacing_dir(workdir)
        # 100 sends a 2 s window: bursts of 100, a deferral between them.
        common.use_connection(
            CONN_ID, sandbox.api_url, {**FAST, "send_per_minute": 3000, "send_window_seconds": 2}, token=sandbox.token
        )
        EasifyHook(easify_conn_id=CONN_ID).reserve_send_slots(100)  # the window is taken: even 10 defer once
        ti = _MemoryTaskInstance()
        summary, deferrals = run_deferrable(recipients(count), ti)
        ledger = sandbox.client.ledger()
    finally:
        sandbox.stop()
    totals = [d["trigger_kwargs"] + d["next_kwargs"] + d["xcoms"] for d in deferrals]
    return {
        "recipients": count, "deferrals": len(deferrals), "max_bytes_per_deferral": max(totals, default=0),
        "median_bytes_per_deferral": common.median(totals) if totals else 0,
        "max_next_kwargs": max((d["next_kwargs"] for d in deferrals), default=0),
        "recipients_xcom_once": next((size for key, size in ti.pushed if key == RECIPIENTS_XCOM), 0),
        "sent": len(summary["sent"]), "in_ledger": len(ledger),
    }


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    started = time.perf_counter()
    common.terminate_on_sigterm()
    common.print_machine(common.machine_facts())
    sends = 20 if args.smoke else 100
    sizes = [10, 200] if args.smoke else [10, 1_000, 10_000]
    with tempfile.TemporaryDirectory(prefix="easify-bench-reads-") as workdir:
        common.prepare_environment(workdir)
        reads = [measure_reads(workdir, name, sends) for name in SCENARIOS]
        deferral_bytes = [measure_bytes(workdir, count) for count in sizes]

    figures = []
    for row in reads:
        ambiguous = "ambiguous" in row["scenario"]
        # The goal is per run of 100 sends: at most 2 reads (plus a lookup, or two, per ambiguous send).
        goal = "<= 2 per run + lookups of ambiguous sends" if ambiguous else "<= 2 per run"
        limit = 2 + 2 * row["ambiguous_sends"]
        exact = row["in_ledger"] == row["sends"] == row["distinct_recipients"]
        figures.append(common.figure(
            f"report reads per 100 sends: {row['scenario']}", row["reads_per_100"], goal=goal,
            met=row["report_reads"] <= limit and exact,
            note=f"{row['report_reads']} reads for {row['sends']} sends; {row['ambiguous_sends']} ambiguous; "
                 f"before: 100 per 100",
        ))
    for row in deferral_bytes:
        figures.append(common.figure(
            f"bytes per deferral, {row['recipients']} recipients", row["max_bytes_per_deferral"], unit="B",
            goal="< 20000, flat", met=0 < row["max_bytes_per_deferral"] < 20_000 and row["sent"] == row["recipients"],
            note=f"{row['deferrals']} deferrals; recipients' list written once: {row['recipients_xcom_once']} B",
        ))
    common.print_table(
        ["path", "sends", "report reads", "per 100", "ambiguous", "in ledger", "seconds"],
        [[r["scenario"], r["sends"], r["report_reads"], r["reads_per_100"], r["ambiguous_sends"], r["in_ledger"],
          r["seconds"]] for r in reads],
        title="Report reads per send",
    )
    common.print_table(
        ["recipients", "deferrals", "max B/deferral", "median B/deferral", "max next_kwargs B", "recipients XCom B"],
        [[r["recipients"], r["deferrals"], r["max_bytes_per_deferral"], r["median_bytes_per_deferral"],
          r["max_next_kwargs"], r["recipients_xcom_once"]] for r in deferral_bytes],
        title="Bytes written per deferral (deferrable bulk send)",
    )
    common.print_figures("Sends and the read side", figures)
    payload = common.result("send_reads", smoke=args.smoke, runs=1, started=started, figures=figures,
                            reads=reads, deferral_bytes=deferral_bytes)
    common.write_result("send_reads", payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
