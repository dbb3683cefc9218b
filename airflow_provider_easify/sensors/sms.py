"""Sensors that wait for SMS to be delivered (one, or all of a bulk send), or for a reply: poke,
reschedule or deferrable."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_easify.exceptions import (
    EasifyApiError,
    EasifyInvalidParameterError,
)
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.sensors.base import EasifyWaitSensor
from airflow_provider_easify.sensors.bulk import EasifyBulkSmsStatusSensor  # also importable from here
from airflow_provider_easify.utils.phone import (
    mask_phone,
    mask_phone_numbers_in_text,
    parse_phone_number,
)
from airflow_provider_easify.utils.waiting import (
    ReplyWait,
    StatusWait,
    compile_reply_pattern,
    fetch_replies,
    fetch_status_rows,
    reply_event,
    status_event,
    wait_statuses,
)

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

class EasifySmsStatusSensor(EasifyWaitSensor):
    """
    Wait until a sent SMS reaches a target status (``Delivered`` by default); return that status.

    A failure status (``Failed``/``Undelivered`` by default) fails the task at once, without retries;
    with ``soft_fail=True`` the task is skipped instead. A message that never shows up in the
    conversation keeps the sensor waiting until ``timeout``, then fails it saying so.

    .. code-block:: python

        send = EasifySendSmsOperator(task_id="send", from_number=..., to_number=..., message="...")
        EasifySmsStatusSensor(task_id="delivered", sms_id=send.output, sender=..., receiver=...)

    :param sms_id: The id returned by the send (templated; ``send.output`` works).
    :param sender: The account number the message was sent from, E.164 or national digits (templated).
    :param receiver: The recipient, E.164 or national digits with ``country_code`` (templated).
    :param country_code: The recipient's country code (``+1``, ``+972``, ``+44``) for a national ``receiver``
        (templated).
    :param target_statuses: Statuses that end the wait successfully.
    :param failure_statuses: Statuses that fail the task (or skip it with ``soft_fail``).
    :param deferrable: Wait in the triggerer instead of a worker slot. The first check runs before deferring.
    :param poke_interval: Seconds between checks (default 30).
    :param timeout: Seconds to wait in all before failing (default one hour); holds in deferrable mode too.
    :param easify_conn_id: The Easify connection.
    """

    template_fields: Sequence[str] = ("sms_id", "sender", "receiver", "country_code")
    ui_color = "#d7ecf7"

    def __init__(
        self,
        *,
        sms_id: str | int,
        sender: str,
        receiver: str,
        country_code: str | None = None,
        target_statuses: Iterable[str] = ("Delivered",),
        failure_statuses: Iterable[str] = ("Failed", "Undelivered"),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 30,
        timeout: timedelta | float = 60 * 60,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            deferrable=deferrable, easify_conn_id=easify_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs
        )
        self.sms_id = sms_id
        self.sender = sender
        self.receiver = receiver
        self.country_code = country_code
        self.target_statuses, self.failure_statuses = wait_statuses(target_statuses, failure_statuses)
        self._last_status: str | None = None

    def _check_arguments(self) -> None:
        if self.sms_id is None or not str(self.sms_id).strip():
            raise EasifyInvalidParameterError("sms_id", self.sms_id, "the id returned by the send is required")
        self.sms_id = str(self.sms_id).strip()
        self._check_phones(self.sender, self.receiver, self.country_code)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        sms_id = str(self.sms_id)
        wait = StatusWait((sms_id,), receiver=self.receiver, country_code=self.country_code)
        try:
            row = fetch_status_rows(self.hook, self.sender, [wait])[sms_id]
        except EasifyApiError as exc:
            if not exc.retryable:
                raise
            self.log.warning("Could not read the status of SMS %s (%s); checking again later", self.sms_id, exc)
            return False
        status = None if row is None else row.get("status")
        self.log.info("SMS %s to %s: %s", self.sms_id, mask_phone(self.receiver), status or "not found yet")
        self._last_status = status
        event = status_event(row, self.target_statuses, self.failure_statuses)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._on_event(event))

    def _on_event(self, event: dict[str, Any]) -> Any:
        self._last_status = event.get("sms_status")
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(self._timeout_message())
        if event["status"] == "failure":
            reason = event.get("reason")
            message = f"SMS {self.sms_id} to {mask_phone(self.receiver)} ended {self._last_status}"
            if reason:
                message += f": {mask_phone_numbers_in_text(str(reason))}"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowFailException(message)
        self.log.info("SMS %s reached %s", self.sms_id, self._last_status)
        return self._last_status

    def _timeout_message(self) -> str:
        who = f"SMS {self.sms_id} from {mask_phone(self.sender)} to {mask_phone(self.receiver)}"
        if self._last_status is None:
            return (
                f"{who} was never found in the conversation within the timeout of {self.timeout:g} s: "
                "check sms_id, sender, receiver and country_code"
            )
        return (
            f"{who} was still {self._last_status} at the timeout of {self.timeout:g} s "
            f"(waiting for {', '.join(self.target_statuses)})"
        )

    def _trigger(self, deadline: float, not_before: float) -> BaseTrigger:
        from airflow_provider_easify.triggers.sms import EasifySmsStatusTrigger

        return EasifySmsStatusTrigger(
            sms_id=str(self.sms_id),
            sender=self.sender,
            receiver=self.receiver,
            country_code=self.country_code,
            target_statuses=list(self.target_statuses),
            failure_statuses=list(self.failure_statuses),
            poke_interval=self.poke_interval,
            deadline=deadline,
            easify_conn_id=self.easify_conn_id,
            not_before=not_before,
        )


class EasifySmsReplySensor(EasifyWaitSensor):
    """
    Wait for an incoming SMS from ``receiver`` to ``sender``; return ``{"id", "message", "created_at"}``.

    Only replies newer than a reference message count: ``after_sms_id`` when given (``send.output`` of
    the message that asked the question), else the newest message of the conversation when this try
    starts. With ``pattern`` only a reply matching that regular expression (``re.search`` on the
    stripped text, case-insensitive unless ``ignore_case=False``) releases the sensor; the first
    matching reply after the reference is returned. No reply in time fails the task (skips it with
    ``soft_fail``). Reply texts are never logged, only their ids.

    .. code-block:: python

        ask = EasifySendSmsOperator(task_id="ask", ..., message="Reply YES to approve tonight's load")
        EasifySmsReplySensor(
            task_id="approval", sender=..., receiver=..., after_sms_id=ask.output, pattern=r"^(yes|y|approve)\\b"
        )

    :param sender: The account number the conversation belongs to, E.164 or national digits (templated).
    :param receiver: The contact whose reply is awaited, E.164 or national digits with ``country_code``
        (templated).
    :param country_code: The contact's country code for a national ``receiver`` (templated).
    :param after_sms_id: Only replies after this message count (templated; ``send.output`` works). Required
        with ``mode="reschedule"``, where nothing else survives between checks. Without it, a retry takes
        a new reference.
    :param pattern: A regular expression the reply must match (templated); None accepts any reply.
    :param ignore_case: Match ``pattern`` case-insensitively (default True).
    :param deferrable: Wait in the triggerer instead of a worker slot. The first check runs before deferring.
    :param poke_interval: Seconds between checks (default 60).
    :param timeout: Seconds to wait in all before failing (default one day); holds in deferrable mode too.
    :param easify_conn_id: The Easify connection.
    """

    template_fields: Sequence[str] = ("sender", "receiver", "country_code", "after_sms_id", "pattern")
    ui_color = "#d7ecf7"

    def __init__(
        self,
        *,
        sender: str,
        receiver: str,
        country_code: str | None = None,
        after_sms_id: str | int | None = None,
        pattern: str | None = None,
        ignore_case: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = 24 * 60 * 60,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            deferrable=deferrable, easify_conn_id=easify_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs
        )
        self.sender = sender
        self.receiver = receiver
        self.country_code = country_code
        self.after_sms_id = after_sms_id
        self.pattern = pattern
        self.ignore_case = ignore_case
        if self.mode == "reschedule" and not deferrable and after_sms_id is None:
            raise EasifyInvalidParameterError(
                "after_sms_id",
                None,
                "is required with mode='reschedule' (nothing else survives between checks): pass the id of the "
                "message awaiting the reply, e.g. send.output",
            )
        self._after_id: int | None = None
        self._compiled_pattern: re.Pattern[str] | None = None
        self._ignored_reply_ids: list[Any] = []

    def _check_arguments(self) -> None:
        self._check_phones(self.sender, self.receiver, self.country_code)
        self._compiled_pattern = compile_reply_pattern(self.pattern, self.ignore_case)
        if self.after_sms_id is not None:
            text = str(self.after_sms_id).strip()
            if isinstance(self.after_sms_id, bool) or not text.isdigit():
                raise EasifyInvalidParameterError("after_sms_id", self.after_sms_id, "must be a message id (digits)")
            self._after_id = int(text)

    def _reference(self) -> int:
        if self._after_id is None:
            self._after_id = self.hook.newest_message_id(self.sender, self.receiver, country_code=self.country_code)
            self.log.info(
                "Waiting for a reply from %s newer than message %s (the newest when the wait began)",
                mask_phone(self.receiver), self._after_id,
            )
        return self._after_id

    def poke(self, context: Context) -> bool | PokeReturnValue:
        after_id = self._reference()
        receiver = parse_phone_number(self.receiver, self.country_code, parameter="receiver").e164
        try:
            replies = fetch_replies(self.hook, self.sender, [ReplyWait(receiver, after_id)])[receiver]
        except EasifyApiError as exc:
            if not exc.retryable:
                raise
            self.log.warning("Could not read the conversation (%s); checking again later", exc)
            return False
        ignored = len(self._ignored_reply_ids)
        event = reply_event(replies, after_id, self._compiled_pattern, self._ignored_reply_ids)
        for reply_id in self._ignored_reply_ids[ignored:]:
            self.log.info("Reply %s does not match the pattern; still waiting", reply_id)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._on_event(event))

    def _on_event(self, event: dict[str, Any]) -> Any:
        if event["status"] == "success":
            reply = event["reply"]
            self.log.info("Reply %s from %s received", reply.get("id"), mask_phone(self.receiver))
            return reply
        self._ignored_reply_ids = list(event.get("ignored_reply_ids") or self._ignored_reply_ids)
        if event.get("after_id") is not None:
            self._after_id = event["after_id"]
        raise AirflowSensorTimeout(self._timeout_message())

    def _timeout_message(self) -> str:
        wanted = f"matching {self.pattern!r} " if self.pattern else ""
        message = (
            f"No reply {wanted}from {mask_phone(self.receiver)} to {mask_phone(self.sender)} after message "
            f"{self._after_id} within the timeout of {self.timeout:g} s"
        )
        if self._ignored_reply_ids:
            ids = ", ".join(str(i) for i in self._ignored_reply_ids)
            message += f"; {len(self._ignored_reply_ids)} reply(ies) did not match the pattern (ids {ids})"
        return message

    def _trigger(self, deadline: float, not_before: float) -> BaseTrigger:
        from airflow_provider_easify.triggers.sms import EasifySmsReplyTrigger

        return EasifySmsReplyTrigger(
            sender=self.sender,
            receiver=self.receiver,
            after_id=self._reference(),
            country_code=self.country_code,
            pattern=self.pattern,
            ignore_case=self.ignore_case,
            poke_interval=self.poke_interval,
            deadline=deadline,
            easify_conn_id=self.easify_conn_id,
            not_before=not_before,
        )


__all__ = ["EasifyBulkSmsStatusSensor", "EasifySmsReplySensor", "EasifySmsStatusSensor"]
