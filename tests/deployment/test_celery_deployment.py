"""Parallel sends from two Celery workers share one token's send budget through Redis.

A real multi-host deployment: Airflow 3 with the CeleryExecutor (``api-server``, ``scheduler``,
``dag-processor`` and two ``celery worker`` processes), a real ``redis-server`` as the Celery broker
(db 0) and as the Easify pacing store (db 1, connection ``easify_pacing_redis``). Each worker has its
own ``TMPDIR`` and ``EASIFY_PACING_DIR``, so local (file) pacing cannot coordinate them: they are two
hosts. Sixty mapped sends, run by both workers at once against a sandbox allowing 15 sends per 6 s,
must all succeed, reach the sandbox exactly once each, and draw no 429 at all: only a budget shared
across hosts keeps two workers under the token's limit. Every process is stopped at the end, also when
the test fails.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import pytest
import requests

from airflow_provider_easify.sandbox import EasifySandbox, SandboxConfig
from tests.conftest import conn_json
from tests.deployment.test_deployment import VENV_BIN, Deployment, _group_alive, free_port
from tests.redis_server import RedisServer

DAG_ID = "celery_parallel_sends"
NUMBERS = [f"+1315136{n:04d}" for n in range(60)]
WORKERS = ("w1", "w2")
SEND_LIMIT, SEND_WINDOW = 15, 6

CELERY_DAG = f"""
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifySendSmsOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), max_active_tasks=8):
    EasifySendSmsOperator.partial(
        task_id="send", from_number="+13155550100", message="Celery reminder", retries=0,
    ).expand(to_number={NUMBERS!r})
"""


class CeleryDeployment(Deployment):
    """:class:`Deployment`'s REST helpers over separate Airflow processes and two Celery workers."""

    def __init__(self, root: Path, redis: RedisServer, env: dict[str, str]) -> None:
        super().__init__(
            root,
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": redis.url,
                # A task supervisor notices its finished task at its next wake-up, by default up to 5 s later;
                # waking every second frees worker slots fast enough for the sends to outrun the send limit.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                **env,
            },
        )
        self.root = root
        self.procs: dict[str, tuple[subprocess.Popen, IO[str]]] = {}

    def _log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self._log_path(name), "w")
        proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.home,
        )
        self.procs[name] = (proc, log)
        return proc

    def start(self, timeout: float = 240) -> None:
        migrate = self._spawn("db-migrate", ["db", "migrate"])
        assert migrate.wait(timeout=timeout) == 0, f"airflow db migrate failed:\n{self.output()}"
        self._spawn("api-server", ["api-server"])
        self._spawn("scheduler", ["scheduler"])
        self._spawn("dag-processor", ["dag-processor"])
        for name in WORKERS:
            host = self.root / name
            (host / "tmp").mkdir(parents=True)
            worker_env = {
                "TMPDIR": str(host / "tmp"),
                "EASIFY_PACING_DIR": str(host / "pacing"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.deployment.celery_cluster.hostname",
                "EASIFY_TEST_HOST": name,
            }
            worker = ["celery", "worker", "--celery-hostname", f"{name}@local", "--concurrency", "2"]
            self._spawn(name, worker, worker_env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, (proc, _) in self.procs.items():
                assert name == "db-migrate" or proc.poll() is None, f"{name} exited:\n{self.output()}"
            if self._healthy() and all(f"{name}@local ready." in self._read(name) for name in WORKERS):
                return
            time.sleep(1)
        raise AssertionError(f"the Celery deployment did not come up in {timeout}s:\n{self.output()}")

    def _healthy(self) -> bool:
        try:
            health = requests.get(f"{self.base}/api/v2/monitor/health", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return all(health.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "dag_processor"))

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left; all groups at once."""
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            for name in self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.procs[name][0].pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.5)
        for proc, log in self.procs.values():
            proc.wait(timeout=10)
            log.close()

    def alive(self) -> list[str]:
        """Processes whose group still has a member (the leader is reaped first: a zombie counts)."""
        return [name for name, (proc, _) in self.procs.items() if proc.poll() is None or _group_alive(proc.pid)]

    def _read(self, name: str) -> str:
        return self._log_path(name).read_text(errors="replace")

    def send_log(self, run_id: str, map_index: int, tail: int = 3000) -> str:
        """The end of one mapped send's task log (logs are local files: both workers share the home)."""
        pattern = f"logs/dag_id={DAG_ID}/run_id={run_id}/task_id=send/map_index={map_index}/attempt=*.log"
        return "".join(path.read_text(errors="replace")[-tail:] for path in self.home.glob(pattern))

    def output(self, tail: int = 1500) -> str:
        """The end of every process's log (the base class's messages end with this)."""
        return "\n".join(f"===== {name} =====\n{self._read(name)[-tail:]}" for name in self.procs)


def ran_at_once(tis: list[dict]) -> bool:
    spans = {
        worker: [
            (dt.datetime.fromisoformat(ti["start_date"]), dt.datetime.fromisoformat(ti["end_date"]))
            for ti in tis
            if ti["hostname"] == worker
        ]
        for worker in WORKERS
    }
    return any(a0 < b1 and b0 < a1 for a0, a1 in spans["w1"] for b0, b1 in spans["w2"])


@pytest.mark.timeout(900)
def test_two_celery_workers_share_the_send_budget_through_redis(tmp_path):
    config = SandboxConfig(
        send_limit=SEND_LIMIT, send_window_seconds=SEND_WINDOW, read_limit=0, pending_seconds=0.5, delivered_seconds=1
    )
    with EasifySandbox(config=config) as sandbox, RedisServer() as redis:
        extra = {
            "send_per_minute": SEND_LIMIT * 60 // SEND_WINDOW,
            "send_window_seconds": SEND_WINDOW,
            "read_per_minute": 0,
            "timeout": 10,
            "pacing_redis_conn_id": "easify_pacing_redis",
        }
        deployment = CeleryDeployment(
            tmp_path,
            redis,
            {
                "AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, extra),
                "AIRFLOW_CONN_EASIFY_PACING_REDIS": redis.conn_json(db=1),
            },
        )
        (deployment.dags / f"{DAG_ID}.py").write_text(CELERY_DAG)
        started = time.monotonic()
        try:
            deployment.start()
            up = time.monotonic()
            run_id = deployment.trigger(DAG_ID)
            triggered = time.monotonic()
            state = deployment.wait_for_run(DAG_ID, run_id, timeout=600)
            finished = time.monotonic()
            tis = deployment.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
            send_statuses = sandbox.stats()["by_endpoint_status"].get("send", {})
            per_number = collections.Counter(m["receiver"] for m in sandbox.ledger())
            per_worker = collections.Counter(ti["hostname"] for ti in tis)
            print(
                f"up in {up - started:.0f}s, run {state} {finished - triggered:.0f}s after the trigger; "
                f"send answers {send_statuses}; tasks per worker {dict(per_worker)}; "
                f"{len(per_number)} numbers reached, {sum(per_number.values())} messages"
            )
            failed = [ti for ti in tis if ti["state"] != "success"]
            failure_log = deployment.send_log(run_id, failed[0]["map_index"]) if failed else ""
            assert state == "success" and not failed, (
                f"{state}: {json.dumps(failed[:3], indent=1)[:3000]}\n{failure_log}"
            )
            assert len(tis) == len(NUMBERS)
            assert per_number == collections.Counter(NUMBERS), "every number exactly once"
            assert set(per_worker) == set(WORKERS), f"both workers ran sends: {per_worker}"
            assert ran_at_once(tis), "a w1 send and a w2 send were running at the same moment"
            assert send_statuses.get("429", 0) == 0, f"the two workers overran the token's send limit: {send_statuses}"
        except BaseException:
            print(deployment.output(tail=6000))
            raise
        finally:
            deployment.stop()
        assert not deployment.alive(), "every Airflow process was stopped"
