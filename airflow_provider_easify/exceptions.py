"""Typed exceptions for the Easify provider.

Everything raised by this package derives from :class:`EasifyError`, an ``AirflowException``.
Errors answered by the API derive from :class:`EasifyApiError` and carry the HTTP status code,
the server's message and its ``errors`` payload. Arguments refused locally, before any request,
raise :class:`EasifyInvalidParameterError`, which names the parameter and what is allowed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class EasifyError(AirflowException):
    """Base class of every error raised by the Easify provider."""


class EasifyInvalidParameterError(EasifyError, ValueError):
    """An argument was refused locally; nothing was sent."""

    def __init__(self, parameter: str, value: Any, allowed: str) -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        super().__init__(f"Invalid {parameter}={value!r}: {allowed}")


class EasifyConfigurationError(EasifyError):
    """The Airflow connection is incomplete or malformed (for example, no API token)."""


class EasifyApiError(EasifyError):
    """The Easify API answered with an error."""

    #: Whether repeating the same request later may succeed.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        errors: Any = None,
        endpoint: str | None = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException types it HTTPStatus
        self.message = message
        self.errors = errors if errors is not None else []
        self.endpoint = endpoint
        where = f" on {endpoint}" if endpoint else ""
        if status_code is None:
            super().__init__(f"Easify API request failed{where}: {message}")
        else:
            super().__init__(f"Easify API error {status_code}{where}: {message}")


class EasifyAuthError(EasifyApiError):
    """401: the token is missing or invalid."""


class EasifyPaymentRequiredError(EasifyApiError):
    """402: the account's subscription has ended."""


class EasifyPlanError(EasifyApiError):
    """403: the account's plan does not include API access."""


class EasifyValidationError(EasifyApiError):
    """400 or 422: the server refused the request's parameters."""


class EasifyInvalidRecipientError(EasifyValidationError):
    """400: the recipient is invalid or blacklisted (a per-recipient problem)."""


class EasifyInvalidSenderError(EasifyValidationError):
    """400: ``from_number`` is not a number of this account."""


class EasifyInsufficientCreditsError(EasifyApiError):
    """400: the account has no credits left (an account-level problem)."""


class EasifyRateLimitError(EasifyApiError):
    """429: too many requests; ``retry_after`` holds the seconds the server asked to wait."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class EasifyServerError(EasifyApiError):
    """5xx: the server failed."""

    retryable = True


class EasifyTransportError(EasifyApiError):
    """The request got no usable answer: connection refused or dropped, timeout, unparseable body."""

    retryable = True

    def __init__(self, message: str, *, request_sent: bool, **kwargs: Any) -> None:
        #: False only when the request certainly never reached the server (connect failure).
        self.request_sent = request_sent
        super().__init__(message, **kwargs)


class EasifySendUnconfirmedError(EasifyError):
    """A send may have gone out and nothing could tell: it was not posted again.

    Raised when ``sms/send`` failed in a way the server may have recorded (a 5xx, a dropped connection,
    a timeout, a garbled answer) and the lookup that would tell could not run to completion (the report
    answered an error, timed out or stayed rate limited), or no message id was known before the send;
    and by a retried task whose earlier try left such a send that it still cannot look up. It derives
    from :class:`EasifyError`, not :class:`EasifyApiError`: it is no single answer of the API, and no
    layer retries it by posting again. A retried task resolves it by looking first (the operators' send
    journal) and raises it again while it still cannot look.

    The message names the masked recipient(s), when the send was attempted and what is known; never the
    message body or the token. ``recipients`` holds the masked numbers.
    """

    def __init__(
        self, message: str, *, recipients: list[str] | None = None, attempted_at: dt.datetime | None = None
    ) -> None:
        self.recipients = list(recipients or [])
        self.attempted_at = attempted_at
        super().__init__(message)

    @classmethod
    def for_send(
        cls,
        recipient: str,
        attempted_at: float,
        *,
        known: str,
        send_error: BaseException | None = None,
        lookup_error: BaseException | None = None,
    ) -> EasifySendUnconfirmedError:
        """The error of one send to ``recipient`` (E.164; masked here) attempted at ``attempted_at`` (epoch)."""
        from airflow_provider_easify.utils.phone import mask_phone, mask_phone_numbers_in_text

        def said(error: BaseException) -> str:
            return mask_phone_numbers_in_text(f"{type(error).__name__}: {error}")

        masked = mask_phone(recipient)
        at = dt.datetime.fromtimestamp(attempted_at, dt.UTC)
        failed = f"it failed after the server may have recorded it ({said(send_error)}) and " if send_error else ""
        looked = f"; the lookup failed ({said(lookup_error)})" if lookup_error is not None else ""
        return cls(
            f"Send to {masked} attempted at {at.isoformat(timespec='seconds')} is unconfirmed: {failed}{known}"
            f"{looked}. It was not posted again; a retry looks for it before sending.",
            recipients=[masked], attempted_at=at,
        )


def may_have_been_recorded(exc: BaseException) -> bool:
    """Whether the server may have done the work before this failure (a 5xx, a lost or garbled answer)."""
    if isinstance(exc, EasifyTransportError):
        return exc.request_sent
    return isinstance(exc, EasifyServerError)


#: Errors that no retry of the task or of the request can fix.
NON_RETRYABLE_ERRORS: tuple[type[EasifyError], ...] = (
    EasifyAuthError,
    EasifyPaymentRequiredError,
    EasifyPlanError,
    EasifyValidationError,
    EasifyInsufficientCreditsError,
    EasifyInvalidParameterError,
    EasifyConfigurationError,
)

#: Errors that end a bulk run at once because they concern the whole account.
ACCOUNT_ERRORS: tuple[type[EasifyError], ...] = (
    EasifyAuthError,
    EasifyPaymentRequiredError,
    EasifyPlanError,
    EasifyInsufficientCreditsError,
    EasifyInvalidSenderError,
    EasifyConfigurationError,
)


def fail_fast(exc: EasifyError) -> AirflowFailException:
    """Turn an error no retry can fix (401/402/403, validation, bad input) into an immediate failure."""
    failure = AirflowFailException(f"{type(exc).__name__}: {exc} (not retried: retrying cannot fix this)")
    failure.__cause__ = exc
    return failure
