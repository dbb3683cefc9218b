"""Send one SMS without ever posting it twice, and find out whether an interrupted send went out.

Sends are not idempotent on the server. :func:`send_once` decides, in one place, whether to post, to
look, or to say that it cannot know:

1. **Post.** The transport repeats on its own only what the server cannot have recorded (a 429, a
   connection that never reached it).
2. **Look**, after a failure the server may have recorded (a 5xx, a dropped connection, a timeout, a
   garbled answer): the message is looked for in the SMS report among the conversation's rows above
   the *watermark* (:func:`find_recorded_send`). Found: its id is the answer and nothing is posted
   again. Absent, after the settle time: the send did not go out, and it is posted again (up to
   ``max_retries``, with backoff).
3. **Say so.** When the lookup cannot run to completion (any error of the read side: a 5xx, a
   timeout, a dropped connection, a 4xx, a 429 beyond ``max_rate_limit_wait``), or when no watermark
   was known before the post, :class:`~..exceptions.EasifySendUnconfirmedError` is raised and nothing
   more is posted.

So a send goes out exactly once while the report is readable, and at most once, said so with
:class:`~..exceptions.EasifySendUnconfirmedError`, while it is not.

The watermark costs no read: ids grow across the account, so the last ``sms_id`` any send of the token
returned bounds every later message (:mod:`..transport.watermark`, shared through Redis with
``pacing_redis_conn_id``). Only a process that knows no id yet reads one, once, and a failed read never
holds a send back.

Readings of the vendor text this relies on, each tested against a sandbox that takes it:

* message ids grow with time across the account (the report's ``id`` is an auto-increment key, the
  send's ``sms_id`` is that id);
* the report honours ``order=desc`` and its ``sender``/``receiver``/``country_code`` filters (all
  documented) and pages consistently; the order of rows *within* a response does not matter, nor does
  the server returning fewer rows than ``limit`` asked;
* the server may store the message trimmed and with normalised line endings: bodies are compared
  normalised (:func:`normalized_body`);
* a recorded send may show in the report up to ``send_settle_seconds`` after the send answered;
* the report's days are the server's: the window is yesterday to tomorrow in the connection's
  ``timezone``, so an hours-wrong zone still finds the message.

Chat history is not used here: whether its ``limit`` takes the newest or the oldest messages, and in
which order it lists them, is not documented.

Two identical messages to one number are two messages: only rows above the watermark count, a message
this process sent is never taken for another, and an identical row created in the settle time before
the attempt is someone else's. What cannot be told apart: another sender of the same token posting the
same text to the same number at the same moment.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from airflow_provider_easify.exceptions import (
    EasifyApiError,
    EasifySendUnconfirmedError,
    EasifyServerError,
    EasifyTransportError,
    may_have_been_recorded,
)
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.params import int_id
from airflow_provider_easify.utils.phone import mask_phone

#: Rows of one page when looking for a message; a conversation's few days rarely fill one.
LOOKUP_PAGE_SIZE = 100


class SendPort(Protocol):
    """What sending needs of the hook; :class:`~.easify.EasifyHook` provides it (``hook.send_port``)."""

    log: Any

    @property
    def scope(self) -> str:
        """Where message ids are unique (the API URL): this process's memory of its sends is kept per scope."""

    @property
    def settle_seconds(self) -> float:
        """How long a recorded send may take to show in the report."""

    @property
    def server_timezone(self) -> str:
        """The zone of the report's ``created_at``."""

    @property
    def max_retries(self) -> int:
        """Posts after a lookup that found the message absent (0: none)."""

    def post(self, fields: dict[str, Any], media_file: Path | None, *, paced: bool) -> dict[str, Any]:
        """POST ``sms/send`` once; the transport repeats only what the server cannot have recorded."""

    def known_watermark(self) -> int | None:
        """The token's watermark, reading one only when this process knows none; None if unknown. Never raises."""

    def note_sent(self, sms_id: int) -> None:
        """A send returned ``sms_id``: raise the token's watermark."""

    def report_rows(
        self, sender: str, receiver: str, *, since: dt.datetime | None, page_size: int
    ) -> Iterable[dict[str, Any]]:
        """The conversation's recent report rows, newest first."""

    def server_clock_offset(self) -> float | None:
        """The server's clock minus ours, in seconds, when known."""

    def backoff_seconds(self, attempt: int) -> float:
        """The pause before the ``attempt``-th post after a failure."""


@dataclasses.dataclass(frozen=True)
class Send:
    """One message to post: the form fields, and what identifies it in the report."""

    fields: dict[str, Any]
    sender: str
    recipient: str  #: E.164
    message: str | None
    media_file: Path | None = None
    paced: bool = True
    #: A watermark the caller knows (for example from its send journal); the higher one is used.
    after_id: int | None = None


def send_once(port: SendPort, send: Send) -> str:
    """Post ``send`` at most once per lookup that found it absent; return its ``sms_id``.

    Raises :class:`EasifySendUnconfirmedError` when a failure may have been recorded and no lookup
    could tell; raises the send's own error when it certainly did not go out.
    """
    known = port.known_watermark()
    watermark = max((w for w in (known, send.after_id) if w is not None), default=None)
    attempt = 0
    while True:
        attempt += 1
        attempted_at = time.time()
        try:
            body = port.post(send.fields, send.media_file, paced=send.paced)
        except (EasifyServerError, EasifyTransportError) as exc:
            if not may_have_been_recorded(exc):
                raise
            found = _resolve(port, send, exc, watermark=watermark, attempted_at=attempted_at)
            if found is not None:
                return _sent(port, send, found)
            if attempt > port.max_retries:
                raise
            time.sleep(port.backoff_seconds(attempt))
            continue
        sms_id = str((body.get("data") or {}).get("sms_id", "")).strip()
        if not sms_id:
            raise EasifyApiError("send succeeded without an sms_id", status_code=200, endpoint="sms/send")
        return _sent(port, send, sms_id)


def _resolve(
    port: SendPort, send: Send, failure: BaseException, *, watermark: int | None, attempted_at: float
) -> str | None:
    """After a failure the server may have recorded: the recorded id, None when certainly absent; or raise."""
    who = mask_phone(send.recipient)
    if watermark is None:
        raise EasifySendUnconfirmedError.for_send(
            send.recipient, attempted_at, send_error=failure,
            known="no message id was known before the send, so the report cannot tell it from older ones",
        )
    try:
        found = find_recorded_send(
            port, send.sender, send.recipient, send.message, after_id=watermark, attempted_at=attempted_at,
            settle=True, not_ids=_sent_lately(port.scope, send.sender, send.recipient),
        )
    except Exception as lookup_error:
        raise EasifySendUnconfirmedError.for_send(
            send.recipient, attempted_at, send_error=failure, lookup_error=lookup_error,
            known=f"the report could not be read to look for it among the messages above {watermark}",
        ) from lookup_error
    if found is None:
        port.log.warning("Send to %s failed (%s) and was not recorded; posting again", who, failure)
    else:
        port.log.warning(
            "Send to %s failed (%s) but the server recorded it as %s; not posting again", who, failure, found
        )
    return found


def _sent(port: SendPort, send: Send, sms_id: str) -> str:
    number = int_id(sms_id)
    port.note_sent(number)
    _remember(port.scope, send.sender, send.recipient, number)
    return sms_id


#: Messages this process sent lately, per conversation: never taken for a later send's lost answer.
_RECENT_SENDS: collections.OrderedDict[tuple[str, str, str], list[tuple[float, int]]] = collections.OrderedDict()
_RECENT_LOCK = threading.Lock()
RECENT_SECONDS = 600.0
RECENT_CONVERSATIONS = 10_000


def _remember(scope: str, sender: str, receiver: str, sms_id: int) -> None:
    key, now = (scope, sender, receiver), time.time()
    with _RECENT_LOCK:
        sent = [entry for entry in _RECENT_SENDS.pop(key, []) if now - entry[0] < RECENT_SECONDS]
        _RECENT_SENDS[key] = [*sent, (now, sms_id)]
        while len(_RECENT_SENDS) > RECENT_CONVERSATIONS:
            _RECENT_SENDS.popitem(last=False)


def _sent_lately(scope: str, sender: str, receiver: str) -> set[int]:
    with _RECENT_LOCK:
        return {sms_id for _, sms_id in _RECENT_SENDS.get((scope, sender, receiver), [])}


def normalized_body(text: str | None) -> str:
    """A message as any server reading stores it: line endings as LF, no surrounding whitespace."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def find_recorded_send(
    port: SendPort,
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
    With ``settle``, a miss is looked up once more after ``settle_seconds``: a send the server recorded
    may take that long to show. ``not_ids`` are messages known to be other sends. Errors of the read
    are raised: a lookup that did not run to completion answers nothing.
    """
    found = _lookup(port, sender, receiver, message, after_id, since, attempted_at, not_ids)
    delay = port.settle_seconds
    if found is None and settle and delay > 0:
        port.log.info("Message not in the report yet; looking again in %.1fs", delay)
        time.sleep(delay)
        found = _lookup(port, sender, receiver, message, after_id, since, attempted_at, not_ids)
    return found


def _lookup(
    port: SendPort,
    sender: str,
    receiver: str,
    message: str | None,
    after_id: int,
    since: dt.datetime | None,
    attempted_at: float | None,
    not_ids: set[int] | frozenset[int],
) -> str | None:
    wanted = normalized_body(message)
    too_early = _too_early(port, attempted_at)
    matches: list[int] = []
    older_in_a_row = 0
    for row in port.report_rows(sender, receiver, since=since, page_size=LOOKUP_PAGE_SIZE):
        row_id = int_id(row.get("id"))
        if row_id <= after_id:
            older_in_a_row += 1
            if older_in_a_row >= LOOKUP_PAGE_SIZE:  # a full page below the watermark: nothing newer follows
                break
            continue
        older_in_a_row = 0
        if row.get("send_by", "sender") != "sender" or normalized_body(row.get("message")) != wanted:
            continue
        if since is not None and not _created_at_or_after(row, since, port.server_timezone):
            continue
        if row_id in not_ids or (too_early is not None and too_early(row)):
            continue
        matches.append(row_id)
    # The lowest: a second identical message above the watermark was sent after this one.
    return str(min(matches)) if matches else None


#: Seconds of uncertainty in comparing ``created_at`` with the moment of a send: both clocks are read to
#: the second (the server's ``Date`` header, ``created_at``).
CLOCK_TOLERANCE = 1.5


def _too_early(port: SendPort, attempted_at: float | None) -> Any:
    """A test for rows created in the settle time *before* the attempt: a message a moment older, not ours.

    Only that narrow band is ruled out, so a wrong ``timezone`` (hours off) never rejects the message
    being looked for; without the server's clock (no ``Date`` header) nothing is ruled out.
    """
    offset = port.server_clock_offset()
    if attempted_at is None or offset is None:
        return None
    latest = attempted_at + offset - CLOCK_TOLERANCE
    earliest = latest - port.settle_seconds - 2 * CLOCK_TOLERANCE

    def too_early(row: dict[str, Any]) -> bool:
        try:
            created = dates.parse_created_at(str(row.get("created_at")), timezone=port.server_timezone)
        except ValueError:
            return False
        return earliest <= created.timestamp() < latest

    return too_early


def _created_at_or_after(row: dict[str, Any], since: dt.datetime, timezone: str) -> bool:
    try:
        return dates.parse_created_at(str(row.get("created_at")), timezone=timezone) >= since
    except ValueError:
        return True  # an unreadable timestamp cannot rule the row out
