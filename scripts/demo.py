"""`make demo`: the provider's main job end to end, offline, with real Airflow.

Starts the Easify sandbox and a local S3 server (moto) on free loopback ports, gives a throwaway
Airflow home the ``easify_default`` and ``aws_default`` connections through environment variables,
runs ``example_easify_send_and_wait`` (send, then wait for delivery in a deferred sensor) and
``example_easify_daily_report_to_s3`` (yesterday's SMS report and a contacts snapshot to S3), then
prints what happened. Every server it started is stopped, also on failure or Ctrl-C. The exit
status is non-zero if any task failed.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.airflow_runner import AirflowHome, DagRunResult, migrate_template  # noqa: E402

BUCKET = "easify-demo"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout}s")


class Servers:
    """The sandbox and the S3 server, as child processes that are always stopped."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        self.sandbox_port = free_port()
        self.s3_port = free_port()
        self._spawn(
            "sandbox",
            [PYTHON, "-m", "airflow_provider_easify.sandbox", "--port", str(self.sandbox_port),
             "--pending-seconds", "2", "--delivered-seconds", "5"],
            self.sandbox_port,
        )
        self._spawn("s3", [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)], self.s3_port)

    def _spawn(self, name: str, args: list[str], port: int) -> None:
        log = open(self.workdir / f"{name}.log", "w")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        wait_for_port(port, proc, name)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def airflow_env(servers: Servers) -> dict[str, str]:
    easify = {
        "conn_type": "easify",
        "host": f"http://127.0.0.1:{servers.sandbox_port}/api/v2",
        "password": "sandbox-token",
        "extra": {"timeout": 10},
    }
    aws = {
        "conn_type": "aws",
        "login": "demo",
        "password": "demo",
        "extra": {"endpoint_url": f"http://127.0.0.1:{servers.s3_port}", "region_name": "us-east-1"},
    }
    return {
        "AIRFLOW_CONN_EASIFY_DEFAULT": json.dumps(easify),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "AIRFLOW_VAR_EASIFY_EXPORT_BUCKET": BUCKET,
    }


def s3_client(servers: Servers):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{servers.s3_port}",
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )


def print_run(title: str, result: DagRunResult, seconds: float) -> None:
    print(f"\n== {title}: {result.state} in {seconds:.1f}s")
    for task, state in sorted(result.tasks.items()):
        print(f"   {task:<28} {state:<10} tries={result.tries.get(task)}")


def summarize_sends(servers: Servers) -> None:
    from airflow_provider_easify.sandbox import SandboxClient
    from airflow_provider_easify.utils.phone import mask_phone

    ledger = SandboxClient(f"http://127.0.0.1:{servers.sandbox_port}").ledger()
    print(f"\nMessages sent: {len(ledger)}")
    for message in ledger:
        receiver = mask_phone(message["receiver"])
        print(f"   sms_id {message['sms_id']:<8} to {receiver:<16} final status {message['status']}")


def summarize_export(servers: Servers, result: DagRunResult) -> None:
    exported = result.xcoms.get("sms_report_to_s3") or {}
    uri = exported.get("s3_uri", "")
    print(f"\nExported: {uri}  rows={exported.get('rows')}")
    if not uri:
        return
    key = uri.split(f"s3://{BUCKET}/", 1)[1]
    body = s3_client(servers).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    text = gzip.decompress(body).decode() if key.endswith(".gz") else body.decode()
    rows = list(csv.reader(io.StringIO(text)))
    print(f"   header: {', '.join(rows[0]) if rows else '(empty)'}")
    for row in rows[1:4]:
        print(f"   {row}")
    contacts = result.xcoms.get("contacts_to_s3") or {}
    print(f"Contacts snapshot: {contacts.get('s3_uri')}  rows={contacts.get('rows')}")


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="easify-demo-"))
    servers = Servers(workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = False
    try:
        print(f"Working in {workdir}")
        servers.start()
        print(f"Easify sandbox on 127.0.0.1:{servers.sandbox_port}, S3 (moto) on 127.0.0.1:{servers.s3_port}")
        s3_client(servers).create_bucket(Bucket=BUCKET)
        home = AirflowHome(workdir / "airflow", migrate_template(workdir / "template"), airflow_env(servers))
        for dag in ("example_easify_send_and_wait", "example_easify_daily_report_to_s3"):
            home.add_dag_file(REPO / "example_dags" / f"{dag}.py")

        t0 = time.monotonic()
        send = home.dags_test("example_easify_send_and_wait")
        print_run("example_easify_send_and_wait", send, time.monotonic() - t0)

        # A manual run at today's midnight covers the last complete interval: yesterday.
        today = dt.datetime.now(dt.UTC).date()
        t0 = time.monotonic()
        export = home.dags_test("example_easify_daily_report_to_s3", logical_date=today.isoformat())
        yesterday = today - dt.timedelta(days=1)
        print_run(f"example_easify_daily_report_to_s3 (interval {yesterday})", export, time.monotonic() - t0)

        summarize_sends(servers)
        summarize_export(servers, export)
        failed = send.state != "success" or export.state != "success"
        if failed:
            for result in (send, export):
                if result.state != "success":
                    print(result.output[-4000:])
    except KeyboardInterrupt:
        print("\nInterrupted.")
        failed = True
    finally:
        servers.stop()
    print(f"\nDemo {'FAILED' if failed else 'succeeded'} in {time.monotonic() - started:.0f}s; servers stopped.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
