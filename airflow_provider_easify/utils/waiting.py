"""What ends a wait for an SMS status or a reply; shared by the sensors and their triggers.

Kept apart from the trigger module so that DAG files importing the sensors do not import
``airflow.triggers.base``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

from airflow_provider_easify.exceptions import EasifyApiError, EasifyInvalidParameterError
from airflow_provider_easify.utils.params import REPORT_STATUSES, int_id


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


def wait_statuses(
    target_statuses: str | Iterable[str], failure_statuses: str | Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The target and failure statuses of a wait, checked: at least one target, none of them a failure."""
    targets = normalize_statuses(target_statuses, "target_statuses")
    failures = normalize_statuses(failure_statuses, "failure_statuses")
    if not targets:
        raise EasifyInvalidParameterError("target_statuses", target_statuses, "at least one status is required")
    overlap = set(targets) & set(failures)
    if overlap:
        raise EasifyInvalidParameterError(
            "failure_statuses", failure_statuses, f"must not repeat a target status ({', '.join(sorted(overlap))})"
        )
    return targets, failures


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
    """The event that ends the wait for this row (the message), or None to keep waiting."""
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


#: The longest pause after failures no poll can fix (a revoked token, an unpaid plan): retried, never spun on.
MAX_ERROR_PAUSE = 900.0


def error_pause(interval: float, failures: int) -> float:
    """Seconds to wait after ``failures`` failed polls in a row: doubling from ``interval``, at most 15 min."""
    return min(MAX_ERROR_PAUSE, interval * 2 ** min(failures, 10))


def error_event(exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, EasifyApiError) else str(exc)
    return {
        "status": "error",
        "message": message or type(exc).__name__,
        "error_type": type(exc).__name__,
        "status_code": getattr(exc, "status_code", None),
    }


# ---------------------------------------------------------------------- one read answers many


@dataclasses.dataclass(frozen=True)
class StatusWait:
    """Messages one sensor or trigger waits on. ``receiver`` is known for a single message."""

    sms_ids: tuple[str, ...]
    receiver: str | None = None
    country_code: str | None = None
    since: str | None = None


def fetch_status_rows(hook: Any, sender: str, waits: Sequence[StatusWait]) -> dict[str, dict[str, Any] | None]:
    """The rows of every message the waits ask for, in as few reads as it takes.

    The sensors' ``poke`` and the triggers' poll (alone or coalesced) all call this. One message of a
    known conversation is one read of that conversation in the SMS report; anything more is one read per
    page of the sender's messages scanned (:meth:`EasifyHook.find_sms_rows`). Never chat history, whose
    ``limit`` may take the oldest rows.
    """
    ids = sorted({sms_id for wait in waits for sms_id in wait.sms_ids})
    if len(waits) == 1 and len(ids) == 1 and waits[0].receiver:
        wait = waits[0]
        return {ids[0]: hook.find_message(ids[0], sender, wait.receiver, country_code=wait.country_code)}
    sinces = [wait.since for wait in waits if wait.since]
    since = min(sinces) if len(sinces) == len(waits) and sinces else None
    return hook.find_sms_rows(ids, sender=sender, since=since)


def bulk_event(
    statuses: dict[str, str | None], target_statuses: Sequence[str], failure_statuses: Sequence[str]
) -> dict[str, Any] | None:
    """The event that ends a wait for many messages (all final), or None to keep waiting."""
    if any(status_outcome(status, target_statuses, failure_statuses) is None for status in statuses.values()):
        return None
    return {"status": "success", "statuses": dict(statuses)}


def pending_count(
    statuses: dict[str, str | None], target_statuses: Sequence[str], failure_statuses: Sequence[str]
) -> int:
    return sum(status_outcome(s, target_statuses, failure_statuses) is None for s in statuses.values())


@dataclasses.dataclass(frozen=True)
class ReplyWait:
    """A wait for a reply from ``receiver`` (E.164) newer than message ``after_id``."""

    receiver: str
    after_id: int


def fetch_replies(hook: Any, sender: str, waits: Sequence[ReplyWait]) -> dict[str, list[dict[str, Any]]]:
    """The incoming messages newer than each wait's reference, by contact, oldest first, in few reads.

    The reply sensor's ``poke`` and the reply triggers' poll (alone or coalesced) all call this. One
    wait is one read of its conversation in the SMS report; several are one scan of the sender's SMS
    report (today and the days around it), newest first, down to the oldest reference.
    """
    if len(waits) == 1:
        wait = waits[0]
        return {wait.receiver: hook.get_replies(sender, wait.receiver, after_id=wait.after_id)}
    oldest = min(wait.after_id for wait in waits)
    found: dict[str, list[dict[str, Any]]] = {wait.receiver: [] for wait in waits}
    for row in hook.iter_recent_report(sender=sender):
        if int_id(row.get("id")) <= oldest:
            break
        if row.get("send_by") == "receiver" and row.get("receiver") in found:
            found[row["receiver"]].append(row)
    return {receiver: sorted(rows, key=lambda row: int_id(row.get("id"))) for receiver, rows in found.items()}


def reply_event(
    rows: Sequence[dict[str, Any]], after_id: int, pattern: re.Pattern[str] | None, ignored: list[Any]
) -> dict[str, Any] | None:
    """The event that ends a reply wait (the oldest matching reply above ``after_id``), or None; replies
    that do not match are noted in ``ignored``."""
    for row in rows:
        if int_id(row.get("id")) <= after_id:
            continue
        if reply_matches(row, pattern):
            return {"status": "success", "reply": reply_result(row)}
        if row.get("id") not in ignored:
            ignored.append(row.get("id"))
    return None

