"""
Approval by SMS: "Reply YES to approve tonight's load".

Every evening the DAG texts the approver and waits, in the triggerer, for an answer to that
question (``after_sms_id=ask.output``: older messages do not count). ``EasifySmsReplySensor``
is released only by a reply matching ``pattern`` (case-insensitive), so "yes", "Y" or "Approve"
run the load, "no" or "reject" skip it, and any other text keeps the sensor waiting. Without an
answer within four hours the sensor is skipped (``soft_fail``) and so is the load.

The sensor returns the reply as ``{"id", "message", "created_at"}``; reply texts are never
written to the task logs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_easify.operators.sms import EasifySendSmsOperator
from airflow_provider_easify.sensors.sms import EasifySmsReplySensor

SENDER = "+13155550100"  # one of the account's numbers
APPROVE = r"^\s*(yes|y|approve)\b"
ANSWER = r"^\s*(yes|y|approve|no|n|reject)\b"

with DAG(
    dag_id="example_easify_sms_approval",
    schedule="0 18 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"approver": Param("+13151350100", type="string", description="Who approves the load (E.164)")},
    tags=["example", "easify"],
) as dag:
    ask = EasifySendSmsOperator(
        task_id="ask_for_approval",
        from_number=SENDER,
        to_number="{{ params.approver }}",
        message="Tonight's load for {{ data_interval_end | ds }} is ready. Reply YES to approve or NO to skip.",
    )

    answer = EasifySmsReplySensor(
        task_id="wait_for_answer",
        sender=SENDER,
        receiver="{{ params.approver }}",
        after_sms_id=ask.output,
        pattern=ANSWER,
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(hours=4),
        soft_fail=True,
    )

    @task.branch
    def decide(reply: dict) -> str:
        import re

        approved = re.search(APPROVE, reply["message"], re.IGNORECASE) is not None
        print(f"Reply {reply['id']} received at {reply['created_at']}: {'approved' if approved else 'refused'}")
        return "run_tonights_load" if approved else "skip_tonights_load"

    @task
    def run_tonights_load() -> None:
        print("Loading tonight's data")

    @task
    def skip_tonights_load() -> None:
        print("The approver said no: tonight's load is skipped")

    decide(answer.output) >> [run_tonights_load(), skip_tonights_load()]
