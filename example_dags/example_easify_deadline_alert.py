"""
"Text me when the nightly pipeline is late": a Deadline Alert (Airflow 3.1+) that sends an SMS.

When a run of ``example_easify_deadline_alert`` is still going 30 minutes after it was queued, the
scheduler notices the missed deadline and the triggerer awaits ``EasifySmsNotifier``: the on-call phone
gets "Airflow: DAG example_easify_deadline_alert missed its deadline of 2026-12-07 02:30 UTC, 3 min late
(run scheduled__2026-12-07T02:00:00+00:00)." ``message=`` is templated against the deadline's context
(``dag_run`` as a dict, ``deadline`` with ``deadline_time``), e.g. ``{{ dag_run.dag_id }}``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

try:
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference  # Airflow 3.2+
except ImportError:  # Airflow 3.1
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

from airflow_provider_easify.notifications.easify import EasifySmsNotifier

ON_CALL = "+13151350200"

with DAG(
    dag_id="example_easify_deadline_alert",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    deadline=[
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(minutes=30),
            callback=AsyncCallback(EasifySmsNotifier, kwargs={"from_number": "+13155550100", "to_number": ON_CALL}),
        ),
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(hours=2),
            callback=AsyncCallback(
                EasifySmsNotifier,
                kwargs={
                    "from_number": "+13155550100",
                    "to_number": ON_CALL,
                    "message": "{{ dag_run.dag_id }} is still running 2 hours after it was queued "
                    "(run {{ dag_run.dag_run_id }}). Escalating: call the data platform lead.",
                },
            ),
        ),
    ],
    tags=["example", "easify"],
):

    @task
    def nightly_load() -> None:
        import time

        time.sleep(5)

    nightly_load()
