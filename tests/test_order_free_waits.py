"""Waits that hold on every reading of the vendor text, over real HTTP to the sandbox.

Chat history's ``limit`` is "Pagination Limit" and nothing more: a server may answer the newest or the
oldest ``limit`` messages, in either order. Every wait (status, reply, the reply sensor's reference, the
approval's answers and its hint check) reads the SMS report instead, so each of them is run here on
every reading the sandbox offers, in a conversation longer than any first page of chat history.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_easify.sandbox.readings import READINGS
from airflow_provider_easify.sensors.sms import EasifySmsReplySensor, EasifySmsStatusSensor
from airflow_provider_easify.triggers.sms import EasifySmsReplyTrigger, EasifySmsStatusTrigger

SENDER = "+13155550100"
CONTACT = "+13151350042"


def _long_conversation(sandbox, hook, turns: int = 15) -> None:
    """``turns`` older messages in both directions, an old "YES" among them."""
    for n in range(turns):
        if n % 3 == 2:
            sandbox.inject_incoming(SENDER, CONTACT, "YES" if n == 2 else f"old reply {n}")
        else:
            hook.send_sms(SENDER, CONTACT, f"older message {n}")


@pytest.fixture(params=list(READINGS), ids=list(READINGS))
def reading_hook(request, sandbox, make_hook):
    reading = READINGS[request.param]
    sandbox.configure(send_limit=0, read_limit=0, **reading)
    hook = make_hook()
    _long_conversation(sandbox, hook)
    time.sleep(float(reading.get("visibility_delay_seconds", 0)))
    return hook


def _visible(sandbox) -> None:
    time.sleep(float(sandbox.get_config().get("visibility_delay_seconds", 0)) + 0.05)


def test_a_new_message_is_found_within_one_read(reading_hook, sandbox):
    hook = reading_hook
    sms_id = hook.send_sms(SENDER, CONTACT, "the newest message")
    _visible(sandbox)
    before = sandbox.stats()["total"]
    assert hook.get_sms_status(sms_id, SENDER, CONTACT) in ("Pending", "Sent", "Delivered")
    served = sandbox.get_config().get("max_page_size") or 100
    assert sandbox.stats()["total"] - before <= -(-17 // served) + 1, "one read (a page at a time when clamped)"
    assert hook.newest_message_id(SENDER, CONTACT) == int(sms_id)


def test_an_old_yes_never_answers_a_new_question(reading_hook, sandbox):
    hook = reading_hook
    question = hook.send_sms(SENDER, CONTACT, "Deploy tonight? Reply YES or NO")
    _visible(sandbox)
    assert hook.get_replies(SENDER, CONTACT, after_id=question) == [], "the old YES is older than the question"
    sandbox.inject_incoming(SENDER, CONTACT, "NO")
    _visible(sandbox)
    replies = hook.get_replies(SENDER, CONTACT, after_id=question)
    assert [r["message"] for r in replies] == ["NO"]


def test_status_sensor_and_trigger_on_every_reading(reading_hook, sandbox):
    hook = reading_hook
    sms_id = hook.send_sms(SENDER, CONTACT, "track me")
    time.sleep(0.5 + float(sandbox.get_config().get("visibility_delay_seconds", 0)))  # delivered at 0.4 s
    sensor = EasifySmsStatusSensor(
        task_id="status", sms_id=sms_id, sender=SENDER, receiver=CONTACT, easify_conn_id=hook.easify_conn_id
    )
    done = sensor.poke({})
    assert getattr(done, "is_done", done) is True
    trigger = EasifySmsStatusTrigger(
        sms_id=sms_id, sender=SENDER, receiver=CONTACT, poke_interval=0.2, deadline=time.time() + 20,
        easify_conn_id=hook.easify_conn_id,
    )
    assert asyncio.run(_first_event(trigger)) == {"status": "success", "sms_status": "Delivered"}


def _done(result) -> bool:
    return bool(getattr(result, "is_done", result))


def test_reply_sensor_and_trigger_on_every_reading(reading_hook, sandbox):
    hook = reading_hook
    question = hook.send_sms(SENDER, CONTACT, "Approve the refund? YES or NO")
    _visible(sandbox)
    # No after_sms_id: the sensor takes the newest message as its reference, the question.
    sensor = EasifySmsReplySensor(
        task_id="reply", sender=SENDER, receiver=CONTACT, pattern="^(yes|no)$", easify_conn_id=hook.easify_conn_id,
    )
    sensor._check_arguments()
    assert not _done(sensor.poke({})), "the old YES does not answer the new question"
    assert sensor._after_id == int(question)
    trigger = EasifySmsReplyTrigger(
        sender=SENDER, receiver=CONTACT, after_id=int(question), pattern="^(yes|no)$", poke_interval=0.2,
        deadline=time.time() + 20, easify_conn_id=hook.easify_conn_id,
    )

    async def answer_later() -> dict:
        waiting = asyncio.ensure_future(_first_event(trigger))
        await asyncio.sleep(0.6)
        assert not waiting.done(), "the old YES did not answer the new question"
        await asyncio.to_thread(sandbox.inject_incoming, SENDER, CONTACT, "no")
        return await waiting

    event = asyncio.run(answer_later())
    assert event["status"] == "success" and event["reply"]["message"] == "no"
    _visible(sandbox)
    assert _done(sensor.poke({}))


async def _first_event(trigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")
