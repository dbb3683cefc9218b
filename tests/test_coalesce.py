"""Waiting at scale: coalesced status polling in one event loop, and the bulk status sensor, over real
HTTP against the sandbox (and real Airflow for the example DAG)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from airflow_provider_easify.triggers.coalesce import StatusPoller
from airflow_provider_easify.triggers.sms import EasifyBulkSmsStatusTrigger, EasifySmsStatusTrigger

SENDER = "+13155550100"
EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"


def reads(sandbox, endpoint: str) -> int:
    return sandbox.stats()["by_endpoint"].get(endpoint, 0)


async def first_event(trigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def _send_many(hook, count: int, start: int = 0) -> list[tuple[str, str]]:
    sent = []
    for n in range(start, start + count):
        to = f"+1315136{n:04d}"
        sent.append((hook.send_sms(SENDER, to, "hi", after_message_id=0), to))
    return sent


def test_many_status_triggers_share_one_read_a_round(make_hook, sandbox):
    sandbox.configure(send_limit=0, read_limit=0, pending_seconds=1.5, delivered_seconds=2.5)
    hook = make_hook()
    sent = _send_many(hook, 300)
    triggers = [
        EasifySmsStatusTrigger(sms_id=sms_id, sender=SENDER, receiver=to, poke_interval=0.25,
                               deadline=time.time() + 60, easify_conn_id=hook.easify_conn_id)
        for sms_id, to in sent
    ]

    async def scenario():
        events = await asyncio.gather(*(first_event(t) for t in triggers))
        return events, dict(StatusPoller._pollers)

    before_report, before_history = reads(sandbox, "report"), reads(sandbox, "chat-history")
    events, left = asyncio.run(scenario())
    assert all(e == {"status": "success", "sms_status": "Delivered"} for e in events)
    rounds = reads(sandbox, "report") - before_report
    assert reads(sandbox, "chat-history") == before_history, "K > 1 waits are answered from the report"
    assert 2 <= rounds <= 20, f"{rounds} reads for 300 waits over about 1 s of polling (one poller, not 300)"
    assert left == {}, "the poller stopped when nobody waited"


def test_one_waits_failure_never_ends_anothers(make_hook, sandbox):
    sandbox.configure(send_limit=0, read_limit=0, pending_seconds=0.3, delivered_seconds=1.2)
    hook = make_hook()
    (sms_id, to), = _send_many(hook, 1)
    common = {"sender": SENDER, "poke_interval": 0.2, "easify_conn_id": hook.easify_conn_id}
    patient = EasifySmsStatusTrigger(sms_id=sms_id, receiver=to, deadline=time.time() + 20, **common)
    hasty = EasifySmsStatusTrigger(sms_id="999999999", receiver=to, deadline=time.time() + 0.5, **common)
    broken = EasifySmsStatusTrigger(sms_id=sms_id, receiver="+1315", deadline=time.time() + 20, **common)
    bulk = EasifyBulkSmsStatusTrigger(sms_ids=[sms_id, "999999998"], deadline=time.time() + 0.8, **common)

    async def scenario():
        return await asyncio.gather(*(first_event(t) for t in (patient, hasty, broken, bulk)))

    done, timed_out, refused, bulk_timeout = asyncio.run(scenario())
    assert done == {"status": "success", "sms_status": "Delivered"}
    assert timed_out == {"status": "timeout", "sms_status": None}
    assert refused["status"] == "error" and "receiver" in refused["message"]
    assert bulk_timeout["status"] == "timeout" and bulk_timeout["pending"] == 2 - (bulk_timeout["statuses"][sms_id]
                                                                                   == "Delivered")


def test_a_cancelled_trigger_leaves_and_the_last_one_stops_the_poller(make_hook, sandbox):
    sandbox.configure(send_limit=0, read_limit=0)
    hook = make_hook()
    waiting = EasifyBulkSmsStatusTrigger(sms_ids=["999999999"], sender=SENDER, poke_interval=0.2,
                                         easify_conn_id=hook.easify_conn_id)

    async def scenario():
        task = asyncio.ensure_future(first_event(waiting))
        await asyncio.sleep(0.5)
        running = len(StatusPoller._pollers)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return running, len(StatusPoller._pollers)

    running, after = asyncio.run(scenario())
    assert (running, after) == (1, 0)
    calls = reads(sandbox, "report")
    time.sleep(0.5)
    assert reads(sandbox, "report") == calls, "nothing polls once nobody waits"


def test_bulk_trigger_round_trips_and_carries_no_phone_numbers():
    trigger = EasifyBulkSmsStatusTrigger(sms_ids=["1", "2"], sender=SENDER, deadline=5.0, since="2026-01-01")
    path, kwargs = trigger.serialize()
    assert path.endswith("EasifyBulkSmsStatusTrigger")
    assert EasifyBulkSmsStatusTrigger(**kwargs).serialize() == (path, kwargs)
    assert "+1315" not in str(kwargs).replace(SENDER, "")


# ---------------------------------------------------------------------- the bulk status sensor


def _sensor(hook, messages, **kwargs):
    from airflow_provider_easify.sensors.sms import EasifyBulkSmsStatusSensor

    return EasifyBulkSmsStatusSensor(
        **{"task_id": "delivered", "messages": messages, "sender": SENDER, "poke_interval": 0.2,
           "deferrable": False, "easify_conn_id": hook.easify_conn_id, **kwargs},
    )


def test_bulk_sensor_counts_and_failure_ratio(make_hook, sandbox):
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

    sandbox.configure(send_limit=0, read_limit=0, pending_seconds=0.2, delivered_seconds=0.4)
    hook = make_hook()
    ok = [sms_id for sms_id, _ in _send_many(hook, 6)]
    failed = hook.send_sms(SENDER, "+13151359990", "hi", after_message_id=0)
    undelivered = hook.send_sms(SENDER, "+13151359991", "hi", after_message_id=0)
    summary = {"sent": {f"+1{n}": sms_id for n, sms_id in enumerate([*ok, failed, undelivered])}, "failed": {}}

    before = reads(sandbox, "report")
    result = _sensor(hook, summary, max_failure_ratio=0.5, timeout=20).execute({})
    assert result["counts"] == {"Delivered": 6, "Failed": 1, "Undelivered": 1}
    assert result["statuses"][failed] == "Failed" and len(result["statuses"]) == 8
    assert reads(sandbox, "report") - before <= 4, "a few reads for 8 messages, not 8 per check"
    with pytest.raises(AirflowFailException, match="2 of 8"):
        _sensor(hook, [*ok, failed, undelivered], max_failure_ratio=0.2, timeout=20).execute({})
    with pytest.raises(AirflowSkipException):
        _sensor(hook, str([*ok, failed, undelivered]), max_failure_ratio=0.2, soft_fail=True, timeout=20).execute({})


def test_bulk_sensor_timeout_names_how_many_are_pending(make_hook, sandbox):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    hook = make_hook()
    with pytest.raises(AirflowSensorTimeout, match=r"2 of 2 messages .* still not final"):
        _sensor(hook, ["999999990", "999999991"], timeout=1).execute({})


def test_bulk_sensor_refuses_bad_messages_before_any_request(make_hook, sandbox):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_easify.exceptions import EasifyInvalidParameterError

    hook = make_hook()
    for bad in ({"nothing": 1}, ["12", "x"], 5, [], {"sent": {}}):
        with pytest.raises(AirflowFailException, match="messages"):
            _sensor(hook, bad, timeout=5).execute({})
    with pytest.raises(AirflowFailException, match="sender"):
        _sensor(hook, ["1"], timeout=5, **{"sender": "12"}).execute({})
    with pytest.raises(EasifyInvalidParameterError, match="failure_statuses"):
        _sensor(hook, ["1"], failure_statuses=["Delivered"])
    for ratio in (2, -0.1, "half", True):
        with pytest.raises(EasifyInvalidParameterError, match="max_failure_ratio"):
            _sensor(hook, ["1"], max_failure_ratio=ratio)
    assert sandbox.stats()["total"] == 0


def test_example_bulk_delivery(airflow_home, sandbox):
    sandbox.configure(send_limit=0, read_limit=0, pending_seconds=0, delivered_seconds=0)
    airflow_home.add_dag_file(EXAMPLES / "example_easify_bulk_delivery.py")
    result = airflow_home.dags_test("example_easify_bulk_delivery")
    result.assert_success()
    assert len(sandbox.ledger()) == 12
    outcome = result.xcoms["wait_until_all_final"]
    assert sum(outcome["counts"].values()) == 12
    undelivered = result.xcoms["undelivered_numbers"]
    assert len(undelivered) == 12 - outcome["counts"].get("Delivered", 0)
    assert not any(number in result.output for number in undelivered), "numbers are masked in the log"


def test_reply_triggers_of_one_account_share_one_scan(make_hook, sandbox):
    from airflow_provider_easify.triggers.sms import EasifySmsReplyTrigger

    sandbox.configure(send_limit=0, read_limit=0)
    hook = make_hook()
    contacts = [f"+1315137{n:04d}" for n in range(5)]
    references = {to: int(hook.send_sms(SENDER, to, "Reply YES", after_message_id=0)) for to in contacts}
    triggers = [
        EasifySmsReplyTrigger(sender=SENDER, receiver=to, after_id=references[to], pattern=r"^yes", poke_interval=0.2,
                              deadline=time.time() + 20, easify_conn_id=hook.easify_conn_id)
        for to in contacts
    ]

    async def scenario():
        waits = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await asyncio.sleep(0.5)
        for to in contacts:
            sandbox.inject_incoming(SENDER, to, "maybe")  # ignored: does not match
            sandbox.inject_incoming(SENDER, to, f"yes from {to[-4:]}")
        return await asyncio.gather(*waits)

    before = reads(sandbox, "chat-history")
    events = asyncio.run(scenario())
    assert [e["reply"]["message"] for e in events] == [f"yes from {to[-4:]}" for to in contacts]
    assert reads(sandbox, "chat-history") == before, "several reply waits are one report scan a round"
    assert all(len(t.ignored_reply_ids) == 1 for t in triggers)
