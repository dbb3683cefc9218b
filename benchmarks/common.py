"""What the benchmark scripts share: environment, machine facts, medians, tables, results and sandboxes.

Every script is plain Python run from the repository (``python benchmarks/bench_x.py``); importing this
module puts the repository on ``sys.path`` so the provider need not be installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

#: The token of every benchmark sandbox (a sandbox accepts any token it was started with).
TOKEN = "bench-token"
SENDER = "+13155550100"


# ---------------------------------------------------------------------- command line and environment


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark script takes: ``--smoke``, ``--runs`` and ``--output``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes and one run, to check the script works")
    parser.add_argument("--runs", type=int, help="runs to take the median of (default 3, or 1 with --smoke)")
    parser.add_argument("--output", help="where to write the JSON results (default benchmarks/results/<name>.json)")
    return parser


def runs_of(args: argparse.Namespace) -> int:
    runs = args.runs if args.runs is not None else (1 if args.smoke else 3)
    if runs < 1:
        raise SystemExit("--runs must be at least 1")
    return runs


def prepare_environment(workdir: str) -> dict[str, str]:
    """Point Airflow at a throwaway home (quiet, no examples) and make children find the provider.

    Call before importing Airflow. Returns the variables set, which child processes inherit.
    """
    env = {
        "AIRFLOW_HOME": os.path.join(workdir, "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "EASIFY_PACING_DIR": fresh_pacing_dir(workdir),
        "PYTHONPATH": python_path(),
    }
    os.makedirs(env["AIRFLOW_HOME"], exist_ok=True)
    os.environ.update(env)
    return env


def python_path() -> str:
    """``PYTHONPATH`` for a child process: the repository first, so that the provider imports uninstalled."""
    return os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))


def fresh_pacing_dir(workdir: str) -> str:
    """A new, empty directory for the pacing slot files: no budget carried over from an earlier run."""
    path = tempfile.mkdtemp(prefix="pacing-", dir=workdir)
    os.environ["EASIFY_PACING_DIR"] = path
    return path


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop the processes a script started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def task_context() -> Any:
    """The part of a task's context the provider's code reads, for calling ``execute`` outside Airflow."""
    return {"ti": None, "dag_run": None, "ds": "2026-01-01"}


def use_connection(conn_id: str, api_url: str, extra: dict[str, Any], token: str = TOKEN) -> str:
    """Define an Easify connection through its ``AIRFLOW_CONN_*`` variable; return the connection id."""
    value = {"conn_type": "easify", "host": api_url, "password": token, "extra": extra}
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(value)
    return conn_id


def allow_direct_execute() -> None:
    """Let a benchmark call ``operator.execute()`` itself, as Airflow's own tests do, without a warning."""
    for module in ("airflow.sdk.bases.operator", "airflow.models.baseoperator"):
        try:
            safeguard = __import__(module, fromlist=["ExecutorSafeguard"]).ExecutorSafeguard
        except (ImportError, AttributeError):
            continue
        safeguard.test_mode = True
        sentinel = getattr(safeguard, "_sentinel", None)  # Airflow 2: a thread-local, empty in a forked thread
        if sentinel is not None and not hasattr(sentinel, "callers"):
            sentinel.callers = {}


# ---------------------------------------------------------------------- facts, medians, figures


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def provider_version() -> str:
    init = (REPO_ROOT / "airflow_provider_easify" / "__init__.py").read_text(encoding="utf-8")
    for line in init.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """The machine and versions a figure was measured on (without importing Airflow)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "airflow": _version("apache-airflow") or _version("apache-airflow-core"),
        "provider": provider_version(),
        "requests": _version("requests"),
    }


def print_machine(facts: dict[str, Any]) -> None:
    print(
        f"Machine: {facts['cpu_count']} CPU(s) ({facts['cpus_usable']} usable), {facts['cpu_model']}; "
        f"Python {facts['python']}, Airflow {facts['airflow']}, airflow-provider-easify {facts['provider']}"
    )


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def figure(
    name: str,
    value: float | int | str | None,
    *,
    unit: str = "",
    goal: str | None = None,
    met: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One reported figure. ``goal`` is the issue's goal as text; ``met`` is None when there is no goal."""
    return {"name": name, "value": value, "unit": unit, "goal": goal, "met": met, "note": note}


def format_value(value: Any, unit: str = "") -> str:
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = "-" if value is None else str(value)
    return f"{text} {unit}".strip()


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "MISSED")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def print_figures(title: str, figures: Sequence[dict[str, Any]]) -> None:
    rows = [
        [f["name"], format_value(f["value"], f.get("unit", "")), f.get("goal") or "-", verdict(f.get("met"))]
        for f in figures
    ]
    print_table(["figure", "value", "goal", "goal met?"], rows, title=title)


def write_result(name: str, payload: dict[str, Any], output: str | None = None) -> Path:
    path = Path(output) if output else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return path


def result(
    name: str, *, smoke: bool, runs: int, started: float, figures: list[dict[str, Any]], **details: Any
) -> dict[str, Any]:
    """The JSON every script of this directory writes."""
    return {
        "benchmark": name,
        "mode": "smoke" if smoke else "full",
        "runs": runs,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_facts(),
        "figures": figures,
        "details": details,
    }


# ---------------------------------------------------------------------- the sandbox in its own process


class SandboxProcess:
    """``python -m airflow_provider_easify.sandbox`` on a free port of 127.0.0.1, stopped by :meth:`stop`.

    ``options`` are the sandbox's command-line options (``--send-limit 15``, ...).
    """

    def __init__(self, workdir: str, *options: str, token: str = TOKEN) -> None:
        from airflow_provider_easify.sandbox import SandboxClient

        self.token = token
        fd, self._port_file = tempfile.mkstemp(prefix="sandbox-port-", dir=workdir)
        os.close(fd)
        os.unlink(self._port_file)
        self._log_path = self._port_file + ".log"
        self._log = open(self._log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_easify.sandbox", "--port", "0", "--port-file", self._port_file,
             "--token", token, *options],
            env={**os.environ, "PYTHONPATH": python_path()},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(self._port_file):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start: {Path(self._log_path).read_text()[-2000:]}")
                time.sleep(0.05)
            self.port = int(Path(self._port_file).read_text().strip())
            self.url = f"http://127.0.0.1:{self.port}"
            self.api_url = f"{self.url}/api/v2"
            self.client = SandboxClient(self.url, timeout=120)
            self.client.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def requests_since(before: dict[str, Any], after: dict[str, Any], endpoint: str | None = None) -> int:
    """API requests the sandbox counted between two ``stats()`` snapshots (of one endpoint, or all)."""
    if endpoint is None:
        return int(after["total"]) - int(before["total"])
    return int(after["by_endpoint"].get(endpoint, 0)) - int(before["by_endpoint"].get(endpoint, 0))


def bare_report_loop(api_url: str, first: dt.date, last: dt.date, page_size: int) -> int:
    """The floor of every report read: plain ``requests`` over the same windows and pages, each page's JSON
    decoded; returns the rows read."""
    import requests

    from airflow_provider_easify.utils.dates import report_windows

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    rows = 0
    for start, end in report_windows(first, last):
        page = 1
        while True:
            params = {"from_date": start.isoformat(), "to_date": end.isoformat(), "order": "asc",
                      "limit": page_size, "page": page}
            body = session.get(f"{api_url}/sms/report", params=params, timeout=120).json()
            rows += len(body["data"])
            if not body["links"]["next"]:
                break
            page += 1
    session.close()
    return rows
