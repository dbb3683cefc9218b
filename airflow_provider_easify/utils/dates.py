"""Dates for the SMS report: parsing arguments, splitting ranges into API windows, reading ``created_at``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pendulum

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


def parse_created_at(value: str, *, timezone: str = "UTC") -> pendulum.DateTime:
    """Parse the API's ``MM-DD-YYYY hh:mm:ss AM/PM`` (no zone) as a time in ``timezone``."""
    naive = dt.datetime.strptime(value.strip(), CREATED_AT_FORMAT)
    return pendulum.instance(naive, tz=pendulum.timezone(timezone))
