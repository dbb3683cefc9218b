"""The provider in a real Airflow 3 deployment, not only ``airflow dags test``.

``airflow standalone`` runs a scheduler, a triggerer, a DAG processor and the API server on a
LocalExecutor with SQLite. DAGs are triggered through the REST API and must succeed; the deferrable
sensor must really defer to the separate triggerer process (which rebuilds the trigger from its
serialized kwargs); parallel mapped sends against a low send limit must each go out exactly once
without a task failing for 429. Every process is stopped at the end, also when a test fails.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import conn_json

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BUCKET = "easify-deployment"

PARALLEL_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifySendSmsOperator

with DAG("deployment_parallel_sends", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         max_active_tasks=8):
    EasifySendSmsOperator.partial(
        task_id="send", from_number="+13155550100", message="Parallel reminder", retries=0,
    ).expand(to_number=[f"+1315135{n:04d}" for n in range(8)])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deployment:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.home = root / "airflow_home"
        self.dags = root / "dags"
        self.home.mkdir()
        self.dags.mkdir()
        self.log_path = root / "standalone.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(
            PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            PYTHONPATH=str(REPO),
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            # Failures of Airflow's own API then say what went wrong instead of pointing at a log id.
            AIRFLOW__API__EXPOSE_STACKTRACE="True",
            # sqlite3's 5 s busy timeout is short for four processes writing one file on two cores.
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="tests.deployment.sqlite_connect_args.CONNECT_ARGS",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base}/execution/",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
            EASIFY_PACING_DIR=str(root / "pacing"),
            **env,
        )
        self.proc: subprocess.Popen | None = None
        self._token: str | None = None

    def start(self, timeout: float = 180) -> None:
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "standalone"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.home,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"standalone exited:\n{self.output()[-4000:]}"
            try:
                health = requests.get(f"{self.base}/api/v2/monitor/health", timeout=2).json()
                components = ("scheduler", "triggerer", "dag_processor")
                if all(health.get(c, {}).get("status") == "healthy" for c in components):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"Airflow did not come up in {timeout}s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.5)
            if not _group_alive(pgid):
                break
        self.proc.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def headers(self) -> dict[str, str]:
        """A bearer token from the simple auth manager's all-admins mode: Airflow 3.1's API wants one (3.2+
        serves all-admins requests without), and every line hands it out at ``GET /auth/token``."""
        if self._token is None:
            response = requests.get(f"{self.base}/auth/token", timeout=10)
            self._token = response.json().get("access_token", "") if response.ok else ""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def api(self, method: str, path: str, attempts: int = 4, **kwargs: Any) -> requests.Response:
        """Airflow's REST API, retrying 5xx answers.

        Airflow on SQLite (what ``airflow standalone`` uses) can answer 500 "database is locked" when the
        scheduler, the DAG processor and the API server write at the same moment; that is Airflow's, not ours.
        """
        for attempt in range(1, attempts + 1):
            response = requests.request(
                method, f"{self.base}/api/v2/{path}", timeout=30, headers=self.headers(), **kwargs
            )
            if response.status_code < 500 or attempt == attempts:
                return response
            print(f"{method} {path}: {response.status_code} {response.text[:2000]}; retrying")
            time.sleep(2)
        raise AssertionError("attempts must be at least 1")

    def get(self, path: str) -> dict:
        response = self.api("GET", path)
        assert response.ok, f"GET {path}: {response.status_code} {response.text[:2000]}\n{self.output()[-6000:]}"
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = requests.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=10, headers=self.headers())
            if response.ok:
                return
            time.sleep(1)
        raise AssertionError(f"{dag_id} was never parsed:\n{self.output()[-4000:]}")

    def trigger(self, dag_id: str, logical_date: str | None = None) -> str:
        self.wait_for_dag(dag_id)
        # Our own run id makes a retried POST safe: one that went through before failing answers 409.
        run_id = f"test__{dag_id}__{uuid.uuid4().hex[:8]}"
        body = {"dag_run_id": run_id, "logical_date": logical_date}
        response = self.api("POST", f"dags/{dag_id}/dagRuns", json=body)
        assert response.ok or response.status_code == 409, (
            f"POST dags/{dag_id}/dagRuns: {response.status_code} {response.text[:2000]}\n{self.output()[-6000:]}"
        )
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}")["dag_run_id"]

    def first_run_id(self, dag_id: str, timeout: float = 120) -> str:
        self.wait_for_dag(dag_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.get(f"dags/{dag_id}/dagRuns")["dag_runs"]
            if runs:
                return runs[0]["dag_run_id"]
            time.sleep(1)
        raise AssertionError(f"the scheduler never started {dag_id}:\n{self.output()[-4000:]}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise AssertionError(f"{dag_id} still {state} after {timeout}s:\n{self.output()[-4000:]}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        response = requests.get(
            f"{self.base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json", **self.headers()},
            timeout=30,
        )
        return json.dumps(response.json())


def wait_until(condition, timeout: float, what: str, deployment: Deployment):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{deployment.output()[-6000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_example_dags_and_parallel_sends_in_a_real_deployment(tmp_path, sandbox, s3_server):
    import boto3

    boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    ).create_bucket(Bucket=BUCKET)
    sandbox.configure(send_limit=4, send_window_seconds=3, pending_seconds=1, delivered_seconds=3)
    # 4 sends a 3 s window at the sandbox; 72 a minute leaves 0.4 s for a slow first request of a window.
    easify_extra = {"send_per_minute": 72, "send_window_seconds": 3, "read_per_minute": 0, "timeout": 10}
    aws = {
        "conn_type": "aws",
        "login": "k",
        "password": "s",
        "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
    }
    deployment = Deployment(
        tmp_path,
        {
            "AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, easify_extra),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
            "AIRFLOW_VAR_EASIFY_EXPORT_BUCKET": BUCKET,
        },
    )
    for name in ("example_easify_send_and_wait", "example_easify_daily_report_to_s3"):
        (deployment.dags / f"{name}.py").write_text((REPO / "example_dags" / f"{name}.py").read_text())
    (deployment.dags / "deployment_parallel_sends.py").write_text(PARALLEL_DAG)
    try:
        deployment.start()

        # 1. Send and wait: the sensor defers to the triggerer and is resumed when delivered.
        run_id = deployment.trigger("example_easify_send_and_wait")
        assert deployment.wait_for_run("example_easify_send_and_wait", run_id) == "success"
        tis = {ti["task_id"]: ti for ti in deployment.task_instances("example_easify_send_and_wait", run_id)}
        assert all(ti["state"] == "success" for ti in tis.values()), tis
        sensor_id = next(t for t in tis if "wait" in t)
        sensor_log = deployment.task_log(
            "example_easify_send_and_wait", run_id, sensor_id, tis[sensor_id]["try_number"]
        )
        # The triggerer process (TriggererJobRunner) rebuilt our trigger from its serialized kwargs, ran it,
        # and its log lines were shipped into the sensor's task log.
        assert "defer" in sensor_log.lower(), sensor_log[-3000:]
        assert "airflow_provider_easify.triggers.sms.EasifySmsStatusTrigger" in sensor_log, sensor_log[-3000:]
        assert "triggerer_job_runner" in sensor_log and "Trigger fired event" in sensor_log

        # 2. The scheduler runs the daily export by itself for the last complete interval (yesterday):
        # a scheduled run, with the data interval the timetable computes.
        yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        run_id = deployment.first_run_id("example_easify_daily_report_to_s3")
        assert deployment.wait_for_run("example_easify_daily_report_to_s3", run_id) == "success"
        export = {ti["task_id"]: ti for ti in deployment.task_instances("example_easify_daily_report_to_s3", run_id)}
        assert all(ti["state"] == "success" for ti in export.values()), export
        s3 = boto3.client(
            "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        )
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert f"easify/sms_report/dt={yesterday.isoformat()}/sms_report.csv.gz" in keys, keys

        # 3. Eight mapped sends in parallel processes against 4 sends per 3 s.
        sandbox.reset()
        sandbox.configure(send_limit=4, send_window_seconds=3)
        run_id = deployment.trigger("deployment_parallel_sends")
        assert deployment.wait_for_run("deployment_parallel_sends", run_id) == "success"
        tis = deployment.task_instances("deployment_parallel_sends", run_id)
        assert len(tis) == 8 and all(ti["state"] == "success" and ti["try_number"] == 1 for ti in tis)
        per_number = collections.Counter(m["to_number"] for m in sandbox.ledger())
        assert len(per_number) == 8 and set(per_number.values()) == {1}, per_number
        assert sandbox.stats()["by_endpoint_status"]["send"].get("429", 0) == 0
    finally:
        deployment.stop()
    assert not _group_alive(deployment.proc.pid), "every Airflow process was stopped"
