"""
Bulk delivery report: send to a contact group, wait until every message is final, then list the
numbers that were not delivered.

``EasifyBulkSmsStatusSensor`` reads the SMS report of the sending number, newest first: one read per
page of its messages answers every message at once (not one read per message), and deferred it shares
one poller with every other status wait of the number in the triggerer.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator
from airflow_provider_easify.sensors.sms import EasifyBulkSmsStatusSensor

SENDER = "+13155550100"

with DAG(
    dag_id="example_easify_bulk_delivery",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"group_id": 3},
    tags=["example", "easify"],
) as dag:
    send = EasifyBulkSendSmsOperator(
        task_id="send_to_group",
        from_number=SENDER,
        group_id="{{ params.group_id }}",
        message="Hi {{ recipient.first_name }}, your order is on its way.",
    )

    delivered = EasifyBulkSmsStatusSensor(
        task_id="wait_until_all_final",
        messages=send.output,
        sender=SENDER,
        max_failure_ratio=0.5,  # more than half failed: fail the task
        deferrable=True,
        poke_interval=15,
        timeout=60 * 60,
    )

    @task
    def undelivered_numbers(sent: dict, outcome: dict) -> list[str]:
        """The numbers whose message did not reach Delivered (logged masked)."""
        from airflow_provider_easify.utils.phone import mask_phone

        by_id = {sms_id: number for number, sms_id in sent["sent"].items()}
        numbers = sorted(by_id[sms_id] for sms_id, status in outcome["statuses"].items() if status != "Delivered")
        print(f"{len(numbers)} of {len(by_id)} not delivered: {', '.join(map(mask_phone, numbers)) or 'none'}")
        return numbers

    undelivered_numbers(send.output, delivered.output)
