"""Approvals answered from a phone: Airflow's ``ApprovalOperator``, asked and answered by SMS.

Airflow 3.1+ only (human-in-the-loop); importing this module on older Airflow raises an error naming
the version needed.
"""

from __future__ import annotations

from airflow_provider_easify.utils.hitl_support import require_hitl

require_hitl("EasifySmsApprovalOperator")

from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from airflow.providers.standard.operators.hitl import ApprovalOperator  # noqa: E402

from airflow_provider_easify.exceptions import NON_RETRYABLE_ERRORS, EasifyInvalidParameterError, fail_fast  # noqa: E402
from airflow_provider_easify.hooks.easify import EasifyHook  # noqa: E402
from airflow_provider_easify.utils.number_lists import number_list  # noqa: E402
from airflow_provider_easify.utils.phone import PhoneNumber, mask_phone, parse_phone_number, sender_digits  # noqa: E402
from airflow_provider_easify.utils.segments import count_segments  # noqa: E402

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: How to answer, appended to every question.
ANSWER_HELP = "Reply YES to approve or NO to reject."


class EasifySmsApprovalOperator(ApprovalOperator):
    """
    An ``ApprovalOperator`` whose question also goes out by SMS and can be answered by SMS.

    It writes the human-in-the-loop request (the Required Actions page shows it), runs the
    ``notifiers``, sends ``subject`` (and ``body``, shortened so the text fits ``max_segments`` SMS
    segments) with :data:`ANSWER_HELP` to every ``to_number``, then defers until the first answer:

    * in Airflow's UI or REST API, as for any ``ApprovalOperator``;
    * an SMS reply, after the question, from one of the ``to_number``: ``yes``/``y``/``approve``/``ok``/``1``
      approve, ``no``/``n``/``reject``/``2`` reject (case and surrounding punctuation ignored). Other
      replies are ignored and answered once per number with a short hint.

    An SMS answer is written to the human-in-the-loop record (Airflow shows it answered with the option;
    its responder stays empty, as Airflow offers no way to name one from outside the UI: the XCom's
    ``responded_by_user`` names the number, masked). Then the task behaves exactly as
    ``ApprovalOperator``: Reject skips downstream (or fails the task with ``fail_on_reject``), and
    ``response_timeout`` with ``defaults`` applies. The XCom holds ``chosen_options`` after a Reject
    too (``ApprovalOperator`` itself pushes none when it skips).

    On Airflow 3.3, where ``ApprovalOperator`` parks the task in ``awaiting_input`` without a trigger,
    this operator defers to :class:`~..triggers.hitl.EasifySmsApprovalTrigger` instead; an answer in the UI
    resumes a deferred task the same way (Airflow's response endpoint resumes both states). A retried
    task does not ask again: the questions already sent are found (task state on 3.3, else the
    conversation).

    :param from_number: The account number the question is sent from. Templated.
    :param to_number: Who is asked: one number or a list (E.164, or national with ``country_code``). Templated.
    :param country_code: Country code for national numbers. Templated.
    :param easify_conn_id: The Easify connection.
    :param sms_poll_interval: Seconds between checks for SMS answers (one read for all numbers).
    :param max_segments: The question's SMS length, in segments; ``body`` is shortened to fit.
    :param sms_follow_ups: Text the outcome back (default True): whoever answered by SMS gets a
        confirmation of the recorded answer; every other number asked gets a note that the question is
        closed (answered by SMS from another number, answered in Airflow, or the timeout's defaults), so
        no phone is left with an open question. Each goes at most once, also across task retries.

    The human-in-the-loop record says where the question went: the body the Required Actions page shows
    ends with "Also asked by SMS to +1315***0088: reply YES or NO." (numbers masked). Airflow's record
    has no field for who answered from outside the UI, so after an SMS answer its "Responded by" stays
    empty; the masked number is in the XCom (``responded_by_user``), the task's log and summary, and the
    confirmation.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "from_number", "to_number", "country_code")

    def __init__(
        self,
        *,
        from_number: str,
        to_number: str | list[str],
        country_code: str | None = None,
        easify_conn_id: str = EasifyHook.default_conn_name,
        sms_poll_interval: float = 30.0,
        max_segments: int = 3,
        sms_follow_ups: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sms_follow_ups = bool(sms_follow_ups)
        self.from_number = from_number
        self.to_number = to_number
        self.country_code = country_code
        self.easify_conn_id = easify_conn_id
        self.sms_poll_interval = float(sms_poll_interval)
        self.max_segments = int(max_segments)
        if not self.sms_poll_interval > 0:
            raise EasifyInvalidParameterError("sms_poll_interval", sms_poll_interval, "must be a positive number")
        if self.max_segments < 1:
            raise EasifyInvalidParameterError("max_segments", max_segments, "must be at least 1")
        if not _is_template(to_number) and not _is_template(country_code):
            self._recipients()  # bad numbers fail when the DAG is parsed
        if not _is_template(from_number):
            sender_digits(from_number, parameter="from_number")

    def _recipients(self) -> list[PhoneNumber]:
        numbers = number_list(self.to_number, "to_number")
        recipients: dict[str, PhoneNumber] = {}
        for number in numbers:
            phone = parse_phone_number(number, self.country_code, parameter="to_number")
            recipients.setdefault(phone.e164, phone)
        return list(recipients.values())

    def question_text(self) -> str:
        """The SMS: the subject, the body shortened to fit :attr:`max_segments`, and how to answer."""
        head = self.subject.strip()
        body = " ".join((self.body or "").split())

        def text(part: str) -> str:
            return "\n".join(p for p in (head, part, ANSWER_HELP) if p)

        if count_segments(text(body)).segments > self.max_segments:
            words = body.split(" ")
            while words and count_segments(text(" ".join(words) + "…")).segments > self.max_segments:
                words.pop()
            body = " ".join(words) + "…" if words else ""
        return text(body)

    def record_body(self, recipients: list[PhoneNumber]) -> str:
        """The body written to the human-in-the-loop record: ``body``, then where the question also went."""
        asked = ", ".join(mask_phone(r.e164) for r in recipients)
        line = f"Also asked by SMS to {asked}: reply YES or NO."
        return f"{self.body.rstrip()}\n\n{line}" if self.body else line

    def execute(self, context: Context) -> None:
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail
        from airflow.sdk.timezone import utcnow

        from airflow_provider_easify.operators.send_journal import SendJournal
        from airflow_provider_easify.triggers.hitl import EasifySmsApprovalTrigger

        try:
            sender = sender_digits(self.from_number, parameter="from_number")
            recipients = self._recipients()
        except NON_RETRYABLE_ERRORS as exc:
            raise fail_fast(exc) from exc
        ti_id = context["task_instance"].id
        upsert_hitl_detail(
            ti_id=ti_id, options=self.options, subject=self.subject, body=self.record_body(recipients),
            defaults=self.defaults,
            multiple=self.multiple, params=self.serialized_params, assigned_users=self.assigned_users,
        )
        timeout_datetime = utcnow() + self.response_timeout if self.response_timeout else None
        self._summarize("timeout_datetime", timeout_datetime.isoformat() if timeout_datetime else None)
        for notifier in self.notifiers:
            notifier(context)

        hook = EasifyHook(easify_conn_id=self.easify_conn_id)
        journal = SendJournal(hook, context)
        text = self.question_text()
        questions = []
        try:
            for recipient in recipients:
                sms_id = journal.recall(sender, recipient, text)
                if sms_id:
                    self.log.info("The question already went to %s (SMS %s)", mask_phone(recipient.e164), sms_id)
                else:
                    watermark = journal.before_send(sender, recipient)
                    sms_id = hook.send_sms(sender, recipient.e164, text, after_message_id=watermark)
                    journal.record(recipient, sms_id)
                questions.append({"to_number": recipient.e164, "after_id": int(sms_id)})
        except NON_RETRYABLE_ERRORS as exc:
            raise fail_fast(exc) from exc
        self.log.info("Waiting for an answer in Airflow or by SMS from %d number(s)", len(questions))
        self.defer(
            trigger=EasifySmsApprovalTrigger(
                ti_id=ti_id, options=self.options, defaults=self.defaults, params=self.serialized_params,
                multiple=self.multiple, timeout_datetime=timeout_datetime, easify_conn_id=self.easify_conn_id,
                sender=sender, questions=questions, sms_poll_interval=self.sms_poll_interval,
            ),
            method_name="execute_complete",
        )

    def _summarize(self, key: str, value: Any) -> None:
        """Note ``key`` in the task's human-in-the-loop summary: ``hitl_summary_extra`` in the standard
        provider 1.21+, the ``hitl_summary`` dict before it (the one Airflow 3.1 and 3.2 ship with)."""
        summary = getattr(self, "hitl_summary_extra", None)
        if not isinstance(summary, dict):
            summary = getattr(self, "hitl_summary", None)
        if isinstance(summary, dict):
            summary[key] = value

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume with the answer (from Airflow or by SMS) and act as ``ApprovalOperator`` does."""
        event = dict(event)
        sms_id = event.pop("easify_sms_id", None)
        recorded = event.pop("easify_recorded", True)
        question = event.pop("easify_question", None)
        if sms_id is not None:
            responder = (event.get("responded_by_user") or {}).get("name", "SMS")
            self.log.info("Answered by SMS %s (%s): %s", sms_id, responder, event.get("chosen_options"))
            self._summarize("answered_by_sms", sms_id)
            if not recorded:
                self.log.warning(
                    "The SMS answer could not be written to Airflow's human-in-the-loop record here "
                    "(e.g. `airflow dags test`); the task goes on with it"
                )
        if self.sms_follow_ups and event.get("chosen_options"):
            self._follow_up(context, event, question)
        from airflow.providers.common.compat.sdk import DownstreamTasksSkipped

        try:
            return super().execute_complete(context, event)
        except DownstreamTasksSkipped:
            # Reject skips downstream by raising, so the answer would never reach XCom; it is pushed first.
            answer = {
                "chosen_options": event["chosen_options"], "params_input": event.get("params_input") or {},
                "responded_at": event["responded_at"], "responded_by_user": event.get("responded_by_user"),
            }
            context["ti"].xcom_push(key="return_value", value=answer)
            raise


    def _follow_up(self, context: Context, event: dict[str, Any], question: int | None) -> None:
        """Text each number asked how the question ended; a courtesy, so a failure only logs."""
        from airflow_provider_easify.operators.send_journal import SendJournal

        try:
            sender = sender_digits(self.from_number, parameter="from_number")
            recipients = self._recipients()  # in the order the questions went out
            answered_from = recipients[question].e164 if question is not None else None
            hook = EasifyHook(easify_conn_id=self.easify_conn_id)
            journal = SendJournal(hook, context, resumed=True, purpose="follow_up")
            for recipient in recipients:
                text = follow_up_text(self.subject, event, recipient.e164, answered_from)
                if journal.recall(sender, recipient, text):
                    continue
                watermark = journal.before_send(sender, recipient)
                journal.record(recipient, hook.send_sms(sender, recipient.e164, text, after_message_id=watermark))
        except Exception as exc:  # noqa: BLE001 - the answer stands; only the courtesy text is missing
            self.log.warning("Could not text the approval's outcome back (%s: %s)", type(exc).__name__, exc)


def follow_up_text(subject: str, event: dict[str, Any], number: str, answered_from: str | None) -> str:
    """What a number asked gets when the question closes (ASCII, one segment for a short subject)."""
    topic = " ".join(str(subject).split())
    topic = topic if len(topic) <= 60 else topic[:57] + "..."
    choice = ", ".join(event.get("chosen_options") or [])
    if answered_from == number:
        return f"Recorded: {choice}. ({topic})"
    if answered_from:
        return f"Closed: {topic} was answered by SMS from {mask_phone(answered_from)} ({choice})."
    if event.get("timedout"):
        return f"Closed: {topic} got no answer in time; going on with {choice}."
    return f"Closed: {topic} was answered in Airflow ({choice}). No reply needed."


def _is_template(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and "{{" in v for v in values)
