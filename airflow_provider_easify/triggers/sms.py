"""Triggers that wait for SMS to reach a status (one, or many), or for a reply, polling off the event loop.

The waiting triggers of one connection and sender share a poller (:mod:`.coalesce`): one read a round
answers them all. Each round runs the (synchronous) hook in a worker thread, so the triggerer's event
loop never waits on HTTP; every wait is ``asyncio.sleep`` on the loop, where a cancelled trigger stops
at once: the waits between rounds, 429s, and the wait for the token's read budget (the round's thread
reserves the slot and returns at once, :class:`~..transport.PacingDeferred`; the round is repeated when
the slot opens, so a thousand waiting triggers hold no thread). Requests are tried once
(:class:`~..hooks.easify.EasifyTriggerHook`): the poller retries transient failures (5xx, timeouts,
dropped connections) at the next round and waits out 429s.
A trigger ends with exactly one event:

- ``{"status": "success", ...}``: the wait is over (``sms_status`` or ``reply``);
- ``{"status": "failure", "sms_status": ..., "reason": ...}``: the message reached a failure status;
- ``{"status": "timeout", ...}``: the deadline passed (``sms_status`` is None if the message was never found);
- ``{"status": "error", "message": ..., "error_type": ..., "status_code": ...}``: a failure no wait can fix
  (authentication, plan, payment, refused parameters, connection misconfigured).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_easify.exceptions import EasifyError, EasifyInvalidParameterError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.phone import mask_phone, parse_phone_number
from airflow_provider_easify.utils.waiting import (
    ReplyWait,
    StatusWait,
    bulk_event,
    compile_reply_pattern,
    error_event,
    pending_count,
    reply_event,
    status_event,
)

# ---------------------------------------------------------------------- triggers

#: The arguments every waiting trigger has.
_WAITING = ("poke_interval", "deadline", "easify_conn_id", "not_before")


class _EasifyPollingTrigger(BaseTrigger):
    """What the waiting triggers share: the poll interval, the deadline (epoch seconds), the connection."""

    #: The constructor arguments, as attributes of the same names: what ``serialize`` writes (JSON only).
    serialized_fields: tuple[str, ...] = ()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {name: getattr(self, name) for name in self.serialized_fields},
        )

    def __init__(
        self, *, poke_interval: float, deadline: float | None, easify_conn_id: str, not_before: float | None = None
    ) -> None:
        super().__init__()
        self.poke_interval = float(poke_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.easify_conn_id = easify_conn_id
        #: Epoch seconds before which the first poll waits (the sensor has just checked).
        self.not_before = None if not_before is None else float(not_before)

    def _timeout_event(self) -> dict[str, Any]:
        raise NotImplementedError


class _CoalescedTrigger(_EasifyPollingTrigger):
    """Waits through the shared poller (:mod:`.coalesce`) of its kind, connection and sender."""

    sender: str
    poller = "StatusPoller"

    def _wait(self) -> Any:
        """What this trigger waits for, checked before it joins (a bad argument ends this wait only)."""
        raise NotImplementedError

    def _on_round(self, rows: Any) -> dict[str, Any] | None:
        """This trigger's verdict on one round's rows: the final event, or None to keep waiting."""
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_easify.triggers import coalesce

        if self.not_before is not None:
            first_poll = self.not_before if self.deadline is None else min(self.not_before, self.deadline)
            await asyncio.sleep(max(0.0, first_poll - time.time()))
        try:
            wait = self._wait()
        except EasifyError as exc:  # a bad argument ends this wait only
            yield TriggerEvent(error_event(exc))
            return
        poller_class = getattr(coalesce, self.poller)
        poller, waiter = poller_class.join(self.easify_conn_id, self.sender, wait, self.poke_interval)
        try:
            while True:
                remaining = None if self.deadline is None else self.deadline - time.time()
                if remaining is not None and remaining <= 0:
                    yield TriggerEvent(self._timeout_event())
                    return
                try:
                    rows = await asyncio.wait_for(waiter.rounds.get(), remaining)
                except TimeoutError:
                    continue  # the deadline: checked at the top
                if isinstance(rows, BaseException):
                    yield TriggerEvent(error_event(rows))
                    return
                event = self._on_round(rows)
                if event is not None:
                    yield TriggerEvent(event)
                    return
        finally:
            poller.leave(waiter)


class EasifySmsStatusTrigger(_CoalescedTrigger):
    """
    Wait until a sent message reaches one of ``target_statuses`` or ``failure_statuses``.

    Every status trigger of one connection and sender in a triggerer shares one poller: one read a
    round answers them all (:mod:`.coalesce`).

    :param sms_id: The id returned by the send.
    :param sender: The account number the message was sent from (E.164 or national digits).
    :param receiver: The recipient (E.164, or national digits with ``country_code``).
    :param country_code: The recipient's country code when ``receiver`` is national.
    :param target_statuses: Statuses that end the wait successfully.
    :param failure_statuses: Statuses that end the wait as a failure.
    :param poke_interval: Seconds between polls (also after a failed poll).
    :param deadline: Epoch seconds after which the trigger ends with a ``timeout`` event; None waits forever.
    :param easify_conn_id: The Easify connection (only its id is serialized).
    :param since: The day the message was sent on or after (``YYYY-MM-DD``), bounding a report scan.
    """

    def __init__(
        self,
        *,
        sms_id: str,
        sender: str,
        receiver: str,
        country_code: str | None = None,
        target_statuses: Sequence[str] = ("Delivered",),
        failure_statuses: Sequence[str] = ("Failed", "Undelivered"),
        poke_interval: float = 30,
        deadline: float | None = None,
        easify_conn_id: str = "easify_default",
        not_before: float | None = None,
        since: str | None = None,
    ) -> None:
        super().__init__(
            poke_interval=poke_interval, deadline=deadline, easify_conn_id=easify_conn_id, not_before=not_before
        )
        self.sms_id = str(sms_id)
        self.sender = sender
        self.receiver = receiver
        self.country_code = country_code
        self.target_statuses = list(target_statuses)
        self.failure_statuses = list(failure_statuses)
        self.since = since
        self.last_status: str | None = None

    serialized_fields = (
        "sms_id", "sender", "receiver", "country_code", "target_statuses", "failure_statuses", "since", *_WAITING
    )

    def _wait(self) -> StatusWait:
        receiver = parse_phone_number(self.receiver, self.country_code, parameter="receiver").e164
        return StatusWait((self.sms_id,), receiver=receiver, since=self.since)

    def _on_round(self, rows: dict[str, Any]) -> dict[str, Any] | None:
        row = rows.get(self.sms_id)
        status = None if row is None else row.get("status")
        if status != self.last_status:
            self.log.info("SMS %s to %s: %s", self.sms_id, mask_phone(self.receiver), status or "not found yet")
        self.last_status = status
        return status_event(row, self.target_statuses, self.failure_statuses)

    def _timeout_event(self) -> dict[str, Any]:
        return {"status": "timeout", "sms_status": self.last_status}


class EasifyBulkSmsStatusTrigger(_CoalescedTrigger):
    """
    Wait until every one of many messages sent from ``sender`` has a final status (target or failure).

    Shares the poller of its connection and sender with every other status trigger (:mod:`.coalesce`).
    Ends with ``{"status": "success", "statuses": {sms_id: status}}`` or, at the deadline,
    ``{"status": "timeout", "statuses": {...}, "pending": n}``. Carries message ids, never phone numbers.

    :param sms_ids: The ids returned by the sends.
    :param sender: The account number they were sent from.
    :param since: The day they were sent on or after (``YYYY-MM-DD``), bounding the report scan.
    """

    def __init__(
        self,
        *,
        sms_ids: Sequence[str],
        sender: str,
        target_statuses: Sequence[str] = ("Delivered",),
        failure_statuses: Sequence[str] = ("Failed", "Undelivered"),
        poke_interval: float = 60,
        deadline: float | None = None,
        easify_conn_id: str = "easify_default",
        not_before: float | None = None,
        since: str | None = None,
    ) -> None:
        super().__init__(
            poke_interval=poke_interval, deadline=deadline, easify_conn_id=easify_conn_id, not_before=not_before
        )
        self.sms_ids = [str(sms_id) for sms_id in sms_ids]
        self.sender = sender
        self.target_statuses = list(target_statuses)
        self.failure_statuses = list(failure_statuses)
        self.since = since
        self.statuses: dict[str, str | None] = dict.fromkeys(self.sms_ids)

    serialized_fields = ("sms_ids", "sender", "target_statuses", "failure_statuses", "since", *_WAITING)

    def _wait(self) -> StatusWait:
        for sms_id in self.sms_ids:
            if not sms_id.strip().isdigit():
                raise EasifyInvalidParameterError("sms_ids", sms_id, "each must be a message id (digits)")
        if self.since is not None:
            day = dates.to_date(self.since, parameter="since")
            if day > dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2):
                raise EasifyInvalidParameterError("since", self.since, "must not be after today")
        return StatusWait(tuple(sms_id.strip() for sms_id in self.sms_ids), since=self.since)

    def _on_round(self, rows: dict[str, Any]) -> dict[str, Any] | None:
        self.statuses = {sms_id: None if row is None else row.get("status") for sms_id, row in rows.items()}
        event = bulk_event(self.statuses, self.target_statuses, self.failure_statuses)
        if event is None:
            pending = pending_count(self.statuses, self.target_statuses, self.failure_statuses)
            self.log.info("%d of %d messages not final yet", pending, len(self.statuses))
        return event

    def _timeout_event(self) -> dict[str, Any]:
        pending = pending_count(self.statuses, self.target_statuses, self.failure_statuses)
        return {"status": "timeout", "statuses": self.statuses, "pending": pending}


class EasifySmsReplyTrigger(_CoalescedTrigger):
    """
    Wait for an incoming message from ``receiver`` to ``sender`` newer than message ``after_id``.

    :param sender: The account number the conversation belongs to (E.164 or national digits).
    :param receiver: The contact whose reply is awaited (E.164, or national digits with ``country_code``).
    :param country_code: The contact's country code when ``receiver`` is national.
    :param after_id: Only messages with a greater id count (0: any message).
    :param pattern: A regular expression the reply must match (``re.search``); None accepts any reply.
    :param ignore_case: Match ``pattern`` case-insensitively.
    :param poke_interval: Seconds between polls (also after a failed poll).
    :param deadline: Epoch seconds after which the trigger ends with a ``timeout`` event; None waits forever.
    :param easify_conn_id: The Easify connection (only its id is serialized).
    """

    def __init__(
        self,
        *,
        sender: str,
        receiver: str,
        after_id: int,
        country_code: str | None = None,
        pattern: str | None = None,
        ignore_case: bool = True,
        poke_interval: float = 60,
        deadline: float | None = None,
        easify_conn_id: str = "easify_default",
        not_before: float | None = None,
    ) -> None:
        super().__init__(
            poke_interval=poke_interval, deadline=deadline, easify_conn_id=easify_conn_id, not_before=not_before
        )
        self.sender = sender
        self.receiver = receiver
        self.after_id = int(after_id)
        self.country_code = country_code
        self.pattern = pattern
        self.ignore_case = bool(ignore_case)
        self.compiled_pattern = compile_reply_pattern(pattern, self.ignore_case)
        self.ignored_reply_ids: list[Any] = []

    serialized_fields = ("sender", "receiver", "after_id", "country_code", "pattern", "ignore_case", *_WAITING)

    poller = "ReplyPoller"

    def _wait(self) -> ReplyWait:
        receiver = parse_phone_number(self.receiver, self.country_code, parameter="receiver").e164
        return ReplyWait(receiver, self.after_id)

    def _on_round(self, rows: Any) -> dict[str, Any] | None:
        ignored = len(self.ignored_reply_ids)
        event = reply_event(rows, self.after_id, self.compiled_pattern, self.ignored_reply_ids)
        for reply_id in self.ignored_reply_ids[ignored:]:
            self.log.info("Reply %s does not match the pattern; still waiting", reply_id)
        if event is not None:
            self.log.info("Reply %s from %s received", event["reply"].get("id"), mask_phone(self.receiver))
        return event

    def _timeout_event(self) -> dict[str, Any]:
        return {"status": "timeout", "after_id": self.after_id, "ignored_reply_ids": self.ignored_reply_ids}


class EasifySendWindowTrigger(BaseTrigger):
    """
    Fire at ``moment`` (epoch seconds): when the token's next send window opens.

    Airflow's ``TimeDeltaTrigger`` sleeps in whole seconds; this one sleeps the exact remainder, so a
    deferrable bulk send resumes on time.
    """

    def __init__(self, *, moment: float) -> None:
        super().__init__()
        self.moment = float(moment)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"moment": self.moment}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(max(0.0, self.moment - time.time()))
        yield TriggerEvent({"status": "window_open", "moment": self.moment})
