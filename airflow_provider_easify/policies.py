"""A retry policy for tasks that call Easify (Airflow 3.3+ ``retry_policy``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_provider_easify.exceptions import NON_RETRYABLE_ERRORS, EasifyError, EasifyRateLimitError

try:
    from airflow.providers.common.compat.sdk import RetryDecision, RetryPolicy
except (ImportError, AttributeError):  # Airflow < 3.3 has no retry policies
    RetryPolicy = None  # type: ignore[assignment,misc]


def find_easify_error(exception: BaseException | None) -> EasifyError | None:
    """The Easify error behind ``exception``, following ``raise ... from`` chains."""
    seen = set()
    while exception is not None and id(exception) not in seen:
        if isinstance(exception, EasifyError):
            return exception
        seen.add(id(exception))
        exception = exception.__cause__ or exception.__context__
    return None


if RetryPolicy is not None:

    class EasifyRetryPolicy(RetryPolicy):
        """
        Fail at once on errors no retry can fix (auth, plan, payment, validation, bad input); retry a
        rate-limited task after the wait the server named; leave everything else to the task's retries.

        Usage: ``EasifySendSmsOperator(..., retries=3, retry_policy=EasifyRetryPolicy())``.
        """

        def evaluate(
            self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
        ) -> RetryDecision:
            error = find_easify_error(exception)
            if isinstance(error, NON_RETRYABLE_ERRORS):
                return RetryDecision.fail(reason=f"Easify {type(error).__name__} cannot be fixed by retrying")
            if isinstance(error, EasifyRateLimitError):
                return RetryDecision.retry(
                    delay=dt.timedelta(seconds=error.retry_after), reason="Easify rate limit: waiting as told"
                )
            return RetryDecision.default()

        def serialize(self) -> dict[str, Any]:
            return {"__type": "EasifyRetryPolicy"}

        @classmethod
        def deserialize(cls, data: dict[str, Any]) -> EasifyRetryPolicy:
            return cls()

else:

    class EasifyRetryPolicy:  # type: ignore[no-redef]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

            raise AirflowOptionalProviderFeatureException(
                "EasifyRetryPolicy needs Airflow 3.3 or newer (task retry_policy); the Easify operators "
                "already fail fast on non-retryable errors on every Airflow version."
            )
