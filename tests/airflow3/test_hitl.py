"""Approvals answered by SMS with Airflow's human-in-the-loop (3.1+), under `airflow dags test` against the
sandbox. `dags test` runs the trigger inline, where Airflow 3.3.2 cannot write the human-in-the-loop
record: the task must still finish as ApprovalOperator does and say that the record was not written.
(The real triggerer, where the record is written, is tests/deployment/test_two_way_deployment.py.)"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.operators.hitl import ANSWER_HELP, EasifySmsApprovalOperator
from airflow_provider_easify.sandbox.readings import READINGS
from airflow_provider_easify.triggers.hitl import HINT_TEXT, EasifySmsApprovalTrigger
from airflow_provider_easify.utils.segments import count_segments
from tests.test_sensors import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
SENDER = "+13155550100"
APPROVER = "+13151350100"


def answer_when_asked(sandbox, *replies: str, number: str = APPROVER) -> threading.Thread:
    """Reply from ``number`` once the question has gone out (and each reply after the previous one)."""

    def reply() -> None:
        wait_for(lambda: any(ANSWER_HELP in m["message"] for m in sandbox.ledger()), 120, "the question")
        for text in replies:
            sandbox.inject_incoming(SENDER, number, text)
            if text != replies[-1]:
                wait_for(lambda: any(m["message"] == HINT_TEXT for m in sandbox.ledger()), 60, "the hint")

    thread = threading.Thread(target=reply, daemon=True)
    thread.start()
    return thread


def no_rate_limits(airflow_home, sandbox) -> None:
    """These tests are about answers, not budgets: no pacing between the question, hints and follow-ups."""
    sandbox.configure(send_limit=0, read_limit=0)
    airflow_home.set_easify_extra(read_per_minute=0, send_per_minute=0)


def run_example(airflow_home, sandbox, *replies: str, poll_interval: int | None = None):
    no_rate_limits(airflow_home, sandbox)
    airflow_home.env["AIRFLOW__API__BASE_URL"] = "http://airflow.example.com"
    source = (EXAMPLES / "example_easify_hitl_approval.py").read_text()
    if poll_interval is not None:
        assert "sms_poll_interval=30" in source
        source = source.replace("sms_poll_interval=30", f"sms_poll_interval={poll_interval}")
    airflow_home.add_dag("example_easify_hitl_approval", source)
    thread = answer_when_asked(sandbox, *replies)
    # A question asked before the run (an older reply to it must not count).
    sandbox.inject_incoming(SENDER, APPROVER, "yes")
    result = airflow_home.dags_test("example_easify_hitl_approval", logical_date="2024-06-01")
    thread.join(5)
    return result


def test_approved_by_sms_under_dags_test(airflow_home, sandbox):
    result = run_example(airflow_home, sandbox, "Yes!")
    result.assert_success()
    assert result.tasks == {"approve_load": "success", "load": "success"}
    answer = result.xcoms["approve_load"]
    assert answer["chosen_options"] == ["Approve"]
    assert answer["responded_by_user"]["name"] == "SMS from +1315***0100"
    [question] = [m for m in sandbox.ledger() if ANSWER_HELP in m["message"]]
    assert question["receiver"] == APPROVER
    assert re.fullmatch(r"Load \d{4}-\d\d-\d\d into the warehouse\?\nThe nightly extract .*\n" + ANSWER_HELP,
                        question["message"], re.DOTALL)
    assert "could not be written to Airflow's human-in-the-loop record" in result.output
    # The approver gets the recorded answer back, once.
    [confirmation] = [m for m in sandbox.ledger() if m["message"].startswith("Recorded:")]
    assert confirmation["receiver"] == APPROVER
    assert re.fullmatch(r"Recorded: Approve\. \(Load \d{4}-\d\d-\d\d into the warehouse\?\)", confirmation["message"])
    assert "Yes!" not in result.log, "reply texts are never logged"
    # Airflow < 3.3's in-process supervisor echoes the unhandled HITL request, the DAG's params with it.
    ours = "\n".join(line for line in result.log.splitlines() if "UpdateHITLDetail" not in line)
    assert APPROVER not in ours, "numbers are masked in logs"


def test_rejected_by_sms_skips_the_load_and_other_replies_get_one_hint(airflow_home, sandbox):
    result = run_example(airflow_home, sandbox, "what is this?", "later", "NO", poll_interval=2)
    result.assert_success()
    assert result.tasks == {"approve_load": "success", "load": "skipped"}
    assert result.xcoms["approve_load"]["chosen_options"] == ["Reject"]
    hints = [m for m in sandbox.ledger() if m["message"] == HINT_TEXT]
    assert len(hints) == 1 and hints[0]["receiver"] == APPROVER


def test_fail_on_reject_and_the_timeout_default(airflow_home, sandbox):
    no_rate_limits(airflow_home, sandbox)
    airflow_home.add_dag("hitl_variants", f"""
        from datetime import timedelta
        import pendulum
        from airflow.sdk import DAG
        from airflow.providers.standard.operators.empty import EmptyOperator
        from airflow_provider_easify.operators.hitl import EasifySmsApprovalOperator

        with DAG("hitl_fail_on_reject", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
            EasifySmsApprovalOperator(task_id="approve", subject="Go?", from_number="{SENDER}",
                                      to_number=["{APPROVER}", "+13151350101"], fail_on_reject=True,
                                      sms_poll_interval=0.5)

        with DAG("hitl_timeout", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
            EasifySmsApprovalOperator(task_id="approve", subject="Go?", from_number="{SENDER}",
                                      to_number="{APPROVER}", response_timeout=timedelta(seconds=3),
                                      defaults="Approve", sms_poll_interval=0.5) >> EmptyOperator(task_id="after")
    """)
    thread = answer_when_asked(sandbox, "n", number="+13151350101")  # either of the two asked may answer
    failed = airflow_home.dags_test("hitl_fail_on_reject")
    thread.join(5)
    assert failed.tasks == {"approve": "failed"}, failed.output[-3000:]
    questions = [m["receiver"] for m in sandbox.ledger() if m["message"] == f"Go?\n{ANSWER_HELP}"]
    assert sorted(questions) == [APPROVER, "+13151350101"]
    # Who answered gets the answer back; the other number asked learns the question is closed.
    follow_ups = {m["receiver"]: m["message"] for m in sandbox.ledger() if m["message"] != f"Go?\n{ANSWER_HELP}"}
    assert follow_ups == {"+13151350101": "Recorded: Reject. (Go?)",
                          APPROVER: "Closed: Go? was answered by SMS from +1315***0101 (Reject)."}
    assert "HITLRejectException" in failed.output

    timed_out = airflow_home.dags_test("hitl_timeout")
    timed_out.assert_success()
    assert timed_out.tasks == {"approve": "success", "after": "success"}
    assert timed_out.xcoms["approve"]["chosen_options"] == ["Approve"]
    assert sandbox.ledger()[-1]["receiver"] == APPROVER
    assert sandbox.ledger()[-1]["message"] == "Closed: Go? got no answer in time; going on with Approve."


def test_a_notifier_texts_any_hitl_tasks_subject_and_link(airflow_home, sandbox):
    no_rate_limits(airflow_home, sandbox)
    airflow_home.env["AIRFLOW__API__BASE_URL"] = "http://airflow.example.com"
    airflow_home.add_dag("hitl_notifier", f"""
        import pendulum
        from airflow.sdk import DAG
        from airflow_provider_easify.notifications.easify import EasifySmsNotifier
        from airflow_provider_easify.operators.hitl import EasifySmsApprovalOperator

        with DAG("hitl_notifier", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
            EasifySmsApprovalOperator(
                task_id="approve", subject="Ship release {{{{ ds }}}}?", from_number="{SENDER}",
                to_number="{APPROVER}", sms_poll_interval=0.5,
                notifiers=[EasifySmsNotifier(from_number="{SENDER}", to_number="+13151350101")],
            )
    """)
    thread = answer_when_asked(sandbox, "ok")
    result = airflow_home.dags_test("hitl_notifier", logical_date="2024-06-01")
    thread.join(5)
    result.assert_success()
    [note] = [m for m in sandbox.ledger() if m["receiver"] == "+13151350101"]
    assert note["message"].startswith("Airflow needs your answer: Ship release 2024-06-01? http://airflow.example.com/")
    assert "/dags/hitl_notifier/runs/" in note["message"] and "/tasks/approve/required_actions" in note["message"]


def test_the_question_fits_its_segments():
    op = EasifySmsApprovalOperator(
        task_id="a", subject="Approve the load?", body="word " * 400, from_number=SENDER, to_number=APPROVER,
    )
    text = op.question_text()
    assert count_segments(text).segments <= 3
    assert text.startswith("Approve the load?\nword word") and text.endswith("…\n" + ANSWER_HELP)
    short = EasifySmsApprovalOperator(task_id="b", subject="Go?", from_number=SENDER, to_number=APPROVER)
    assert short.question_text() == "Go?\n" + ANSWER_HELP


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"to_number": ""}, "to_number"),
        ({"to_number": []}, "to_number"),
        ({"to_number": "+4915112345678"}, "to_number"),
        ({"to_number": "3151350100"}, "to_number"),
        ({"from_number": "x"}, "from_number"),
        ({"sms_poll_interval": 0}, "sms_poll_interval"),
    ],
)
def test_bad_input_fails_when_the_dag_is_parsed(kwargs, parameter):
    arguments = {"task_id": "a", "subject": "Go?", "from_number": SENDER, "to_number": APPROVER, **kwargs}
    with pytest.raises(EasifyInvalidParameterError) as info:
        EasifySmsApprovalOperator(**arguments)
    assert info.value.parameter == parameter


def test_the_trigger_round_trips_its_kwargs():
    import uuid

    trigger = EasifySmsApprovalTrigger(
        ti_id=uuid.uuid4(), options=["Approve", "Reject"], params={}, defaults=["Reject"], multiple=False,
        timeout_datetime=None, easify_conn_id="easify_default", sender="3155550100",
        questions=[{"to_number": APPROVER, "after_id": 42}], sms_poll_interval=10,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_easify.triggers.hitl.EasifySmsApprovalTrigger"
    assert EasifySmsApprovalTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize("reading", list(READINGS), ids=list(READINGS))
def test_approval_answered_by_sms_on_every_reading(airflow_home, sandbox, make_hook, reading):
    """A long conversation with an old "yes" in it, on every reading of chat history's ``limit``: the
    question's answer is the reply after it, and a reply that is no answer gets the hint once."""
    sandbox.configure(send_limit=0, read_limit=0, **READINGS[reading])
    hook = make_hook()
    for n in range(12):
        hook.send_sms(SENDER, APPROVER, f"older message {n}")
        if n % 4 == 0:
            sandbox.inject_incoming(SENDER, APPROVER, "yes" if n == 4 else f"old reply {n}")
    result = run_example(airflow_home, sandbox, "what is this?", "no", poll_interval=2)
    result.assert_success()
    assert result.tasks == {"approve_load": "success", "load": "skipped"}, "the old yes did not approve"
    assert result.xcoms["approve_load"]["chosen_options"] == ["Reject"]
    assert [m["receiver"] for m in sandbox.ledger() if m["message"] == HINT_TEXT] == [APPROVER]
