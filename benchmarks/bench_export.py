"""Export benchmark: throughput, peak memory and request count of the SMS report export.

    python benchmarks/bench_export.py            # 100,000 rows; RSS of 10,000 vs 1,000,000 rows; median of 3
    python benchmarks/bench_export.py --smoke    # small sizes, one run, well under 30 s

Measured against the sandbox in its own process (``python -m airflow_provider_easify.sandbox``, rate
limits off, rows from ``generate_report``) and moto's S3 server in another process:

* throughput of the same rows read three ways, with the same page size, runs interleaved: a bare
  ``requests`` loop over the pages (decoding the JSON, the floor), ``EasifyHook.iter_sms_report``, and
  the whole ``EasifySmsReportToS3Operator`` path (typing, csv writing, upload); figure: rows/s as a
  fraction of the bare loop's (goal >= 0.9);
* for scale, a hand-written export doing the same job (the bare loop, ``csv.DictWriter``, one
  ``upload_file``), against which the operator's rows/s are also given (no goal);
* the same comparison with every report request slowed by 20 ms (the sandbox's ``slow`` fault), closer
  to a real API: the export fetches the next pages while it writes, so its own work hides behind the
  wait (an informative figure, no goal);
* requests per export against the minimum: ceil(rows of a 30-day window / page size) summed over windows;
* peak RSS of a fresh process exporting a small and a large report, to a local file and to S3 (goal:
  the large costs less than 50 MB more). The peak is the kernel's high-water mark (``VmHWM``, what
  ``ru_maxrss`` reports for a process alone), reset once Airflow is imported, since importing peaks
  higher than an export.

Page size: 100, the hook's default and the sandbox's maximum (like the real API, it clamps larger
``limit`` values), so the figures are those of an export as users run it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

NAME = "export"
SIZES = {
    "full": {"throughput_rows": 100_000, "latency_rows": 20_000, "rss_small": 10_000, "rss_large": 1_000_000},
    "smoke": {"throughput_rows": 5_000, "latency_rows": 1_000, "rss_small": 1_000, "rss_large": 20_000},
}
#: Added to every report request in the latency scenario, like a real API's response time.
LATENCY_SECONDS = 0.02
PAGE_SIZE = 100
THROUGHPUT_DAYS = 50  # two 30-day windows
RSS_DAYS = 100  # four windows for both sizes: only the rows per day differ
THROUGHPUT_GOAL = 0.9
RSS_GOAL_MB = 50.0
BUCKET = "easify-bench"
BARE = "bare requests loop"
HOOK = "EasifyHook.iter_sms_report"
OPERATOR = "EasifySmsReportToS3Operator"
HAND_WRITTEN = "hand-written export (requests, csv.DictWriter, upload_file)"
REPORT_FIELDS = ("id", "sender", "receiver", "message", "sms_type", "send_by", "media_url", "status", "created_at",
                 "reason")


# ---------------------------------------------------------------------- moto's S3 server in its own process


class S3ServerProcess:
    """This script with ``--serve-s3``: moto on a free port of 127.0.0.1, printed on its first line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-s3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": common.python_path()},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError("moto's S3 server did not start")
        self.endpoint = f"http://127.0.0.1:{line}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve_s3() -> int:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    try:
        sys.stdin.read()  # until the parent closes it or terminates us
    finally:
        server.stop()
    return 0


def use_aws_connection(endpoint: str) -> None:
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {"conn_type": "aws", "login": "bench", "password": "bench-secret",
         "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    )


# ---------------------------------------------------------------------- the three readers


def report_windows(first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
    from airflow_provider_easify.utils.dates import report_windows as windows

    return windows(first, last)


def hand_written_export(api_url: str, first: dt.date, last: dt.date, workdir: str) -> int:
    """What a user would write instead of the operator: the bare loop, csv.DictWriter, one upload."""
    import csv

    import requests
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {common.TOKEN}"
    path = os.path.join(workdir, "hand-written.csv")
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for start, end in report_windows(first, last):
            page = 1
            while True:
                params = {"from_date": start.isoformat(), "to_date": end.isoformat(), "order": "asc",
                          "limit": PAGE_SIZE, "page": page}
                body = session.get(f"{api_url}/sms/report", params=params, timeout=120).json()
                writer.writerows(body["data"])
                rows += len(body["data"])
                if not body["links"]["next"]:
                    break
                page += 1
    S3Hook().get_conn().upload_file(path, BUCKET, "bench/hand-written.csv")
    return rows


def hook_iterator(first: dt.date, last: dt.date) -> int:
    from airflow_provider_easify.hooks.easify import EasifyHook

    return sum(1 for _ in EasifyHook().iter_sms_report(first, last, order="asc", page_size=PAGE_SIZE))


def s3_operator(first: dt.date, last: dt.date) -> int:
    from airflow_provider_easify.transfers.easify_to_s3 import EasifySmsReportToS3Operator

    op = EasifySmsReportToS3Operator(
        task_id="bench", s3_bucket=BUCKET, s3_key="bench/throughput.csv", from_date=first.isoformat(),
        to_date=last.isoformat(), page_size=PAGE_SIZE,
    )
    return int(op.execute({})["rows"])


def interleaved(readers: dict[str, Callable[[], int]], runs: int, client: Any) -> dict[str, dict[str, Any]]:
    """Run the readers in turn ``runs`` times (so that a busy moment hurts each alike); medians per reader."""
    seconds: dict[str, list[float]] = {name: [] for name in readers}
    rows: dict[str, int] = {}
    requests: dict[str, int] = {}
    for _ in range(runs):
        for name, reader in readers.items():
            before = client.stats()
            started = time.perf_counter()
            rows[name] = reader()
            seconds[name].append(time.perf_counter() - started)
            requests[name] = common.requests_since(before, client.stats(), "report")
    results = {}
    for name in readers:
        median = common.median(seconds[name])
        results[name] = {"rows": rows[name], "seconds": round(median, 3), "rows_per_s": round(rows[name] / median),
                         "requests": requests[name], "runs_s": [round(s, 3) for s in seconds[name]]}
    return results


# ---------------------------------------------------------------------- peak RSS in a fresh process


def rss_child(destination: str, first: str, last: str, workdir: str) -> int:
    """``--rss-child``: export one report in this fresh process; print rows, seconds and memory as JSON."""
    from airflow_provider_easify.transfers.easify_to_s3 import (
        EasifySmsReportToObjectStorageOperator,
        EasifySmsReportToS3Operator,
    )

    common_args = {"task_id": "bench", "from_date": first, "to_date": last, "page_size": PAGE_SIZE}
    if destination == "s3":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401 - loaded before the baseline

        key = f"bench/rss-{first}.csv"
        op: Any = EasifySmsReportToS3Operator(s3_bucket=BUCKET, s3_key=key, **common_args)
    else:
        op = EasifySmsReportToObjectStorageOperator(destination=f"file://{workdir}/rss/report.csv", **common_args)
    baseline = status_kb("VmRSS")
    peak_reset = reset_peak_rss()
    started = time.perf_counter()
    rows = op.execute({})["rows"]
    seconds = time.perf_counter() - started
    peak = status_kb("VmHWM") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": round(seconds, 2), "baseline_kb": baseline, "peak_kb": peak,
                      "peak_reset": peak_reset}))
    return 0


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc (``VmRSS`` now, ``VmHWM`` its peak), in kB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_rss(exports: dict[str, tuple[str, dt.date, dt.date]], workdir: str) -> dict[str, dict[str, Any]]:
    """Each export (name -> destination, first day, last day) in its own fresh process, all at once.

    Running them side by side changes their durations, not their memory, which is what is measured.
    """
    env = {**os.environ, "PYTHONPATH": common.python_path()}
    procs = {
        name: subprocess.Popen(
            [sys.executable, __file__, "--rss-child", destination, first.isoformat(), last.isoformat(),
             os.path.join(workdir, name.replace("/", "-"))],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (destination, first, last) in exports.items()
    }
    measured = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"RSS child {name} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
        measured[name] = dict(json.loads(stdout.strip().splitlines()[-1]))
    return measured


# ---------------------------------------------------------------------- the benchmark


def last_day(first: dt.date, days: int) -> dt.date:
    return first + dt.timedelta(days=days - 1)


def minimum_requests(first: dt.date, last: dt.date, per_day: int) -> int:
    return sum(
        max(1, math.ceil(((end - start).days + 1) * per_day / PAGE_SIZE)) for start, end in report_windows(first, last)
    )


def run(smoke: bool, runs: int, workdir: str) -> dict[str, Any]:
    sizes = SIZES["smoke" if smoke else "full"]
    sandbox = common.SandboxProcess(workdir, "--read-limit", "0", "--send-limit", "0", "--report-days", "0",
                                    "--max-page-size", str(PAGE_SIZE))
    s3 = S3ServerProcess()
    try:
        common.use_connection("easify_default", sandbox.api_url, {"read_per_minute": 0, "timeout": 120})
        use_aws_connection(s3.endpoint)
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        S3Hook().create_bucket(BUCKET)
        client = sandbox.client
        # Three date ranges that do not overlap: throughput, then the small and the large RSS exports.
        t_first = dt.date(2021, 1, 1)
        t_last = last_day(t_first, THROUGHPUT_DAYS)
        t_per_day = sizes["throughput_rows"] // THROUGHPUT_DAYS
        client.generate_report(t_first, t_last, t_per_day)
        rss_ranges = {
            "small": (dt.date(2022, 1, 1), sizes["rss_small"] // RSS_DAYS),
            "large": (dt.date(2023, 1, 1), sizes["rss_large"] // RSS_DAYS),
        }
        for first, per_day in rss_ranges.values():
            client.generate_report(first, last_day(first, RSS_DAYS), per_day)

        throughput = interleaved(
            {
                BARE: lambda: common.bare_report_loop(sandbox.api_url, t_first, t_last, PAGE_SIZE),
                HOOK: lambda: hook_iterator(t_first, t_last),
                OPERATOR: lambda: s3_operator(t_first, t_last),
                HAND_WRITTEN: lambda: hand_written_export(sandbox.api_url, t_first, t_last, workdir),
            },
            runs,
            client,
        )
        expected = t_per_day * THROUGHPUT_DAYS
        for name, entry in throughput.items():
            if entry["rows"] != expected:
                raise RuntimeError(f"{name} read {entry['rows']} rows, expected {expected}")
        minimum = minimum_requests(t_first, t_last, t_per_day)

        l_first = dt.date(2020, 1, 1)
        l_last = last_day(l_first, THROUGHPUT_DAYS)
        client.generate_report(l_first, l_last, sizes["latency_rows"] // THROUGHPUT_DAYS)
        client.add_fault("report", "slow", probability=1.0, delay=LATENCY_SECONDS)
        with_latency = interleaved(
            {BARE: lambda: common.bare_report_loop(sandbox.api_url, l_first, l_last, PAGE_SIZE),
             OPERATOR: lambda: s3_operator(l_first, l_last)},
            runs,
            client,
        )
        client.clear_faults()

        # Smoke mode: the local file only (each fresh process costs seconds of Airflow imports).
        exports = {
            f"{destination}/{label}": (destination, first, last_day(first, RSS_DAYS))
            for destination in (("file",) if smoke else ("file", "s3"))
            for label, (first, _) in rss_ranges.items()
        }
        peak_rss = measure_rss(exports, workdir)
        for name, measured in peak_rss.items():
            if measured["rows"] != rss_ranges[name.split("/")[1]][1] * RSS_DAYS:
                raise RuntimeError(f"{name} exported {measured['rows']} rows")
    finally:
        s3.stop()
        sandbox.stop()
    return {
        "throughput": throughput,
        "throughput_with_latency": {"latency_s": LATENCY_SECONDS, **with_latency},
        "requests": {"per_export": throughput[OPERATOR]["requests"], "minimum": minimum},
        "peak_rss": peak_rss,
    }


def figures_of(details: dict[str, Any]) -> list[dict[str, Any]]:
    throughput, figures = details["throughput"], []
    bare = throughput[BARE]["rows_per_s"]
    for name in (HOOK, OPERATOR):
        entry = throughput[name]
        ratio = round(entry["rows_per_s"] / bare, 3)
        figures.append(common.figure(
            f"{name}: rows/s vs bare requests loop", ratio, goal=f">= {THROUGHPUT_GOAL}", met=ratio >= THROUGHPUT_GOAL,
            note=f"{entry['rows']} rows: {entry['rows_per_s']} rows/s; bare loop {bare} rows/s",
        ))
    hand_written = throughput[HAND_WRITTEN]["rows_per_s"]
    ratio = round(throughput[OPERATOR]["rows_per_s"] / hand_written, 3)
    figures.append(common.figure(
        f"{OPERATOR}: rows/s vs a hand-written export", ratio,
        note=f"{HAND_WRITTEN}: {hand_written} rows/s; informative (no goal)",
    ))
    slow = details["throughput_with_latency"]
    ratio = round(slow[OPERATOR]["rows_per_s"] / slow[BARE]["rows_per_s"], 3)
    figures.append(common.figure(
        f"{OPERATOR} with {LATENCY_SECONDS * 1000:.0f} ms per request: rows/s vs bare loop", ratio,
        note=f"{slow[OPERATOR]['rows']} rows, informative (no goal)",
    ))
    requests = details["requests"]
    figures.append(common.figure(
        "requests per export / minimum", f"{requests['per_export']}/{requests['minimum']}", goal="= minimum",
        met=requests["per_export"] == requests["minimum"], note=f"page size {PAGE_SIZE}",
    ))
    rss = details["peak_rss"]
    for destination in sorted({name.split("/")[0] for name in rss}):
        small, large = rss[f"{destination}/small"], rss[f"{destination}/large"]
        extra = round(((large["peak_kb"] - large["baseline_kb"]) - (small["peak_kb"] - small["baseline_kb"])) / 1024, 1)
        figures.append(common.figure(
            f"peak RSS to {destination}: {large['rows']} rows minus {small['rows']} rows", extra, unit="MB",
            goal=f"< {RSS_GOAL_MB:.0f} MB", met=extra < RSS_GOAL_MB,
            note=f"export peaks {small['peak_kb'] // 1024} MB and {large['peak_kb'] // 1024} MB",
        ))
    return figures


def print_details(details: dict[str, Any]) -> None:
    bare = details["throughput"][BARE]["seconds"]
    common.print_table(
        ["reader", "rows", "median s", "rows/s", "requests", "time vs bare"],
        [[name, e["rows"], e["seconds"], e["rows_per_s"], e["requests"], f"{e['seconds'] / bare:.2f}x"]
         for name, e in details["throughput"].items()],
        title=f"Throughput (page size {PAGE_SIZE})",
    )
    slow = details["throughput_with_latency"]
    common.print_table(
        ["reader", "rows", "median s", "rows/s", "requests", "time vs bare"],
        [[name, e["rows"], e["seconds"], e["rows_per_s"], e["requests"], f"{e['seconds'] / slow[BARE]['seconds']:.2f}x"]
         for name, e in slow.items() if name != "latency_s"],
        title=f"Throughput with {slow['latency_s'] * 1000:.0f} ms per report request",
    )
    common.print_table(
        ["export (fresh process)", "rows", "seconds", "RSS before MB", "peak MB"],
        [[name, e["rows"], e["seconds"], round(e["baseline_kb"] / 1024, 1), round(e["peak_kb"] / 1024, 1)]
         for name, e in details["peak_rss"].items()],
        title="Peak RSS",
    )


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--serve-s3"]:
        return serve_s3()
    if argv[:1] == ["--rss-child"]:
        return rss_child(*argv[1:5])
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    common.terminate_on_sigterm()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="easify-bench-export-") as workdir:
        common.prepare_environment(workdir)
        details = run(args.smoke, runs, workdir)
    figures = figures_of(details)
    payload = common.result(NAME, smoke=args.smoke, runs=runs, started=started, figures=figures,
                            page_size=PAGE_SIZE, **details)
    # Also at the top level, where run_all.py and the smoke test read them.
    payload.update(page_size=PAGE_SIZE, **details)
    common.print_machine(payload["machine"])
    print_details(details)
    common.print_figures("Export benchmark", figures)
    common.write_result(NAME, payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
