"""The older Airflow lines of the version matrix, each in its own virtualenv (``make test`` runs them).

Each line installs the Airflow release with the dependencies PyPI held in its release month
(``constraints/airflow-3.N.txt``) and the provider packages named below on top; one line carries the
oldest provider versions ``pyproject.toml`` allows, so the declared minimums are the tested ones. Lines
with human-in-the-loop run the approval tests twice: with the ``standard`` provider the release shipped
with, and with the newest.

    python scripts/airflow_matrix.py 3.1        # build .venv-airflow-3.1 if needed, run its tests
    python scripts/airflow_matrix.py --list     # the lines and what each runs

Timings are printed per step and appended to ``.matrix-times.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIP_VERSION = "26.3"

# The newest `standard` provider on this machine's index; approvals are also run with it on 3.1 and 3.2.
NEWEST_STANDARD = "1.21.0"

# The levels every line runs: hook (real HTTP against the sandbox), operators, sensors, triggers,
# transfers to S3 (moto server), the notifier, and `airflow dags test` DAGs (send, deferrable waits, bulk,
# the sick API). Left to the 3.3 and 2.11 suites: the hook-level invariants that do not touch Airflow
# (every server reading of never-twice and of the waits), benchmarks and the docs' examples.
COMMON_TESTS = [
    "tests/test_hook.py",
    "tests/test_transport.py",
    "tests/test_operators.py",
    "tests/test_sensors.py",
    "tests/test_coalesce.py",
    "tests/test_inbound.py",
    "tests/test_notifier_texts.py",
    "tests/test_provider.py",
    "tests/test_two_way_support.py",
]
# On the line with the oldest providers (amazon 9.12.0 for S3): the exports, and sends on a sick API.
OLDEST_PROVIDERS_TESTS = ["tests/test_transfers.py", "tests/test_sick_api_dags.py"]
# Approvals under `airflow dags test` (approve, reject, timeout with defaults, the notifier, one server
# reading of chat history: the others are the 3.3 suite's) and on `airflow standalone` (answered by SMS
# and through the REST API, the Required Actions page in headless Chromium).
HITL_TESTS = ["tests/airflow3/test_hitl.py", "tests/deployment/test_hitl_deployment.py"]
HITL_DESELECT = [
    f"--deselect=tests/airflow3/test_hitl.py::test_approval_answered_by_sms_on_every_reading[{reading}]"
    for reading in ("no-trimming", "newlines-normalised", "history-oldest-first", "history-shuffled",
                    "history-oldest-n-newest-first", "late-visibility", "fewer-rows-than-asked")
]
# Again with the newest `standard`: the deployment (SMS and REST API answers) and the timeout's defaults.
NEWEST_STANDARD_TESTS = [
    "tests/deployment/test_hitl_deployment.py",
    "tests/airflow3/test_hitl.py::test_fail_on_reject_and_the_timeout_default",
]


@dataclasses.dataclass(frozen=True)
class Line:
    airflow: str
    constraints: str
    # Provider pins on top of the constraints; unpinned providers resolve to the newest that fit.
    providers: dict[str, str]
    hitl: bool
    note: str
    extra_tests: tuple[str, ...] = ()

    def requirements(self) -> list[str]:
        return [f"apache-airflow-providers-{name}=={version}" for name, version in sorted(self.providers.items())]


LINES = {
    "3.0": Line(
        airflow="3.0.6",
        constraints="constraints/airflow-3.0.txt",
        # The minimums of pyproject.toml: amazon and redis as of 3.0.6's month, standard and
        # common-compat the oldest the provider's code works with.
        providers={"amazon": "9.12.0", "redis": "4.2.0", "standard": "1.12.2", "common-compat": "1.22.0",
                   "common-messaging": "2.1.1"},
        hitl=False,
        note="oldest providers pyproject.toml allows; no human-in-the-loop (3.1+)",
        extra_tests=tuple(OLDEST_PROVIDERS_TESTS),
    ),
    "3.1": Line(
        airflow="3.1.8",
        constraints="constraints/airflow-3.1.txt",
        providers={"standard": "1.12.2"},
        hitl=True,
        note="standard 1.12.2 as shipped, then approvals again with the newest",
    ),
    "3.2": Line(
        airflow="3.2.2",
        constraints="constraints/airflow-3.2.txt",
        providers={"standard": "1.13.1"},
        hitl=True,
        note="standard 1.13.1 as shipped, then approvals again with the newest",
    ),
}


def venv_of(name: str) -> Path:
    return REPO / f".venv-airflow-{name}"


def stamp_of(line: Line) -> str:
    digest = hashlib.sha256()
    for path in ("pyproject.toml", line.constraints):
        digest.update((REPO / path).read_bytes())
    digest.update(json.dumps(dataclasses.asdict(line), sort_keys=True).encode())
    digest.update(PIP_VERSION.encode())
    return digest.hexdigest()


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, **kwargs)


def ensure_venv(name: str, line: Line) -> Path:
    venv = venv_of(name)
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == stamp_of(line):
        return venv
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, f"pip=={PIP_VERSION}"])
    run([*pip, "-c", line.constraints, f"apache-airflow=={line.airflow}", "-e", ".[amazon,redis,common-messaging,test]",
         *line.requirements()])
    stamp.write_text(stamp_of(line))
    return venv


def pytest(venv: Path, tests: list[str], extra: list[str]) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    run([str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", *tests, *extra], env=env)


def set_standard(venv: Path, line: Line, version: str) -> None:
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", line.constraints, f"apache-airflow-providers-standard=={version}"])


def test_line(name: str, extra: list[str]) -> dict[str, float]:
    line = LINES[name]
    times: dict[str, float] = {}
    started = time.monotonic()
    venv = ensure_venv(name, line)
    times["install"] = time.monotonic() - started

    started = time.monotonic()
    pytest(venv, COMMON_TESTS + list(line.extra_tests) + (HITL_TESTS + HITL_DESELECT if line.hitl else []), extra)
    times["suite"] = time.monotonic() - started

    if line.hitl and line.providers.get("standard") != NEWEST_STANDARD:
        started = time.monotonic()
        set_standard(venv, line, NEWEST_STANDARD)
        try:
            pytest(venv, NEWEST_STANDARD_TESTS, extra)
        finally:
            set_standard(venv, line, line.providers["standard"])
        times[f"approvals with standard {NEWEST_STANDARD}"] = time.monotonic() - started
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("line", nargs="?", choices=sorted(LINES))
    parser.add_argument("--list", action="store_true", help="print the lines and what each runs")
    args, extra = parser.parse_known_args()
    if args.list or not args.line:
        for name, line in LINES.items():
            pins = ", ".join(line.requirements()) or "newest providers"
            print(f"{name}: Airflow {line.airflow} ({line.constraints}): {pins}; {line.note}")
        return 0
    times = test_line(args.line, extra)
    for step, seconds in times.items():
        print(f"Airflow {LINES[args.line].airflow}: {step} {seconds:.0f} s")
    record = REPO / ".matrix-times.json"
    recorded = json.loads(record.read_text()) if record.exists() else {}
    recorded[LINES[args.line].airflow] = {step: round(seconds) for step, seconds in times.items()}
    record.write_text(json.dumps(recorded, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
