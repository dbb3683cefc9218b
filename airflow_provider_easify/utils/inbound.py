"""Incoming SMS of a whole account: which are new, what they look like as events, what a reply means.

Shared by the inbound-SMS event trigger and the approval-by-SMS trigger. Kept free of Airflow imports.

**Which messages are new.** An :class:`InboundCursor` remembers the newest message id it has seen
(``high``), the ids of the incoming messages it has already handled (``seen``) and a ``floor`` below which
nothing counts. A poll reads the account's SMS report newest first down to ``high`` and then
:data:`OVERLAP_ROWS` rows further, so that a message whose row appears a moment after newer ones (a
server committing out of order) is still found: any incoming row above ``floor`` that is not in ``seen``
is new. ``seen`` keeps the newest :data:`MAX_SEEN` ids; older ones raise ``floor``. The cursor is plain
JSON, so a trigger can keep it in Airflow's asset state store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.number_lists import number_list
from airflow_provider_easify.utils.params import int_id
from airflow_provider_easify.utils.phone import parse_phone_number, sender_digits

#: Rows read past the newest known message, for rows that show up late.
OVERLAP_ROWS = 100
#: Handled incoming ids a cursor remembers.
MAX_SEEN = 500
#: A stopped watcher catches up on at most this many days of messages.
MAX_CATCH_UP_DAYS = 30


@dataclasses.dataclass
class InboundCursor:
    """Where a watcher of incoming messages stands; ``high is None`` until the first poll (the baseline)."""

    high: int | None = None
    floor: int = 0
    seen: list[int] = dataclasses.field(default_factory=list)
    #: The report day (``YYYY-MM-DD``, the API's zone) of the newest message seen: where a catch-up starts.
    day: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> InboundCursor | None:
        """A stored cursor, or None for nothing (or something unreadable) stored."""
        if not isinstance(value, dict) or not isinstance(value.get("high"), int):
            return None
        seen = [int(i) for i in value.get("seen") or [] if isinstance(i, int)]
        day = value.get("day") if isinstance(value.get("day"), str) else None
        return cls(high=value["high"], floor=int(value.get("floor") or 0), seen=seen, day=day)

    def advance(self, scan: InboundScan) -> list[dict[str, Any]]:
        """Take in one poll's scan; return the new incoming messages (event payloads), oldest first."""
        if self.high is None:  # the first poll: everything there is now counts as seen
            self.high = max(scan.ids, default=0)
            self.seen = sorted(int(m["sms_id"]) for m in scan.incoming)[-MAX_SEEN:]
            self.floor = min(scan.ids) - 1 if scan.ids else 0
            self.day = scan.newest_day or self.day
            return []
        known = set(self.seen)
        fresh = [m for m in scan.incoming if int(m["sms_id"]) > self.floor and int(m["sms_id"]) not in known]
        fresh.sort(key=lambda m: int(m["sms_id"]))
        seen = sorted(known | {int(m["sms_id"]) for m in fresh})
        if len(seen) > MAX_SEEN:
            self.floor = max(self.floor, seen[-MAX_SEEN - 1])
            seen = seen[-MAX_SEEN:]
        self.seen = seen
        if scan.ids and max(scan.ids) > self.high:
            self.high = max(scan.ids)
            self.day = scan.newest_day or self.day
        return fresh


@dataclasses.dataclass
class InboundScan:
    """What one poll read: every row id scanned, and the incoming messages among them as event payloads."""

    ids: list[int]
    incoming: list[dict[str, Any]]
    newest_day: str | None = None


def scan_incoming(hook: Any, cursors: Sequence[InboundCursor], *, timezone: str) -> InboundScan:
    """Read the account's SMS report (all numbers, newest first) far enough for every cursor.

    One read (a page of up to 1,000 rows) covers a poll unless more messages came in since the last one.
    The days are yesterday through tomorrow (the connection's ``timezone``), reaching back to the oldest
    cursor's day when a watcher has been stopped for longer (at most :data:`MAX_CATCH_UP_DAYS`).
    """
    known = [c.high for c in cursors if c.high is not None]
    stop_at = min(known) if known else None  # a first poll takes whatever was scanned as its baseline
    today = dt.date.today()
    days = [dt.date.fromisoformat(c.day) for c in cursors if c.day and _is_day(c.day)]
    since = max(min(days), today - dt.timedelta(days=MAX_CATCH_UP_DAYS)) if days else None
    ids: list[int] = []
    incoming: list[dict[str, Any]] = []
    newest_day = None
    past = 0
    for row in hook.iter_recent_report(sender=None, since=since):
        row_id = int_id(row.get("id"))
        if newest_day is None:
            newest_day = _row_day(row)
        ids.append(row_id)
        if row.get("send_by") == "receiver":
            payload = inbound_payload(row, timezone=timezone)
            if payload is not None:
                incoming.append(payload)
        if stop_at is None or row_id <= stop_at:
            past += 1
            if past >= OVERLAP_ROWS:
                break
    return InboundScan(ids=ids, incoming=incoming, newest_day=newest_day)


def inbound_payload(row: dict[str, Any], *, timezone: str) -> dict[str, Any] | None:
    """The event payload of an incoming report row (None for a row without a usable id)."""
    sms_id = str(row.get("id", "")).strip()
    if not sms_id.isdigit():
        return None
    created = str(row.get("created_at") or "")
    try:
        created_at: str | None = dates.utc_iso(dates.parse_created_at(created, timezone=timezone))
    except ValueError:
        created_at = None
    media = row.get("media_url")
    return {
        "sms_id": sms_id,
        "from_number": _e164(row.get("receiver")),
        "to_number": _e164(row.get("sender")),
        "message": row.get("message") or "",
        "created_at": created_at,
        "sms_type": row.get("sms_type") or "sms",
        "media_url": None if media in (None, "", "null") else media,
    }


@dataclasses.dataclass(frozen=True)
class InboundFilter:
    """Which incoming messages a watcher wants: to these account numbers, from these contacts, matching."""

    account_digits: frozenset[str] | None
    from_numbers: frozenset[str] | None
    pattern: re.Pattern[str] | None

    def wants(self, message: dict[str, Any]) -> bool:
        if self.account_digits is not None and _digits(message.get("to_number")) not in self.account_digits:
            return False
        if self.from_numbers is not None and message.get("from_number") not in self.from_numbers:
            return False
        return self.pattern is None or self.pattern.search(str(message.get("message") or "").strip()) is not None


def account_numbers_arg(value: Any) -> list[str] | None:
    """``account_numbers`` checked: the account's numbers (E.164 or national digits), sorted; None for all."""
    if value is None:
        return None
    numbers = number_list(value, "account_numbers")
    for number in numbers:
        sender_digits(number, parameter="account_numbers")
    return sorted({n.strip() for n in numbers})


def from_numbers_arg(value: Any) -> list[str] | None:
    """``from_numbers`` checked and written in E.164, sorted; None for any contact."""
    if value is None:
        return None
    numbers = number_list(value, "from_numbers")
    return sorted({parse_phone_number(n, parameter="from_numbers").e164 for n in numbers})


def make_filter(account_numbers: list[str] | None, from_numbers: list[str] | None, pattern: Any) -> InboundFilter:
    from airflow_provider_easify.utils.waiting import compile_reply_pattern

    return InboundFilter(
        account_digits=None if account_numbers is None else frozenset(
            sender_digits(n, parameter="account_numbers") for n in account_numbers
        ),
        from_numbers=None if from_numbers is None else frozenset(from_numbers),
        pattern=compile_reply_pattern(pattern),
    )


# ---------------------------------------------------------------------- answers to a yes/no question

APPROVE_WORDS = frozenset({"yes", "y", "approve", "approved", "ok", "okay", "1"})
REJECT_WORDS = frozenset({"no", "n", "reject", "rejected", "2"})
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


def approval_choice(text: Any) -> str | None:
    """``"Approve"``, ``"Reject"`` or None for a reply's text: case and surrounding punctuation ignored."""
    word = _EDGE_PUNCTUATION.sub("", str(text or "").strip()).lower()
    if word in APPROVE_WORDS:
        return "Approve"
    if word in REJECT_WORDS:
        return "Reject"
    return None


# ---------------------------------------------------------------------- helpers


def _digits(number: Any) -> str:
    try:
        return sender_digits(str(number or ""), parameter="number")
    except EasifyInvalidParameterError:
        return ""


def _e164(number: Any) -> str:
    text = str(number or "").strip()
    try:
        return parse_phone_number(text, parameter="number").e164 if text.startswith("+") else text
    except EasifyInvalidParameterError:
        return text


def _row_day(row: dict[str, Any]) -> str | None:
    key = dates.created_at_sort_key(row.get("created_at"))
    return None if key is None else f"{key[0]}-{key[1]}-{key[2]}"


def _is_day(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True
