"""Dates for the SMS report: parsing arguments, splitting ranges into API windows, reading ``created_at``."""

from __future__ import annotations

import calendar
import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

#: The report endpoint serves at most this many days (inclusive) per request.
MAX_REPORT_WINDOW_DAYS = 30

CREATED_AT_FORMAT = "%m-%d-%Y %I:%M:%S %p"


def to_date(value: str | dt.date | dt.datetime, *, parameter: str) -> dt.date:
    """Accept ``YYYY-MM-DD``, a ``date`` or a ``datetime`` (its calendar date) and return a ``date``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise EasifyInvalidParameterError(parameter, value, "must be a date: 'YYYY-MM-DD', a date or a datetime")


def report_windows(
    from_date: dt.date, to_date: dt.date, *, days: int = MAX_REPORT_WINDOW_DAYS, newest_first: bool = False
) -> list[tuple[dt.date, dt.date]]:
    """Split the inclusive range into consecutive inclusive windows of at most ``days`` days.

    Windows neither overlap nor leave gaps. ``newest_first`` lists them from the latest, so a
    descending report stays in descending order across windows.
    """
    if to_date < from_date:
        raise EasifyInvalidParameterError(
            "to_date", to_date.isoformat(), f"must be on or after from_date ({from_date.isoformat()})"
        )
    windows = []
    start = from_date
    while start <= to_date:
        end = min(start + dt.timedelta(days=days - 1), to_date)
        windows.append((start, end))
        start = end + dt.timedelta(days=1)
    return windows[::-1] if newest_first else windows


def iter_days(from_date: dt.date, to_date: dt.date) -> Iterator[dt.date]:
    day = from_date
    while day <= to_date:
        yield day
        day += dt.timedelta(days=1)


# ---------------------------------------------------------------------- the API's created_at
# The one reader of the API's zone-less ``MM-DD-YYYY hh:mm:ss AM/PM`` timestamps, for the hook, the
# never-twice check, pagination and the exports.

_UTC_ZONE = zoneinfo.ZoneInfo("UTC")
_UTC_KEYS = ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu")
_VENDOR_TIME = re.compile(r"(\d\d)-(\d\d)-(\d{4}) (\d\d):([0-5]\d):([0-5]\d) ([AaPp][Mm])")
_HOUR_24 = {
    (f"{hour:02d}", half): f"{hour % 12 + (12 if half == 'PM' else 0):02d}"
    for hour in range(1, 13)
    for half in ("AM", "PM")
}
#: Last day of each month ("02": 29, leap years checked apart).
_LAST_DAY = {f"{month:02d}": f"{calendar.monthrange(2024, month)[1]:02d}" for month in range(1, 13)}


def zone_of(timezone: str | zoneinfo.ZoneInfo) -> zoneinfo.ZoneInfo:
    return timezone if isinstance(timezone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo(timezone)


def parse_created_at(value: str, *, timezone: str | zoneinfo.ZoneInfo = "UTC") -> dt.datetime:
    """``MM-DD-YYYY hh:mm:ss AM/PM`` (or ISO-8601), a time without zone read in ``timezone``: an aware datetime."""
    text = value.strip()
    try:
        naive = dt.datetime.strptime(text, CREATED_AT_FORMAT)
    except ValueError:
        naive = dt.datetime.fromisoformat(text)
    return naive if naive.tzinfo is not None else naive.replace(tzinfo=zone_of(timezone))


def utc_iso(moment: dt.datetime) -> str:
    """The canonical form of a timestamp in exported rows: ``2024-10-15T17:36:32+00:00``.

    All such strings compare like the instants they name (same width up to the seconds, and a
    fraction, when present, sorts after the ``+`` of a whole second), so rows are filtered on them.
    """
    return moment.astimezone(dt.UTC).isoformat()


def created_at_to_utc_iso(zone: zoneinfo.ZoneInfo) -> Callable[[str], str]:
    """What turns a ``created_at`` read in ``zone`` into the canonical UTC form (fast for UTC)."""
    if zone.key in _UTC_KEYS:
        return _utc_created_at_to_iso
    return lambda value: utc_iso(parse_created_at(value, timezone=zone))


def _utc_created_at_to_iso(value: str) -> str:
    """The export's hot path: rearranging the text is 5x faster than building a datetime."""
    sortable = created_at_sort_key(value)
    if sortable is not None:
        year, month, day, hour24, minute, second = sortable
        return f"{year}-{month}-{day}T{hour24}:{minute}:{second}+00:00"
    return utc_iso(parse_created_at(value, timezone=_UTC_ZONE))


def created_at_sort_key(value: Any) -> tuple[str, str, str, str, str, str] | None:
    """``created_at`` as (year, month, day, hour 0-23, minute, second) strings, which sort like the times
    they name (in one zone); None for anything else."""
    match = _VENDOR_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    month, day, year, hour, minute, second, half = match.groups()
    hour24 = _HOUR_24.get((hour, half.upper()))
    last_day = _LAST_DAY.get(month)
    if (
        hour24 is None
        or last_day is None
        or not "01" <= day <= last_day
        or (day == "29" and month == "02" and not calendar.isleap(int(year)))
    ):
        return None
    return year, month, day, hour24, minute, second
