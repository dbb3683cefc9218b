"""Sends from the triggerer never hold its event loop nor outlive their trigger: the approval's hint waits
for budget on the loop, in a task of its own, while the approval keeps watching its timeout; a trigger
that ends or is cancelled before the hint was posted posts nothing. Real event loops, real HTTP to the
sandbox, the token's real pacing."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

from airflow_provider_easify.triggers.hitl import HINT_TEXT, EasifySmsApprovalTrigger
from tests.test_coalesce_races import first_event

SENDER = "+13155550100"
APPROVER = "+13151350100"


def _question_and_a_non_answer(sandbox, make_hook):
    """The question takes the token's send slot; the next is 6 s away. A reply that is no answer arrives."""
    sandbox.configure(send_limit=0, read_limit=0)
    hook = make_hook(send_per_minute=10)
    question = hook.send_sms(SENDER, APPROVER, "Approve the load? Reply YES or NO")
    sandbox.inject_incoming(SENDER, APPROVER, "what is this?")
    return hook, int(question), hook.send_budget_wait()


def _trigger(hook, question: int, timeout_in: float | None) -> EasifySmsApprovalTrigger:
    from airflow.sdk.timezone import utcnow

    return EasifySmsApprovalTrigger(
        ti_id=uuid.uuid4(), options=["Approve", "Reject"], params={}, defaults=["Reject"], multiple=False,
        timeout_datetime=None if timeout_in is None else utcnow() + dt.timedelta(seconds=timeout_in),
        poke_interval=0.2, easify_conn_id=hook.easify_conn_id, sender=SENDER,
        questions=[{"to_number": APPROVER, "after_id": question}], sms_poll_interval=0.2,
    )


def _hints(sandbox) -> list[dict]:
    return [m for m in sandbox.ledger() if m["message"] == HINT_TEXT]


def test_the_timeout_is_honoured_while_the_hint_waits_for_budget(sandbox, make_hook):
    hook, question, slot_in = _question_and_a_non_answer(sandbox, make_hook)
    assert slot_in > 3, "the hint has to wait for the token's next send slot"
    event = asyncio.run(first_event(_trigger(hook, question, timeout_in=1.5)))
    assert event["timedout"] is True and event["chosen_options"] == ["Reject"]
    time.sleep(hook.send_budget_wait() + 1.0)  # past the slot the hint was waiting for
    assert _hints(sandbox) == [], "the wait ended first: its pending hint was never posted"


def test_a_trigger_cancelled_before_its_hint_was_posted_posts_nothing(sandbox, make_hook):
    hook, question, _ = _question_and_a_non_answer(sandbox, make_hook)
    trigger = _trigger(hook, question, timeout_in=None)

    async def scenario() -> None:
        task = asyncio.ensure_future(first_event(trigger))
        while not trigger._hint_tasks:  # the non-answer was read; the hint now waits for budget
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    time.sleep(hook.send_budget_wait() + 1.0)
    assert _hints(sandbox) == []


def test_the_hint_goes_out_when_its_slot_comes_and_the_wait_goes_on(sandbox, make_hook):
    hook, question, _ = _question_and_a_non_answer(sandbox, make_hook)

    async def scenario() -> dict:
        task = asyncio.ensure_future(first_event(_trigger(hook, question, timeout_in=None)))
        while not _hints(sandbox):
            assert not task.done()
            await asyncio.sleep(0.2)
        await asyncio.to_thread(sandbox.inject_incoming, SENDER, APPROVER, "yes")
        return await asyncio.wait_for(task, 15)

    event = asyncio.run(scenario())
    assert event["chosen_options"] == ["Approve"]
    assert len(_hints(sandbox)) == 1
