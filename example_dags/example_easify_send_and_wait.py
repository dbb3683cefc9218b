"""
Send an SMS and wait until the carrier confirms delivery.

``EasifySendSmsOperator`` returns the message's ``sms_id``; ``EasifySmsStatusSensor`` takes it
through ``send.output`` and waits, in the triggerer (``deferrable=True``), until the message is
``Delivered``. A ``Failed`` or ``Undelivered`` message fails the sensor at once, without retries;
a message still not delivered after an hour fails it on timeout. The sensor returns the status
it reached, which the last task reads from XCom.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_easify.operators.sms import EasifySendSmsOperator
from airflow_provider_easify.sensors.sms import EasifySmsStatusSensor

SENDER = "+13155550100"  # one of the account's numbers

with DAG(
    dag_id="example_easify_send_and_wait",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"to_number": Param("+13151350000", type="string", description="The customer's phone (E.164)")},
    tags=["example", "easify"],
) as dag:
    send = EasifySendSmsOperator(
        task_id="send_shipping_notice",
        from_number=SENDER,
        to_number="{{ params.to_number }}",
        message="Good news: your order has shipped and will arrive tomorrow.",
    )

    delivered = EasifySmsStatusSensor(
        task_id="wait_for_delivery",
        sms_id=send.output,
        sender=SENDER,
        receiver="{{ params.to_number }}",
        deferrable=True,
        poke_interval=15,  # 4 reads a minute: well inside the 60/min read budget
        timeout=timedelta(hours=1),
    )

    @task
    def record_delivery(status: str) -> str:
        print(f"The shipping notice reached status {status}")
        return status

    record_delivery(delivered.output)
