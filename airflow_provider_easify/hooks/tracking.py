"""The statuses of many sent messages from one read of the SMS report, not one read per message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_provider_easify.exceptions import EasifyInvalidParameterError, EasifyValidationError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.params import int_id

#: Without ``since``, the statuses of messages sent in the last this many days are found.
DEFAULT_LOOKBACK_DAYS = 7


class TrackingQueries:
    """Part of :class:`~.easify.EasifyHook`: statuses of many messages at once."""

    if TYPE_CHECKING:  # provided by EasifyHook
        log: Any
        settings: Any

        def iter_sms_report(
            self, from_date: str | dt.date | dt.datetime, to_date: str | dt.date | dt.datetime, *,
            status: str | None = ..., sender: str | None = ..., receiver: str | None = ...,
            country_code: str | None = ..., order: str = ..., page_size: int | None = ...,
        ) -> Iterator[dict[str, Any]]: ...

    def iter_recent_report(
        self,
        *,
        sender: str | None,
        receiver: str | None = None,
        since: str | dt.date | dt.datetime | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The report rows of ``sender`` (and ``receiver``; ``sender=None``: the whole account) from ``since``
        (default yesterday) through tomorrow, newest first, read page by page as they are used.

        The days are the connection's ``timezone``; tomorrow is included so that a zone a few hours off
        still sees today's messages, and dropped for a server that refuses a date in the future.
        """
        zone = self.settings.server_timezone
        today = pendulum.now(zone).date()
        first: dt.date = today - dt.timedelta(days=1)
        if since is not None:
            first = min(first, _day_in(since, zone))
        last = today + dt.timedelta(days=1)
        options: dict[str, Any] = {"sender": sender, "receiver": receiver, "order": "desc", "page_size": page_size}
        rows = self.iter_sms_report(first, last, **options)
        try:
            head = next(rows, None)
        except EasifyValidationError:
            rows = self.iter_sms_report(first, today, **options)
            head = next(rows, None)
        if head is not None:
            yield head
            yield from rows

    def get_sms_statuses(
        self,
        sms_ids: Iterable[str | int],
        *,
        sender: str,
        since: str | dt.date | dt.datetime | None = None,
        page_size: int | None = None,
    ) -> dict[str, str | None]:
        """The status of each message sent from ``sender`` (None for an id not found), from one read of the
        SMS report per page scanned; see :meth:`find_sms_rows`."""
        rows = self.find_sms_rows(sms_ids, sender=sender, since=since, page_size=page_size)
        return {sms_id: None if row is None else row.get("status") for sms_id, row in rows.items()}

    def find_sms_rows(
        self,
        sms_ids: Iterable[str | int],
        *,
        sender: str,
        since: str | dt.date | dt.datetime | None = None,
        page_size: int | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """The report row of each message sent from account number ``sender`` (None for an id not found);
        :meth:`get_sms_statuses` gives their statuses: ``{"315012": "Delivered", ...}``.

        Read from the SMS report (``sender`` filter, newest first) from ``since`` (a date, a datetime or
        ``YYYY-MM-DD``; default: the last :data:`DEFAULT_LOOKBACK_DAYS` days, in the connection's
        ``timezone``) through tomorrow, page by page, stopping as soon as every id is found or the rows are
        older than the oldest id asked for (ids grow with time). Cost: one read per page scanned, never one
        per message; ranges over 30 days are split as :meth:`iter_sms_report` does.
        """
        wanted: dict[str, int] = {}
        for sms_id in sms_ids:
            text = str(sms_id).strip() if isinstance(sms_id, (str, int)) and not isinstance(sms_id, bool) else ""
            if not text.isdigit():
                raise EasifyInvalidParameterError("sms_ids", sms_id, "each must be a message id (digits)")
            wanted[text] = int(text)
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(wanted)
        if not wanted:
            return found
        today = pendulum.now(self.settings.server_timezone).date()
        first = (
            today - dt.timedelta(days=DEFAULT_LOOKBACK_DAYS - 1)
            if since is None else dates.to_date(since, parameter="since")
        )
        if first > today + dt.timedelta(days=1):
            raise EasifyInvalidParameterError("since", since, "must not be after today")
        pending = set(wanted)
        oldest = min(wanted.values())
        for row in self.iter_recent_report(sender=sender, since=first, page_size=page_size):
            row_id = str(row.get("id", "")).strip()
            if row_id in pending:
                found[row_id] = row
                pending.discard(row_id)
                if not pending:
                    break
            elif int_id(row_id) < oldest:
                break
        return found


def _day_in(value: str | dt.date | dt.datetime, zone: str) -> dt.date:
    """A day argument; an aware datetime is read in the API's zone."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return pendulum.instance(value).in_timezone(zone).date()
    return dates.to_date(value, parameter="since")
