"""The wait of :class:`~..operators.hitl.EasifySmsApprovalOperator`: an answer in Airflow, or one by SMS.

Airflow 3.1+ only (human-in-the-loop).
"""

from __future__ import annotations

from airflow_provider_easify.utils.hitl_support import require_hitl

require_hitl("EasifySmsApprovalTrigger")

import asyncio  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from typing import Any  # noqa: E402

from airflow.providers.standard.triggers.hitl import HITLTrigger  # noqa: E402
from airflow.triggers.base import TriggerEvent  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402

from airflow_provider_easify.exceptions import EasifyApiError, EasifyRateLimitError  # noqa: E402
from airflow_provider_easify.transport import PacingDeferred  # noqa: E402
from airflow_provider_easify.utils.inbound import approval_choice  # noqa: E402
from airflow_provider_easify.utils.phone import mask_phone  # noqa: E402
from airflow_provider_easify.utils.triggerer_sends import (  # noqa: E402
    call_on_the_loop,
    in_a_thread,
    send_sms_on_the_loop,
)
from airflow_provider_easify.utils.waiting import ReplyWait, error_pause, fetch_replies  # noqa: E402

#: The answer to a reply that is neither yes nor no (sent at most once per number).
HINT_TEXT = "Reply YES to approve or NO to reject."


class EasifySmsApprovalTrigger(HITLTrigger):
    """
    Wait for the first answer to an approval question: in Airflow's UI or REST API (the human-in-the-loop
    record, checked every ``poke_interval``), or an SMS reply from one of the asked numbers (checked every
    ``sms_poll_interval``: one read for all of them).

    An SMS answer is written to the human-in-the-loop record (so the Required Actions page shows it
    answered) and ends the wait; where Airflow cannot write it (``airflow dags test``), the event says
    ``easify_recorded: false`` and the operator logs it. A reply that is neither yes nor no gets
    :data:`HINT_TEXT` once per number. The timeout and ``defaults`` behave as in :class:`HITLTrigger`.

    :param questions: ``[{"to_number": E.164, "after_id": the question's sms_id}]``: only replies above
        the question count.
    :param sender: The account number the questions went out from.
    """

    def __init__(
        self,
        *,
        easify_conn_id: str,
        sender: str,
        questions: list[dict[str, Any]],
        sms_poll_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.easify_conn_id = easify_conn_id
        self.sender = sender
        self.questions: list[dict[str, Any]] = [
            {"to_number": str(q["to_number"]), "after_id": int(q["after_id"])} for q in questions
        ]
        self.sms_poll_interval = float(sms_poll_interval)
        #: Numbers already sent the hint by this run of the trigger (a restarted one checks the conversation).
        self.hinted: set[str] = set()
        self._hint_tasks: set[asyncio.Future[None]] = set()
        self._record_unavailable_logged = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        kwargs.update(
            easify_conn_id=self.easify_conn_id,
            sender=self.sender,
            questions=self.questions,
            sms_poll_interval=self.sms_poll_interval,
        )
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_easify.hooks.easify import EasifyTriggerHook

        hook = EasifyTriggerHook(easify_conn_id=self.easify_conn_id)
        try:
            event = await self._wait(hook)
        finally:
            self._cancel_hints()
        yield event

    async def _wait(self, hook: Any) -> TriggerEvent:
        from airflow.sdk.timezone import utcnow

        next_sms_check = 0.0
        sms_failures = 0
        while True:
            if self.timeout_datetime and self.timeout_datetime < utcnow():
                return await self._timeout_event()
            event = await self._airflow_answer()
            if event is not None:
                return event
            if time.monotonic() >= next_sms_check:
                try:
                    event = await self._sms_answer(hook)
                except PacingDeferred as deferred:
                    next_sms_check = time.monotonic() + deferred.delay
                except EasifyRateLimitError as exc:
                    next_sms_check = time.monotonic() + max(exc.retry_after or 0.0, self.sms_poll_interval)
                except Exception as exc:  # noqa: BLE001 - the Airflow side of the wait goes on
                    sms_failures += 1
                    pause = error_pause(self.sms_poll_interval, sms_failures)
                    status = exc.status_code if isinstance(exc, EasifyApiError) else None
                    self.log.warning(
                        "Checking SMS answers failed (%s, status %s); next check in %.0f s",
                        type(exc).__name__, status, pause,
                    )
                    next_sms_check = time.monotonic() + pause
                else:
                    sms_failures = 0
                    next_sms_check = time.monotonic() + self.sms_poll_interval
                    if event is not None:
                        return event
            await asyncio.sleep(max(0.05, min(self.poke_interval, next_sms_check - time.monotonic())))

    # ------------------------------------------------------------------ the Airflow side

    # The record is read and written with the task SDK's human-in-the-loop calls, as the standard
    # provider's own trigger does; its private helpers around them changed between releases (1.12 to 1.21).

    async def _read_record(self) -> Any:
        from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

        return await sync_to_async(get_hitl_detail_content_detail)(ti_id=self.ti_id)

    def _answer_event(self, record: Any) -> TriggerEvent:
        """The event of an answer found in the record (given in the UI, the REST API, or recorded by SMS)."""
        from airflow.providers.common.compat.sdk import ParamValidationError

        params_input = dict(record.params_input or {})
        try:
            for key, value in params_input.items():
                self.params[key] = value
        except ParamValidationError as err:
            return TriggerEvent({"error": str(err), "error_type": "validation"})
        user = record.responded_by_user
        return TriggerEvent({
            "chosen_options": list(record.chosen_options or []),
            "params_input": params_input,
            "responded_at": record.responded_at,
            "responded_by_user": {"id": user.id, "name": user.name} if user is not None else None,
            "timedout": False,
        })

    async def _airflow_answer(self) -> TriggerEvent | None:
        """An answer given in the UI or REST API, if the record can be read here."""
        try:
            record = await self._read_record()
        except Exception:  # noqa: BLE001 - e.g. `airflow dags test`, where the record cannot be read
            record = None
        if record is None:  # (Airflow 3.2's in-process supervisor answers None instead of raising)
            if not self._record_unavailable_logged:
                self._record_unavailable_logged = True
                self.log.warning("The human-in-the-loop record cannot be read here; waiting for SMS answers only")
            return None
        if not (record.response_received and record.chosen_options):
            return None
        return self._answer_event(record)

    async def _timeout_event(self) -> TriggerEvent:
        from airflow.sdk.timezone import utcnow

        try:
            record = await self._read_record()
        except Exception:  # noqa: BLE001 - the record is unavailable: the same outcome, unrecorded
            record = None
        if record is not None and record.response_received and record.chosen_options:
            return self._answer_event(record)  # answered just before the timeout
        if self.defaults is None:
            return TriggerEvent({
                "error": "The timeout has passed, and the response has not yet been received.",
                "error_type": "timeout",
            })
        responded_at = utcnow()
        if record is not None:
            from airflow.sdk.execution_time.hitl import update_hitl_detail_response

            try:
                written = await sync_to_async(update_hitl_detail_response)(
                    ti_id=self.ti_id, chosen_options=self.defaults, params_input=self.params.dump()
                )
                responded_at = written.responded_at or responded_at
            except Exception:  # noqa: BLE001 - the defaults still apply; the record just does not show them
                self.log.warning("Could not write the timeout's defaults to the human-in-the-loop record")
        self.log.info("No answer before the timeout; going on with the defaults %s", self.defaults)
        return TriggerEvent({
            "chosen_options": self.defaults, "params_input": self.params.dump(), "responded_by_user": None,
            "responded_at": responded_at, "timedout": True,
        })

    # ------------------------------------------------------------------ the SMS side

    async def _sms_answer(self, hook: Any) -> TriggerEvent | None:
        waits = [ReplyWait(q["to_number"], q["after_id"]) for q in self.questions]
        replies = await in_a_thread(self._fetch, hook, waits)
        for number, row in sorted(
            ((number, row) for number, rows in replies.items() for row in rows),
            key=lambda item: int(str(item[1].get("id") or 0)),
        ):
            choice = approval_choice(row.get("message"))
            if choice is None:
                self.log.info("Reply %s from %s is not an answer", row.get("id"), mask_phone(number))
                await self._hint(number)
                continue
            if choice not in self.options:
                continue
            return await self._record(choice, number, str(row.get("id")))
        return None

    def _fetch(self, hook: Any, waits: list[ReplyWait]) -> dict[str, list[dict[str, Any]]]:
        hook.transport.new_unit_of_work()
        return fetch_replies(hook, self.sender, waits)

    async def _record(self, choice: str, number: str, sms_id: str) -> TriggerEvent:
        from airflow.sdk.execution_time.hitl import update_hitl_detail_response
        from airflow.sdk.timezone import utcnow

        masked = mask_phone(number)
        responded_at: dt.datetime = utcnow()
        recorded = False
        try:
            response = await sync_to_async(update_hitl_detail_response)(
                ti_id=self.ti_id, chosen_options=[choice], params_input=self.params.dump()
            )
        except Exception:  # noqa: BLE001 - e.g. answered in the UI meanwhile (409): that answer wins
            earlier = await self._airflow_answer()
            if earlier is not None:
                return earlier
            response = None
        if response is not None and response.responded_at is not None:
            recorded, responded_at = True, response.responded_at
        self.log.info("Answered %s by SMS %s from %s (recorded in Airflow: %s)", choice, sms_id, masked, recorded)
        return TriggerEvent({
            "chosen_options": [choice],
            "params_input": self.params.dump(),
            "responded_at": responded_at,
            "responded_by_user": {"id": f"sms:{masked}", "name": f"SMS from {masked}"},
            "easify_sms_id": sms_id,
            "easify_recorded": recorded,
            # Which question was answered, by position: the number itself stays out of events (they are logged).
            "easify_question": next(i for i, q in enumerate(self.questions) if q["to_number"] == number),
        })

    async def _hint(self, number: str) -> None:
        """Send the hint in a task of its own: the wait goes on watching the answer and the timeout meanwhile."""
        if number in self.hinted:
            return
        self.hinted.add(number)
        task = asyncio.ensure_future(self._send_hint(number))
        self._hint_tasks.add(task)
        task.add_done_callback(self._hint_tasks.discard)

    async def _send_hint(self, number: str) -> None:
        from airflow_provider_easify.hooks.easify import EasifyTriggerHook

        after_id = next(q["after_id"] for q in self.questions if q["to_number"] == number)
        hook = EasifyTriggerHook(easify_conn_id=self.easify_conn_id)
        try:
            # A restarted trigger may have sent it already: the conversation says so.
            sent = await call_on_the_loop(
                hook, hook.find_sent_message, self.sender, number, HINT_TEXT, after_id=after_id
            )
            if sent is None:
                await send_sms_on_the_loop(self.easify_conn_id, self.sender, number, HINT_TEXT, hook=hook)
        except Exception as exc:  # noqa: BLE001 - a hint is a courtesy; the wait goes on
            self.log.warning("Could not send the answer hint to %s (%s)", mask_phone(number), type(exc).__name__)

    def _cancel_hints(self) -> None:
        """The wait is over (or cancelled): a hint still waiting for budget is not sent."""
        for task in list(self._hint_tasks):
            task.cancel()
