"""DAG parse cost: what importing the provider's operators, sensors, transfers and notifier adds to a DAG file.

    python benchmarks/bench_parse.py            # median of 3 fresh interpreters
    python benchmarks/bench_parse.py --smoke    # one

Each run is a fresh interpreter that imports ``airflow.sdk`` (what any Airflow 3 DAG file imports; on
Airflow 2, ``airflow.models.baseoperator``), then the provider's modules, timing both. The figure is the
time of the second step: the provider's own cost on top of Airflow, interpreter start-up excluded.
The interpreter then reports whether ``boto3``, ``botocore`` or ``pyarrow`` were imported (they must only
be imported when an export runs). One more run with ``python -X importtime`` shows which packages the
provider's imports load, with their import time summed per package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

MODULES = (
    "airflow_provider_easify.operators.sms",
    "airflow_provider_easify.sensors.sms",
    "airflow_provider_easify.transfers.easify_to_s3",
    "airflow_provider_easify.notifications.easify",
)
HEAVY = ("boto3", "botocore", "pyarrow")
GOAL_MS = 50.0
MARKER = "=== provider imports start ==="

CHILD = textwrap.dedent(
    """
    import importlib, json, sys, time

    modules, heavy, marker = json.loads(sys.argv[1])
    started = time.perf_counter()
    try:
        import airflow.sdk
        baseline = "airflow.sdk"
    except ImportError:
        import airflow.models.baseoperator
        baseline = "airflow.models.baseoperator"
    baseline_done = time.perf_counter()
    heavy_after_baseline = [name for name in heavy if name in sys.modules]
    sys.stderr.write(marker + "\\n")
    sys.stderr.flush()
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                missing.append(name)
            else:
                raise
    done = time.perf_counter()
    print(json.dumps({
        "baseline": baseline,
        "baseline_ms": (baseline_done - started) * 1000,
        "provider_ms": (done - baseline_done) * 1000,
        "missing": missing,
        "heavy_after_baseline": heavy_after_baseline,
        "heavy_after_provider": [name for name in heavy if name in sys.modules],
        "provider_modules_loaded": sorted(m for m in sys.modules if m.startswith("airflow_provider_easify")),
    }))
    """
)


def fresh_interpreter(importtime: bool = False) -> tuple[dict[str, Any], str]:
    """Run the child in a new interpreter; return its report and its stderr."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", CHILD,
               json.dumps([MODULES, HEAVY, MARKER])]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"the import run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def import_cost_by_package(stderr: str, top: int = 8) -> list[dict[str, Any]]:
    """Self time of the modules imported after the marker (``-X importtime`` lines), summed per top-level package."""
    after = stderr.split(MARKER, 1)[1] if MARKER in stderr else ""
    totals: dict[str, list[float]] = {}
    for line in after.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not self_us.isdigit():
            continue  # the header line
        package = name.split(".")[0] if not name.startswith("airflow.") else ".".join(name.split(".")[:2])
        entry = totals.setdefault(package, [0.0, 0])
        entry[0] += int(self_us) / 1000
        entry[1] += 1
    ranked = sorted(totals.items(), key=lambda item: item[1][0], reverse=True)[:top]
    return [{"package": name, "ms": round(ms, 1), "modules": int(count)} for name, (ms, count) in ranked]


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    started = time.perf_counter()
    common.terminate_on_sigterm()
    facts = common.machine_facts()
    common.print_machine(facts)
    print(f"DAG parse cost: {runs} fresh interpreter(s)")
    with tempfile.TemporaryDirectory(prefix="easify-bench-parse-") as workdir:
        common.prepare_environment(workdir)
        fresh_interpreter()  # warm the file system cache and the bytecode: measure imports, not disk reads
        reports = [fresh_interpreter()[0] for _ in range(runs)]
        _, importtime_stderr = fresh_interpreter(importtime=True)

    last = reports[-1]
    provider_ms = common.median(r["provider_ms"] for r in reports)
    baseline_ms = common.median(r["baseline_ms"] for r in reports)
    fastest_ms = min(r["provider_ms"] for r in reports)
    share = common.median(r["provider_ms"] / r["baseline_ms"] for r in reports)
    heavy = sorted({name for r in reports for name in r["heavy_after_provider"]})
    heavy_from_baseline = sorted({name for r in reports for name in r["heavy_after_baseline"]})
    heaviest = import_cost_by_package(importtime_stderr)
    missing = last["missing"]

    note = f"modules not present yet: {', '.join(missing)}" if missing else ""
    figures = [
        common.figure("provider modules import time on top of the baseline", round(provider_ms, 1), unit="ms",
                      goal=f"< {GOAL_MS:g} ms", met=provider_ms < GOAL_MS,
                      note="; ".join(filter(None, [f"fastest run {fastest_ms:.1f} ms", note]))),
        common.figure("provider import time / baseline import time", round(share, 3),
                      note="a ratio: steadier than milliseconds on a shared machine"),
        common.figure(f"{last['baseline']} alone (the baseline)", round(baseline_ms, 1), unit="ms"),
        common.figure(f"{', '.join(HEAVY)} imported at parse", ", ".join(heavy) or "none", goal="none",
                      met=not heavy,
                      note=f"already imported by the baseline: {', '.join(heavy_from_baseline)}"
                      if heavy_from_baseline else ""),
    ]
    common.print_table(
        ["package", "modules", "ms"],
        [[row["package"], row["modules"], f"{row['ms']:.1f}"] for row in heaviest],
        title="What the provider's imports load beyond the baseline (one -X importtime run, which inflates times)",
    )
    if missing:
        print(f"\nNot measured (not present yet): {', '.join(missing)}")
    common.print_figures(f"DAG parse cost (median of {runs})", figures)
    payload = common.result(
        "parse", smoke=args.smoke, runs=runs, started=started, figures=figures,
        modules=list(MODULES), baseline=last["baseline"], missing=missing, runs_ms=reports,
        heaviest_imports=heaviest, heavy_after_provider=heavy, heavy_after_baseline=heavy_from_baseline,
    )
    common.write_result("parse", payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
