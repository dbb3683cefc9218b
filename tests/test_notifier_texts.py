"""The notifier's default text in every place Airflow calls a notifier, and templated messages against each
context. The contexts are shaped as Airflow builds them (task runner, DAG processor, the triggerer's
Deadline Alert callback); the real callbacks run in test_operators.py (task), tests/airflow3/test_hitl.py
(human-in-the-loop) and tests/deployment/test_alerts_deployment.py (Deadline Alerts on `airflow standalone`)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_easify.notifications.default_texts import MAX_SEGMENTS, default_text
from airflow_provider_easify.notifications.easify import EasifySmsNotifier
from airflow_provider_easify.utils.segments import count_segments

RUN = "scheduled__2026-12-06T02:00:00+00:00"


def task_context(**ti_fields) -> dict:
    ti = SimpleNamespace(task_id="load", try_number=2, state="failed",
                         log_url=f"http://airflow.example/dags/nightly/runs/{RUN}/tasks/load?try_number=2")
    ti.__dict__.update(ti_fields)
    return {"ti": ti, "dag": DAG("nightly", schedule=None), "run_id": RUN, "task": None}


def deadline_context(minutes_late: float, dag_id: str = "nightly") -> dict:
    deadline_time = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_late)
    return {
        "dag_run": {"dag_id": dag_id, "dag_run_id": RUN, "state": "running", "logical_date": "2026-12-06T02:00:00Z"},
        "deadline": {"id": "0193a1d2-0000-7000-8000-000000000000", "deadline_time": deadline_time},
    }


def test_a_task_callback_names_task_dag_state_run_and_try(monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert default_text(task_context()) == f"Airflow: task load of DAG nightly failed (run {RUN}, try 2)."


def test_the_log_link_is_added_when_the_api_base_url_is_set(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example")
    text = default_text(task_context())
    assert text.endswith(f". http://airflow.example/dags/nightly/runs/{RUN}/tasks/load?try_number=2")


def test_a_dag_callback_names_dag_run_and_state():
    context = {"dag": DAG("nightly", schedule=None), "run_id": RUN, "reason": "task_failure"}
    assert default_text(context) == f"Airflow: DAG nightly run {RUN} failed (task_failure)."
    succeeded = {**context, "reason": "success", "dag_run": SimpleNamespace(state="success")}
    assert default_text(succeeded) == f"Airflow: DAG nightly run {RUN} success."


def test_a_deadline_alert_names_dag_run_deadline_and_how_late():
    context = deadline_context(minutes_late=7.2)
    due = context["deadline"]["deadline_time"].strftime("%Y-%m-%d %H:%M UTC")
    assert default_text(context) == f"Airflow: DAG nightly missed its deadline of {due}, 7 min late (run {RUN})."


def test_a_deadline_given_as_text_works_too():
    context = deadline_context(minutes_late=0.5)
    context["deadline"]["deadline_time"] = context["deadline"]["deadline_time"].isoformat()
    assert "missed its deadline of" in default_text(context) and "s late" in default_text(context)


@pytest.mark.parametrize("context", [
    task_context(task_id="t" * 250),
    {"dag": DAG("d" * 250, schedule=None), "run_id": "r" * 250, "reason": "task_failure"},
    deadline_context(3, dag_id="x" * 400),
])
def test_long_names_stay_within_two_segments(context, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example/" + "p" * 200)
    text = default_text(context)
    assert count_segments(text).segments <= MAX_SEGMENTS and count_segments(text).encoding == "GSM-7"
    assert text.startswith("Airflow: ") and "..." in text


def test_a_templated_message_renders_against_the_deadline_context():
    notifier = EasifySmsNotifier(
        from_number="+13155550100", to_number="+13151350200",
        message="{{ dag_run.dag_id }} is late (deadline {{ deadline.deadline_time.strftime('%H:%M') }}). "
                "{{ easify_default_text }}",
    )
    context = deadline_context(minutes_late=3)
    notifier.render_template_fields(context)
    assert notifier.message.startswith(f"nightly is late (deadline {context['deadline']['deadline_time']:%H:%M}).")
    assert "Airflow: DAG nightly missed its deadline" in notifier.message


def test_one_notifier_serving_several_callbacks_renders_each_afresh(monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    notifier = EasifySmsNotifier(from_number="+13155550100", to_number="+13151350200")
    notifier.render_template_fields(task_context(task_id="extract"))
    assert "task extract of" in notifier.message
    notifier.render_template_fields(task_context(task_id="load"))
    assert "task load of" in notifier.message

    templated = EasifySmsNotifier(from_number="+13155550100", to_number="+13151350200", message="{{ ti.task_id }}")
    templated.render_template_fields(task_context(task_id="extract"))
    templated.render_template_fields(task_context(task_id="load"))
    assert templated.message == "load"
