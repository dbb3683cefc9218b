"""The operators on a half-broken API, under real Airflow (``airflow dags test``) against the sandbox.

A send left unconfirmed fails the try; the retry looks for it before posting and succeeds once the report
answers again, or fails again while it does not. A bulk send reports unconfirmed recipients, fails at
the end, and its second try, with the report back, reaches every recipient exactly once. A deferrable
bulk send writes the same few bytes to the metadata database at every deferral, however many
recipients it has, and no phone number.
"""

from __future__ import annotations

import collections
import re
import sqlite3
import threading
import time

SEND_DAG = """
import datetime as dt
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifySendSmsOperator

with DAG("easify_unconfirmed", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EasifySendSmsOperator(
        task_id="send", from_number="+13155550100", to_number="+13151350000", message="Disk full on {{ ds }}",
        retries=1, retry_delay=dt.timedelta(seconds=3),
    )
"""


def _when(condition, then, timeout: float = 120) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                then()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_unconfirmed_send_fails_the_try_and_the_retry_resolves_it_by_lookup(airflow_home, sandbox):
    airflow_home.set_easify_extra(max_retries=1, send_settle_seconds=0.3)
    airflow_home.add_dag("easify_unconfirmed", SEND_DAG)
    sandbox.add_fault("send", "recorded_502", times=1)
    sandbox.start_outage("report", mode="html_5xx", status=503)
    # The report comes back a moment after the first try failed, before the retry starts.
    watcher = _when(lambda: len(sandbox.ledger()) == 1, lambda: (time.sleep(1.0), sandbox.end_outage("report")))
    result = airflow_home.dags_test("easify_unconfirmed")
    watcher.join(timeout=1)
    result.assert_success()
    ledger = sandbox.ledger()
    assert len(ledger) == 1, "posted once"
    assert result.tries["send"] == 2 and "EasifySendUnconfirmedError" in result.output
    assert result.xcoms["send"] == str(ledger[0]["id"]), "the retry found the message the first try recorded"


def test_unconfirmed_send_is_never_posted_again_while_the_report_stays_down(airflow_home, sandbox):
    airflow_home.set_easify_extra(max_retries=1, send_settle_seconds=0.3)
    airflow_home.add_dag("easify_unconfirmed", SEND_DAG)
    sandbox.add_fault("send", "recorded_502", times=1)
    with sandbox.outage("report", mode="timeout", delay=2):
        result = airflow_home.dags_test("easify_unconfirmed")
    assert result.state == "failed" and result.tries["send"] == 2
    assert len(sandbox.ledger()) == 1, "neither the request retries nor the task retry posted again"
    assert result.output.count("EasifySendUnconfirmedError") >= 2


BULK_DAG = """
import datetime as dt
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

with DAG("easify_bulk_sick", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EasifyBulkSendSmsOperator(
        task_id="bulk",
        from_number="+13155550100",
        recipients=[{"to_number": f"+1315135{n:04d}", "name": f"P{n}"} for n in range(40)],
        message="Hi {{ recipient.name }}",
        retries=1,
        retry_delay=dt.timedelta(seconds=6),
    )
"""

SEND_FAULTS = [
    {"endpoint": "send", "kind": "recorded_502", "probability": 0.15},
    {"endpoint": "send", "kind": "recorded_drop", "probability": 0.1},
    {"endpoint": "send", "kind": "http_error", "status": 502, "body": "html", "probability": 0.1},
]


def test_bulk_send_with_the_report_down_then_back_reaches_everyone_exactly_once(airflow_home, sandbox):
    sandbox.configure(send_limit=0, read_limit=0)
    airflow_home.set_easify_extra(max_retries=1, send_settle_seconds=0.3, timeout=2)
    airflow_home.add_dag("easify_bulk_sick", BULK_DAG)
    sandbox.add_faults(SEND_FAULTS)
    sandbox.start_outage("report", mode="html_5xx", status=503)

    def first_try_over() -> bool:
        # Every recipient was posted to, and the end-of-run lookups have stopped for a while.
        if sandbox.stats()["by_endpoint"].get("send", 0) < 40:
            return False
        before = sandbox.stats()["by_endpoint"].get("report", 0)
        time.sleep(1.5)
        return sandbox.stats()["by_endpoint"].get("report", 0) == before

    watcher = _when(first_try_over, lambda: sandbox.end_outage("report"))
    result = airflow_home.dags_test("easify_bulk_sick", timeout=400)
    watcher.join(timeout=1)
    result.assert_success()
    assert result.tries["bulk"] == 2, "the first try ended with unconfirmed recipients"
    assert re.search(r"\d+ of 40 recipient\(s\) are unconfirmed", result.output)

    ledger = sandbox.ledger()
    per_number = collections.Counter(m["to_number"] for m in ledger)
    assert len(per_number) == 40 and set(per_number.values()) == {1}, "every recipient exactly once"
    summary = result.xcoms["bulk"]
    assert len(summary["sent"]) == 40 and summary["unconfirmed"] == {} and summary["failed"] == {}
    assert set(summary["sent"].values()) == {str(m["id"]) for m in ledger}
    assert sum(sandbox.stats()["faults_by_kind"].values()) >= 5, "faults fired"


DEFERRABLE_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

with DAG("easify_bulk_bytes", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EasifyBulkSendSmsOperator(
        task_id="bulk",
        from_number="+13155550100",
        recipients=[f"+1315135{n:04d}" for n in range(COUNT)],
        message="Sale today",
        deferrable=True,
    )
"""


class _DeferralRecorder:
    """Reads, while the DAG runs, what each deferral wrote to the metadata database."""

    def __init__(self, db_path) -> None:
        self.db_path = db_path
        self.next_kwargs: list[str] = []
        self.trigger_kwargs: list[str] = []
        self.bursts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _DeferralRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._read()
            time.sleep(0.02)

    def _read(self) -> None:
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=1) as db:
                for (value,) in db.execute("SELECT next_kwargs FROM task_instance WHERE task_id = 'bulk'"):
                    if value and (not self.next_kwargs or self.next_kwargs[-1] != str(value)):
                        self.next_kwargs.append(str(value))
                for (value,) in db.execute("SELECT kwargs FROM trigger"):
                    if value and str(value) not in self.trigger_kwargs:
                        self.trigger_kwargs.append(str(value))
                for key, size in db.execute(
                    "SELECT key, length(value) FROM xcom WHERE task_id = 'bulk' AND key LIKE 'easify_bulk_burst_%'"
                ):
                    self.bursts[key] = int(size)
        except sqlite3.Error:
            pass  # the database is busy: read again on the next round


def test_bytes_written_per_deferral_do_not_grow_with_the_recipients(airflow_home, sandbox):
    sandbox.configure(send_limit=0, read_limit=0)
    # 25 sends a 3 s window: a burst of 25, then a deferral until the next window.
    airflow_home.set_easify_extra(send_per_minute=500, send_window_seconds=3)
    airflow_home.add_dag("easify_bulk_bytes", DEFERRABLE_DAG.replace("COUNT", "150"))
    with _DeferralRecorder(airflow_home.home / "airflow.db") as recorded:
        result = airflow_home.dags_test("easify_bulk_bytes", timeout=400)
    result.assert_success()
    assert len(sandbox.ledger()) == 150 and len(result.xcoms["bulk"]["sent"]) == 150

    assert len(recorded.bursts) == 5, f"a burst per rate window, the last one in the result ({recorded.bursts})"
    assert result.output.count("deferring") >= 4, "it deferred between windows"
    sizes = list(recorded.bursts.values())
    assert max(sizes) < 20_000 and max(sizes) <= min(sizes[:-1] or sizes) + 200, f"one burst each: {sizes}"
    phone = re.compile(r"1315135\d{4}")
    for value in recorded.next_kwargs + recorded.trigger_kwargs:
        assert len(value) < 2_000 and not phone.search(value), value[:300]
    carried = [len(v) for v in recorded.next_kwargs if "progress" in v]
    if carried:  # Airflow 2's `dags test` keeps no deferral kwargs in the database
        assert max(carried) <= min(carried) + 16, f"the kwargs do not grow: {carried}"
    per_deferral = max(sizes) + max(map(len, recorded.next_kwargs), default=0)
    per_deferral += max(map(len, recorded.trigger_kwargs), default=0)
    assert per_deferral < 20_000, per_deferral
