"""Run DAGs with real Airflow: ``airflow dags test`` in a subprocess with its own AIRFLOW_HOME.

Each :class:`AirflowHome` gets a copy of a metadata database migrated once per test session, its
own DAGs folder, and the environment a test gives it (connections as ``AIRFLOW_CONN_*``). After a
run the outcome is read straight from the metadata database: the DAG run's state, every task
instance's state and try number, and the XComs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")
REPO_ROOT = Path(__file__).resolve().parents[1]


def base_env(home: Path, dags_folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        EASIFY_PACING_DIR=str(home / "pacing"),
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def migrate_template(home: Path) -> Path:
    """Migrate a metadata DB once; tests copy it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    proc = subprocess.run(
        [AIRFLOW_BIN, "db", "migrate"], env=base_env(home, home / "dags"), capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout}\n{proc.stderr}")
    return home / "airflow.db"


#: `airflow dags test` on Airflow 3.0 to 3.2 echoes the task runner's protocol messages (rendered fields,
#: XComs, the secrets it is told to mask, a human-in-the-loop request) in lines of its own supervisor,
#: e.g. "Sending request msg=SetRenderedFields(..., type='SetRenderedFields')". Those are Airflow's output
#: of what it was given, not a log the provider writes; what the provider logs is the rest.
_PROTOCOL_ECHO = re.compile(r"type='[A-Z][A-Za-z]+'\)")
#: Airflow 3.0's console prints a failed task's traceback in a box with every frame's local variables
#: (``│ │ row = {...}``): Airflow's rendering, fixed in 3.1, documented in docs/versions.md.
_TRACEBACK_BOX = re.compile(r"^[│╭╰]")


@dataclasses.dataclass
class DagRunResult:
    returncode: int
    output: str
    state: str | None
    tasks: dict[str, str]  # "task_id" or "task_id[map_index]" -> state
    tries: dict[str, int]
    xcoms: dict[str, Any]  # same keys -> return_value

    @property
    def log(self) -> str:
        """The output without Airflow's echo of the task runner's protocol (see ``_PROTOCOL_ECHO``)."""
        from airflow_provider_easify.utils.hitl_support import airflow_version

        boxed = airflow_version().release[:2] == (3, 0)
        return "\n".join(
            line for line in self.output.splitlines()
            if not _PROTOCOL_ECHO.search(line) and not (boxed and _TRACEBACK_BOX.match(line))
        )

    def assert_success(self) -> None:
        assert self.state == "success", f"DAG run ended {self.state}; tasks {self.tasks}\n{self.output[-6000:]}"


class AirflowHome:
    def __init__(self, root: Path, template_db: Path, env: dict[str, str] | None = None) -> None:
        self.home = root / "airflow_home"
        self.dags = root / "dags"
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags.mkdir(parents=True, exist_ok=True)
        shutil.copy(template_db, self.home / "airflow.db")
        self.env = base_env(self.home, self.dags)
        self.env.update(env or {})

    def set_easify_extra(self, conn_id: str = "easify_default", **extra: Any) -> None:
        """Change extras of an Easify connection given to this Airflow as ``AIRFLOW_CONN_*``."""
        name = f"AIRFLOW_CONN_{conn_id.upper()}"
        conn = json.loads(self.env[name])
        conn["extra"] = {**conn.get("extra", {}), **extra}
        self.env[name] = json.dumps(conn)

    def add_dag(self, name: str, source: str) -> Path:
        path = self.dags / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def add_dag_file(self, path: Path) -> Path:
        return Path(shutil.copy(path, self.dags / path.name))

    def run(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW_BIN, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.home
        )

    def dags_test(
        self, dag_id: str, *, logical_date: str | None = None, conf: dict[str, Any] | None = None, timeout: float = 300
    ) -> DagRunResult:
        args = ["dags", "test", dag_id]
        if logical_date:
            args.append(logical_date)
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        proc = self.run(args, timeout=timeout)
        return self._result(dag_id, proc)

    def _result(self, dag_id: str, proc: subprocess.CompletedProcess[str]) -> DagRunResult:
        output = proc.stdout + proc.stderr
        with sqlite3.connect(self.home / "airflow.db") as db:
            run = db.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if run is None:
                return DagRunResult(proc.returncode, output, None, {}, {}, {})
            run_id, state = run
            tasks: dict[str, str] = {}
            tries: dict[str, int] = {}
            for task_id, map_index, ti_state, try_number in db.execute(
                "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ):
                key = task_id if map_index < 0 else f"{task_id}[{map_index}]"
                tasks[key] = ti_state
                tries[key] = try_number
            xcoms: dict[str, Any] = {}
            for task_id, map_index, value in db.execute(
                "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
                (dag_id, run_id),
            ):
                key = task_id if map_index < 0 else f"{task_id}[{map_index}]"
                xcoms[key] = _decode(value)
        return DagRunResult(proc.returncode, output, state, tasks, tries, xcoms)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return value
    # Airflow 3 stores XCom as JSON text; a JSON string that itself holds JSON is unwrapped once.
    return decoded
