"""Questions about one conversation (an account number and a contact), answered from its chat history:
a message's status, the messages after a reference, the replies."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils import params as checks
from airflow_provider_easify.utils.phone import mask_phone

#: Chat-history reads grow through these limits until the reference message is reached.
_HISTORY_LIMITS = (10, 100, 1000)


def same_sms_id(left: object, right: object) -> bool:
    """``"315"`` (send response) and ``315`` (history, report) name the same message."""
    return left is not None and right is not None and str(left).strip() == str(right).strip()


class ConversationQueries:
    """Part of :class:`~.easify.EasifyHook`: what the sensors and triggers ask of a conversation."""

    if TYPE_CHECKING:  # provided by EasifyHook
        log: Any

        def get_chat_history(
            self, sender: str, receiver: str, *, country_code: str | None = None, limit: int = 10
        ) -> list[dict[str, Any]]: ...

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
        read in ``timezone``. Reads the newest 10, then 100, then 1000 messages until the reference is reached.
        """
        reference = checks.message_id(after_id, "after_id")
        newer: list[dict[str, Any]] = []
        for limit in _HISTORY_LIMITS:
            rows = self.get_chat_history(sender, receiver, country_code=country_code, limit=limit)
            newer = [
                row for row in rows if checks.int_id(row.get("id")) > reference and _not_before(row, since, timezone)
            ]
            if len(newer) < len(rows) or len(rows) < limit:
                break
        else:
            self.log.warning(
                "More than %d messages with %s since message %s: only the newest are searched",
                _HISTORY_LIMITS[-1], mask_phone(receiver), reference,
            )
        return sorted(newer, key=lambda row: checks.int_id(row.get("id")))

    def newest_message_id(self, sender: str, receiver: str, *, country_code: str | None = None) -> int:
        """The id of the newest message of a conversation (0 when empty): a watermark taken before a send."""
        rows = self.get_chat_history(sender, receiver, country_code=country_code, limit=1)
        return max((checks.int_id(row.get("id")) for row in rows), default=0)

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
