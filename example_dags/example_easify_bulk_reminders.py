"""
Bulk reminders: send one personalised SMS to every contact of an Easify group, or to a list an
upstream task builds, at the account's send rate, exactly once per recipient.

The ``message`` is rendered per recipient: ``recipient`` holds the contact's fields. The run's day is
``data_interval_end | ds``, which names the day the run starts on Airflow 2.11 and 3 alike (``ds`` is
the day before on 2.11, whose cron runs cover the previous interval, and the same day on 3).
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator

with DAG(
    dag_id="example_easify_bulk_reminders",
    schedule="0 9 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"from_number": "+13155550100", "group_id": 3},
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    tags=["example", "easify"],
) as dag:
    # Every contact of a contact group (fields: first_name, last_name, phone_number, company, ...).
    group_reminder = EasifyBulkSendSmsOperator(
        task_id="remind_vip_group",
        from_number="{{ params.from_number }}",
        group_id="{{ params.group_id }}",
        message=(
            "Hi {{ recipient.first_name }}, a reminder of your appointment on {{ data_interval_end | ds }}. "
            "Reply STOP to opt out."
        ),
        deferrable=True,
    )

    @task
    def appointments_tomorrow() -> list[dict[str, str]]:
        """In a real DAG this reads your database; each dict needs a to_number."""
        return [
            {"to_number": "+13151350101", "first_name": "Ada", "time": "10:00"},
            {"to_number": "+447700900102", "first_name": "Alan", "time": "11:30"},
            {"to_number": "+13151350101", "first_name": "Ada", "time": "10:00"},  # duplicates are sent once
        ]

    list_reminder = EasifyBulkSendSmsOperator(
        task_id="remind_from_upstream_list",
        from_number="{{ params.from_number }}",
        recipients=appointments_tomorrow(),
        message="Hi {{ recipient.first_name }}, see you tomorrow at {{ recipient.time }}.",
    )

    @task
    def report(summary: dict) -> None:
        print(f"sent {len(summary['sent'])}, failed {len(summary['failed'])} of {summary['total']}")

    report(list_reminder.output)
    group_reminder >> list_reminder
