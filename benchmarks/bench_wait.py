"""Waiting cost: requests made and worker seconds held by the status sensor, deferrable versus poke mode.

    python benchmarks/bench_wait.py            # a 60 s wait, poke_interval 5 s, median of 3 runs
    python benchmarks/bench_wait.py --smoke    # a 6 s wait, poke_interval 1 s, one run

A message is sent to a sandbox (its own process) that delivers messages ``--delivered-seconds`` after
they were sent; ``EasifySmsStatusSensor`` then waits for ``Delivered``, in both modes at once, each against
its own sandbox so that the requests of each mode are counted apart:

* deferrable: ``execute`` runs its first check and raises ``TaskDeferred``; the trigger, rebuilt from its
  serialized form as the triggerer would, runs with asyncio until its event; ``resume_execution`` then
  finishes the task. Worker seconds held = the time in ``execute`` plus the time in the resumption;
* poke: ``execute`` with ``mode="poke"``, as a worker runs it: the whole wait holds the worker.

Requests are counted by the sandbox. Goal: deferrable requests <= ceil(wait / poke_interval) + 1 and worker
seconds held ~0 (reported as a fraction of the wait; the goal taken here is <= 0.02).
"""

from __future__ import annotations

import asyncio
import importlib
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

RECEIVER = "+13155561234"
#: "Worker seconds held ~0", made a number: at most this fraction of the wait.
HELD_GOAL = 0.02
#: The connection keeps the API's real read budget (60 a minute, paced by the hook) but sends unpaced.
CONNECTION_EXTRA = {"send_per_minute": 0, "timeout": 10}


def send_one(conn_id: str) -> str:
    from airflow_provider_easify.hooks.easify import EasifyHook

    # after_message_id: skip the history read before the send, which would take a slot of the read budget
    # and make the sensor's first check wait for the next one.
    hook = EasifyHook(easify_conn_id=conn_id)
    return hook.send_sms(common.SENDER, RECEIVER, "waiting-cost benchmark", after_message_id=0)


def sensor(conn_id: str, sms_id: str, *, deferrable: bool, poke_interval: float, wait: float) -> Any:
    from airflow_provider_easify.sensors.sms import EasifySmsStatusSensor

    return EasifySmsStatusSensor(
        task_id=f"wait_{'deferrable' if deferrable else 'poke'}", sms_id=sms_id, sender=common.SENDER,
        receiver=RECEIVER, deferrable=deferrable, mode="poke", poke_interval=poke_interval, timeout=wait * 3,
        easify_conn_id=conn_id,
    )


def rebuilt(trigger: Any) -> Any:
    """The trigger as the triggerer gets it: from its serialized class path and keyword arguments."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


async def first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the trigger ended without an event")


class Triggerer(threading.Thread):
    """What the triggerer does, on a daemon thread (an interrupted benchmark does not wait for it): run
    the trigger rebuilt from its serialized form until its event."""

    def __init__(self, trigger: Any) -> None:
        super().__init__(name="triggerer", daemon=True)
        self.trigger = rebuilt(trigger)
        self.outcome: tuple[Any, float] | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        started = time.perf_counter()
        try:
            event = asyncio.run(first_event(self.trigger))
        except BaseException as exc:  # noqa: BLE001 - re-raised by result(), on the waiting thread
            self.error = exc
            return
        self.outcome = (event, time.perf_counter() - started)

    def result(self) -> tuple[Any, float]:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def request_offsets(before: dict[str, Any], after: dict[str, Any], started_at: float) -> list[float]:
    """When each request of the wait reached the sandbox, in seconds after the sensor started."""
    return [round(r["t"] - started_at, 2) for r in after["requests"][len(before["requests"]):]]


def deferrable_wait(
    sandbox: common.SandboxProcess, conn_id: str, poke_interval: float, wait: float, meanwhile: Callable[[], Any]
) -> tuple[dict[str, Any], Any]:
    """The deferrable sensor; ``meanwhile`` runs on this thread while the trigger waits on another.

    Every operator call stays on the calling thread (Airflow 2 lets ``execute`` run on the main thread only).
    """
    from airflow.providers.common.compat.sdk import TaskDeferred

    sms_id = send_one(conn_id)
    before = sandbox.client.stats()
    task = sensor(conn_id, sms_id, deferrable=True, poke_interval=poke_interval, wait=wait)
    started_at = time.time()
    started = time.perf_counter()
    try:
        outcome = task.execute(common.task_context())
        raise RuntimeError(f"the sensor finished without deferring ({outcome!r}): was the message delivered already?")
    except TaskDeferred as deferred:
        held_before = time.perf_counter() - started
        triggerer = Triggerer(deferred.trigger)
        other = meanwhile()
        event, in_trigger = triggerer.result()
        resumed = time.perf_counter()
        next_kwargs = {**(deferred.kwargs or {}), "event": event}
        outcome = task.resume_execution(deferred.method_name, next_kwargs, common.task_context())
        held_after = time.perf_counter() - resumed
    after = sandbox.client.stats()
    measured = {
        "outcome": outcome,
        "requests": common.requests_since(before, after),
        "worker_seconds": round(held_before + held_after, 4),
        "worker_seconds_before_deferral": round(held_before, 4),
        "worker_seconds_resuming": round(held_after, 4),
        "trigger_seconds": round(in_trigger, 3),
        "wall_seconds": round(held_before + in_trigger + held_after, 3),
        "request_offsets_s": request_offsets(before, after, started_at),
    }
    return measured, other


def poke_wait(sandbox: common.SandboxProcess, conn_id: str, poke_interval: float, wait: float) -> dict[str, Any]:
    sms_id = send_one(conn_id)
    before = sandbox.client.stats()
    task = sensor(conn_id, sms_id, deferrable=False, poke_interval=poke_interval, wait=wait)
    started_at = time.time()
    started = time.perf_counter()
    outcome = task.execute(common.task_context())
    held = time.perf_counter() - started
    after = sandbox.client.stats()
    return {
        "outcome": outcome,
        "requests": common.requests_since(before, after),
        "worker_seconds": round(held, 4),
        "wall_seconds": round(held, 3),
        "request_offsets_s": request_offsets(before, after, started_at),
    }


def summarize(measured: dict[str, list[dict[str, Any]]], wait: float, poke_interval: float) -> list[dict[str, Any]]:
    allowed = math.ceil(wait / poke_interval) + 1
    deferrable, poke = measured["deferrable"], measured["poke"]
    requests = common.median(r["requests"] for r in deferrable)
    worst_requests = max(r["requests"] for r in deferrable)
    held = common.median(r["worker_seconds"] for r in deferrable)
    held_poke = common.median(r["worker_seconds"] for r in poke)
    outcomes = sorted({str(r["outcome"]) for runs in measured.values() for r in runs})
    return [
        common.figure("deferrable: requests during the wait (worst run)", worst_requests,
                      goal=f"<= {allowed} (ceil({wait:g}/{poke_interval:g})+1)", met=worst_requests <= allowed,
                      note=f"median {requests:g}"),
        common.figure("deferrable: worker seconds held / wait", round(held / wait, 4),
                      goal=f"~0 (<= {HELD_GOAL})", met=held / wait <= HELD_GOAL, note=f"{held:.3f} s of {wait:g} s"),
        common.figure("poke: requests during the wait", common.median(r["requests"] for r in poke)),
        common.figure("poke: worker seconds held / wait", round(held_poke / wait, 4),
                      note=f"{held_poke:.1f} s of {wait:g} s"),
        common.figure("worker seconds held, poke / deferrable", round(held_poke / held, 1) if held > 0 else None,
                      unit="x"),
        common.figure("sensor outcome", ", ".join(outcomes), goal="Delivered", met=outcomes == ["Delivered"]),
    ]


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    wait, poke_interval = (6.0, 1.0) if args.smoke else (60.0, 5.0)
    started = time.perf_counter()
    common.terminate_on_sigterm()
    facts = common.machine_facts()
    common.print_machine(facts)
    print(f"Waiting cost: delivery after {wait:g} s, poke_interval {poke_interval:g} s, {runs} run(s); "
          "both modes run side by side, each against its own sandbox")
    measured: dict[str, list[dict[str, Any]]] = {"deferrable": [], "poke": []}
    with tempfile.TemporaryDirectory(prefix="easify-bench-wait-") as workdir:
        common.prepare_environment(workdir)
        common.allow_direct_execute()
        importlib.import_module("airflow_provider_easify.sensors.sms")
        options = ["--delivered-seconds", str(wait), "--pending-seconds", "1"]
        with common.SandboxProcess(workdir, *options) as for_deferrable, \
                common.SandboxProcess(workdir, *options) as for_poke:
            conns = {
                mode: common.use_connection(f"easify_bench_{mode}", server.api_url, CONNECTION_EXTRA)
                for mode, server in (("deferrable", for_deferrable), ("poke", for_poke))
            }
            for run in range(1, runs + 1):
                for_deferrable.client.reset()
                for_poke.client.reset()
                common.fresh_pacing_dir(workdir)
                deferrable, poke = deferrable_wait(
                    for_deferrable, conns["deferrable"], poke_interval, wait,
                    meanwhile=lambda: poke_wait(for_poke, conns["poke"], poke_interval, wait),
                )
                measured["deferrable"].append(deferrable)
                measured["poke"].append(poke)
                for mode in measured:
                    entry = measured[mode][-1]
                    print(f"  run {run} {mode:10} requests {entry['requests']:3}  worker seconds held "
                          f"{entry['worker_seconds']:8.3f}  wall {entry['wall_seconds']:.1f} s  -> {entry['outcome']}")

    rows = [
        [mode, f"{common.median(r['requests'] for r in entries):g}",
         f"{common.median(r['worker_seconds'] for r in entries):.3f}",
         f"{common.median(r['worker_seconds'] for r in entries) / wait:.4f}",
         f"{common.median(r['wall_seconds'] for r in entries):.1f}"]
        for mode, entries in measured.items()
    ]
    common.print_table(["mode", "requests", "worker s held", "held / wait", "wall s"], rows,
                       title=f"Waiting cost (median of {runs}; wait {wait:g} s, poke_interval {poke_interval:g} s)")
    figures = summarize(measured, wait, poke_interval)
    common.print_figures("Goals", figures)
    payload = common.result(
        "wait", smoke=args.smoke, runs=runs, started=started, figures=figures,
        wait_seconds=wait, poke_interval=poke_interval, allowed_requests=math.ceil(wait / poke_interval) + 1,
        modes=measured,
    )
    common.write_result("wait", payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
