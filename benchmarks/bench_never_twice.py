"""Exactly once, per reading of the vendor text: duplicates and lost messages when sends fail.

    python benchmarks/bench_never_twice.py            # 100 sends per reading
    python benchmarks/bench_never_twice.py --smoke    # 16 sends per reading

For each reading the sandbox can take (trimmed or raw bodies, normalised newlines, chat history
oldest-first or shuffled, sends visible only 1.5 s after they answered, pages clamped to 3 rows), the
hook sends messages through faults: about 30 % of sends are recorded and then fail (502, dropped
connection, garbled answer) and 10 % fail unrecorded (a gateway's HTML 502). Bodies carry whitespace and
CRLF line endings, and the same text goes to the same number several times (those are separate
messages). Figures: messages the server holds beyond those intended (duplicates), intended messages
it does not hold (lost), and sends that returned another message's id; plus the seconds the settle time
added, which only failed sends pay.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from airflow_provider_easify.sandbox.readings import READINGS, SEND_FAULTS, settle_seconds

TEXTS = ("  Your code is 1234  ", "Line one\r\nLine two\r\n", "Reminder", "\tTab first", "Plain")


def planned_sends(count: int) -> list[tuple[str, str]]:
    """``count`` sends over 6 numbers and 5 texts: many (number, text) pairs repeat."""
    return [(f"+1315135{n % 6:04d}", TEXTS[n % len(TEXTS)]) for n in range(count)]


def run_reading(sandbox: Any, name: str, changes: dict[str, Any], sends: list[tuple[str, str]]) -> dict[str, Any]:
    from airflow_provider_easify.hooks.easify import EasifyHook

    sandbox.configure(send_limit=0, read_limit=0, pending_seconds=0.2, delivered_seconds=0.4, **changes)
    settle = settle_seconds(changes)
    conn_id = common.use_connection(
        f"easify_bench_once_{name.replace('-', '_')}", sandbox.api_url,
        {"send_per_minute": 0, "read_per_minute": 0, "max_retries": 8, "backoff_base": 0.01, "backoff_max": 0.05,
         "timeout": 5, "send_settle_seconds": settle},
        token=sandbox.token,
    )
    hook = EasifyHook(easify_conn_id=conn_id)
    sandbox.add_faults(SEND_FAULTS)
    started = time.perf_counter()
    returned = [hook.send_sms(common.SENDER, to, text) for to, text in sends]
    seconds = time.perf_counter() - started
    sandbox.clear_faults()
    ledger = sandbox.ledger()
    trim = changes.get("trim_strings", True)

    def stored_form(text: str) -> str:
        return (text.strip() if trim else text).replace("\r\n", "\n")

    intended = collections.Counter((to, stored_form(text)) for to, text in sends)
    held = collections.Counter(
        (f"{m['country_code']}{m['to_number']}", m["message"].replace("\r\n", "\n")) for m in ledger
    )
    duplicates = sum((held - intended).values())
    lost = sum((intended - held).values())
    held_ids = {str(m["id"]) for m in ledger}
    wrong_ids = len(sends) - len(set(returned) & held_ids)
    return {
        "reading": name, "sends": len(sends), "in_ledger": len(ledger), "duplicates": duplicates, "lost": lost,
        "wrong_ids": wrong_ids, "faults_fired": sandbox.stats()["faults_by_kind"], "seconds": round(seconds, 2),
        "settle_seconds": settle,
    }


def main(argv: list[str] | None = None) -> int:
    args = common.argument_parser(__doc__).parse_args(argv)
    runs = common.runs_of(args)
    started = time.perf_counter()
    common.terminate_on_sigterm()
    common.print_machine(common.machine_facts())
    sends = planned_sends(16 if args.smoke else 100)
    with tempfile.TemporaryDirectory(prefix="easify-bench-once-") as workdir:
        common.prepare_environment(workdir)
        from airflow_provider_easify.sandbox import EasifySandbox, SandboxConfig

        results: dict[str, list[dict[str, Any]]] = {}
        for name, changes in READINGS.items():
            for run in range(runs):
                # A fresh server each time (ids never repeat on a real one, and the hook relies on it),
                # with its own seed, so that each run draws its faults on other sends.
                with EasifySandbox(config=SandboxConfig(seed=7 + run)) as sandbox:
                    results.setdefault(name, []).append(run_reading(sandbox, name, changes, sends))

    rows, figures = [], []
    for name, reading_runs in results.items():
        duplicates = sum(r["duplicates"] for r in reading_runs)
        lost = sum(r["lost"] for r in reading_runs)
        wrong = sum(r["wrong_ids"] for r in reading_runs)
        fired = sum(sum(r["faults_fired"].values()) for r in reading_runs)
        rows.append([name, len(sends) * runs, fired, duplicates, lost, wrong,
                     common.median(r["seconds"] for r in reading_runs)])
        figures.append(common.figure(f"{name}: duplicates / lost", f"{duplicates} / {lost}", goal="0 / 0",
                                     met=duplicates == 0 and lost == 0,
                                     note=f"{fired} faults in {len(sends) * runs} sends; {wrong} wrong ids"))
    common.print_table(["reading", "sends", "faults", "duplicates", "lost", "wrong ids", "seconds"], rows,
                       title="Exactly once per reading")
    common.print_figures(f"Never twice, never lost (runs: {runs})", figures)
    payload = common.result("never_twice", smoke=args.smoke, runs=runs, started=started, figures=figures,
                            readings=results)
    common.write_result("never_twice", payload, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
