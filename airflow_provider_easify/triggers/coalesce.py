"""One poller per (connection, sender) in a triggerer process answers every status wait, and one every
reply wait, at once.

Each waiting :class:`~.sms.EasifySmsStatusTrigger` or :class:`~.sms.EasifyBulkSmsStatusTrigger` joins
the poller of its connection and account number instead of polling on its own. Each round, the poller
asks for every waited message in one go (:func:`~..utils.waiting.fetch_status_rows`: one read of the
conversation in the SMS report for a single message, otherwise one read per page of the sender's
messages) and hands each waiter its rows; the waiter decides whether its wait is over. K waiting
triggers thus cost about ceil(K / page size) + 1 reads a round, not K.

Reply triggers of one account number share a :class:`ReplyPoller` the same way: one scan of the
sender's SMS report a round finds the new incoming messages of every awaited contact (one
read of the conversation when a single reply is awaited).

A trigger that ends or is cancelled leaves; the poller stops when nobody waits. Rounds come every
``min(poke_interval)`` of the waiters. A transient failure (5xx, timeout, 429, waiting for budget) only
delays the next round; an error no wait can fix (authentication, plan, payment) ends every wait attached
at that moment with it, including a wait that joined while the failed round was in flight. A bad
argument or a deadline belongs to one trigger and never ends another's wait: arguments are checked
before a trigger joins.

The interleavings this holds under, each tested with real event loops: a join during a round in flight
(it gets that round's error, or the next round's rows); a join right after the poller stopped (the
stopped poller left the registry, so the join starts a new one); a cancellation during a round (the
trigger leaves; the round's rows go to the others, and a poller left with nobody stops).

Inbound-SMS watchers of one connection share an :class:`InboundPoller`: one scan of the account's SMS
report a round, as deep as the watcher furthest behind needs; each watcher keeps its own cursor.

Airflow 3.3's shared streams (``BaseEventTrigger.shared_stream_key``) serve asset watchers, not task
deferral, so this coalescing is our own: plain asyncio in the triggerer's loop, which works on 2.11 too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow_provider_easify.exceptions import EasifyApiError, EasifyRateLimitError
from airflow_provider_easify.transport import PacingDeferred
from airflow_provider_easify.utils.inbound import InboundCursor, InboundScan, scan_incoming
from airflow_provider_easify.utils.phone import sender_digits
from airflow_provider_easify.utils.triggerer_sends import in_a_thread
from airflow_provider_easify.utils.waiting import ReplyWait, StatusWait, fetch_replies, fetch_status_rows

log = logging.getLogger(__name__)


class Waiter:
    """One trigger's place in a poller: what it waits for, and its share (or the error) of each round."""

    def __init__(self, wait: Any, interval: float) -> None:
        self.wait = wait
        self.interval = interval
        self.rounds: asyncio.Queue[Any] = asyncio.Queue()


class SharedPoller:
    """The round loop shared by every kind of wait; a subclass says what one round reads and who gets what."""

    _pollers: dict[tuple[type, int, str, str], SharedPoller] = {}

    def __init__(self, key: tuple[type, int, str, str], conn_id: str, sender: str) -> None:
        self.key = key
        self.conn_id = conn_id
        self.sender = sender
        self.waiters: list[Waiter] = []
        self.rounds_done = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def join(cls, conn_id: str, sender: str, wait: Any, interval: float) -> tuple[SharedPoller, Waiter]:
        digits = sender_digits(sender, parameter="sender") if sender else ""  # "": the whole account
        key = (cls, id(asyncio.get_running_loop()), conn_id, digits)
        poller = cls._pollers.get(key)
        if poller is None:
            poller = cls._pollers[key] = cls(key, conn_id, digits)
        waiter = Waiter(wait, interval)
        poller.waiters.append(waiter)
        if poller._task is None:
            poller._task = asyncio.ensure_future(poller._run())
        return poller, waiter

    def leave(self, waiter: Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        if not self.waiters:
            self._stop()

    def _stop(self) -> None:
        if self._pollers.get(self.key) is self:
            del self._pollers[self.key]
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()

    def _end_every_wait(self, exc: BaseException) -> None:
        """An error no round can fix: every waiter attached now gets it, those that joined during the
        failed round too, and the poller leaves the registry first, so that a later join starts a new one."""
        if self._pollers.get(self.key) is self:
            del self._pollers[self.key]
        for waiter in self.waiters:
            waiter.rounds.put_nowait(exc)
        self.waiters.clear()

    def _fetch(self, hook: Any, waiters: list[Waiter]) -> Any:
        hook.transport.new_unit_of_work()
        return self.read(hook, [waiter.wait for waiter in waiters])

    def read(self, hook: Any, waits: list[Any]) -> Any:
        """One round's reads for all ``waits`` (in a worker thread)."""
        raise NotImplementedError

    def share(self, data: Any, wait: Any) -> Any:
        """What of a round's ``data`` goes to the trigger waiting for ``wait``."""
        raise NotImplementedError

    async def _run(self) -> None:
        from airflow_provider_easify.hooks.easify import EasifyTriggerHook

        hook = EasifyTriggerHook(easify_conn_id=self.conn_id)
        try:
            while self.waiters:
                waiters = list(self.waiters)
                wait = min(waiter.interval for waiter in waiters)
                try:
                    rows = await in_a_thread(self._fetch, hook, waiters)
                except PacingDeferred as deferred:
                    await asyncio.sleep(deferred.delay)  # the slot is reserved: the round goes out when it opens
                    continue
                except EasifyRateLimitError as exc:
                    wait = max(exc.retry_after, wait)
                    log.warning("Easify rate limit reached; next status round in %g s", wait)
                except EasifyApiError as exc:
                    if not exc.retryable:
                        self._end_every_wait(exc)
                        return
                    log.warning("Easify status round failed (%s); next round in %g s", exc, wait)
                except Exception as exc:  # ends the waits with its reason rather than a dead poller
                    log.exception("Easify status round failed")
                    self._end_every_wait(exc)
                    return
                else:
                    self.rounds_done += 1
                    for waiter in waiters:
                        waiter.rounds.put_nowait(self.share(rows, waiter.wait))
                await asyncio.sleep(wait)
        finally:
            self._stop()


class StatusPoller(SharedPoller):
    """Answers status waits: the rows of every waited message, in as few reads as it takes."""

    def read(self, hook: Any, waits: list[StatusWait]) -> dict[str, dict[str, Any] | None]:
        return fetch_status_rows(hook, self.sender, waits)

    def share(self, data: dict[str, Any], wait: StatusWait) -> dict[str, Any]:
        return {sms_id: data.get(sms_id) for sms_id in wait.sms_ids}


class ReplyPoller(SharedPoller):
    """Answers reply waits on one account number: every awaited contact's new messages in one scan."""

    def read(self, hook: Any, waits: list[ReplyWait]) -> dict[str, list[dict[str, Any]]]:
        return fetch_replies(hook, self.sender, waits)

    def share(self, data: dict[str, list[dict[str, Any]]], wait: ReplyWait) -> list[dict[str, Any]]:
        return data.get(wait.receiver, [])


class InboundPoller(SharedPoller):
    """Answers inbound-SMS watchers of one connection: the account's new rows, read once for all of them."""

    def read(self, hook: Any, waits: list[InboundCursor]) -> InboundScan:
        return scan_incoming(hook, waits, timezone=hook.settings.server_timezone)

    def share(self, data: InboundScan, wait: InboundCursor) -> InboundScan:
        return data
