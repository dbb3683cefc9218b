"""Send one SMS without ever sending it twice, and find out whether an interrupted send went out.

Sends are not idempotent on the server. Before a send the caller reads the *watermark*: the highest
message id of the conversation in the SMS report's recent days (:func:`send_watermark`). The
transport retries blindly only what the server cannot have recorded (a 429, a connection that never
reached it); after a failure that it may have recorded (a 5xx, a dropped connection, a timeout, a
garbled answer) it asks :func:`send_once`'s resolver, which looks for the message
(:func:`find_recorded_send`): found, its id is the answer and nothing is sent again; not found, it
waits the settle time, looks once more, and only then lets the transport retry.

Readings of the vendor text this relies on, each tested against a sandbox that takes it:

* message ids grow with time (the report's and history's ``id`` are auto-increment keys);
* the report honours ``order=desc`` and its ``sender``/``receiver``/``country_code`` filters (all
  documented) and pages consistently; the order of rows *within* a response does not matter, nor does
  the server returning fewer rows than ``limit`` asked;
* the server may store the message trimmed and with normalised line endings: bodies are compared
  normalised (:func:`normalized_body`);
* a recorded send may show in the report up to ``send_settle_seconds`` after the send answered (the
  settle time; the cost falls only on failed sends);
* the report's days are the server's: the window is yesterday to tomorrow in the connection's
  ``timezone``, so an hours-wrong zone still finds the message.

Chat history is not used here: whether its ``limit`` takes the newest or the oldest messages, and in
which order it lists them, is not documented.

Two identical messages to one number are two messages: only rows above the watermark count, so an
older identical message is never taken for the one just attempted. What cannot be told apart: two
callers sending the same text to the same number within the settle time of each other.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import mimetypes
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_easify.exceptions import EasifyApiError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.params import int_id
from airflow_provider_easify.utils.phone import PhoneNumber, mask_phone, sender_digits

#: Rows of one page when looking for a message; a conversation's few days rarely fill one.
LOOKUP_PAGE_SIZE = 100
#: Rows the watermark is the maximum of: one page, so that the order of rows within it does not matter.
WATERMARK_ROWS = 10

if TYPE_CHECKING:
    from airflow_provider_easify.hooks.easify import EasifyHook


def send_once(
    hook: EasifyHook,
    fields: dict[str, Any],
    *,
    sender: str,
    recipient: PhoneNumber,
    message: str | None,
    media_file: Path | None,
    watermark: int,
    paced: bool,
) -> str:
    """POST ``fields`` to ``sms/send`` (with ``media_file`` uploaded) exactly once; return the ``sms_id``."""

    started = time.time()

    def recorded(exc: BaseException) -> dict[str, Any] | None:
        found = find_recorded_send(
            hook, sender, recipient.e164, message, after_id=watermark, attempted_at=started, settle=True,
            not_ids=_sent_lately(hook, sender, recipient.e164),
        )
        if found is None:
            hook.log.warning("Send to %s failed (%s) and was not recorded", mask_phone(recipient.e164), exc)
            return None
        hook.log.warning(
            "Send to %s failed (%s) but the server recorded it as %s; not sending again",
            mask_phone(recipient.e164), exc, found,
        )
        return {"data": {"sms_id": found}}

    options: dict[str, Any] = {"budget": "send", "send": True, "on_ambiguous": recorded, "paced": paced}
    if media_file is None:
        body = hook.transport.request("POST", "sms/send", json=fields, **options)
    else:
        mime = mimetypes.guess_type(media_file.name)[0] or "application/octet-stream"
        with media_file.open("rb") as handle:
            files = {"media": (media_file.name, handle, mime)}
            body = hook.transport.request("POST", "sms/send", data=fields, files=files, **options)
    sms_id = str((body.get("data") or {}).get("sms_id", "")).strip()
    if not sms_id:
        raise EasifyApiError("send succeeded without an sms_id", status_code=200, endpoint="sms/send")
    _remember(hook, sender, recipient.e164, sms_id)
    return sms_id


#: Messages this process sent lately, per conversation: never taken for a later send's lost answer.
_RECENT_SENDS: collections.OrderedDict[tuple[str, str, str], list[tuple[float, int]]] = collections.OrderedDict()
_RECENT_LOCK = threading.Lock()
RECENT_SECONDS = 600.0
RECENT_CONVERSATIONS = 10_000


def _conversation_key(hook: EasifyHook, sender: str, receiver: str) -> tuple[str, str, str]:
    return hook.settings.base_url, sender_digits(sender, parameter="sender"), receiver


def _remember(hook: EasifyHook, sender: str, receiver: str, sms_id: str) -> None:
    key, now = _conversation_key(hook, sender, receiver), time.time()
    with _RECENT_LOCK:
        sent = [entry for entry in _RECENT_SENDS.pop(key, []) if now - entry[0] < RECENT_SECONDS]
        _RECENT_SENDS[key] = [*sent, (now, int_id(sms_id))]
        while len(_RECENT_SENDS) > RECENT_CONVERSATIONS:
            _RECENT_SENDS.popitem(last=False)


def _sent_lately(hook: EasifyHook, sender: str, receiver: str) -> set[int]:
    with _RECENT_LOCK:
        return {sms_id for _, sms_id in _RECENT_SENDS.get(_conversation_key(hook, sender, receiver), [])}


def normalized_body(text: str | None) -> str:
    """A message as any server reading stores it: line endings as LF, no surrounding whitespace."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def send_watermark(hook: EasifyHook, sender: str, receiver: str) -> int:
    """The highest message id of the conversation in the report's recent days (0 when none): one read."""
    rows = hook.iter_recent_report(sender=sender, receiver=receiver, page_size=WATERMARK_ROWS)
    page = itertools.islice(rows, WATERMARK_ROWS)
    return max((int_id(row.get("id")) for row in page), default=0)


def find_recorded_send(
    hook: EasifyHook,
    sender: str,
    receiver: str,
    message: str | None,
    *,
    after_id: int = 0,
    since: dt.datetime | None = None,
    attempted_at: float | None = None,
    settle: bool = False,
    not_ids: set[int] | frozenset[int] = frozenset(),
) -> str | None:
    """The id of an outgoing message with this body above ``after_id`` (created at or after ``since``).

    ``attempted_at`` (epoch seconds, this machine's clock) is when the send was attempted: an identical
    message created in the seconds before it, too late to be under the watermark, is someone else's.
    With ``settle``, a miss is looked up once more after ``send_settle_seconds``: a send the server
    recorded may take that long to show. ``not_ids`` are messages known to be other sends.
    """
    found = _lookup(hook, sender, receiver, message, after_id, since, attempted_at, not_ids)
    delay = hook.settings.send_settle_seconds
    if found is None and settle and delay > 0:
        hook.log.info("Message not in the report yet; looking again in %.1fs", delay)
        time.sleep(delay)
        found = _lookup(hook, sender, receiver, message, after_id, since, attempted_at, not_ids)
    return found


def _lookup(
    hook: EasifyHook,
    sender: str,
    receiver: str,
    message: str | None,
    after_id: int,
    since: dt.datetime | None,
    attempted_at: float | None,
    not_ids: set[int] | frozenset[int],
) -> str | None:
    wanted = normalized_body(message)
    too_early = _too_early(hook, attempted_at)
    matches: list[int] = []
    older_in_a_row = 0
    for row in hook.iter_recent_report(sender=sender, receiver=receiver, since=since, page_size=LOOKUP_PAGE_SIZE):
        row_id = int_id(row.get("id"))
        if row_id <= after_id:
            older_in_a_row += 1
            if older_in_a_row >= LOOKUP_PAGE_SIZE:  # a full page below the watermark: nothing newer follows
                break
            continue
        older_in_a_row = 0
        if row.get("send_by", "sender") != "sender" or normalized_body(row.get("message")) != wanted:
            continue
        if since is not None and not _created_at_or_after(row, since, hook.settings.server_timezone):
            continue
        if row_id in not_ids or (too_early is not None and too_early(row)):
            continue
        matches.append(row_id)
    # The lowest: a second identical message above the watermark was sent after this one.
    return str(min(matches)) if matches else None


#: Seconds of uncertainty in comparing ``created_at`` with the moment of a send: both clocks are read to
#: the second (the server's ``Date`` header, ``created_at``).
CLOCK_TOLERANCE = 1.5


def _too_early(hook: EasifyHook, attempted_at: float | None) -> Any:
    """A test for rows created in the settle time *before* the attempt: a message a moment older, not ours.

    Only that narrow band is ruled out, so a wrong ``timezone`` (hours off) never rejects the message
    being looked for; without the server's clock (no ``Date`` header) nothing is ruled out.
    """
    offset = hook.transport.server_clock_offset
    if attempted_at is None or offset is None:
        return None
    latest = attempted_at + offset - CLOCK_TOLERANCE
    earliest = latest - hook.settings.send_settle_seconds - 2 * CLOCK_TOLERANCE

    def too_early(row: dict[str, Any]) -> bool:
        try:
            created = dates.parse_created_at(str(row.get("created_at")), timezone=hook.settings.server_timezone)
        except ValueError:
            return False
        return earliest <= created.timestamp() < latest

    return too_early


def _created_at_or_after(row: dict[str, Any], since: dt.datetime, timezone: str) -> bool:
    try:
        return dates.parse_created_at(str(row.get("created_at")), timezone=timezone) >= since
    except ValueError:
        return True  # an unreadable timestamp cannot rule the row out
