"""
Approval by SMS before a load, with Airflow's human-in-the-loop (Airflow 3.1+).

``EasifySmsApprovalOperator`` is an ``ApprovalOperator``: the Required Actions page shows the
question, and the on-call approver also gets it by SMS ("Reply YES to approve or NO to reject").
The first answer wins: Approve or Reject in the UI or the REST API, or a YES / NO reply from the
approver's phone, which Airflow records as the answer. Reject skips the load; without an answer in
four hours the default (Reject) applies.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_easify.operators.hitl import EasifySmsApprovalOperator

SENDER = "+13155550100"  # one of the account's numbers

with DAG(
    dag_id="example_easify_hitl_approval",
    schedule="0 18 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"approver": Param("+13151350100", type="string", description="Who approves the load (E.164)")},
    tags=["example", "easify"],
):
    approve = EasifySmsApprovalOperator(
        task_id="approve_load",
        subject="Load {{ dag_run.run_after | ds }} into the warehouse?",
        body="The nightly extract is ready and its checks passed.",
        from_number=SENDER,
        to_number="{{ params.approver }}",
        response_timeout=timedelta(hours=4),
        defaults="Reject",
        sms_poll_interval=30,  # 2 reads a minute for every asked number together
    )

    @task
    def load() -> str:
        print("Loading tonight's data")
        return "loaded"

    approve >> load()
