"""Triggers that wait for an SMS to reach a status, or for a reply, polling Easify off the event loop.

Each poll runs the (synchronous) hook in a worker thread, so the triggerer's event loop never
waits on HTTP; the waits between polls are ``asyncio.sleep`` on the loop, where a cancelled
trigger stops at once. Requests are tried once (:class:`EasifySingleAttemptHook`): the trigger's
own loop retries transient failures (5xx, timeouts, dropped connections) and waits out 429s.
A trigger ends with exactly one event:

- ``{"status": "success", ...}``: the wait is over (``sms_status`` or ``reply``);
- ``{"status": "failure", "sms_status": ..., "reason": ...}``: the message reached a failure status;
- ``{"status": "timeout", ...}``: the deadline passed (``sms_status`` is None if the message was never found);
- ``{"status": "error", "message": ..., "error_type": ..., "status_code": ...}``: a failure no wait can fix
  (authentication, plan, payment, refused parameters, connection misconfigured).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_easify.exceptions import EasifyApiError, EasifyInvalidParameterError, EasifyRateLimitError
from airflow_provider_easify.hooks.easify import REPORT_STATUSES, EasifySingleAttemptHook
from airflow_provider_easify.utils.phone import mask_phone

# ---------------------------------------------------------------------- shared with the sensors


def normalize_statuses(statuses: str | Iterable[str], parameter: str) -> tuple[str, ...]:
    """Return the statuses spelled as the API spells them; refuse unknown ones (a typo would wait forever)."""
    values = [statuses] if isinstance(statuses, str) else list(statuses or ())
    known = {status.lower(): status for status in REPORT_STATUSES}
    normalized = []
    for value in values:
        status = known.get(value.strip().lower()) if isinstance(value, str) else None
        if status is None:
            allowed = f"each status must be one of {', '.join(REPORT_STATUSES)}"
            raise EasifyInvalidParameterError(parameter, value, allowed)
        normalized.append(status)
    return tuple(dict.fromkeys(normalized))


def status_outcome(status: str | None, target_statuses: Sequence[str], failure_statuses: Sequence[str]) -> str | None:
    """``"success"`` for a target status, ``"failure"`` for a failure status, else None (keep waiting)."""
    if status is None:
        return None
    lowered = str(status).strip().lower()
    if lowered in {s.lower() for s in target_statuses}:
        return "success"
    if lowered in {s.lower() for s in failure_statuses}:
        return "failure"
    return None


def status_event(
    row: dict[str, Any] | None, target_statuses: Sequence[str], failure_statuses: Sequence[str]
) -> dict[str, Any] | None:
    """The event that ends the wait for this chat-history row (the message), or None to keep waiting."""
    status = None if row is None else row.get("status")
    outcome = status_outcome(status, target_statuses, failure_statuses)
    if outcome == "success":
        return {"status": "success", "sms_status": status}
    if outcome == "failure":
        return {"status": "failure", "sms_status": status, "reason": (row or {}).get("reason")}
    return None


def compile_reply_pattern(pattern: str | None, ignore_case: bool = True) -> re.Pattern[str] | None:
    """Compile the pattern a reply must match (``re.search`` on the stripped text); None accepts any reply."""
    if pattern is None or pattern == "":
        return None
    if not isinstance(pattern, str):
        raise EasifyInvalidParameterError("pattern", pattern, "must be a regular expression (a string)")
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise EasifyInvalidParameterError("pattern", pattern, f"is not a valid regular expression ({exc})") from None


def reply_matches(row: dict[str, Any], pattern: re.Pattern[str] | None) -> bool:
    return pattern is None or pattern.search((row.get("message") or "").strip()) is not None


def reply_result(row: dict[str, Any]) -> dict[str, Any]:
    """The sensor's return value for a reply."""
    return {"id": row.get("id"), "message": row.get("message"), "created_at": row.get("created_at")}


def error_event(exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, EasifyApiError) else str(exc)
    return {
        "status": "error",
        "message": message or type(exc).__name__,
        "error_type": type(exc).__name__,
        "status_code": getattr(exc, "status_code", None),
    }


# ---------------------------------------------------------------------- triggers


class _EasifyPollingTrigger(BaseTrigger):
    """Polls until :meth:`_poll` returns an event or ``deadline`` (epoch seconds) passes."""

    def __init__(self, *, poke_interval: float, deadline: float | None, easify_conn_id: str) -> None:
        super().__init__()
        self.poke_interval = float(poke_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.easify_conn_id = easify_conn_id

    @cached_property
    def hook(self) -> EasifySingleAttemptHook:
        return EasifySingleAttemptHook(easify_conn_id=self.easify_conn_id)

    def _poll(self) -> dict[str, Any] | None:
        """One check, run in a worker thread: the final event, or None to keep waiting."""
        raise NotImplementedError

    def _timeout_event(self) -> dict[str, Any]:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            wait = self.poke_interval
            try:
                event = await asyncio.to_thread(self._poll)
            except EasifyRateLimitError as exc:
                wait = max(exc.retry_after, self.poke_interval)
                self.log.warning("Easify rate limit reached; next poll in %g s", wait)
            except EasifyApiError as exc:
                if not exc.retryable:
                    yield TriggerEvent(error_event(exc))
                    return
                self.log.warning("Easify poll failed (%s); next poll in %g s", exc, wait)
            except Exception as exc:  # anything else ends the wait with its reason rather than a dead trigger
                self.log.exception("Easify poll failed")
                yield TriggerEvent(error_event(exc))
                return
            else:
                if event is not None:
                    yield TriggerEvent(event)
                    return
            if self.deadline is not None:
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    yield TriggerEvent(self._timeout_event())
                    return
                wait = min(wait, remaining)
            await asyncio.sleep(wait)


class EasifySmsStatusTrigger(_EasifyPollingTrigger):
    """
    Wait until a sent message reaches one of ``target_statuses`` or ``failure_statuses``.

    :param sms_id: The id returned by the send.
    :param sender: The account number the message was sent from (E.164 or national digits).
    :param receiver: The recipient (E.164, or national digits with ``country_code``).
    :param country_code: The recipient's country code when ``receiver`` is national.
    :param target_statuses: Statuses that end the wait successfully.
    :param failure_statuses: Statuses that end the wait as a failure.
    :param poke_interval: Seconds between polls (also after a failed poll).
    :param deadline: Epoch seconds after which the trigger ends with a ``timeout`` event; None waits forever.
    :param easify_conn_id: The Easify connection (only its id is serialized).
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
    ) -> None:
        super().__init__(poke_interval=poke_interval, deadline=deadline, easify_conn_id=easify_conn_id)
        self.sms_id = str(sms_id)
        self.sender = sender
        self.receiver = receiver
        self.country_code = country_code
        self.target_statuses = list(target_statuses)
        self.failure_statuses = list(failure_statuses)
        self.last_status: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sms_id": self.sms_id,
                "sender": self.sender,
                "receiver": self.receiver,
                "country_code": self.country_code,
                "target_statuses": self.target_statuses,
                "failure_statuses": self.failure_statuses,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "easify_conn_id": self.easify_conn_id,
            },
        )

    def _poll(self) -> dict[str, Any] | None:
        row = self.hook.find_message(self.sms_id, self.sender, self.receiver, country_code=self.country_code)
        status = None if row is None else row.get("status")
        if status != self.last_status:
            self.log.info("SMS %s to %s: %s", self.sms_id, mask_phone(self.receiver), status or "not found yet")
        self.last_status = status
        return status_event(row, self.target_statuses, self.failure_statuses)

    def _timeout_event(self) -> dict[str, Any]:
        return {"status": "timeout", "sms_status": self.last_status}


class EasifySmsReplyTrigger(_EasifyPollingTrigger):
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
    ) -> None:
        super().__init__(poke_interval=poke_interval, deadline=deadline, easify_conn_id=easify_conn_id)
        self.sender = sender
        self.receiver = receiver
        self.after_id = int(after_id)
        self.country_code = country_code
        self.pattern = pattern
        self.ignore_case = bool(ignore_case)
        self.compiled_pattern = compile_reply_pattern(pattern, self.ignore_case)
        self.ignored_reply_ids: list[Any] = []

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sender": self.sender,
                "receiver": self.receiver,
                "after_id": self.after_id,
                "country_code": self.country_code,
                "pattern": self.pattern,
                "ignore_case": self.ignore_case,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "easify_conn_id": self.easify_conn_id,
            },
        )

    def _poll(self) -> dict[str, Any] | None:
        replies = self.hook.get_replies(
            self.sender, self.receiver, after_id=self.after_id, country_code=self.country_code
        )
        for row in replies:
            if reply_matches(row, self.compiled_pattern):
                self.log.info("Reply %s from %s received", row.get("id"), mask_phone(self.receiver))
                return {"status": "success", "reply": reply_result(row)}
            if row.get("id") not in self.ignored_reply_ids:
                self.ignored_reply_ids.append(row.get("id"))
                self.log.info("Reply %s does not match the pattern; still waiting", row.get("id"))
        return None

    def _timeout_event(self) -> dict[str, Any]:
        return {"status": "timeout", "after_id": self.after_id, "ignored_reply_ids": self.ignored_reply_ids}
