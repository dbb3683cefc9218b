"""Wait until every message of a bulk send is final: one read answers many."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_easify.exceptions import EasifyApiError, EasifyInvalidParameterError
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.sensors.base import EasifyWaitSensor
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.phone import mask_phone, sender_digits
from airflow_provider_easify.utils.waiting import (
    StatusWait,
    bulk_event,
    fetch_status_rows,
    pending_count,
    wait_statuses,
)

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger


class EasifyBulkSmsStatusSensor(EasifyWaitSensor):
    """
    Wait until every message of a bulk send has a final status; return them and their counts.

    ``{"statuses": {"315012": "Delivered", ...}, "counts": {"Delivered": 48, "Failed": 2}}``. Each check
    reads the SMS report of ``sender`` newest first, one read per page of its messages scanned, never one
    per message; deferred, the trigger shares one poller with every other status wait of the sender
    (:mod:`..triggers.coalesce`). When every message is final, a share of failure statuses above
    ``max_failure_ratio`` fails the task (or skips it with ``soft_fail``). At ``timeout`` the task fails
    naming how many messages are still not final.

    .. code-block:: python

        bulk = EasifyBulkSendSmsOperator(task_id="send", from_number=SENDER, group_id=3, message="...")
        EasifyBulkSmsStatusSensor(task_id="delivered", messages=bulk.output, sender=SENDER)

    :param messages: What to wait for (templated): the XCom of :class:`EasifyBulkSendSmsOperator` (its
        ``"sent"`` ids are waited for) or a list of sms ids.
    :param sender: The account number the messages were sent from (templated).
    :param target_statuses: Statuses that count as done.
    :param failure_statuses: Final statuses that count as failed.
    :param max_failure_ratio: The share of failed messages (0 to 1) above which the task fails; default 1.0
        (never for failures alone).
    :param since: The day the messages were sent on or after (``YYYY-MM-DD``, templated); default the day
        before the DAG run started, which bounds the report scan.
    :param deferrable: Wait in the triggerer instead of a worker slot. The first check runs before deferring.
    :param poke_interval: Seconds between checks (default 60).
    :param timeout: Seconds to wait in all before failing (default one hour).
    :param easify_conn_id: The Easify connection.
    """

    template_fields: Sequence[str] = ("messages", "sender", "since")
    ui_color = "#d7ecf7"

    def __init__(
        self,
        *,
        messages: Any,
        sender: str,
        target_statuses: Iterable[str] = ("Delivered",),
        failure_statuses: Iterable[str] = ("Failed", "Undelivered"),
        max_failure_ratio: float = 1.0,
        since: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = 60 * 60,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            deferrable=deferrable, easify_conn_id=easify_conn_id, poke_interval=poke_interval, timeout=timeout, **kwargs
        )
        self.messages = messages
        self.sender = sender
        self.since = since
        self.target_statuses, self.failure_statuses = wait_statuses(target_statuses, failure_statuses)
        if isinstance(max_failure_ratio, bool) or not isinstance(max_failure_ratio, (int, float)) or not (
            0 <= max_failure_ratio <= 1
        ):
            raise EasifyInvalidParameterError("max_failure_ratio", max_failure_ratio, "must be a number from 0 to 1")
        self.max_failure_ratio = float(max_failure_ratio)
        self._sms_ids: tuple[str, ...] = ()
        self._statuses: dict[str, str | None] = {}

    def _check_arguments(self) -> None:
        self._sms_ids = _sms_ids_of(self.messages)
        sender_digits(self.sender, parameter="sender")
        if self.since not in (None, ""):
            self.since = dates.to_date(self.since, parameter="since").isoformat()

    def execute(self, context: Context) -> Any:
        if self.since in (None, ""):
            started = getattr(context.get("dag_run"), "start_date", None)
            if started is not None:
                self.since = (started - timedelta(days=1)).date().isoformat()
        return super().execute(context)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            rows = fetch_status_rows(self.hook, self.sender, [StatusWait(self._sms_ids, since=self.since)])
        except EasifyApiError as exc:
            if not exc.retryable:
                raise
            self.log.warning("Could not read the statuses (%s); checking again later", exc)
            return False
        self._statuses = {sms_id: None if row is None else row.get("status") for sms_id, row in rows.items()}
        event = bulk_event(self._statuses, self.target_statuses, self.failure_statuses)
        if event is None:
            pending = pending_count(self._statuses, self.target_statuses, self.failure_statuses)
            self.log.info("%d of %d messages not final yet", pending, len(self._sms_ids))
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._on_event(event))

    def _on_event(self, event: dict[str, Any]) -> Any:
        self._statuses = dict(event.get("statuses") or self._statuses)
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(self._timeout_message())
        counts = dict(Counter(status for status in self._statuses.values() if status is not None))
        failed = sum(counts.get(status, 0) for status in self.failure_statuses)
        total = len(self._statuses)
        self.log.info("All %d messages final: %s", total, counts)
        if total and failed / total > self.max_failure_ratio:
            message = (
                f"{failed} of {total} messages ended {'/'.join(self.failure_statuses)}, more than "
                f"max_failure_ratio={self.max_failure_ratio:g}"
            )
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowFailException(message)
        return {"statuses": self._statuses, "counts": counts}

    def _timeout_message(self) -> str:
        pending = pending_count(self._statuses, self.target_statuses, self.failure_statuses) if self._statuses else len(
            self._sms_ids
        )
        return (
            f"{pending} of {len(self._sms_ids)} messages from {mask_phone(self.sender)} were still not final at "
            f"the timeout of {self.timeout:g} s (waiting for {', '.join(self.target_statuses)})"
        )

    def _trigger(self, deadline: float, not_before: float) -> BaseTrigger:
        from airflow_provider_easify.triggers.sms import EasifyBulkSmsStatusTrigger

        return EasifyBulkSmsStatusTrigger(
            sms_ids=list(self._sms_ids), sender=self.sender, target_statuses=self.target_statuses,
            failure_statuses=self.failure_statuses, poke_interval=self.poke_interval, deadline=deadline,
            easify_conn_id=self.easify_conn_id, not_before=not_before, since=self.since,
        )


def _sms_ids_of(messages: Any) -> tuple[str, ...]:
    """The sms ids of a bulk send's XCom (its ``"sent"``), of a list of ids, or of either rendered as text."""
    value = messages
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        value = list((value.get("sent") or {}).values()) if "sent" in value else None
    if value is None or isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise EasifyInvalidParameterError(
            "messages", type(messages).__name__, "must be a bulk send's XCom (with 'sent') or a list of sms ids"
        )
    ids = []
    for sms_id in value:
        text = str(sms_id).strip() if isinstance(sms_id, (str, int)) and not isinstance(sms_id, bool) else ""
        if not text.isdigit():
            raise EasifyInvalidParameterError("messages", sms_id, "each sms id must be digits")
        ids.append(text)
    if not ids:
        raise EasifyInvalidParameterError("messages", messages, "no sms id to wait for (nothing was sent)")
    return tuple(dict.fromkeys(ids))
