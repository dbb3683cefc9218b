"""
Failure alerts by SMS: a task fails and ``EasifySmsNotifier`` texts the on-call phone.

The default message names the DAG, the task, the run and the state; pass ``message=`` to write your
own (templated with the callback's context).
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_easify.notifications.easify import EasifySmsNotifier

with DAG(
    dag_id="example_easify_failure_alert",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    default_args={
        "on_failure_callback": EasifySmsNotifier(
            from_number="+13155550100",
            to_number=["+13151350200"],
        ),
    },
    tags=["example", "easify"],
) as dag:

    @task
    def load_warehouse() -> None:
        raise RuntimeError("the warehouse is unreachable (this example fails on purpose)")

    @task(
        on_failure_callback=EasifySmsNotifier(
            from_number="+13155550100",
            to_number="+13151350201",
            message="{{ dag.dag_id }}: {{ ti.task_id }} failed on {{ ds }}, see the Airflow UI",
        )
    )
    def check_row_counts() -> None:
        raise ValueError("row counts do not match (this example fails on purpose)")

    load_warehouse()
    check_row_counts()
