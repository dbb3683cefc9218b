"""Coalesced waits under every interleaving, and sends from the triggerer, with real event loops over real
HTTP to the sandbox.

Each interleaving is forced, not hoped for: the sandbox holds a read (``hold``) while the test joins,
cancels or stops on the event loop, and the test waits on the poller's own state before the next step.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_easify.triggers.coalesce import StatusPoller
from airflow_provider_easify.triggers.sms import EasifyBulkSmsStatusTrigger, EasifySmsStatusTrigger

SENDER = "+13155550100"


async def first_event(trigger) -> dict:
    """The trigger's first event; then the trigger is closed, as the triggerer closes a fired trigger."""
    events = trigger.run()
    try:
        return (await events.__anext__()).payload
    finally:
        await events.aclose()


def _status_trigger(hook, sms_id: str, to: str, *, deadline: float = 30) -> EasifySmsStatusTrigger:
    return EasifySmsStatusTrigger(
        sms_id=sms_id, sender=SENDER, receiver=to, poke_interval=0.2, deadline=time.time() + deadline,
        easify_conn_id=hook.easify_conn_id,
    )


def _bulk_trigger(hook, sms_ids: list[str], **kwargs) -> EasifyBulkSmsStatusTrigger:
    return EasifyBulkSmsStatusTrigger(
        sms_ids=sms_ids, sender=SENDER, poke_interval=0.2, deadline=time.time() + 30,
        easify_conn_id=hook.easify_conn_id, **kwargs,
    )


async def _until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the interleaving was never reached"
        await asyncio.sleep(0.01)


def _in_flight(sandbox, endpoint: str = "report") -> bool:
    return any(r["endpoint"] == endpoint and r.get("status") is None for r in sandbox.stats()["requests"][-5:])


@pytest.fixture
def sent(make_hook, sandbox):
    sandbox.configure(send_limit=0, read_limit=0, pending_seconds=0.2, delivered_seconds=0.4)
    hook = make_hook()
    messages = [(hook.send_sms(SENDER, f"+1315137{n:04d}", "hi"), f"+1315137{n:04d}") for n in range(3)]
    return hook, messages


def test_a_join_during_a_round_that_then_fails_gets_the_error(sent, sandbox):
    hook, messages = sent
    # The first round's read is held 1 s, then refused for good (403: the plan has no API access).
    sandbox.add_fault("report", "http_error", status=403, hold=1.0, times=1)
    early = _bulk_trigger(hook, [messages[0][0], messages[1][0]])
    late = _status_trigger(hook, *messages[2])

    async def scenario():
        first = asyncio.ensure_future(first_event(early))
        await _until(lambda: _in_flight(sandbox))
        second = asyncio.ensure_future(first_event(late))  # joins while the round is in flight
        return await asyncio.wait_for(asyncio.gather(first, second), 10), dict(StatusPoller._pollers)

    (a, b), left = asyncio.run(scenario())
    assert a["status"] == "error" and a["status_code"] == 403
    assert b["status"] == "error" and b["status_code"] == 403, "the late waiter heard the error, not nothing"
    assert left == {}


def test_a_join_right_after_the_poller_stopped_starts_a_new_one(sent, sandbox):
    hook, messages = sent
    time.sleep(0.5)  # delivered

    async def scenario():
        event = await first_event(_status_trigger(hook, *messages[0]))
        stopped = dict(StatusPoller._pollers)  # the last waiter left: the poller stopped, no await since
        second = await asyncio.wait_for(first_event(_status_trigger(hook, *messages[1])), 10)
        return event, stopped, second, dict(StatusPoller._pollers)

    event, stopped, second, left = asyncio.run(scenario())
    assert event["status"] == second["status"] == "success"
    assert stopped == {} and left == {}


def test_a_cancellation_during_a_round_leaves_the_others_their_answer(sent, sandbox):
    hook, messages = sent
    time.sleep(0.5)
    sandbox.add_fault("report", "slow", delay=1.0, times=1)  # the first round is held a second
    cancelled = _bulk_trigger(hook, [messages[0][0], messages[1][0]])
    staying = _bulk_trigger(hook, [messages[1][0], messages[2][0]])

    async def scenario():
        gone = asyncio.ensure_future(first_event(cancelled))
        kept = asyncio.ensure_future(first_event(staying))
        await _until(lambda: _in_flight(sandbox))
        gone.cancel()
        event = await asyncio.wait_for(kept, 10)
        with pytest.raises(asyncio.CancelledError):
            await gone
        return event, dict(StatusPoller._pollers)

    event, left = asyncio.run(scenario())
    assert event["status"] == "success" and set(event["statuses"]) == {messages[1][0], messages[2][0]}
    assert left == {}


def test_cancelling_the_only_waiter_during_a_round_stops_the_poller(sent, sandbox):
    hook, messages = sent
    sandbox.add_fault("report", "slow", delay=1.0, times=1)
    only = _bulk_trigger(hook, [messages[0][0], messages[1][0]])

    async def scenario():
        task = asyncio.ensure_future(first_event(only))
        await _until(lambda: _in_flight(sandbox))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        return dict(StatusPoller._pollers)

    assert asyncio.run(scenario()) == {}


def test_a_bad_since_ends_only_its_own_trigger_before_it_joins(sent, sandbox):
    hook, messages = sent
    time.sleep(0.5)
    good = _bulk_trigger(hook, [messages[0][0], messages[1][0]])
    bad = _bulk_trigger(hook, [messages[2][0]], since="not-a-date")
    future = _bulk_trigger(hook, [messages[2][0]], since="2999-01-01")

    async def scenario():
        return await asyncio.wait_for(asyncio.gather(first_event(good), first_event(bad), first_event(future)), 10)

    ok, refused, too_late = asyncio.run(scenario())
    assert ok["status"] == "success"
    assert refused["status"] == "error" and "since" in refused["message"]
    assert too_late["status"] == "error" and "since" in too_late["message"]


# ---------------------------------------------------------------------- the notifier in the triggerer


def test_async_notify_waits_for_budget_on_the_loop_and_a_cancelled_one_posts_nothing(sandbox, make_hook):
    from airflow_provider_easify.notifications.easify import EasifySmsNotifier

    sandbox.configure(send_limit=0, read_limit=0)
    hook = make_hook(send_per_minute=10)  # a send slot every 6 s
    hook.send_sms(SENDER, "+13151370100", "takes the slot")

    def notifier(to: str) -> EasifySmsNotifier:
        return EasifySmsNotifier(from_number=SENDER, to_number=to, message="Nightly load late",
                                 easify_conn_id=hook.easify_conn_id)

    async def scenario() -> int:
        cancelled = asyncio.ensure_future(notifier("+13151370101").async_notify({}))
        await asyncio.sleep(1.0)
        cancelled.cancel()  # still waiting for its slot: nothing was posted
        await asyncio.gather(cancelled, return_exceptions=True)
        sent = asyncio.ensure_future(notifier("+13151370102").async_notify({}))
        ticks = 0
        while not sent.done():  # the loop stays free while the notifier waits for budget
            ticks += 1
            await asyncio.sleep(0.1)
        await sent
        return ticks

    ticks = asyncio.run(scenario())
    assert ticks >= 10, "the event loop ran while the send waited for its slot"
    time.sleep(hook.send_budget_wait() + 0.5)
    receivers = [m["receiver"] for m in sandbox.ledger()]
    assert receivers == ["+13151370100", "+13151370102"], "the cancelled notification was never posted"
