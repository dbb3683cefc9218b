"""The one request path to the Easify API: auth, timeout, error mapping, retries and pacing.

Every call of :class:`EasifyTransport.request` goes through the same steps:

1. wait for a slot of the token's send or read budget (:mod:`.pacing`, shared across hosts through
   :mod:`.redis_pacing` when configured);
2. send the request with the bearer token and the connection's timeout;
3. map the answer to a JSON body or a typed error (:mod:`.responses`);
4. retry with tenacity what a retry can fix.

Retry rules. 401/402/403/400/422 never retry. A 429 holds every caller of the token for the time the
server names, and the call waits it out. 5xx, timeouts, dropped connections and garbled answers
retry with exponential backoff and jitter, up to ``max_retries``. A send (not idempotent on the
server) is repeated here only after what the server cannot have recorded (a 429, a connection that
never reached it); a failure it may have recorded is raised at once, for :mod:`..hooks.sending` to
look for the message and decide. ``max_retries=0``
retries nothing, 429s included. All waits of one call for budget (pacer slots and 429s together)
are bounded by ``max_rate_limit_wait``; past it the call raises :class:`EasifyRateLimitError`.

A transport built with ``blocking_pacing=False`` (for triggers) never sleeps for a slot: it reserves
the slot and raises :class:`PacingDeferred`; the caller sleeps on its event loop and calls again, and
the reserved slot is then spent without a new reservation.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception

from airflow_provider_easify.exceptions import (
    EasifyRateLimitError,
    EasifyServerError,
    EasifyTransportError,
    may_have_been_recorded,
)
from airflow_provider_easify.transport.pacing import LocalPacer, Pacer, PacingRefused, Reservation, budget_digest
from airflow_provider_easify.transport.responses import never_reached_server, parse_response
from airflow_provider_easify.transport.settings import EasifyConnectionSettings
from airflow_provider_easify.transport.watermark import TokenWatermark
from airflow_provider_easify.utils.phone import mask_phone_numbers_in_text

if TYPE_CHECKING:
    import requests

Budget = Literal["read", "send"]
#: A 429 is retried at most this many times per call, however short its waits.
MAX_RATE_LIMIT_RETRIES = 20
#: Waits this short are slept even by a non-blocking transport.
NEGLIGIBLE_WAIT = 0.01

class PacingDeferred(Exception):
    """A slot is reserved ``delay`` seconds from now: sleep that long, then repeat the call."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        super().__init__(f"budget slot in {delay:.2f}s")


class _MaskPhoneNumbers(logging.Filter):
    """Masks phone numbers in urllib3's DEBUG request lines to the Easify API (its URLs carry sender and
    receiver); lines about other hosts, of other libraries in the same process, are left alone."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 1 and args[1] in self.hosts:
            record.msg = mask_phone_numbers_in_text(record.getMessage())
            record.args = None
        return True


_URLLIB3_FILTER = _MaskPhoneNumbers()


@dataclasses.dataclass
class _CallBudget:
    """How long one call may still wait for budget (pacer slots and 429s together)."""

    remaining: float

    def refuse(self, wait: float, message: str | None = None) -> EasifyRateLimitError:
        text = message or "Easify rate limit"
        return EasifyRateLimitError(
            f"{text}: the next request could go out in {wait:.0f}s, longer than this call may wait "
            f"(max_rate_limit_wait={self.remaining:.0f}s left)",
            retry_after=wait,
        )


class EasifyTransport:
    """The one request path of a connection: session, auth, timeout, error mapping, retries and pacing."""

    def __init__(
        self,
        settings: EasifyConnectionSettings,
        *,
        logger: logging.Logger | Any,
        redis_client_factory: Callable[[], Any] | None = None,
        retry_requests: bool = True,
        blocking_pacing: bool = True,
    ) -> None:
        self.settings = settings
        self.log = logger
        self.retry_requests = retry_requests
        self.blocking_pacing = blocking_pacing
        self.requests_made = 0
        #: The server's clock minus ours (seconds), from the ``Date`` header of its latest answer; None until one.
        self.server_clock_offset: float | None = None
        self._redis_client_factory = redis_client_factory
        self._session: requests.Session | None = None
        self._pacers: dict[str, Pacer] | None = None
        self._watermark: TokenWatermark | None = None
        self._prepaid: dict[str, list[float]] = {"read": [], "send": []}
        self._slots_taken = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ parts built on first use

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests  # imported on first use so that DAG files parse fast

            _URLLIB3_FILTER.hosts.add(urlsplit(self.settings.base_url).hostname or "")
            logging.getLogger("urllib3.connectionpool").addFilter(_URLLIB3_FILTER)
            session = requests.Session()
            session.headers.update({"Authorization": f"Bearer {self.settings.token}", "Accept": "application/json"})
            self._session = session
        return self._session

    @property
    def pacers(self) -> dict[str, Pacer]:
        if self._pacers is None:
            with self._lock:
                if self._pacers is None:
                    self._pacers = self._build_pacers()
        return self._pacers

    def _build_pacers(self) -> dict[str, Pacer]:
        s = self.settings
        digest = budget_digest(s.base_url, s.token)
        # No caller reserves further than it may wait, plus one window of burst: beyond that a slot is impossible.
        horizon = s.max_rate_limit_wait + 2 * max(60.0, s.send_window_seconds)
        rates = {"read": s.read_per_minute, "send": s.send_per_minute}
        local = {kind: LocalPacer(digest, kind, rate, horizon=horizon) for kind, rate in rates.items()}
        if self._redis_client_factory is None:
            return dict(local)
        from airflow_provider_easify.transport.redis_pacing import RedisPacer

        return {
            kind: RedisPacer(
                self._redis_client_factory, digest=digest, kind=kind, per_minute=rate, horizon=horizon,
                fallback=local[kind], name=str(s.pacing_redis_conn_id),
            )
            for kind, rate in rates.items()
        }

    @property
    def watermark(self) -> TokenWatermark:
        """The highest ``sms_id`` known for this token (shared through Redis when configured)."""
        if self._watermark is None:
            s = self.settings
            self._watermark = TokenWatermark(
                budget_digest(s.base_url, s.token), redis_client_factory=self._redis_client_factory,
                name=str(s.pacing_redis_conn_id or ""),
            )
        return self._watermark

    # ------------------------------------------------------------------ budget

    def reserve(self, budget: Budget, count: int = 1, *, max_wait: float | None = None) -> Reservation:
        """Reserve ``count`` slots at once; raises :class:`EasifyRateLimitError` if they are too far away."""
        limit = self.settings.max_rate_limit_wait if max_wait is None else max_wait
        try:
            return self.pacers[budget].reserve(count, max_wait=limit)
        except PacingRefused as refused:
            raise _CallBudget(limit).refuse(refused.wait) from None

    def seconds_until_free(self, budget: Budget) -> float:
        """Seconds until ``budget`` (``send`` or ``read``) has a free slot, reserving nothing."""
        return self.pacers[budget].seconds_until_free()

    def new_unit_of_work(self) -> None:
        """A non-blocking caller starts a unit of work (a poll) that it repeats whole after :class:`PacingDeferred`."""
        self._slots_taken = 0

    def _take_slot(self, budget: Budget, call: _CallBudget) -> None:
        prepaid = self._prepaid[budget]
        if prepaid:
            if prepaid[0] > time.time() + NEGLIGIBLE_WAIT:
                raise PacingDeferred(prepaid[0] - time.time())
            prepaid.pop(0)
            self._slots_taken += 1
            return
        # A repeated unit of work spends again the slots it took before its deferral: reserve them together.
        count = 1 if self.blocking_pacing else self._slots_taken + 1
        try:
            slot = self.pacers[budget].reserve(count, max_wait=call.remaining)
        except PacingRefused as refused:
            raise call.refuse(refused.wait) from None
        delay = slot.delay
        if delay > NEGLIGIBLE_WAIT and not self.blocking_pacing:
            prepaid.extend([slot.start] * count)
            self._slots_taken = 0
            raise PacingDeferred(delay)
        prepaid.extend([slot.start] * (count - 1))
        self._slots_taken += 1
        if delay > NEGLIGIBLE_WAIT:
            call.remaining -= delay
            time.sleep(delay)

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        budget: Budget = "read",
        send: bool = False,
        max_retries: int | None = None,
        paced: bool = True,
    ) -> dict[str, Any]:
        """Make one API call (with its retries) and return the JSON body; see the module docstring."""
        retries = self.settings.max_retries if max_retries is None else max_retries
        if not self.retry_requests:
            retries = 0
        call = _CallBudget(self.settings.max_rate_limit_wait)

        def attempt() -> dict[str, Any]:
            if paced:
                self._take_slot(budget, call)
            return self._request_once(method, endpoint, params, json, data, files, budget)

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, EasifyRateLimitError):
                return exc.status_code == 429  # a wait refused here, before any request, is final
            if not isinstance(exc, (EasifyServerError, EasifyTransportError)):
                return False
            # A send that may have been recorded is never repeated here: hooks.sending decides.
            return not send or not may_have_been_recorded(exc)

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if retries <= 0:
                return True
            if isinstance(exc, EasifyRateLimitError):
                if state.attempt_number > MAX_RATE_LIMIT_RETRIES:
                    return True
                return not paced and exc.retry_after > call.remaining
            return state.attempt_number > retries

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, EasifyRateLimitError):
                if paced:
                    return 0.0  # the pacer, pushed back by the 429, holds this call and every other caller
                call.remaining -= exc.retry_after
                return exc.retry_after
            return self.backoff_seconds(state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning("Easify %s %s failed (%s); retry %d", method, endpoint, exc, state.attempt_number)

        retrying = Retrying(
            retry=retry_if_exception(retryable), stop=stop, wait=wait, before_sleep=before_sleep, reraise=True
        )
        return retrying(attempt)

    def _request_once(
        self,
        method: str,
        endpoint: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        data: dict[str, Any] | None,
        files: dict[str, Any] | None,
        budget: Budget,
    ) -> dict[str, Any]:
        from requests import RequestException

        url = f"{self.settings.base_url}/{endpoint}"
        for fileobj in (files or {}).values():
            fileobj[1].seek(0)
        self.requests_made += 1
        try:
            response = self.session.request(
                method, url, params=params, json=json, data=data, files=files, timeout=self.settings.timeout
            )
        except RequestException as exc:
            raise EasifyTransportError(
                f"{type(exc).__name__} calling {method} {endpoint}",
                request_sent=not never_reached_server(exc),
                endpoint=endpoint,
            ) from None
        self._note_server_clock(response)
        try:
            return parse_response(response, endpoint)
        except EasifyRateLimitError as exc:
            self.pacers[budget].push_back(exc.retry_after)  # holds every caller of this token, on every host
            raise

    def _note_server_clock(self, response: requests.Response) -> None:
        try:
            stamp = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return
        self.server_clock_offset = stamp - time.time()

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the ``attempt``-th failure (1-based)."""
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def close(self) -> None:
        """Close the HTTP session (a later request opens a new one)."""
        if self._session is not None:
            self._session.close()
            self._session = None

