"""
Keyword handling: a customer texts STOP, and the next campaign skips them (Airflow 3).

``EasifyInboundSmsTrigger`` watches the account's incoming SMS in the triggerer; each new message
matching ``pattern`` becomes an event of the ``easify_stop_texts`` asset, which starts
``example_easify_keyword_opt_out``. Its task adds the sender of every triggering message to the
``easify_opt_outs`` Variable (a JSON list). ``example_easify_campaign`` sends its campaign with
``EasifyBulkSendSmsOperator`` and ``exclude_numbers`` set from that Variable, so nobody who
texted STOP is messaged again.

The same watcher can be written the way Airflow's event-driven scheduling docs write every message
source, ``MessageQueueTrigger(scheme="easify", ...)`` (with ``apache-airflow-providers-common-messaging``
installed); the keyword arguments are the same. ``example_easify_keyword_help`` is wired that way: a
customer who texts HELP gets one answer by SMS.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import DAG, Asset, AssetWatcher, Variable, task

from airflow_provider_easify.operators.sms import EasifyBulkSendSmsOperator, EasifySendSmsOperator
from airflow_provider_easify.triggers.inbound import EasifyInboundSmsTrigger
from airflow_provider_easify.utils.phone import mask_phone

SENDER = "+13155550100"  # one of the account's numbers
OPT_OUTS = "easify_opt_outs"

stop_texts = Asset(
    "easify_stop_texts",
    watchers=[
        AssetWatcher(
            name="easify_stop_keyword",
            trigger=EasifyInboundSmsTrigger(pattern=r"^\W*(stop|unsubscribe|cancel)\W*$", poll_interval=60),
        )
    ],
)

help_texts = Asset(
    "easify_help_texts",
    watchers=[
        AssetWatcher(
            name="easify_help_keyword",
            trigger=MessageQueueTrigger(scheme="easify", pattern=r"^\W*help\W*$", poll_interval=60),
        )
    ],
)

with DAG(
    dag_id="example_easify_keyword_opt_out",
    schedule=[stop_texts],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "easify"],
):

    @task
    def add_to_opt_out_list(*, triggering_asset_events=None) -> list[str]:
        """Record who texted STOP; return the ids of the messages handled (no phone numbers in XCom)."""
        opted_out = set(Variable.get(OPT_OUTS, default=[], deserialize_json=True))
        handled = []
        for event in (triggering_asset_events or {}).get(stop_texts, []):
            message = event.extra["payload"]
            opted_out.add(message["from_number"])
            handled.append(message["sms_id"])
            print(f"SMS {message['sms_id']}: {mask_phone(message['from_number'])} opted out")
        Variable.set(OPT_OUTS, sorted(opted_out), serialize_json=True)
        return handled

    add_to_opt_out_list()

with DAG(
    dag_id="example_easify_keyword_help",
    schedule=[help_texts],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "easify"],
):

    @task
    def who_asked(*, triggering_asset_events=None) -> list[str]:
        events = (triggering_asset_events or {}).get(help_texts, [])
        return sorted({event.extra["payload"]["from_number"] for event in events})

    EasifySendSmsOperator.partial(
        task_id="answer_help",
        from_number=SENDER,
        message="Easify demo: reply STOP to opt out. Msg&data rates may apply.",
    ).expand(to_number=who_asked())

with DAG(
    dag_id="example_easify_campaign",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"recipients": ["+13151350000", "+13151350001", "+13151350002"]},
    tags=["example", "easify"],
):
    EasifyBulkSendSmsOperator(
        task_id="send_campaign",
        from_number=SENDER,
        recipients="{{ params.recipients | tojson }}",
        exclude_numbers="{{ var.json.get('" + OPT_OUTS + "', []) | tojson }}",
        message="Spring sale: 20% off everything this weekend. Text STOP to opt out.",
    )
