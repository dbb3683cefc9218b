"""The base of the Easify sensors: the first check, the deferral, and the trigger's event turned into the
outcome (the XCom, a failure, a skip), the same in poke, reschedule and deferrable mode."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
)

from airflow_provider_easify import exceptions
from airflow_provider_easify.exceptions import (
    NON_RETRYABLE_ERRORS,
    EasifyApiError,
    EasifyError,
    EasifyRateLimitError,
    EasifyTransportError,
    fail_fast,
)
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.utils.phone import parse_phone_number, sender_digits

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger


#: The deferral's own timeout runs this much past the sensor's ``timeout``: the trigger ends at the
#: timeout itself with a precise message; the deferral timeout only catches a trigger that cannot run.
DEFERRAL_GRACE = timedelta(minutes=1)


def trigger_error(event: dict[str, Any]) -> EasifyError:
    """Rebuild the typed error a trigger reported, carrying the server's message."""
    error_type = str(event.get("error_type") or "")
    message = str(event.get("message") or "unknown error")
    cls = getattr(exceptions, error_type, None)
    if (
        isinstance(cls, type)
        and issubclass(cls, EasifyApiError)
        and not issubclass(cls, (EasifyRateLimitError, EasifyTransportError))
    ):
        return cls(message, status_code=event.get("status_code"))
    if cls is exceptions.EasifyConfigurationError:
        return cls(message)
    return EasifyError(f"{error_type or 'Error'}: {message}")


class EasifyWaitSensor(BaseSensorOperator):
    """What the Easify sensors share: the hook, the deferral, and events turned into outcomes."""

    def __init__(
        self,
        *,
        deferrable: bool,
        easify_conn_id: str,
        poke_interval: timedelta | float,
        timeout: timedelta | float,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.deferrable = deferrable
        self.easify_conn_id = easify_conn_id

    @cached_property
    def hook(self) -> EasifyHook:
        return EasifyHook(easify_conn_id=self.easify_conn_id)

    # -------------------------------------------------------------- for subclasses

    def _check_arguments(self) -> None:
        """Validate the rendered arguments before any request."""

    def _trigger(self, deadline: float, not_before: float) -> BaseTrigger:
        raise NotImplementedError

    def _timeout_message(self) -> str:
        raise NotImplementedError

    def _on_event(self, event: dict[str, Any]) -> Any:
        """Handle a ``success``, ``failure`` or ``timeout`` event: return the XCom or raise."""
        raise NotImplementedError

    # -------------------------------------------------------------- execution

    def execute(self, context: Context) -> Any:
        try:
            return self._execute(context)
        except NON_RETRYABLE_ERRORS as exc:
            raise fail_fast(exc) from exc

    def _execute(self, context: Context) -> Any:
        self._check_arguments()
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(self._timeout_message()) from exc
        deadline = time.time() + self.timeout
        done = self.poke(context)
        if isinstance(done, PokeReturnValue) and done.is_done:
            return done.xcom_value
        remaining = timedelta(seconds=max(deadline - time.time(), 0))
        # The trigger's first poll comes one poke_interval after this check, not right away.
        self.defer(
            trigger=self._trigger(deadline, not_before=time.time() + self.poke_interval),
            method_name="execute_complete",
            timeout=remaining + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: the wait's result, or the failure it ended with."""
        if not isinstance(event, dict):
            raise AirflowException(f"{self.task_id}: the trigger ended without an event ({event!r})")
        if event.get("status") in ("success", "failure", "timeout"):
            return self._on_event(event)
        raise trigger_error(event)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        # The base class turns any exception after a deferral into a skip when soft_fail is set. An API
        # error (bad token, plan, payment) fails the task in poke mode even with soft_fail, so it does here.
        event = (next_kwargs or {}).get("event")
        if next_method == "execute_complete" and isinstance(event, dict) and event.get("status") == "error":
            error = trigger_error(event)
            raise fail_fast(error) if isinstance(error, NON_RETRYABLE_ERRORS) else error
        return super().resume_execution(next_method, next_kwargs, context)

    def _check_phones(self, sender: str, receiver: str, country_code: str | None) -> None:
        sender_digits(sender, parameter="sender")
        parse_phone_number(receiver, country_code, parameter="receiver")


