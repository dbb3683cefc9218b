"""The benchmarks in smoke mode, so that they do not rot: every script runs and reports its figures.

Times are never asserted (a shared CI machine makes them meaningless); counts that are correctness are.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {"parse", "pacing", "wait", "export", "hosts", "never_twice", "send_reads", "tracking", "inbound"}


def test_run_all_smoke_mode_runs_every_benchmark_and_writes_their_figures(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run_all.py"), "--smoke", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"run_all.py failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    assert "All benchmarks" in proc.stdout

    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["mode"] == "smoke"
    assert latest["crashed"] == []
    assert set(latest["benchmarks"]) == BENCHMARKS
    for name in BENCHMARKS:
        entry = latest["benchmarks"][name]
        assert entry["returncode"] == 0, (name, entry)
        assert entry["result"] == json.loads((tmp_path / f"{name}.json").read_text())
    figures: dict[str, list[dict]] = {name: [] for name in BENCHMARKS}
    for fig in latest["figures"]:
        assert {"benchmark", "name", "value", "goal", "met"} <= set(fig), fig
        assert fig["value"] is not None, fig
        figures[fig["benchmark"]].append(fig)
    assert all(figures.values()), {name: len(figs) for name, figs in figures.items()}

    for name in ("parse", "pacing", "wait"):
        result = latest["benchmarks"][name]["result"]
        assert result["benchmark"] == name and result["mode"] == "smoke" and result["runs"] == 1
        assert {"cpu_count", "python", "airflow", "provider"} <= set(result["machine"])

    pacing = latest["benchmarks"]["pacing"]["result"]["details"]
    scenarios = {"hook loop", "bulk operator", "bulk operator, deferrable", "4 processes, one token"}
    assert set(pacing["scenarios"]) == scenarios
    for scenario, runs in pacing["scenarios"].items():
        for run in runs:  # every intended message is in the sandbox's ledger exactly once
            assert (run["in_ledger"], run["missing"], run["duplicates"], run["unexpected"]) == (30, 0, 0, 0), scenario
            assert isinstance(run["send_429"], int) and run["rate_ratio"] > 0

    hosts = latest["benchmarks"]["hosts"]["result"]["details"]
    assert hosts["redis_pacing_active"] is True
    for mode in ("local", "redis"):
        for count, runs in hosts["workloads"]["send"][mode].items():
            for run in runs:  # one token shared by N hosts: every message exactly once, whatever the pacing
                assert (run["missing"], run["duplicates"], run["unexpected"]) == (0, 0, 0), (mode, count)
                assert run["in_ledger"] == hosts["messages"] and run["failed_calls"] == 0, (mode, count)
                assert isinstance(run["drawn_429"], int)

    for reading, runs in latest["benchmarks"]["never_twice"]["result"]["details"]["readings"].items():
        for run in runs:  # whatever the server's reading, every send exactly once
            assert (run["duplicates"], run["lost"], run["wrong_ids"]) == (0, 0, 0), (reading, run)
            assert run["in_ledger"] == run["sends"], reading

    send_reads = latest["benchmarks"]["send_reads"]["result"]["details"]
    for run in send_reads["reads"]:  # every message once, and no report read per send
        assert run["in_ledger"] == run["distinct_recipients"] == run["sends"], run
        if "ambiguous" not in run["scenario"]:
            assert run["report_reads"] <= 2, run
    for run in send_reads["deferral_bytes"]:  # the bytes of a deferral do not grow with the recipients
        assert run["sent"] == run["in_ledger"] == run["recipients"] and run["deferrals"] >= 1, run
        assert 0 < run["max_bytes_per_deferral"] < 20_000, run

    parse = latest["benchmarks"]["parse"]["result"]["details"]
    assert parse["missing"] == [] and len(parse["runs_ms"]) == 1
    assert parse["runs_ms"][0]["provider_ms"] > 0

    wait = latest["benchmarks"]["wait"]["result"]["details"]
    for mode in ("deferrable", "poke"):
        (run,) = wait["modes"][mode]
        assert run["outcome"] == "Delivered" and run["requests"] >= 1, (mode, run)

    export = latest["benchmarks"]["export"]["result"]
    assert {"throughput", "requests", "peak_rss"} <= set(export)

    tracking = latest["benchmarks"]["tracking"]["result"]["details"]
    assert set(tracking["polling"]["coalesced"]) == {"1", "10", "100"}
    for waits, runs in tracking["polling"]["coalesced"].items():
        for run in runs:  # K triggers, one poller: every wait resolved, reads per round within the bound
            assert run["waits"] == run["resolved"] == int(waits) and run["outcomes"] == ["success"], (waits, run)
            assert run["pollers"] == 1 and run["rounds"] >= 1, (waits, run)
            assert run["reads_per_round"] <= run["bound"] == math.ceil(int(waits) / 1000) + 1, (waits, run)
    for waits, runs in tracking["polling"]["per message"].items():
        for run in runs:  # the previous version, cut off after a bounded time: it resolves what it read
            assert 0 < run["resolved"] <= run["waits"] == int(waits) and run["reads"] >= run["polls"], (waits, run)
    for page_size, readers in tracking["exports"]["pages"].items():
        for name, reading in readers.items():  # one request per page, whoever reads
            assert reading["requests"] == reading["minimum_requests"], (page_size, name, reading)

    inbound = latest["benchmarks"]["inbound"]["result"]["details"]["results"]
    for watchers, runs in inbound.items():
        for run in runs:  # every text reaches every watcher exactly once, and nothing else does
            assert run["watchers_exactly_once"] == int(watchers) and run["unexpected_events"] == 0, run
