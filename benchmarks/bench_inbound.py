"""Inbound SMS watchers: what W asset watchers on one account cost, and how soon a text becomes an event.

    python benchmarks/bench_inbound.py            # W = 1, 10, 100 watchers; 30 texts each run; median of 3
    python benchmarks/bench_inbound.py --smoke    # W = 1, 10; 10 texts; one run

Against the sandbox in its own process (the account's seeded report rows included). W real
``EasifyInboundSmsTrigger`` run loops (no filter: each wants every text) run in one asyncio event loop,
as in one triggerer, polling every ``POLL_S`` seconds at the API's read budget (60 per minute,
``read_per_minute`` 60). Once every watcher has taken its baseline, texts are injected one every
``GAP_S`` seconds from different contacts, among outgoing messages sent between them.

Figures: report reads per poll round (the sandbox's report requests while the texts arrive / the
shared poller's rounds; goal 1, whatever W: one read answers every watcher), the events each watcher got
against the texts sent (goal: each text exactly once, never an outgoing message), and the seconds from
a text's injection to its event (median and max; a round every ``POLL_S`` s bounds it).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

NAME = "inbound"
SIZES = {"full": {"watchers": (1, 10, 100), "texts": 30}, "smoke": {"watchers": (1, 10), "texts": 10}}
POLL_S = 1.0
GAP_S = 0.35
CONN = "easify_bench_inbound"
ACCOUNT = "+13155550100"


def contact(index: int) -> str:
    return f"+1315{5700000 + index}"


async def one_run(sandbox: Any, watchers: int, texts: int) -> dict[str, Any]:
    from airflow_provider_easify.hooks.easify import EasifyHook
    from airflow_provider_easify.triggers.coalesce import InboundPoller
    from airflow_provider_easify.triggers.inbound import EasifyInboundSmsTrigger

    triggers = [EasifyInboundSmsTrigger(easify_conn_id=CONN, poll_interval=POLL_S) for _ in range(watchers)]
    got: list[list[tuple[str, float]]] = [[] for _ in triggers]

    async def pump(index: int, trigger: EasifyInboundSmsTrigger) -> None:
        async for event in trigger.run():
            got[index].append((event.payload["sms_id"], time.monotonic()))

    tasks = [asyncio.ensure_future(pump(i, t)) for i, t in enumerate(triggers)]
    try:
        while any(t.cursor.high is None for t in triggers):
            await asyncio.sleep(0.05)
        poller = next(iter(InboundPoller._pollers.values()))
        rounds_before, stats_before = poller.rounds_done, sandbox.client.stats()
        hook = EasifyHook(easify_conn_id=CONN)
        injected: dict[str, float] = {}
        for n in range(texts):
            row = await asyncio.to_thread(sandbox.client.inject_incoming, ACCOUNT, contact(n), f"text {n}")
            injected[str(row["id"])] = time.monotonic()
            await asyncio.to_thread(hook.send_sms, ACCOUNT, contact(n), "an outgoing message", after_message_id=0)
            await asyncio.sleep(GAP_S)
        deadline = time.monotonic() + 10 * POLL_S
        while any(len(g) < texts for g in got) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2 * POLL_S)  # time for a duplicate to show, if there were one
        rounds = poller.rounds_done - rounds_before
        reads = common.requests_since(stats_before, sandbox.client.stats(), "report")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [at - injected[sms_id] for events in got for sms_id, at in events if sms_id in injected]
    exact = sum(sorted(sms_id for sms_id, _ in events) == sorted(injected) for events in got)
    return {
        "watchers": watchers, "texts": texts, "rounds": rounds, "report_reads": reads,
        "reads_per_round": reads / rounds if rounds else None,
        "watchers_exactly_once": exact,
        "unexpected_events": sum(1 for events in got for sms_id, _ in events if sms_id not in injected),
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_max_s": max(latencies) if latencies else None,
    }


def figures_of(results: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    figures = []
    for watchers, runs in results.items():
        per_round = common.median(r["reads_per_round"] for r in runs if r["reads_per_round"] is not None)
        exact = all(r["watchers_exactly_once"] == watchers and r["unexpected_events"] == 0 for r in runs)
        figures += [
            common.figure(f"W = {watchers} watchers: report reads per poll round", round(per_round, 2),
                          goal="1", met=per_round <= 1.05),
            common.figure(f"W = {watchers} watchers: every text to every watcher exactly once, nothing else",
                          "yes" if exact else "no", goal="yes", met=exact),
            common.figure(f"W = {watchers} watchers: text to event, median", round(common.median(
                r["latency_median_s"] for r in runs), 2), unit="s", note=f"poll every {POLL_S:g} s"),
            common.figure(f"W = {watchers} watchers: text to event, max", round(max(
                r["latency_max_s"] for r in runs), 2), unit="s"),
        ]
    return figures


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    sizes = SIZES["smoke" if args.smoke else "full"]
    started = time.perf_counter()
    common.terminate_on_sigterm()
    common.print_machine(common.machine_facts())
    results: dict[int, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="easify-bench-inbound-") as workdir:
        common.prepare_environment(workdir)
        with common.SandboxProcess(workdir, "--send-limit", "0") as sandbox:
            common.use_connection(CONN, sandbox.api_url, {"send_per_minute": 0, "read_per_minute": 60, "timeout": 30})
            for watchers in sizes["watchers"]:
                results[watchers] = []
                for _ in range(runs):
                    common.fresh_pacing_dir(workdir)
                    run = asyncio.run(one_run(sandbox, watchers, sizes["texts"]))
                    print(run, flush=True)
                    results[watchers].append(run)
    figures = figures_of(results)
    common.print_figures("Inbound SMS watchers", figures)
    payload = common.result(NAME, smoke=args.smoke, runs=runs, started=started, figures=figures,
                            poll_s=POLL_S, gap_s=GAP_S, results={str(k): v for k, v in results.items()})
    common.write_result(NAME, payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
