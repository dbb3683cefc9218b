"""Operators that send SMS and MMS through Easify."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_easify.exceptions import (
    ACCOUNT_ERRORS,
    NON_RETRYABLE_ERRORS,
    EasifyInvalidParameterError,
    EasifyInvalidRecipientError,
    EasifySendUnconfirmedError,
    EasifyValidationError,
    fail_fast,
)
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.operators.bulk_progress import BulkRun
from airflow_provider_easify.operators.send_journal import SendJournal
from airflow_provider_easify.utils.number_lists import list_from_text
from airflow_provider_easify.utils.phone import PhoneNumber, mask_phone, parse_phone_number, sender_digits
from airflow_provider_easify.utils.segments import count_segments

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


#: The XCom in which a deferrable bulk send keeps its recipients across its deferrals.
RECIPIENTS_XCOM = "easify_bulk_recipients"
#: A deferrable bulk send sleeps shorter waits for send budget and defers longer ones.
DEFER_AFTER_SECONDS = 1.0


class EasifySendSmsOperator(BaseOperator):
    """
    Send one SMS or MMS with Easify and return its ``sms_id`` (the XCom).

    A retried task does not send again: the ``sms_id`` sent by an earlier try is returned instead
    (kept in the task's durable state on Airflow 3.3+, looked up in the conversation before). A send
    that may have gone out while the SMS report could not be read to tell fails the try with
    :class:`~..exceptions.EasifySendUnconfirmedError`; the next try looks for it first and posts only
    when it is certainly absent (and fails again while the report still cannot be read).

    :param from_number: One of the account's numbers (E.164, or national digits). Templated.
    :param to_number: The recipient: E.164 (``+13151350000``) or national digits with ``country_code``. Templated.
    :param message: The text. Required unless ``media`` is given. Templated.
    :param country_code: ``+1``, ``+972`` or ``+44``, for a national ``to_number``. Templated.
    :param media: An MMS attachment: a URL, or the path of a local file to upload. Templated.
    :param lead_id: A CRM lead id to associate the message with. Templated.
    :param force_send: Send now even outside the account's opening hours.
    :param easify_conn_id: The Easify connection.
    """

    template_fields: Sequence[str] = ("from_number", "to_number", "message", "country_code", "media", "lead_id")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        from_number: str,
        to_number: str,
        message: str | None = None,
        country_code: str | None = None,
        media: str | None = None,
        lead_id: str | None = None,
        force_send: bool = False,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.from_number = from_number
        self.to_number = to_number
        self.message = message
        self.country_code = country_code
        self.media = media
        self.lead_id = lead_id
        self.force_send = force_send
        self.easify_conn_id = easify_conn_id

    def execute(self, context: Context) -> str:
        hook = EasifyHook(easify_conn_id=self.easify_conn_id)
        try:
            sender = sender_digits(self.from_number, parameter="from_number")
            recipient = parse_phone_number(self.to_number, self.country_code, parameter="to_number")
            journal = SendJournal(hook, context)
            earlier = journal.recall(sender, recipient, self.message)
            if earlier:
                self.log.info(
                    "An earlier try already sent %s to %s; not sending again", earlier, mask_phone(recipient.e164)
                )
                return earlier
            info = count_segments(self.message)
            self.log.info(
                "Sending %s from %s to %s: %d segment(s), %s",
                "MMS" if self.media else "SMS", mask_phone(self.from_number), mask_phone(recipient.e164),
                info.segments, info.encoding,
            )
            watermark = journal.before_send(sender, recipient)
            sms_id = hook.send_sms(
                sender, recipient.e164, self.message, media=self.media, lead_id=self.lead_id,
                force_send=self.force_send, after_message_id=watermark,
            )
            journal.record(recipient, sms_id)
        except NON_RETRYABLE_ERRORS as exc:
            raise fail_fast(exc) from exc
        return sms_id


class EasifyBulkSendSmsOperator(BaseOperator):
    """
    Send one message to many recipients, exactly once each, at the account's send rate.

    ``message`` is a Jinja template rendered for each recipient with the task context plus
    ``recipient`` (the recipient's fields: ``to_number`` and, for contacts, ``first_name``, ...).
    Duplicated recipients are sent once. Invalid recipients (bad number, blacklisted,
    InvalidRecipient) are recorded and skipped unless ``fail_on_invalid``; account-level errors
    (401/402/403, no credits, invalid sender) stop the run at once. A retry, a crash or a resume
    never re-sends to a recipient an earlier try reached.

    A send that may have gone out while the SMS report could not be read to tell
    (:class:`~..exceptions.EasifySendUnconfirmedError`) makes its recipient *unconfirmed*: neither sent
    nor failed, and posted to again only after a lookup finds the message absent. Unconfirmed recipients
    are looked up once more before the run ends, and on every resume or new try before anything goes to
    them; with ``fail_on_unconfirmed`` (the default) the task fails when any remain, after writing its
    result XCom, so that its retry resolves them.

    A deferrable run writes each burst's results once, to an XCom of its own, and carries only a cursor
    and counters through its deferrals: what it writes to the metadata database per deferral does not
    grow with the number of recipients.

    Returns ``{"sent": {e164: sms_id}, "failed": {number: reason}, "unconfirmed": {e164: reason},
    "duplicates": [e164, ...], "excluded": [e164, ...], "total": n}``, where ``total`` counts distinct
    recipients not excluded.

    :param from_number: One of the account's numbers. Templated.
    :param message: The text, a Jinja template rendered per recipient (``Hi {{ recipient.first_name }}``).
    :param recipients: Numbers, or dicts with ``to_number`` (or ``phone_number``) and any other fields,
        or a JSON string of those, or an XCom. Templated.
    :param group_id: Send to every contact of this Easify contact group instead. Templated.
    :param exclude_numbers: Numbers never to message (an opt-out list): a list, or the JSON text of one
        (``"{{ var.json.get('opt_outs', []) | tojson }}"``). Recipients among them are skipped and listed
        under ``excluded`` in the result. Templated.
    :param country_code: Country code for national numbers without their own ``country_code``. Templated.
    :param media: An MMS attachment for every message (URL or local file). Templated.
    :param fail_on_invalid: Fail the task on the first invalid recipient instead of skipping it.
    :param fail_on_unconfirmed: Fail the task at the end when sends remain unconfirmed (its retry looks
        them up before sending); ``False`` succeeds and leaves them under ``unconfirmed`` in the result.
    :param deferrable: Between rate windows, defer to the triggerer instead of holding a worker slot.
    :param progress_every: Log progress every this many messages.
    :param easify_conn_id: The Easify connection.
    """

    template_fields: Sequence[str] = (
        "from_number", "message", "recipients", "group_id", "exclude_numbers", "country_code", "media",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        from_number: str,
        message: str,
        recipients: Any = None,
        group_id: int | str | None = None,
        exclude_numbers: Any = None,
        country_code: str | None = None,
        media: str | None = None,
        fail_on_invalid: bool = False,
        fail_on_unconfirmed: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        progress_every: int = 10,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (recipients is None) == (group_id is None):
            raise EasifyInvalidParameterError("recipients", recipients, "give exactly one of recipients or group_id")
        if not (isinstance(message, str) and message.strip()) and media is None:
            raise EasifyInvalidParameterError("message", message, "a non-empty message template (or media) is required")
        self.from_number = from_number
        self.message = message
        self._message_source = message
        self.recipients = recipients
        self.group_id = group_id
        self.exclude_numbers = exclude_numbers
        self.country_code = country_code
        self.media = media
        self.fail_on_invalid = fail_on_invalid
        self.fail_on_unconfirmed = fail_on_unconfirmed
        self.deferrable = deferrable
        self.progress_every = max(1, int(progress_every))
        self.easify_conn_id = easify_conn_id

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        # Airflow's pass has no `recipient`: a stand-in renders each of its fields back as its expression,
        # so the rendered `message` shows what every recipient gets. The messages themselves are rendered
        # per recipient from the template as written (never twice, so no rendered value is re-evaluated).
        ctx: Any = context
        missing = object()
        previous = ctx.get("recipient", missing)
        ctx["recipient"] = _RecipientStandIn()
        try:
            super().render_template_fields(context, jinja_env)
        finally:
            if previous is missing:
                del ctx["recipient"]
            else:
                ctx["recipient"] = previous

    def execute(self, context: Context) -> dict[str, Any]:
        return self._run(context, progress=None, resumed=False)

    def resume(self, context: Context, event: Any = None, progress: dict[str, Any] | None = None) -> dict[str, Any]:
        """Continue after a deferral between rate windows."""
        return self._run(context, progress=progress, resumed=True)

    # ------------------------------------------------------------------ the send loop

    def _run(self, context: Context, progress: dict[str, Any] | None, *, resumed: bool) -> dict[str, Any]:
        hook = EasifyHook(easify_conn_id=self.easify_conn_id)
        ti: Any = context.get("ti")
        try:
            sender = sender_digits(self.from_number, parameter="from_number")
            excluded = self._excluded()
            targets, invalid, duplicates = self._recipients_of_this_try(hook, context, resumed=resumed)
            skipped = [phone.e164 for phone, _ in targets if phone.e164 in excluded]
            targets = [(phone, fields) for phone, fields in targets if phone.e164 not in excluded]
            if skipped:
                self.log.info("%d recipient(s) skipped: on exclude_numbers", len(skipped))
            run = BulkRun.resume(ti, progress) if resumed else BulkRun(ti)
            # A resume after deferral carries exact progress; a new try, or a resume whose progress was
            # lost (Airflow 2's `dags test` drops deferral kwargs), must consult the journal.
            journal = SendJournal(hook, context, resumed=resumed and progress is None)
            template = self._message_template()
            block_size = hook.send_window_budget() if self.deferrable else 0
            started = time.monotonic()
            for index in range(run.cursor, len(targets)):
                recipient, fields = targets[index]
                body = template.render(**{**dict(context), "recipient": fields}) if self.message else None
                earlier = self._recalled(journal, sender, recipient, body)
                if earlier is not None:
                    run.note(recipient.e164, *earlier)
                    continue
                if block_size > 0 and run.budget == 0:
                    run.budget = self._take_block(hook, run, index, min(block_size, len(targets) - index))
                run.budget = max(0, run.budget - 1)
                outcome = self._send(hook, journal, sender, recipient, body, paced=block_size == 0)
                run.note(recipient.e164, *outcome)
                run.posted += 1
                if run.posted % self.progress_every == 0:
                    self._log_progress(run, len(targets) + len(invalid), started, remaining=len(targets) - index - 1)
            summary = run.summary()
            self._resolve_unconfirmed(hook, journal, summary, sender, targets, template, context)
        except NON_RETRYABLE_ERRORS as exc:
            raise fail_fast(exc) from exc
        summary["failed"].update(invalid)
        summary.update(duplicates=duplicates, excluded=skipped, total=len(targets) + len(invalid))
        self.log.info(
            "Bulk send done: %d sent, %d failed, %d unconfirmed, %d duplicates, of %d recipients",
            len(summary["sent"]), len(summary["failed"]), len(summary["unconfirmed"]), len(summary["duplicates"]),
            summary["total"],
        )
        if summary["unconfirmed"] and self.fail_on_unconfirmed:
            if ti is not None:
                ti.xcom_push(key="return_value", value=summary)
            raise EasifySendUnconfirmedError(
                f"{len(summary['unconfirmed'])} of {summary['total']} recipient(s) are unconfirmed: their sends may "
                "have gone out and the SMS report could not be read to tell. Nothing was posted to them again; "
                "a retry of this task looks them up before sending (the result XCom lists them under 'unconfirmed').",
                recipients=[mask_phone(number) for number in summary["unconfirmed"]],
            )
        return summary

    def _recalled(
        self, journal: SendJournal, sender: str, recipient: PhoneNumber, body: str | None
    ) -> tuple[str, str] | None:
        """What an earlier attempt left for this recipient: ``("sent", sms_id)``, ``("unconfirmed", why)``
        (nothing may be posted to it yet), or None (nothing: post)."""
        try:
            earlier = journal.recall(sender, recipient, body)
        except EasifySendUnconfirmedError as exc:
            return "unconfirmed", str(exc)
        return ("sent", earlier) if earlier else None

    def _send(
        self, hook: EasifyHook, journal: SendJournal, sender: str, recipient: PhoneNumber, body: str | None,
        *, paced: bool,
    ) -> tuple[str, str]:
        """Post to one recipient: ``("sent", sms_id)``, ``("failed", reason)`` or ``("unconfirmed", why)``."""
        try:
            watermark = journal.before_send(sender, recipient)
            sms_id = hook.send_sms(
                sender, recipient.e164, body, media=self.media, after_message_id=watermark, paced=paced
            )
        except EasifySendUnconfirmedError as exc:
            self.log.warning("%s", exc)
            return "unconfirmed", str(exc)
        except (EasifyInvalidRecipientError, EasifyValidationError) as exc:
            if isinstance(exc, ACCOUNT_ERRORS) or self.fail_on_invalid:
                raise
            self.log.warning("Recipient %s refused: %s", mask_phone(recipient.e164), exc.message)
            return "failed", exc.message
        journal.record(recipient, sms_id)
        return "sent", sms_id

    def _resolve_unconfirmed(
        self, hook: EasifyHook, journal: SendJournal, summary: dict[str, Any], sender: str,
        targets: list[tuple[PhoneNumber, dict[str, Any]]], template: Any, context: Context,
    ) -> None:
        """Before the task ends: look up every unconfirmed recipient once more, and send to those certainly absent."""
        if not summary["unconfirmed"]:
            return
        by_number = {phone.e164: (phone, fields) for phone, fields in targets}
        self.log.info("Looking up %d unconfirmed send(s) before ending", len(summary["unconfirmed"]))
        for number in list(summary["unconfirmed"]):
            recipient, fields = by_number[number]
            body = template.render(**{**dict(context), "recipient": fields}) if self.message else None
            kind, value = self._recalled(journal, sender, recipient, body) or self._send(
                hook, journal, sender, recipient, body, paced=True
            )
            del summary["unconfirmed"][number]
            summary[kind][number] = value

    def _take_block(self, hook: EasifyHook, run: BulkRun, index: int, count: int) -> int:
        """Reserve ``count`` sends of the token's budget and wait, or defer, until they start; return the count.

        The reservation is the one the burst is sent in: a deferral carries it to the resume, which
        sends in it unless it has already ended (a late resume reserves again).
        """
        run.flush()
        block, run.block = run.block, None
        if block is None or block["end"] <= time.time():
            wait = hook.send_budget_wait()
            if wait > DEFER_AFTER_SECONDS:
                self._defer_until(time.time() + wait, run, index)
            start, end = hook.reserve_send_slots(count)
            block = {"start": start, "end": end, "count": count}
        wait = block["start"] - time.time()
        if wait > DEFER_AFTER_SECONDS:
            run.block = block
            self._defer_until(block["start"], run, index)
        time.sleep(max(0.0, wait))
        return int(block["count"])

    def _defer_until(self, moment: float, run: BulkRun, index: int) -> None:
        from airflow_provider_easify.triggers.sms import EasifySendWindowTrigger

        progress = run.suspend(index)
        self.log.info(
            "Send budget used up (%d sent so far); deferring %.1fs until the next rate window",
            progress["counts"]["sent"], moment - time.time(),
        )
        self.defer(trigger=EasifySendWindowTrigger(moment=moment), method_name="resume", kwargs={"progress": progress})

    def _log_progress(self, run: BulkRun, total: int, started: float, *, remaining: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = run.posted / elapsed * 60
        eta = remaining / (run.posted / elapsed)
        counts = run.counts()
        self.log.info(
            "Progress: %d/%d sent, %d failed, %d unconfirmed, %.1f msg/min, ETA %s",
            counts["sent"], total, counts["failed"], counts["unconfirmed"], rate, dt.timedelta(seconds=round(eta)),
        )

    def _message_template(self) -> Any:
        return self.get_template_env().from_string(self._message_source or "")

    # ------------------------------------------------------------------ recipients

    def _recipients_of_this_try(
        self, hook: EasifyHook, context: Context, *, resumed: bool
    ) -> tuple[list[tuple[PhoneNumber, dict[str, Any]]], dict[str, str], list[str]]:
        """The recipients, read once per try: a deferrable run keeps them in an XCom of its own, which
        survives its deferrals (and a new try clears), so resumes neither read a contact group again nor
        carry phone numbers in the trigger's kwargs."""
        ti: Any = context.get("ti")
        keep = self.deferrable and ti is not None
        if keep and resumed:
            saved = ti.xcom_pull(task_ids=ti.task_id, key=RECIPIENTS_XCOM, map_indexes=ti.map_index)
            if isinstance(saved, dict) and "targets" in saved:
                targets = [(parse_phone_number(fields["to_number"]), fields) for fields in saved["targets"]]
                return targets, dict(saved["invalid"]), list(saved["duplicates"])
        targets, invalid, duplicates = self._targets(hook)
        if keep:
            value = {"targets": [fields for _, fields in targets], "invalid": invalid, "duplicates": duplicates}
            ti.xcom_push(key=RECIPIENTS_XCOM, value=value)
        return targets, invalid, duplicates

    def _targets(
        self, hook: EasifyHook
    ) -> tuple[list[tuple[PhoneNumber, dict[str, Any]]], dict[str, str], list[str]]:
        """Distinct valid recipients in input order, the invalid ones with the reason, and the duplicates."""
        targets: dict[str, tuple[PhoneNumber, dict[str, Any]]] = {}
        invalid: dict[str, str] = {}
        duplicates: list[str] = []
        for raw in self._raw_recipients(hook):
            fields = dict(raw) if isinstance(raw, Mapping) else {"to_number": raw}
            number = fields.get("to_number") or fields.get("phone_number") or ""
            try:
                phone = parse_phone_number(number, fields.get("country_code") or self.country_code)
            except EasifyInvalidParameterError as exc:
                if self.fail_on_invalid:
                    raise
                invalid[str(number)] = f"invalid number: {exc}"
                continue
            fields["to_number"] = phone.e164
            if phone.e164 in targets:
                duplicates.append(phone.e164)
            else:
                targets[phone.e164] = (phone, fields)
        return list(targets.values()), invalid, duplicates

    def _excluded(self) -> set[str]:
        """``exclude_numbers`` in E.164, checked before anything is sent (a bad entry fails the task)."""
        numbers = self.exclude_numbers
        if numbers is None or numbers == "":
            return set()
        if isinstance(numbers, str):
            numbers = list_from_text(numbers, "exclude_numbers")
        if isinstance(numbers, (Mapping, int)) or not isinstance(numbers, Iterable):
            raise EasifyInvalidParameterError(
                "exclude_numbers", type(numbers).__name__, "must be a list of phone numbers (or its JSON text)"
            )
        return {
            parse_phone_number(n.get("to_number", "") if isinstance(n, Mapping) else n, self.country_code,
                               parameter="exclude_numbers").e164
            for n in numbers
        }

    def _raw_recipients(self, hook: EasifyHook) -> Iterable[Any]:
        if self.group_id is not None:
            return hook.iter_contacts(group_id=int(self.group_id), order="asc")
        recipients = self.recipients
        if isinstance(recipients, str):
            recipients = list_from_text(recipients, "recipients")
        if isinstance(recipients, (Mapping, str, int)) or not isinstance(recipients, Iterable):
            raise EasifyInvalidParameterError(
                "recipients", type(recipients).__name__, "must be a list of numbers or of dicts with to_number"
            )
        return list(recipients)


class _RecipientStandIn:
    """``recipient`` while Airflow renders the task's fields: each field renders as its own expression."""

    def __init__(self, path: str = "recipient") -> None:
        self._path = path

    def __getattr__(self, name: str) -> _RecipientStandIn:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RecipientStandIn(f"{self._path}.{name}")

    def __getitem__(self, key: Any) -> _RecipientStandIn:
        return _RecipientStandIn(f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return "{{ " + self._path + " }}"
