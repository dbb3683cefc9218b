"""Turn an HTTP answer (or the lack of one) into a JSON body or a typed :mod:`exceptions` error.

The status code decides first: a 5xx is a server error whatever its body (a gateway's HTML page, an
empty body), and a 401/402/403/429 keeps its meaning even if a proxy replaced the JSON. Only then does
the vendor's message refine a 400/422 into invalid recipient, invalid sender or no credits.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_provider_easify.exceptions import (
    EasifyApiError,
    EasifyAuthError,
    EasifyInsufficientCreditsError,
    EasifyInvalidRecipientError,
    EasifyInvalidSenderError,
    EasifyPaymentRequiredError,
    EasifyPlanError,
    EasifyRateLimitError,
    EasifyServerError,
    EasifyTransportError,
    EasifyValidationError,
)

if TYPE_CHECKING:
    import requests

#: Used when a 429 names no wait at all (Laravel's limiter counts per minute).
DEFAULT_RETRY_AFTER = 60.0
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h\b|minutes?|mins?|m\b|seconds?|secs?|s\b)", re.IGNORECASE)
_MESSAGE_CHARS = 200


def retry_after_seconds(message: str, headers: Any = None) -> float:
    """The wait a 429 names: "Try again in 59 seconds", "in 2 minutes 5 seconds" (125), or a Retry-After header."""
    parts = _DURATION_PART.findall(message or "")
    if parts:
        total = sum(float(number) * _UNIT_SECONDS[unit[0].lower()] for number, unit in parts)
        return max(total, 0.5)
    header = str((headers or {}).get("Retry-After", "") or "").strip()
    if header.replace(".", "", 1).isdigit():
        return max(float(header), 0.5)
    return DEFAULT_RETRY_AFTER


def parse_response(response: requests.Response, endpoint: str) -> dict[str, Any]:
    """The JSON body of a successful answer; otherwise raise the error its status code means."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or "").strip()
        errors = body.get("errors")
    else:
        message, errors = _text_of(response), None
    kwargs: dict[str, Any] = {"status_code": status, "errors": errors, "endpoint": endpoint}
    if status >= 500:
        raise EasifyServerError(message or f"HTTP {status} {response.reason or ''}".strip(), **kwargs)
    if 200 <= status < 300:
        if not isinstance(body, dict):
            # The server may have done the work (a send recorded): callers treat this as ambiguous.
            raise EasifyTransportError(f"unparseable response body (HTTP {status})", request_sent=True, **kwargs)
        if body.get("status") is not False:
            return body
    if status == 401:
        raise EasifyAuthError(message or "Unauthenticated", **kwargs)
    if status == 402:
        raise EasifyPaymentRequiredError(message or "Payment required", **kwargs)
    if status == 403:
        raise EasifyPlanError(message or "Forbidden", **kwargs)
    if status == 429:
        raise EasifyRateLimitError(
            message or "Too many requests", retry_after=retry_after_seconds(message, response.headers), **kwargs
        )
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


def _text_of(response: requests.Response) -> str:
    """A short, readable message from a non-JSON body (HTML tags dropped)."""
    text = re.sub(r"<[^>]+>", " ", response.text or "")
    text = " ".join(text.split())
    return text[:_MESSAGE_CHARS] or (response.reason or "")


def never_reached_server(exc: BaseException) -> bool:
    """True when a request certainly never left (connection refused, connect timeout, DNS failure)."""
    from requests.exceptions import ConnectTimeout
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    if isinstance(exc, ConnectTimeout):
        return True
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
