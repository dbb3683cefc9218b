"""The Easify hook: one client for the whole Easify REST API v2."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import mimetypes
import os
import random
import re
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from tenacity import RetryCallState, Retrying, retry_if_exception

from airflow_provider_easify.exceptions import (
    EasifyApiError,
    EasifyAuthError,
    EasifyConfigurationError,
    EasifyError,
    EasifyInsufficientCreditsError,
    EasifyInvalidParameterError,
    EasifyInvalidRecipientError,
    EasifyInvalidSenderError,
    EasifyPaymentRequiredError,
    EasifyPlanError,
    EasifyRateLimitError,
    EasifyServerError,
    EasifyTransportError,
    EasifyValidationError,
)
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.pacing import Pacer
from airflow_provider_easify.utils.phone import (
    PhoneNumber,
    mask_phone,
    mask_phone_numbers_in_text,
    parse_phone_number,
    sender_digits,
)

if TYPE_CHECKING:
    import requests

DEFAULT_BASE_URL = "https://backend.easify.app/api/v2"
#: Rows asked for per page. The vendor documents no maximum; 100 keeps pages small enough to
#: stream and is a limit Laravel APIs commonly honour. The server's ``meta.per_page`` is followed.
DEFAULT_PAGE_SIZE = 100
REPORT_STATUSES = ("Pending", "Success", "Delivered", "Undelivered", "Failed", "Scheduled")
#: A 429 is retried at most this many times per call, whatever ``max_retries`` says.
MAX_RATE_LIMIT_RETRIES = 20
_RETRY_AFTER = re.compile(r"(\d+(?:\.\d+)?)\s*sec", re.IGNORECASE)
_HISTORY_LIMITS = (10, 100, 1000)

Budget = Literal["read", "send"]


@dataclasses.dataclass(frozen=True)
class EasifyConnectionSettings:
    """What the hook reads from the Airflow connection. The token is kept out of ``repr``."""

    base_url: str
    token: str = dataclasses.field(repr=False)
    timeout: float = 30.0
    send_per_minute: float = 15.0
    read_per_minute: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    server_timezone: str = "UTC"
    send_window_seconds: float = 60.0


def same_sms_id(left: object, right: object) -> bool:
    """``"315"`` (send response) and ``315`` (history, report) name the same message."""
    return left is not None and right is not None and str(left).strip() == str(right).strip()


class _MaskPhoneNumbers(logging.Filter):
    """Masks phone numbers in urllib3's DEBUG request lines (they carry sender/receiver in the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = mask_phone_numbers_in_text(record.getMessage())
            record.args = None
        return True


_URLLIB3_FILTER = _MaskPhoneNumbers()


class EasifyHook(BaseHook):
    """
    Interact with the Easify SMS/MMS API.

    The connection's password holds the API token, its host the API base URL (empty means
    ``https://backend.easify.app/api/v2``). Extras: ``timeout`` (seconds, default 30),
    ``send_per_minute`` (default 15, 0 disables client pacing), ``read_per_minute`` (default 60,
    0 disables), ``max_retries`` (default 5), ``backoff_base``/``backoff_max`` (seconds), ``timezone``
    (the zone of the API's ``created_at`` timestamps, default UTC), ``send_window_seconds`` (the length
    of the API's send-limit window, default 60, used to size bursts of deferrable bulk sends).

    :param easify_conn_id: The Airflow connection to use.
    """

    conn_name_attr = "easify_conn_id"
    default_conn_name = "easify_default"
    conn_type = "easify"
    hook_name = "Easify"
    #: False: every request is tried once and its failure raised, 429s included (for triggers).
    retry_requests = True

    def __init__(self, easify_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.easify_conn_id = easify_conn_id
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(easify_conn_id={self.easify_conn_id!r})"

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "port"],
            "relabeling": {"password": "API token", "host": "API base URL"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "password": "Settings > API Settings in the Easify app",
                "extra": '{"timeout": 30, "send_per_minute": 15, "read_per_minute": 60, "max_retries": 5}',
            },
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        return {
            "timeout": StringField(lazy_gettext("Timeout (seconds)"), widget=BS3TextFieldWidget()),
            "send_per_minute": IntegerField(
                lazy_gettext("Sends per minute (0 = no pacing)"),
                validators=[Optional(), NumberRange(min=0)],
                widget=BS3TextFieldWidget(),
            ),
            "read_per_minute": IntegerField(
                lazy_gettext("Reads per minute (0 = no pacing)"),
                validators=[Optional(), NumberRange(min=0)],
                widget=BS3TextFieldWidget(),
            ),
            "max_retries": IntegerField(
                lazy_gettext("Max retries"), validators=[Optional(), NumberRange(min=0)], widget=BS3TextFieldWidget()
            ),
        }

    # ------------------------------------------------------------------ connection and session

    @cached_property
    def settings(self) -> EasifyConnectionSettings:
        conn = self.get_connection(self.easify_conn_id)
        token = (conn.password or "").strip()
        if not token:
            raise EasifyConfigurationError(
                f"Connection {self.easify_conn_id!r} has no API token: put the Easify API token "
                "in the connection's password field ('API token')."
            )
        mask_secret(token)
        extra = conn.extra_dejson or {}
        return EasifyConnectionSettings(
            base_url=self._base_url(conn.host, conn.port, conn.schema, extra),
            token=token,
            timeout=_extra_number(extra, "timeout", 30.0, minimum=0.001),
            send_per_minute=_extra_number(extra, "send_per_minute", 15.0, minimum=0),
            read_per_minute=_extra_number(extra, "read_per_minute", 60.0, minimum=0),
            max_retries=int(_extra_number(extra, "max_retries", 5, minimum=0)),
            backoff_base=_extra_number(extra, "backoff_base", 1.0, minimum=0),
            backoff_max=_extra_number(extra, "backoff_max", 30.0, minimum=0),
            server_timezone=_extra_timezone(extra),
            send_window_seconds=_extra_number(extra, "send_window_seconds", 60.0, minimum=0.001),
        )

    @staticmethod
    def _base_url(host: str | None, port: int | None, schema: str | None, extra: dict[str, Any]) -> str:
        host = (host or "").strip()
        if not host:
            return DEFAULT_BASE_URL
        if "://" in host:
            return host.rstrip("/")
        netloc = f"{host}:{port}" if port else host
        path = (schema or "api/v2").strip("/")
        return f"{extra.get('scheme', 'https')}://{netloc}/{path}"

    @cached_property
    def session(self) -> requests.Session:
        import requests  # imported on first use so that DAG files parse fast

        logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_FILTER)
        session = requests.Session()
        session.headers.update(
            {"Authorization": f"Bearer {self.settings.token}", "Accept": "application/json"}
        )
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    @cached_property
    def _pacers(self) -> dict[str, Pacer]:
        s = self.settings
        return {
            "read": Pacer(s.base_url, s.token, "read", s.read_per_minute),
            "send": Pacer(s.base_url, s.token, "send", s.send_per_minute),
        }

    # ------------------------------------------------------------------ the one request path

    def _request(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        budget: Budget = "read",
        retry_ambiguous: bool = True,
        max_retries: int | None = None,
        paced: bool = True,
    ) -> dict[str, Any]:
        """Send one API call with pacing, a timeout and retries; return the JSON body.

        ``retry_ambiguous=False`` (sends) retries only what the server cannot have recorded:
        429s and connections that never reached it. Other failures are raised to the caller.
        """
        retries = self.settings.max_retries if max_retries is None else max_retries

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, EasifyRateLimitError):
                return True
            if isinstance(exc, EasifyTransportError) and not exc.request_sent:
                return True
            return retry_ambiguous and isinstance(exc, (EasifyServerError, EasifyTransportError))

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, EasifyRateLimitError):
                return state.attempt_number > MAX_RATE_LIMIT_RETRIES
            return state.attempt_number > retries

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, EasifyRateLimitError):
                # Paced calls wait in the pacer, which the 429 pushed back for every caller of the token.
                return 0.0 if paced else exc.retry_after
            return self.backoff_seconds(state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning("Easify %s %s failed (%s); retry %d", method, endpoint, exc, state.attempt_number)

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            stop=stop,
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        )
        args = (method, endpoint, params, json, data, files, budget, paced)
        if not self.retry_requests:
            return self._request_once(*args)
        return retrying(self._request_once, *args)

    def _request_once(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        data: dict[str, Any] | None,
        files: dict[str, Any] | None,
        budget: Budget,
        paced: bool,
    ) -> dict[str, Any]:
        if paced:
            self._pacers[budget].wait()
        url = f"{self.settings.base_url}/{endpoint}"
        if files:
            for fileobj in files.values():
                fileobj[1].seek(0)
        self.requests_made += 1
        try:
            response = self.session.request(
                method, url, params=params, json=json, data=data, files=files, timeout=self.settings.timeout
            )
        except _requests_exceptions().RequestException as exc:
            raise EasifyTransportError(
                f"{type(exc).__name__} calling {method} {endpoint}",
                request_sent=not _never_reached_server(exc),
                endpoint=endpoint,
            ) from None
        try:
            return _parse_response(response, endpoint)
        except EasifyRateLimitError as exc:
            self._pacers[budget].push_back(exc.retry_after)  # holds every caller of this token
            raise

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the ``attempt``-th failure (1-based)."""
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _paginate(self, endpoint: str, params: dict[str, Any], page_size: int | None) -> Iterator[dict[str, Any]]:
        """Yield every row of a Laravel-paginated listing, one page in memory at a time.

        The vendor's ``links.next`` carries only ``?page=N`` (the filters are dropped), so pages are
        requested with our own parameters and ``links.next``/``meta.last_page`` only say when to stop.
        Rows that slid onto the next page because new rows arrived meanwhile are yielded once.
        """
        limit = _positive_int(page_size, "page_size") if page_size is not None else DEFAULT_PAGE_SIZE
        page = 1
        previous_ids: set[Any] = set()
        while True:
            body = self._request("GET", endpoint, params={**params, "limit": limit, "page": page})
            rows = body.get("data") or []
            current_ids = set()
            for row in rows:
                row_id = row.get("id")
                current_ids.add(row_id)
                if row_id is None or row_id not in previous_ids:
                    yield row
            if not rows or not _has_next_page(body, page):
                return
            previous_ids = current_ids
            page += 1

    # ------------------------------------------------------------------ endpoints

    def list_phone_numbers(self) -> list[dict[str, Any]]:
        """Return the account's active, approved phone numbers (all of them, unpaginated)."""
        return list(self._request("GET", "phone-numbers").get("data") or [])

    def iter_contacts(
        self, *, group_id: int | None = None, order: str = "desc", page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every contact, optionally of one contact group, following every page lazily."""
        params: dict[str, Any] = {"order": _order(order)}
        if group_id is not None:
            params["group_id"] = _positive_int(group_id, "group_id")
        if page_size is not None:
            _positive_int(page_size, "page_size")
        return self._paginate("contacts", params, page_size)

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
            newest_first=_order(order) == "desc",
        )
        params: dict[str, Any] = {"order": _order(order)}
        if status is not None:
            params["status"] = _report_status(status)
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
            _positive_int(page_size, "page_size")
        return self._iter_report_windows(windows, params, page_size)

    def _iter_report_windows(
        self, windows: list[tuple[dt.date, dt.date]], params: dict[str, Any], page_size: int | None
    ) -> Iterator[dict[str, Any]]:
        for index, (start, end) in enumerate(windows, 1):
            self.log.debug("SMS report window %d/%d: %s to %s", index, len(windows), start, end)
            window = {**params, "from_date": start.isoformat(), "to_date": end.isoformat()}
            yield from self._paginate("sms/report", window, page_size)

    def get_chat_history(
        self, sender: str, receiver: str, *, country_code: str | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Return the newest ``limit`` messages of a conversation (both directions), newest first."""
        params = {
            "sender": sender_digits(sender, parameter="sender"),
            **_recipient_params(parse_phone_number(receiver, country_code, parameter="receiver"), "receiver"),
            "limit": _positive_int(limit, "limit"),
        }
        return list(self._request("GET", "sms/chat-history", params=params).get("data") or [])

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
        reference = _positive_or_zero_int(after_id, "after_id")
        newer: list[dict[str, Any]] = []
        for limit in _HISTORY_LIMITS:
            rows = self.get_chat_history(sender, receiver, country_code=country_code, limit=limit)
            newer = [row for row in rows if _int_id(row.get("id")) > reference and _not_before(row, since, timezone)]
            if len(newer) < len(rows) or len(rows) < limit:
                break
        else:
            self.log.warning(
                "More than %d messages with %s since message %s: only the newest are searched",
                _HISTORY_LIMITS[-1], mask_phone(receiver), reference,
            )
        return sorted(newer, key=lambda row: _int_id(row.get("id")))

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

        Never sends twice: a failure after which the server may have recorded the message is
        resolved by looking for it in the conversation before sending again.

        :param after_message_id: The newest message id of the conversation before this send, when the
            caller already read it (see :meth:`newest_message_id`); saves one history read.
        :param paced: ``False`` when the caller already reserved send budget with :meth:`reserve_send_slots`.
        """
        sender = sender_digits(from_number, parameter="from_number")
        recipient = parse_phone_number(to_number, country_code, parameter="to_number")
        if message is not None and not isinstance(message, str):
            raise EasifyInvalidParameterError("message", type(message).__name__, "must be a string")
        if (message is None or not message.strip()) and media is None:
            raise EasifyInvalidParameterError("message", message, "a non-empty message or a media is required")
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
        media_file = _media_file(media) if media is not None else None
        if media is not None and media_file is None:
            fields["media"] = str(media)

        watermark = (
            self.newest_message_id(sender, recipient.e164) if after_message_id is None else int(after_message_id)
        )
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                if media_file is not None:
                    with media_file.open("rb") as handle:
                        mime = mimetypes.guess_type(media_file.name)[0] or "application/octet-stream"
                        body = self._request(
                            "POST", "sms/send", data=fields,
                            files={"media": (media_file.name, handle, mime)},
                            budget="send", retry_ambiguous=False, paced=paced,
                        )
                else:
                    body = self._request(
                        "POST", "sms/send", json=fields, budget="send", retry_ambiguous=False, paced=paced
                    )
            except (EasifyServerError, EasifyTransportError) as exc:
                recorded = self.find_sent_message(sender, recipient.e164, message, after_id=watermark)
                if recorded is not None:
                    self.log.warning(
                        "Send to %s failed (%s) but the server recorded it as %s; not sending again",
                        mask_phone(recipient.e164), exc, recorded,
                    )
                    return recorded
                if attempt == attempts:
                    raise
                delay = self.backoff_seconds(attempt)
                self.log.warning(
                    "Send to %s failed (%s) and was not recorded; retry %d in %.1fs",
                    mask_phone(recipient.e164), exc, attempt, delay,
                )
                time.sleep(delay)
                continue
            sms_id = str((body.get("data") or {}).get("sms_id", "")).strip()
            if not sms_id:
                raise EasifyApiError("send succeeded without an sms_id", status_code=200, endpoint="sms/send")
            self.log.info("Sent %s %s to %s", "MMS" if media is not None else "SMS", sms_id, mask_phone(recipient.e164))
            return sms_id
        raise AssertionError("unreachable")  # pragma: no cover

    def newest_message_id(self, sender: str, receiver: str, *, country_code: str | None = None) -> int:
        """The id of the newest message of a conversation (0 when empty): a watermark taken before a send."""
        rows = self.get_chat_history(sender, receiver, country_code=country_code, limit=1)
        return max((_int_id(row.get("id")) for row in rows), default=0)

    def find_sent_message(
        self,
        sender: str,
        receiver: str,
        message: str | None,
        *,
        country_code: str | None = None,
        after_id: int = 0,
        since: dt.datetime | None = None,
        timezone: str = "UTC",
    ) -> str | None:
        """The id of an outgoing message with this exact body sent after ``after_id`` (and at or after
        ``since``), else None. Tells whether a send whose answer was lost was recorded by the server.
        """
        rows = self.messages_after(
            sender, receiver, after_id=after_id, country_code=country_code, since=since, timezone=timezone
        )
        for row in rows:
            if row.get("send_by", "sender") == "sender" and (row.get("message") or "") == (message or ""):
                return str(row["id"])
        return None

    def reserve_send_slots(self, count: int) -> tuple[float, float]:
        """Reserve ``count`` sends of this token's budget at once: ``(start, end)`` epoch seconds.

        The caller may send ``count`` messages from ``start`` without further pacing (pass
        ``paced=False`` to :meth:`send_sms`); the next reservation of any caller starts at ``end``.
        """
        return self._pacers["send"].reserve_block(_positive_int(count, "count"))

    def send_window_budget(self) -> int:
        """Sends the API allows in one of its rate windows (0 when client pacing is off)."""
        s = self.settings
        return max(1, int(s.send_per_minute * s.send_window_seconds / 60)) if s.send_per_minute > 0 else 0

    def send_budget_wait(self) -> float:
        """Seconds until this token's send budget has a free slot (0 when pacing is off)."""
        return self._pacers["send"].seconds_until_free()

    def test_connection(self) -> tuple[bool, str]:
        """Call ``GET /phone-numbers`` and report the outcome (never includes the token)."""
        try:
            numbers = self._request("GET", "phone-numbers", max_retries=0).get("data") or []
        except EasifyError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows whatever went wrong
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {self.settings.base_url}: {len(numbers)} active phone number(s)."

    # ------------------------------------------------------------------ replies (sensors and triggers)

    def get_replies(
        self, sender: str, receiver: str, *, after_id: int | str, country_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the incoming messages (``send_by == "receiver"``) newer than message ``after_id``, oldest first."""
        rows = self.messages_after(sender, receiver, after_id=after_id, country_code=country_code)
        return [row for row in rows if row.get("send_by") == "receiver"]


class EasifySingleAttemptHook(EasifyHook):
    """An :class:`EasifyHook` that tries every request once and raises what fails, 429s included.

    For triggers: their own loop waits between attempts on the event loop, where the wait can be
    cancelled, instead of a worker thread sleeping through retries. A 429 still holds back every
    other caller of the token through the shared pacer.
    """

    retry_requests = False


# ---------------------------------------------------------------------- helpers


def _extra_number(extra: dict[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return float(default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum:
        raise EasifyConfigurationError(f"Connection extra {key}={value!r} is invalid: must be a number >= {minimum}")
    return number


def _extra_timezone(extra: dict[str, Any]) -> str:
    import pendulum

    name = str(extra.get("timezone") or "UTC")
    try:
        pendulum.timezone(name)
    except Exception:  # noqa: BLE001 - pendulum raises several types for unknown zones
        raise EasifyConfigurationError(
            f"Connection extra timezone={name!r} is invalid: must be an IANA time zone such as 'UTC'"
        ) from None
    return name


def _positive_or_zero_int(value: Any, parameter: str) -> int:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise EasifyInvalidParameterError(parameter, value, "must be a message id (a non-negative integer)")
    return int(text)


def _positive_int(value: Any, parameter: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise EasifyInvalidParameterError(parameter, value, "must be a positive integer")
    number = int(value)
    if number < 1:
        raise EasifyInvalidParameterError(parameter, value, "must be a positive integer")
    return number


def _order(order: str) -> str:
    if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
        raise EasifyInvalidParameterError("order", order, "must be 'asc' or 'desc'")
    return order.lower()


def _report_status(status: str) -> str:
    for known in REPORT_STATUSES:
        if isinstance(status, str) and status.strip().lower() == known.lower():
            return known
    raise EasifyInvalidParameterError("status", status, f"must be one of {', '.join(REPORT_STATUSES)}")


def _recipient_params(recipient: PhoneNumber, parameter: str) -> dict[str, str]:
    return {parameter: recipient.national, "country_code": recipient.country_code}


def _media_file(media: str | os.PathLike[str]) -> Path | None:
    """A local file to upload, or None when ``media`` is a URL. Unusable values are refused."""
    text = os.fspath(media).strip() if isinstance(media, (str, os.PathLike)) else ""
    if not text:
        raise EasifyInvalidParameterError("media", media, "must be a URL or the path of a readable local file")
    if re.match(r"^https?://", text, re.IGNORECASE):
        return None
    path = Path(text).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise EasifyInvalidParameterError(
            "media", text, "must be an http(s) URL or the path of a readable local file (no such file)"
        )
    return path


def _int_id(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def _not_before(row: dict[str, Any], since: dt.datetime | None, timezone: str) -> bool:
    if since is None:
        return True
    try:
        return dates.parse_created_at(str(row.get("created_at")), timezone=timezone) >= since
    except ValueError:
        return True  # an unreadable timestamp cannot rule the row out


def _has_next_page(body: dict[str, Any], page: int) -> bool:
    links = body.get("links")
    if isinstance(links, dict) and "next" in links:
        return bool(links.get("next"))
    meta = body.get("meta")
    if isinstance(meta, dict) and meta.get("last_page") is not None:
        return page < int(meta["last_page"])
    return False


def _requests_exceptions() -> Any:
    from requests import exceptions

    return exceptions


def _never_reached_server(exc: BaseException) -> bool:
    """True when the request certainly never left (connection refused, connect timeout, DNS)."""
    if isinstance(exc, _requests_exceptions().ConnectTimeout):
        return True
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (NewConnectionError, ConnectTimeoutError, NameResolutionError)):
            return True
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return False


def _parse_response(response: requests.Response, endpoint: str) -> dict[str, Any]:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if 200 <= status < 300 or status >= 500:
            raise EasifyTransportError(
                f"unparseable response body (HTTP {status})", request_sent=True, status_code=status, endpoint=endpoint
            )
        body = {"message": (response.text or response.reason or "")[:200]}
    message = str(body.get("message") or response.reason or "").strip()
    errors = body.get("errors")
    if 200 <= status < 300 and body.get("status") is not False:
        return body
    kwargs: dict[str, Any] = {"status_code": status, "errors": errors, "endpoint": endpoint}
    if status == 401:
        raise EasifyAuthError(message or "Unauthenticated", **kwargs)
    if status == 402:
        raise EasifyPaymentRequiredError(message, **kwargs)
    if status == 403:
        raise EasifyPlanError(message, **kwargs)
    if status == 429:
        raise EasifyRateLimitError(message, retry_after=_retry_after(message, response), **kwargs)
    if status >= 500:
        raise EasifyServerError(message or f"HTTP {status}", **kwargs)
    lowered = message.lower()
    if "enough credits" in lowered:
        raise EasifyInsufficientCreditsError(message, **kwargs)
    if "from number" in lowered and "invalid" in lowered:
        raise EasifyInvalidSenderError(message, **kwargs)
    if "invalidrecipient" in lowered.replace(" ", "") or "blacklisted" in lowered:
        raise EasifyInvalidRecipientError(message, **kwargs)
    if status in (400, 422) or 200 <= status < 300:
        raise EasifyValidationError(message or "request refused", **kwargs)
    raise EasifyApiError(message or f"HTTP {status}", **kwargs)


def _retry_after(message: str, response: requests.Response) -> float:
    match = _RETRY_AFTER.search(message)
    if match:
        return max(float(match.group(1)), 0.5)
    header = response.headers.get("Retry-After", "")
    return max(float(header), 0.5) if header.replace(".", "", 1).isdigit() else 60.0
