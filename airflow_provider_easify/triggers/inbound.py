"""Incoming SMS as Airflow events: a trigger for an asset watcher, so a text starts a DAG run.

.. code-block:: python

    from airflow.sdk import DAG, Asset, AssetWatcher
    from airflow_provider_easify.triggers.inbound import EasifyInboundSmsTrigger

    stop_texts = Asset(
        "easify_stop_texts",
        watchers=[AssetWatcher(name="stop", trigger=EasifyInboundSmsTrigger(pattern=r"^stop$"))],
    )
    with DAG("opt_out", schedule=[stop_texts]): ...

The run's task finds the message in ``triggering_asset_events``: ``event.extra["payload"]`` holds
``sms_id``, ``from_number``, ``to_number`` (E.164), ``message``, ``created_at`` (ISO-8601 UTC),
``sms_type`` and ``media_url``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent
from packaging.specifiers import SpecifierSet

from airflow_provider_easify.exceptions import EasifyApiError, EasifyInvalidParameterError
from airflow_provider_easify.utils.hitl_support import airflow_version
from airflow_provider_easify.utils.inbound import (
    InboundCursor,
    InboundScan,
    account_numbers_arg,
    from_numbers_arg,
    make_filter,
)
from airflow_provider_easify.utils.waiting import error_pause

#: The Airflow releases whose asset state store was read for its private per-asset accessors.
ASSET_STORE_PRIVATE_ACCESSORS = SpecifierSet(">=3.3.0,<3.4")

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # Airflow 2 has no event-driven scheduling; the trigger still runs on its own
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]


class EasifyInboundSmsTrigger(BaseEventTrigger):
    """
    Fire one event per new incoming SMS of the account (``send_by == "receiver"``), never for outgoing ones.

    It starts from the newest message at its first start. On Airflow 3.3 it keeps its cursor in the
    watched asset's state store (``asset_state_store``), so a triggerer restart neither replays nor
    misses messages (a catch-up reaches back at most 30 days). The cursor is written after a poll's
    events are handed to the triggerer: a crash in between announces those events again, never loses
    them. Without that store (older Airflow, or the trigger run on its own) the cursor lives in memory,
    and a restart starts again from the newest message: what arrived while it was down is not announced.

    One poll reads the account's SMS report, newest first, once for every inbound watcher of the
    connection in the triggerer process (:class:`~.coalesce.InboundPoller`), paced by the token's shared
    read budget. 429s and transient failures wait on the event loop; errors no poll can fix are logged
    and retried with a growing pause (up to 15 minutes).

    :param easify_conn_id: The Easify connection.
    :param account_numbers: Only messages to these account numbers (E.164 or national digits); None: all.
    :param from_numbers: Only messages from these contacts (E.164); None: anyone.
    :param pattern: A regular expression the text must match (``re.search``, case-insensitive); None: any.
    :param poll_interval: Seconds between polls.
    """

    def __init__(
        self,
        *,
        easify_conn_id: str = "easify_default",
        account_numbers: str | list[str] | None = None,
        from_numbers: str | list[str] | None = None,
        pattern: str | None = None,
        poll_interval: float = 60,
    ) -> None:
        super().__init__()
        self.easify_conn_id = easify_conn_id
        self.account_numbers = account_numbers_arg(account_numbers)
        self.from_numbers = from_numbers_arg(from_numbers)
        self.pattern = pattern or None
        self.filter = make_filter(self.account_numbers, self.from_numbers, self.pattern)
        if not float(poll_interval) > 0:
            raise EasifyInvalidParameterError("poll_interval", poll_interval, "must be a positive number of seconds")
        self.poll_interval = float(poll_interval)
        self.cursor = InboundCursor()
        self._saved: dict[str, Any] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "easify_conn_id": self.easify_conn_id,
                "account_numbers": self.account_numbers,
                "from_numbers": self.from_numbers,
                "pattern": self.pattern,
                "poll_interval": self.poll_interval,
            },
        )

    @property
    def state_key(self) -> str:
        """The key of this watcher's cursor in the asset state store (one asset may have several watchers)."""
        digest = hashlib.sha256(json.dumps(self.serialize()[1], sort_keys=True).encode()).hexdigest()[:16]
        return f"easify_inbound_cursor_{digest}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_easify.triggers.coalesce import InboundPoller

        stored = InboundCursor.from_json(await self._load())
        if stored is not None:
            self.cursor, self._saved = stored, stored.to_json()
            self.log.info("Inbound SMS watcher resumes after message %s", stored.high)
        failures = 0
        while True:
            poller, waiter = InboundPoller.join(self.easify_conn_id, "", self.cursor, self.poll_interval)
            try:
                while True:
                    scan = await waiter.rounds.get()
                    if isinstance(scan, BaseException):
                        raise scan
                    failures = 0
                    for event in self._take(scan):
                        yield event
                    await self._save()
            except Exception as exc:  # noqa: BLE001 - a watcher outlives any one failure
                failures += 1
                pause = error_pause(self.poll_interval, failures)
                kind = type(exc).__name__
                status = getattr(exc, "status_code", None) if isinstance(exc, EasifyApiError) else None
                self.log.error("Inbound SMS poll failed (%s, status %s); next poll in %.0f s", kind, status, pause)
                await asyncio.sleep(pause)
            finally:
                poller.leave(waiter)

    def _take(self, scan: InboundScan) -> list[TriggerEvent]:
        baseline = self.cursor.high is None
        fresh = self.cursor.advance(scan)
        if baseline:
            self.log.info("Inbound SMS watcher starts after message %s", self.cursor.high)
        events = []
        for message in fresh:
            if self.filter.wants(message):
                self.log.info("Incoming SMS %s matches", message["sms_id"])
                events.append(TriggerEvent(message))
        return events

    # ------------------------------------------------------------------ the cursor in the asset store

    def _accessors(self) -> list[Any]:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        # One trigger may watch several assets (Airflow deduplicates equal watchers). The store's own
        # get/set then refuse to pick one, and Airflow 3.3 (the first with a store) lists its per-asset
        # accessors only in private attributes: they are used on that release line, where they were read,
        # and anything else falls back to the public get/set (right for the usual one asset per watcher).
        if ASSET_STORE_PRIVATE_ACCESSORS.contains(airflow_version()):
            per_asset = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
            if per_asset:
                return per_asset
        return [store]

    async def _load(self) -> Any:
        best = None
        for accessor in self._accessors():
            try:
                value = await accessor.aget(self.state_key)
            except Exception:  # noqa: BLE001 - an unreadable store means starting fresh, not dying
                self.log.warning("Could not read the inbound watcher's cursor from the asset state store")
                continue
            cursor = InboundCursor.from_json(value)
            if cursor is not None and (best is None or cursor.high > best["high"]):  # type: ignore[operator]
                best = cursor.to_json()
        return best

    async def _save(self) -> None:
        if self.cursor.high is None:
            return
        value = self.cursor.to_json()
        if value == self._saved:
            return
        self._saved = value
        for accessor in self._accessors():
            try:
                await accessor.aset(self.state_key, value)
            except Exception:  # noqa: BLE001
                self.log.warning("Could not store the inbound watcher's cursor in the asset state store")
