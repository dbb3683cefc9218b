"""What never-twice sending needs of the hook (:class:`.sending.SendPort`), built from the hook's transport,
settings and report reads: one POST, the token's watermark, the conversation's report rows."""

from __future__ import annotations

import datetime as dt
import mimetypes
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_provider_easify.exceptions import (
    EasifyAuthError,
    EasifyPaymentRequiredError,
    EasifyPlanError,
    EasifyValidationError,
)
from airflow_provider_easify.transport.client import PacingDeferred
from airflow_provider_easify.utils.params import int_id

if TYPE_CHECKING:
    from airflow_provider_easify.hooks.easify import EasifyHook

#: Rows of the one report read that gives a process its first watermark.
WATERMARK_ROWS = 10


class HookSendPort:
    """:class:`.sending.SendPort` over a hook: its transport, settings and report reads."""

    #: After the one watermark read of a process failed, sends go out without one this long before it is tried again.
    WATERMARK_READ_PAUSE = 60.0

    def __init__(self, hook: EasifyHook) -> None:
        self.hook = hook
        self.log = hook.log
        self._read_failed_at: float | None = None

    @property
    def scope(self) -> str:
        return self.hook.settings.base_url

    @property
    def settle_seconds(self) -> float:
        return self.hook.settings.send_settle_seconds

    @property
    def server_timezone(self) -> str:
        return self.hook.settings.server_timezone

    @property
    def max_retries(self) -> int:
        return self.hook.settings.max_retries if self.hook.retry_requests else 0

    def post(self, fields: dict[str, Any], media_file: Path | None, *, paced: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"budget": "send", "send": True, "paced": paced}
        if media_file is None:
            return self.hook.transport.request("POST", "sms/send", json=fields, **options)
        mime = mimetypes.guess_type(media_file.name)[0] or "application/octet-stream"
        with media_file.open("rb") as handle:
            files = {"media": (media_file.name, handle, mime)}
            return self.hook.transport.request("POST", "sms/send", data=fields, files=files, **options)

    def known_watermark(self) -> int | None:
        store = self.hook.transport.watermark
        known = store.known()
        if known is not None:
            return known
        if self._read_failed_at is not None and time.monotonic() - self._read_failed_at < self.WATERMARK_READ_PAUSE:
            return None
        try:
            latest = self._latest_message_id()
        except (EasifyAuthError, EasifyPaymentRequiredError, EasifyPlanError, PacingDeferred):
            raise  # the token itself is refused (the send would be too); or a trigger waits for budget
        except Exception as exc:  # noqa: BLE001 - a failed read never holds a send back
            self._read_failed_at = time.monotonic()
            self.log.warning("Could not read the latest message id (%s); sending without one", type(exc).__name__)
            return None
        store.note(latest)
        return latest

    def _latest_message_id(self) -> int:
        """The highest id of the account's report rows, yesterday to tomorrow: one request, not retried."""
        today = pendulum.now(self.server_timezone).date()
        query = {
            "from_date": (today - dt.timedelta(days=1)).isoformat(),
            "to_date": (today + dt.timedelta(days=1)).isoformat(),
            "order": "desc", "limit": WATERMARK_ROWS, "page": 1,
        }
        try:
            body = self.hook._request("GET", "sms/report", params=query, max_retries=0)
        except EasifyValidationError:  # a server that refuses a date in the future
            query["to_date"] = today.isoformat()
            body = self.hook._request("GET", "sms/report", params=query, max_retries=0)
        # The maximum of the page, so that the order of rows within it does not matter.
        return max((int_id(row.get("id")) for row in body.get("data") or []), default=0)

    def note_sent(self, sms_id: int) -> None:
        self.hook.transport.watermark.note(sms_id)

    def report_rows(
        self, sender: str, receiver: str, *, since: dt.datetime | None, page_size: int
    ) -> Iterator[dict[str, Any]]:
        return self.hook.iter_recent_report(sender=sender, receiver=receiver, since=since, page_size=page_size)

    def server_clock_offset(self) -> float | None:
        return self.hook.transport.server_clock_offset

    def backoff_seconds(self, attempt: int) -> float:
        return self.hook.backoff_seconds(attempt)
