"""Questions about one conversation (an account number and a contact): a message's status, the messages
after a reference, the replies.

They are answered from the SMS report (``sender`` and ``receiver`` filters, ``order=desc``), not from
chat history: whether chat history's ``limit`` takes the newest or the oldest messages, and in which
order it lists them, is not documented, and a server that takes the oldest ``limit`` rows (Laravel's
``paginate()`` on an ascending query) would hide every new message of a long conversation. The report's
order and filters are documented. The order of rows *within* a page does not matter, nor does a server
serving fewer rows than asked.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils import params as checks
from airflow_provider_easify.utils.phone import parse_phone_number

#: Report rows asked for per page when reading one conversation.
CONVERSATION_PAGE_SIZE = 100
#: How far back a conversation is read when no day is given: with tomorrow, one 30-day report window.
CONVERSATION_LOOKBACK_DAYS = 28


def same_sms_id(left: object, right: object) -> bool:
    """``"315"`` (send response) and ``315`` (history, report) name the same message."""
    return left is not None and right is not None and str(left).strip() == str(right).strip()


class ConversationQueries:
    """Part of :class:`~.easify.EasifyHook`: what the sensors and triggers ask of a conversation."""

    if TYPE_CHECKING:  # provided by EasifyHook
        log: Any
        settings: Any

        iter_recent_report: Callable[..., Iterator[dict[str, Any]]]  # from TrackingQueries

    def get_sms_status(
        self, sms_id: str | int, sender: str, receiver: str, *, country_code: str | None = None
    ) -> str | None:
        """Return the status of a sent message, or None if the conversation does not hold it."""
        row = self.find_message(sms_id, sender, receiver, country_code=country_code)
        return None if row is None else row.get("status")

    def find_message(
        self, sms_id: str | int, sender: str, receiver: str, *, country_code: str | None = None
    ) -> dict[str, Any] | None:
        """Find one message of a conversation by id, looking further back than the newest 10 if needed."""
        if sms_id is None or not str(sms_id).strip():
            raise EasifyInvalidParameterError("sms_id", sms_id, "the id returned by send_sms is required")
        target = str(sms_id).strip()
        # Ids grow with time: everything from the target on is "newer than target - 1".
        after_id = int(target) - 1 if target.isdigit() else 0
        rows = self.messages_after(sender, receiver, after_id=after_id, country_code=country_code)
        return next((row for row in rows if same_sms_id(row.get("id"), target)), None)

    def messages_after(
        self,
        sender: str,
        receiver: str,
        *,
        after_id: int | str,
        country_code: str | None = None,
        since: dt.datetime | None = None,
        timezone: str = "UTC",
    ) -> list[dict[str, Any]]:
        """The messages of a conversation (both directions) newer than message ``after_id``, oldest first.

        With ``since`` (a timezone-aware datetime), only those created at or after it; ``created_at`` is
        read in ``timezone``. Read from the SMS report, newest first, until a full page of older messages
        (or the end): usually one read.
        """
        reference = checks.message_id(after_id, "after_id")
        newer: list[dict[str, Any]] = []
        older_in_a_row = 0
        for row in self._conversation_rows(sender, receiver, country_code, since):
            if checks.int_id(row.get("id")) <= reference:
                older_in_a_row += 1
                if older_in_a_row >= CONVERSATION_PAGE_SIZE:  # a late row is never a page behind
                    break
                continue
            older_in_a_row = 0
            if _not_before(row, since, timezone):
                newer.append(row)
        return sorted(newer, key=lambda row: checks.int_id(row.get("id")))

    def newest_message_id(self, sender: str, receiver: str, *, country_code: str | None = None) -> int:
        """The id of the newest message of a conversation (0 when empty): a reference taken before a question.

        The highest id of the report's first page of the conversation, whatever the order within it.
        """
        rows = self._conversation_rows(sender, receiver, country_code, None)
        return max((checks.int_id(row.get("id")) for row in itertools.islice(rows, CONVERSATION_PAGE_SIZE)), default=0)

    def _conversation_rows(
        self, sender: str, receiver: str, country_code: str | None, since: dt.datetime | None
    ) -> Iterator[dict[str, Any]]:
        recipient = parse_phone_number(receiver, country_code, parameter="receiver")
        first: dt.date | dt.datetime = since if since is not None else (
            pendulum.now(self.settings.server_timezone).date() - dt.timedelta(days=CONVERSATION_LOOKBACK_DAYS)
        )
        return self.iter_recent_report(
            sender=sender, receiver=recipient.e164, since=first, page_size=CONVERSATION_PAGE_SIZE
        )

    def get_replies(
        self, sender: str, receiver: str, *, after_id: int | str, country_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the incoming messages (``send_by == "receiver"``) newer than message ``after_id``, oldest first."""
        rows = self.messages_after(sender, receiver, after_id=after_id, country_code=country_code)
        return [row for row in rows if row.get("send_by") == "receiver"]


def _not_before(row: dict[str, Any], since: dt.datetime | None, timezone: str) -> bool:
    if since is None:
        return True
    try:
        return dates.parse_created_at(str(row.get("created_at")), timezone=timezone) >= since
    except ValueError:
        return True  # an unreadable timestamp cannot rule the row out
