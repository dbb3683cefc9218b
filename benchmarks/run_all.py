"""Run every benchmark, print one combined table and write ``benchmarks/results/latest.json``.

    python benchmarks/run_all.py            # the full benchmarks (``make bench``), several minutes
    python benchmarks/run_all.py --smoke    # small sizes, under a minute (``make bench-smoke``, CI)

Each ``bench_*.py`` script runs in its own process with the same interpreter, ``--smoke`` and ``--runs``
passed through, and writes its own JSON (with the ``figures`` of :func:`common.figure`) next to
``latest.json``. This exits non-zero only when a script
crashed; a goal that was missed is reported as such, not as a failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

BENCHMARKS_DIR = Path(__file__).resolve().parent
#: Benchmark name -> script. The parse cost runs first, while nothing else loads the machine.
SCRIPTS = {
    "parse": "bench_parse.py",
    "pacing": "bench_pacing.py",
    "hosts": "bench_hosts.py",
    "never_twice": "bench_never_twice.py",
    "send_reads": "bench_send_reads.py",
    "wait": "bench_wait.py",
    "export": "bench_export.py",
    "tracking": "bench_tracking.py",
    "inbound": "bench_inbound.py",
}
TIMEOUT_SECONDS = {"full": 3 * 3600, "smoke": 600}


def run_script(name: str, args: argparse.Namespace, results_dir: Path) -> dict[str, Any]:
    script = BENCHMARKS_DIR / SCRIPTS[name]
    output = results_dir / f"{name}.json"
    command = [sys.executable, str(script), "--output", str(output)]
    if args.smoke:
        command.append("--smoke")
    if args.runs is not None:
        command += ["--runs", str(args.runs)]
    env = {**os.environ, "PYTHONPATH": common.python_path()}
    print(f"\n===== {name}: {' '.join(command[1:])}", flush=True)
    previous = output.stat().st_mtime if output.exists() else None
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=common.REPO_ROOT)
    try:
        returncode = proc.wait(timeout=TIMEOUT_SECONDS["smoke" if args.smoke else "full"])
    except subprocess.TimeoutExpired:
        returncode = stop(proc, f"{name} timed out")
    except BaseException:
        stop(proc, f"{name} interrupted")
        raise
    seconds = round(time.perf_counter() - started, 1)
    written = output.exists() and output.stat().st_mtime != previous
    entry: dict[str, Any] = {"script": SCRIPTS[name], "returncode": returncode, "seconds": seconds,
                             "output": str(output), "result": None}
    if returncode == 0 and written:
        entry["result"] = json.loads(output.read_text(encoding="utf-8"))
    elif returncode == 0:
        entry["returncode"] = -1
        entry["error"] = f"exited 0 without writing {output}"
    else:
        entry["error"] = f"exited with {returncode}"
    return entry


def stop(proc: subprocess.Popen[bytes], reason: str) -> int:
    """SIGTERM first, so that the script's ``finally`` blocks stop its sandboxes; SIGKILL if it lingers."""
    print(f"\n{reason}: stopping it", flush=True)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode if proc.returncode not in (None, 0) else -1


def print_combined(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows, combined = [], []
    for name, entry in entries.items():
        if entry["result"] is None:
            rows.append([name, "(crashed)", entry.get("error", ""), "-", "-"])
            continue
        for fig in entry["result"].get("figures") or []:
            combined.append({"benchmark": name, **fig})
            value = common.format_value(fig["value"], fig.get("unit", ""))
            rows.append([name, fig["name"], value, fig.get("goal") or "-", common.verdict(fig.get("met"))])
    common.print_table(["benchmark", "figure", "value", "goal", "goal met?"], rows, title="All benchmarks")
    return combined


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes and one run of each benchmark")
    parser.add_argument("--runs", type=int, help="runs per benchmark to take the median of")
    parser.add_argument("--results-dir", default=str(common.RESULTS_DIR), help="where the JSON results go")
    parser.add_argument("--only", action="append", choices=sorted(SCRIPTS), help="run only this benchmark (repeatable)")
    args = parser.parse_args(argv)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    facts = common.machine_facts()
    common.print_machine(facts)
    started = time.perf_counter()
    entries = {name: run_script(name, args, results_dir) for name in SCRIPTS if not args.only or name in args.only}
    combined = print_combined(entries)
    crashed = [name for name, entry in entries.items() if entry["result"] is None]
    met = sum(1 for f in combined if f.get("met") is True)
    missed = [f"{f['benchmark']}: {f['name']}" for f in combined if f.get("met") is False]
    summary = {
        "mode": "smoke" if args.smoke else "full",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": facts,
        "benchmarks": entries,
        "figures": combined,
        "goals_met": met,
        "goals_missed": missed,
        "crashed": crashed,
    }
    latest = results_dir / "latest.json"
    latest.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nGoals met: {met}; missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else ""))
    if crashed:
        print(f"Crashed: {', '.join(crashed)}")
    print(f"wrote {latest} ({summary['seconds']} s)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
