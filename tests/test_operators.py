"""Sending operators, the notifier and fail-fast behaviour, in real ``airflow dags test`` runs."""

from __future__ import annotations

import collections
import re
import threading
import time

import pytest

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator
from airflow_provider_easify.utils.segments import count_segments

SENDER = "+13155550100"

SEND_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_easify.operators.sms import EasifySendSmsOperator

with DAG(
    "easify_send",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    params={"sender": "+13155550100", "to": "+13151350000", "media_path": "MEDIA_PATH"},
):
    send = EasifySendSmsOperator(
        task_id="send",
        from_number="{{ params.sender }}",
        to_number="{{ params.to }}",
        message="Hello from {{ dag.dag_id }} / {{ task.task_id }}",
    )
    national = EasifySendSmsOperator(
        task_id="national_uk",
        from_number="3155550100",
        to_number="07700 900123",
        country_code="+44",
        message="Hi UK",
        lead_id="{{ dag.dag_id }}-lead",
    )
    mms = EasifySendSmsOperator(
        task_id="mms", from_number="{{ params.sender }}", to_number="+13151350001", media="{{ params.media_path }}"
    )
    mapped = EasifySendSmsOperator.partial(
        task_id="mapped", from_number="+13155550100", message="Mapped reminder"
    ).expand(to_number=["+13151350011", "+13151350012", "+13151350013"])

    @task
    def downstream(sms_id):
        return f"got {sms_id}"

    downstream(send.output)
"""


def test_send_operator_templating_xcom_e164_mms_mapping(airflow_home, sandbox, tmp_path):
    image = tmp_path / "chart.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    airflow_home.add_dag("easify_send", SEND_DAG.replace("MEDIA_PATH", str(image)))
    result = airflow_home.dags_test("easify_send")
    result.assert_success()

    ledger = {m["to_number"]: m for m in sandbox.ledger()}
    assert len(sandbox.ledger()) == 6
    assert ledger["3151350000"]["message"] == "Hello from easify_send / send"
    assert result.xcoms["send"] == str(ledger["3151350000"]["id"])
    assert result.xcoms["downstream"] == f"got {ledger['3151350000']['id']}"
    uk = ledger["7700900123"]
    assert (uk["country_code"], uk["lead_id"], uk["from_number"]) == ("+44", "easify_send-lead", "3155550100")
    assert ledger["3151350001"]["sms_type"] == "mms" and ledger["3151350001"]["media_url"].endswith("chart.png")
    for n in range(3):
        key = f"mapped[{n}]"
        assert result.tasks[key] == "success"
        assert result.xcoms[key] == str(ledger[f"315135001{n + 1}"]["id"])
    assert "+13151350000" not in result.log and "3151350000" not in result.log
    assert "Hello from easify_send" not in result.log, "message bodies stay out of the logs"
    assert "1 segment(s), GSM-7" in result.output


RETRY_DAG = """
import datetime as dt
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifySendSmsOperator


class SendThenCrash(EasifySendSmsOperator):
    # The SMS goes out, then the worker dies before the task is marked successful.
    def execute(self, context):
        sms_id = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost right after sending")
        return sms_id


with DAG("easify_retry", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    SendThenCrash(
        task_id="send",
        from_number="+13155550100",
        to_number="+13151350000",
        message="Your order shipped",
        retries=2,
        retry_delay=dt.timedelta(seconds=0),
    )
"""


def test_retried_send_task_does_not_send_again(airflow_home, sandbox):
    airflow_home.add_dag("easify_retry", RETRY_DAG)
    result = airflow_home.dags_test("easify_retry")
    result.assert_success()
    ledger = sandbox.ledger()
    assert result.tries["send"] == 2
    assert len(ledger) == 1, "the retry returned the earlier sms_id instead of sending again"
    assert result.xcoms["send"] == str(ledger[0]["id"])
    assert "not sending again" in result.output


FAIL_FAST_DAG = """
import datetime as dt
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifySendSmsOperator
from airflow_provider_easify.notifications.easify import EasifySmsNotifier

with DAG("easify_fail_fast", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EasifySendSmsOperator(
        task_id="blacklisted",
        from_number="+13155550100",
        to_number="+13151359992",
        message="hi",
        retries=3,
        retry_delay=dt.timedelta(seconds=0),
        on_failure_callback=EasifySmsNotifier(from_number="+13155550100", to_number=["+13151350099", "+447700900555"]),
    )
    EasifySendSmsOperator(
        task_id="bad_token",
        from_number="+13155550100",
        to_number="+13151350000",
        message="hi",
        easify_conn_id="easify_bad_token",
        retries=3,
        retry_delay=dt.timedelta(seconds=0),
    )
"""


def test_non_retryable_errors_fail_at_once_and_notifier_fires(airflow_home, sandbox):
    airflow_home.env["AIRFLOW_CONN_EASIFY_BAD_TOKEN"] = (
        f'{{"conn_type": "easify", "host": "{sandbox.api_url}", "password": "revoked-token-42"}}'
    )
    airflow_home.add_dag("easify_fail_fast", FAIL_FAST_DAG)
    result = airflow_home.dags_test("easify_fail_fast")
    assert result.tasks == {"blacklisted": "failed", "bad_token": "failed"}
    assert result.tries == {"blacklisted": 1, "bad_token": 1}, "no pointless retries"
    assert "blacklisted" in result.output and "Unauthenticated" in result.output
    assert "revoked-token-42" not in result.log
    alerts = sandbox.ledger()
    assert sorted(m["receiver"] for m in alerts) == ["+13151350099", "+447700900555"]
    text = alerts[0]["message"]
    assert re.fullmatch(r"Airflow: task blacklisted of DAG easify_fail_fast failed \(run [^ ]+, try 1\)\.", text), text
    assert sandbox.stats()["by_endpoint"]["send"] == 3  # the refused send and the two alerts


BULK_DAG = """
import datetime as dt
import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

with DAG("easify_bulk", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):

    @task
    def recipients():
        people = [{"to_number": f"+1315135{n:04d}", "first_name": f"P{n}"} for n in range(50)]
        people += [people[3], "3151350007"]  # duplicates, one as a national number
        people += ["+1315", {"to_number": "+13151359992", "first_name": "Blocked"}]  # invalid, blacklisted
        return people

    EasifyBulkSendSmsOperator(
        task_id="bulk",
        from_number="+13155550100",
        country_code="+1",
        recipients=recipients(),
        message="Hi {{ recipient.first_name }}, see you on {{ ds }}",
        deferrable=DEFERRABLE,
        retries=2,
        retry_delay=dt.timedelta(seconds=0),
        progress_every=10,
    )
"""


def _inject_when_ledger_reaches(sandbox, count: int, faults: list[dict]) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(sandbox.ledger()) >= count:
                for fault in faults:
                    sandbox.add_fault(**fault)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_bulk_send_exactly_once_through_faults_and_a_failed_try(airflow_home, sandbox):
    sandbox.configure(send_limit=10, send_window_seconds=1, read_limit=10_000)
    airflow_home.set_easify_extra(send_per_minute=570, read_per_minute=0, max_retries=2)
    airflow_home.add_dag("easify_bulk", BULK_DAG.replace("DEFERRABLE", "False"))
    # Midway: one send recorded but answered 502, then a run of 500s that outlasts the hook's
    # retries, so the first try fails and the second resumes.
    watcher = _inject_when_ledger_reaches(
        sandbox,
        20,
        [
            {"endpoint": "send", "kind": "recorded_502", "times": 1},
            {"endpoint": "send", "kind": "http_error", "status": 500, "times": 3},
        ],
    )
    result = airflow_home.dags_test("easify_bulk")
    watcher.join(timeout=1)
    result.assert_success()
    assert result.tries["bulk"] == 2, "the fault failed the first try"

    ledger = sandbox.ledger()
    per_number = collections.Counter(m["to_number"] for m in ledger)
    assert len(ledger) == 50 and set(per_number.values()) == {1}
    message = next(m["message"] for m in ledger if m["to_number"] == "3151350012")
    assert re.fullmatch(r"Hi P12, see you on \d{4}-\d{2}-\d{2}", message), message
    summary = result.xcoms["bulk"]
    assert len(summary["sent"]) == 50 and summary["total"] == 52
    assert set(summary["failed"]) == {"+1315", "+13151359992"}
    assert "blacklisted" in summary["failed"]["+13151359992"]
    assert summary["duplicates"] == ["+13151350003", "+13151350007"]
    assert {str(m["id"]) for m in ledger} == set(summary["sent"].values())
    assert sandbox.stats()["by_endpoint_status"]["send"].get("429", 0) == 0, "no 429 in steady state"
    assert "Progress: " in result.output and "msg/min" in result.output


def test_bulk_send_deferrable_waits_on_the_triggerer(airflow_home, sandbox):
    sandbox.configure(send_limit=10, send_window_seconds=2, read_limit=10_000)
    airflow_home.set_easify_extra(send_per_minute=300, send_window_seconds=2, read_per_minute=0)
    airflow_home.add_dag("easify_bulk", BULK_DAG.replace("DEFERRABLE", "True"))
    result = airflow_home.dags_test("easify_bulk")
    result.assert_success()
    ledger = sandbox.ledger()
    assert len(ledger) == 50 and len({m["to_number"] for m in ledger}) == 50
    assert result.tries["bulk"] == 1
    assert result.output.count("deferring") >= 4, "it deferred between rate windows"
    assert sandbox.stats()["by_endpoint_status"]["send"].get("429", 0) == 0


def test_bulk_operator_refuses_bad_arguments_at_parse_time():
    with pytest.raises(EasifyInvalidParameterError, match="recipients"):
        EasifyBulkSendSmsOperator(task_id="x", from_number=SENDER, message="hi")
    with pytest.raises(EasifyInvalidParameterError, match="recipients"):
        EasifyBulkSendSmsOperator(task_id="x", from_number=SENDER, message="hi", recipients=["1"], group_id=1)
    with pytest.raises(EasifyInvalidParameterError, match="message"):
        EasifyBulkSendSmsOperator(task_id="x", from_number=SENDER, message=" ", recipients=["+13151350000"])


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),
        ("€" * 81, "GSM-7", 2),
        ("ü" * 160, "GSM-7", 1),
        ("é" * 70 + "ł", "UCS-2", 2),
        ("ł" * 70, "UCS-2", 1),
        ("😀" * 35, "UCS-2", 1),
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_segment_count(text, encoding, segments):
    info = count_segments(text)
    assert (info.encoding, info.segments) == (encoding, segments)


def test_send_window_trigger_round_trip():
    import asyncio
    import importlib

    from airflow_provider_easify.triggers.sms import EasifySendWindowTrigger

    path, kwargs = EasifySendWindowTrigger(moment=time.time() + 0.2).serialize()
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    async def first_event():
        return await rebuilt.run().__anext__()

    event = asyncio.run(first_event())
    assert event.payload == {"status": "window_open", "moment": kwargs["moment"]}
    assert time.time() >= kwargs["moment"], "it fires when the window opens, not before"


def _run_until_deferred(operator, **kwargs):
    from airflow.providers.common.compat.sdk import TaskDeferred

    context = {"ti": None, "dag_run": None, "ds": "2026-01-01"}
    try:
        return operator.resume(context, **kwargs) if kwargs else operator.execute(context), None
    except TaskDeferred as deferred:
        return None, deferred


def test_a_deferred_bulk_burst_sends_in_the_slots_it_reserved(make_hook, sandbox, monkeypatch):
    """The reservation travels with the deferral: the resume sends in it, no earlier, and reserves nothing new."""
    for module in ("airflow.sdk.bases.operator", "airflow.models.baseoperator"):
        try:
            monkeypatch.setattr(__import__(module, fromlist=["ExecutorSafeguard"]).ExecutorSafeguard, "test_mode", True)
        except (ImportError, AttributeError):
            pass
    hook = make_hook(send_per_minute=300, send_window_seconds=1)  # 5 sends a window, slots 0.206 s apart
    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=SENDER, message="hi", recipients=[f"+1315135{n:04d}" for n in range(5)],
        deferrable=True, easify_conn_id=hook.easify_conn_id,
    )
    start, end = hook.reserve_send_slots(5)
    block = {"start": start + 2, "end": end + 2, "count": 5}  # as a deferral would carry it
    progress = {"cursor": 0, "burst": 0, "counts": {}, "block": block}
    _, deferred = _run_until_deferred(operator, progress=progress)
    assert deferred is not None and deferred.trigger.moment == pytest.approx(block["start"], abs=0.01)
    assert deferred.kwargs["progress"]["block"] == block and sandbox.ledger() == []

    time.sleep(max(0.0, block["start"] - 0.5 - time.time()))
    before = hook.send_budget_wait()
    summary, deferred = _run_until_deferred(operator, **deferred.kwargs)
    assert deferred is None and len(summary["sent"]) == 5 and "block" not in summary
    sends = [r["t"] for r in sandbox.stats()["requests"] if r["endpoint"] == "send"]
    assert len(sends) == 5 and min(sends) >= block["start"] - 0.05, "nothing went out before the reserved slots"
    assert hook.send_budget_wait() <= before, "no new reservation was taken"


GROUP_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

with DAG("easify_bulk_group", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    EasifyBulkSendSmsOperator(
        task_id="bulk", from_number="+13155550100", group_id=3, message="Hi {{ recipient.first_name }}",
        deferrable=True,
    )
"""


def test_a_deferrable_group_send_reads_the_group_once_per_try(airflow_home, sandbox):
    sandbox.configure(send_limit=4, send_window_seconds=2, read_limit=10_000)
    airflow_home.set_easify_extra(send_per_minute=120, send_window_seconds=2, read_per_minute=0)
    airflow_home.add_dag("easify_bulk_group", GROUP_DAG)
    result = airflow_home.dags_test("easify_bulk_group")
    result.assert_success()
    assert len(sandbox.ledger()) == 12 and result.output.count("deferring") >= 2, "it deferred between windows"
    assert sandbox.stats()["by_endpoint"]["contacts"] == 1, "the resumes did not read the group again"


def _in_process(operator):
    from airflow.providers.common.compat.sdk import AirflowFailException

    for module in ("airflow.sdk.bases.operator", "airflow.models.baseoperator"):
        try:
            __import__(module, fromlist=["ExecutorSafeguard"]).ExecutorSafeguard.test_mode = True
        except (ImportError, AttributeError):
            pass
    return operator.execute({"ti": None, "dag_run": None}), AirflowFailException


def test_recipients_rendered_from_an_xcom_as_a_python_literal(make_hook, sandbox):
    hook = make_hook()
    rendered = str([{"to_number": "+13151350001", "first_name": "Ada"}, "+13151350002"])  # what Jinja makes of it
    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=SENDER, message="Hi", recipients=rendered, easify_conn_id=hook.easify_conn_id
    )
    summary, _ = _in_process(operator)
    assert set(summary["sent"]) == {"+13151350001", "+13151350002"} and len(sandbox.ledger()) == 2


def test_unreadable_recipients_fail_at_once_naming_the_parameter(make_hook, sandbox):
    from airflow.providers.common.compat.sdk import AirflowFailException

    hook = make_hook()
    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=SENDER, message="Hi", recipients="[{'to_number': '+1315135'",
        easify_conn_id=hook.easify_conn_id,
    )
    with pytest.raises(AirflowFailException, match="recipients"):
        _in_process(operator)
    assert sandbox.stats()["total"] == 0


def test_bulk_message_is_a_template_field_rendered_per_recipient_when_it_uses_recipient():
    assert "message" in EasifyBulkSendSmsOperator.template_fields
    plain = EasifyBulkSendSmsOperator(task_id="a", from_number=SENDER, message="Run {{ params.n }}", recipients=["x"])
    personal = EasifyBulkSendSmsOperator(
        task_id="b", from_number=SENDER, message="Hi {{ recipient.first_name }} {{ params.n }}", recipients=["x"]
    )
    for operator in (plain, personal):
        operator.render_template_fields({"params": {"n": 7}})
    assert plain.message == "Run 7"
    assert personal.message == "Hi {{ recipient.first_name }} 7", "what every recipient gets, their fields aside"


def test_bulk_send_skips_exclude_numbers(make_hook, sandbox):
    hook = make_hook()
    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=SENDER, message="Sale", easify_conn_id=hook.easify_conn_id,
        recipients=["+13151350001", "+13151350002", {"to_number": "3151350003", "country_code": "+1"}],
        exclude_numbers='["+1 315 135 0002", "+13151350003", "+13151350009"]',  # a rendered Variable
    )
    summary, _ = _in_process(operator)
    assert list(summary["sent"]) == ["+13151350001"]
    assert summary["excluded"] == ["+13151350002", "+13151350003"] and summary["total"] == 1
    assert [m["receiver"] for m in sandbox.ledger()] == ["+13151350001"]
    assert "exclude_numbers" in EasifyBulkSendSmsOperator.template_fields


def test_a_bad_exclude_number_fails_before_anything_is_sent(make_hook, sandbox):
    from airflow.providers.common.compat.sdk import AirflowFailException

    hook = make_hook()
    operator = EasifyBulkSendSmsOperator(
        task_id="bulk", from_number=SENDER, message="Sale", easify_conn_id=hook.easify_conn_id,
        recipients=["+13151350001"], exclude_numbers=["+13151350002", "12"],
    )
    with pytest.raises(AirflowFailException, match="exclude_numbers"):
        _in_process(operator)
    assert sandbox.ledger() == []
