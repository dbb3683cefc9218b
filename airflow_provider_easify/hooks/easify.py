"""The Easify hook: the Airflow connection and every endpoint of the Easify REST API v2.

The request path itself (auth, timeouts, error mapping, retries, pacing) is :mod:`..transport`;
never-twice sending is :mod:`.sending`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_easify.exceptions import (
    EasifyError,
    EasifyInvalidParameterError,
    EasifyValidationError,
)
from airflow_provider_easify.hooks import connection, sending
from airflow_provider_easify.hooks.conversations import ConversationQueries, same_sms_id
from airflow_provider_easify.hooks.pagination import SortKey, paginate
from airflow_provider_easify.hooks.tracking import TrackingQueries
from airflow_provider_easify.transport.client import MAX_RATE_LIMIT_RETRIES, Budget, EasifyTransport
from airflow_provider_easify.transport.settings import DEFAULT_BASE_URL, EasifyConnectionSettings
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils import params as checks
from airflow_provider_easify.utils.params import REPORT_STATUSES
from airflow_provider_easify.utils.phone import PhoneNumber, mask_phone, parse_phone_number, sender_digits

if TYPE_CHECKING:
    import requests

#: Rows asked for per page (the connection's ``page_size`` extra changes it). The vendor documents no
#: maximum: a server that clamps it serves fewer rows (pages are numbered by what it serves), one that
#: refuses it is asked again with a smaller page.
DEFAULT_PAGE_SIZE = 1000
MIN_PAGE_SIZE = 10

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_SIZE",
    "MAX_RATE_LIMIT_RETRIES",
    "REPORT_STATUSES",
    "Budget",
    "EasifyConnectionSettings",
    "EasifyHook",
    "EasifySingleAttemptHook",
    "EasifyTriggerHook",
    "same_sms_id",
]


class EasifyHook(ConversationQueries, TrackingQueries, BaseHook):
    """
    Interact with the Easify SMS/MMS API.

    The connection's password holds the API token, its host the API base URL (empty means
    ``https://backend.easify.app/api/v2``). Extras: ``timeout`` (seconds, default 30),
    ``send_per_minute`` (default 15, 0 disables client pacing), ``read_per_minute`` (default 60,
    0 disables), ``max_retries`` (default 5), ``backoff_base``/``backoff_max`` (seconds), ``timezone``
    (the zone of the API's ``created_at`` timestamps, default UTC), ``send_window_seconds`` (the length
    of the API's send-limit window, default 60, used to size bursts of deferrable bulk sends),
    ``max_rate_limit_wait`` (the longest one call waits for budget, pacing and 429s together, default
    300 s), ``send_settle_seconds`` (how long a recorded send may take to show in the report, default 5),
    ``page_size`` (rows asked for per page, default 1000) and ``pacing_redis_conn_id`` (an Airflow
    ``redis`` connection through which every host shares the token's budget; without it each machine
    paces on its own). The form fields and checks of every extra: :mod:`.connection_fields`.

    :param easify_conn_id: The Airflow connection to use.
    """

    conn_name_attr = "easify_conn_id"
    default_conn_name = "easify_default"
    conn_type = "easify"
    hook_name = "Easify"
    #: False: every request is tried once and its failure raised, 429s included.
    retry_requests = True
    #: False: waits for budget are not slept but raised as :class:`~..transport.PacingDeferred` (triggers).
    blocking_pacing = True

    def __init__(self, easify_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.easify_conn_id = easify_conn_id
        #: The largest page the server accepted after refusing a larger one (None: none refused yet).
        self._page_size_cap: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(easify_conn_id={self.easify_conn_id!r})"

    # ------------------------------------------------------------------ connection

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How Airflow's connection form shows the standard fields (hidden, relabelled, placeholders)."""
        return connection.ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The Airflow 2 form's widgets for the extras (one per :data:`~.connection_fields.EXTRA_FIELDS`)."""
        return connection.connection_form_widgets()

    @cached_property
    def settings(self) -> EasifyConnectionSettings:
        settings = connection.settings_from_connection(self.get_connection(self.easify_conn_id))
        mask_secret(settings.token)
        return settings

    @cached_property
    def transport(self) -> EasifyTransport:
        settings = self.settings
        factory = None
        if settings.pacing_redis_conn_id:
            factory = connection.redis_client_factory(
                settings.pacing_redis_conn_id, timeout=settings.timeout, get_connection=self.get_connection
            )
        return EasifyTransport(
            settings, logger=self.log, redis_client_factory=factory,
            retry_requests=self.retry_requests, blocking_pacing=self.blocking_pacing,
        )

    @property
    def session(self) -> requests.Session:
        return self.transport.session

    def get_conn(self) -> requests.Session:
        return self.session

    @property
    def requests_made(self) -> int:
        """Requests this hook sent (retries included)."""
        return self.transport.requests_made if "transport" in self.__dict__ else 0

    def _request(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        budget: Budget = "read",
        max_retries: int | None = None,
        paced: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One API call through the transport (pacing, timeout, retries); the JSON body."""
        return self.transport.request(
            method, endpoint, params=params, budget=budget, max_retries=max_retries, paced=paced, **kwargs
        )

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the ``attempt``-th failure (1-based)."""
        return self.transport.backoff_seconds(attempt)

    def _paginate(
        self, endpoint: str, params: dict[str, Any], page_size: int | None, sort_key: SortKey
    ) -> Iterator[dict[str, Any]]:
        limit = checks.positive_int(page_size, "page_size") if page_size is not None else self.settings.page_size
        if self._page_size_cap is not None:
            limit = min(limit, self._page_size_cap)
        fetch = partial(self._request, "GET", endpoint)
        return paginate(
            lambda query: fetch(params=query), params, limit, sort_key=sort_key,
            descending=params["order"] == "desc", smaller_limit=self._smaller_limit,
        )

    def _smaller_limit(self, error: Exception, limit: int) -> int | None:
        """After the server refused ``limit``: the largest it names below it, else half; remembered."""
        if not isinstance(error, EasifyValidationError) or limit <= MIN_PAGE_SIZE:
            return None
        errors = error.errors if isinstance(error.errors, dict) else {}
        if "limit" not in errors and "limit" not in error.message.lower():
            return None
        named = [int(n) for n in re.findall(r"\d+", " ".join([error.message, *map(str, errors.get("limit", []))]))]
        below = [n for n in named if MIN_PAGE_SIZE <= n < limit]
        self._page_size_cap = max(below) if below else max(MIN_PAGE_SIZE, limit // 2)
        self.log.warning("The server refused limit=%d; asking for %d rows a page", limit, self._page_size_cap)
        return self._page_size_cap

    # ------------------------------------------------------------------ endpoints

    def list_phone_numbers(self) -> list[dict[str, Any]]:
        """Return the account's active, approved phone numbers (all of them, unpaginated)."""
        return list(self._request("GET", "phone-numbers").get("data") or [])

    def iter_contacts(
        self, *, group_id: int | None = None, order: str = "desc", page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every contact, optionally of one contact group, following every page lazily."""
        params: dict[str, Any] = {"order": checks.order(order)}
        if group_id is not None:
            params["group_id"] = checks.positive_int(group_id, "group_id")
        if page_size is not None:
            checks.positive_int(page_size, "page_size")
        return self._paginate("contacts", params, page_size, _contact_order)

    def iter_sms_report(
        self,
        from_date: str | dt.date | dt.datetime,
        to_date: str | dt.date | dt.datetime,
        *,
        status: str | None = None,
        sender: str | None = None,
        receiver: str | None = None,
        country_code: str | None = None,
        order: str = "desc",
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every SMS report row between two dates, inclusive.

        Ranges longer than the API's 30 days are split into consecutive windows of at most 30 days
        with no overlap and no gap; with ``order="desc"`` the newest window comes first.
        """
        windows = dates.report_windows(
            dates.to_date(from_date, parameter="from_date"),
            dates.to_date(to_date, parameter="to_date"),
            newest_first=checks.order(order) == "desc",
        )
        params: dict[str, Any] = {"order": checks.order(order)}
        if status is not None:
            params["status"] = checks.report_status(status)
        if sender is not None:
            params["sender"] = sender_digits(sender, parameter="sender")
        if receiver is not None:
            recipient = parse_phone_number(receiver, country_code, parameter="receiver")
            params.update(receiver=recipient.national, country_code=recipient.country_code)
        elif country_code is not None:
            raise EasifyInvalidParameterError(
                "country_code", country_code, "is only allowed together with receiver (the API requires both)"
            )
        if page_size is not None:
            checks.positive_int(page_size, "page_size")
        return self._iter_report_windows(windows, params, page_size)

    def _iter_report_windows(
        self, windows: list[tuple[dt.date, dt.date]], params: dict[str, Any], page_size: int | None
    ) -> Iterator[dict[str, Any]]:
        for index, (start, end) in enumerate(windows, 1):
            self.log.debug("SMS report window %d/%d: %s to %s", index, len(windows), start, end)
            window = {**params, "from_date": start.isoformat(), "to_date": end.isoformat()}
            yield from self._paginate("sms/report", window, page_size, _report_order)

    def get_chat_history(
        self, sender: str, receiver: str, *, country_code: str | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Return ``limit`` messages of a conversation (both directions), as the server chooses them.

        The vendor documents ``limit`` only as "Pagination Limit": a server may answer the newest or the
        oldest ``limit`` messages, in either order. The provider's own waits read the SMS report instead
        (:mod:`.conversations`).
        """
        params = {
            "sender": sender_digits(sender, parameter="sender"),
            **_recipient_params(parse_phone_number(receiver, country_code, parameter="receiver"), "receiver"),
            "limit": checks.positive_int(limit, "limit"),
        }
        return list(self._request("GET", "sms/chat-history", params=params).get("data") or [])

    def send_sms(
        self,
        from_number: str,
        to_number: str,
        message: str | None = None,
        *,
        country_code: str | None = None,
        media: str | os.PathLike[str] | None = None,
        lead_id: str | None = None,
        force_send: bool = False,
        after_message_id: int | None = None,
        paced: bool = True,
    ) -> str:
        """Send one SMS (or MMS with ``media``: a URL or a local file path) and return its ``sms_id``.

        Never posts twice: a failure after which the server may have recorded the message is resolved
        by looking for it in the SMS report before posting again; when that lookup cannot run,
        :class:`~..exceptions.EasifySendUnconfirmedError` is raised and nothing more is posted
        (:mod:`.sending`). No read is made before the send.

        :param after_message_id: A message id the caller knows to be older than this send (see
            :meth:`send_watermark`); the higher of it and the token's watermark is used.
        :param paced: ``False`` when the caller already reserved send budget with :meth:`reserve_send_slots`.
        """
        sender = sender_digits(from_number, parameter="from_number")
        recipient = parse_phone_number(to_number, country_code, parameter="to_number")
        checks.message_text(message, media)
        fields: dict[str, Any] = {
            "from_number": sender,
            "to_number": recipient.national,
            "country_code": recipient.country_code,
        }
        if message:
            fields["message"] = message
        if lead_id is not None and str(lead_id).strip():
            fields["lead_id"] = str(lead_id)
        if force_send:
            fields["force_send"] = 1
        media_file = checks.media_file(media) if media is not None else None
        if media is not None and media_file is None:
            fields["media"] = str(media)
        sms_id = sending.send_once(
            self.send_port,
            sending.Send(
                fields, sender=sender, recipient=recipient.e164, message=message, media_file=media_file,
                paced=paced, after_id=None if after_message_id is None else int(after_message_id),
            ),
        )
        self.log.info("Sent %s %s to %s", "MMS" if media is not None else "SMS", sms_id, mask_phone(recipient.e164))
        return sms_id

    @cached_property
    def send_port(self) -> sending.SendPort:
        """What never-twice sending needs of this hook (:class:`.sending.SendPort`)."""
        from airflow_provider_easify.hooks.send_port import HookSendPort

        return HookSendPort(self)

    def send_watermark(self, sender: str | None = None, receiver: str | None = None) -> int | None:
        """The highest ``sms_id`` known for this token: every later message has a higher id.

        Known from the sends of this token (every process of this machine shares it, and every host with
        ``pacing_redis_conn_id``); a process that knows none reads one from the report, once. None when
        unknown (the report could not be read). ``sender`` and ``receiver`` are accepted for
        compatibility: ids grow across the account, so one watermark serves every conversation.
        """
        return self.send_port.known_watermark()

    def find_sent_message(
        self,
        sender: str,
        receiver: str,
        message: str | None,
        *,
        country_code: str | None = None,
        after_id: int = 0,
        since: dt.datetime | None = None,
        timezone: str | None = None,
        settle: bool = False,
    ) -> str | None:
        """The id of an outgoing message with this body (compared trimmed, line endings normalised) above
        message ``after_id`` (and created at or after ``since``), else None: whether a send whose answer
        was lost was recorded. Read from the SMS report's recent days; with ``settle``, a miss is looked up
        again after the connection's ``send_settle_seconds``. ``timezone`` is accepted for compatibility;
        ``created_at`` is read in the connection's ``timezone``.
        """
        recipient = parse_phone_number(receiver, country_code, parameter="receiver")
        return sending.find_recorded_send(
            self.send_port, sender_digits(sender, parameter="sender"), recipient.e164, message,
            after_id=checks.message_id(after_id, "after_id"), since=since, settle=settle,
        )

    def reserve_send_slots(self, count: int) -> tuple[float, float]:
        """Reserve ``count`` sends of this token's budget at once: ``(start, end)`` epoch seconds.

        The caller may send ``count`` messages from ``start`` without further pacing (pass
        ``paced=False`` to :meth:`send_sms`); the next reservation of any caller starts at ``end``.
        Raises :class:`~..exceptions.EasifyRateLimitError` when ``start`` is further away than
        ``max_rate_limit_wait``.
        """
        reservation = self.transport.reserve("send", checks.positive_int(count, "count"))
        return reservation.start, reservation.end

    def send_window_budget(self) -> int:
        """Sends the API allows in one of its rate windows (0 when client pacing is off)."""
        s = self.settings
        return max(1, int(s.send_per_minute * s.send_window_seconds / 60)) if s.send_per_minute > 0 else 0

    def send_budget_wait(self) -> float:
        """Seconds until this token's send budget has a free slot (0 when pacing is off)."""
        return self.transport.seconds_until_free("send")

    def test_connection(self) -> tuple[bool, str]:
        """Call ``GET /phone-numbers`` once, within the request timeout; report the outcome (never the token)."""
        try:
            numbers = self.transport.request("GET", "phone-numbers", max_retries=0, paced=False).get("data") or []
        except EasifyError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows whatever went wrong
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {self.settings.base_url}: {len(numbers)} active phone number(s)."

class EasifySingleAttemptHook(EasifyHook):
    """An :class:`EasifyHook` that tries every request once and raises what fails, 429s included.

    A 429 still holds back every other caller of the token through the shared pacer.
    """

    retry_requests = False


class EasifyTriggerHook(EasifySingleAttemptHook):
    """The hook of triggers: single attempts, and waits for budget raised, not slept.

    A trigger runs its poll in a thread; when the token's budget has no slot yet, the poll raises
    :class:`~..transport.PacingDeferred` with the slot already reserved, the trigger sleeps on the event
    loop (where a cancelled trigger stops at once, having sent nothing) and polls again.
    """

    blocking_pacing = False


# ---------------------------------------------------------------------- helpers


def _recipient_params(recipient: PhoneNumber, parameter: str) -> dict[str, str]:
    return {parameter: recipient.national, "country_code": recipient.country_code}


def _report_order(row: dict[str, Any]) -> Any:
    """The report lists by ``created_at``."""
    return dates.created_at_sort_key(row.get("created_at"))


def _contact_order(row: dict[str, Any]) -> Any:
    """Contacts list by id."""
    row_id = row.get("id")
    return row_id if isinstance(row_id, int) and not isinstance(row_id, bool) else None
