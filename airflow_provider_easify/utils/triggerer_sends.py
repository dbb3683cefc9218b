"""Sends made from the triggerer's event loop (the approval's hint, the notifier's ``async_notify``).

Every wait of such a send happens on the event loop, never in the triggerer's shared thread pool: the
send goes through :class:`~..hooks.easify.EasifyTriggerHook`, whose requests are single attempts that
raise :class:`~..transport.PacingDeferred` instead of sleeping for budget. The loop here sleeps that
long with ``asyncio.sleep`` and tries again, as it does between retries (a 429 pushes the token's pacer
back, so the next try defers for the server's time; a send that certainly did not go out waits its
backoff). Only one HTTP request at a time runs in a worker thread.

Cancellation: a cancelled caller stops at its next ``await``. While waiting for budget or backoff
nothing has been posted, so nothing is. A cancellation that lands while the POST itself is in flight
cannot stop the request that the worker thread already sent: it completes (the message may go out),
its answer is dropped, and nothing is posted again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_easify.exceptions import EasifyRateLimitError, EasifyServerError, EasifyTransportError
from airflow_provider_easify.transport import PacingDeferred


async def in_a_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in a worker thread of a trigger.

    Through asgiref, not ``asyncio.to_thread``: what the function asks Airflow (a connection lookup)
    goes to the triggerer's supervisor from its own event loop, under its lock. From a bare thread it
    would start a second loop on the same pipe, and Airflow 3.1's triggerer then dies with "Response
    read out of order".
    """
    from asgiref.sync import sync_to_async

    return await sync_to_async(function, thread_sensitive=False)(*args, **kwargs)


async def call_on_the_loop(hook: Any, function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` (a read of ``hook``, a trigger hook) in a worker thread, its waits for
    budget slept on the event loop."""
    while True:
        hook.transport.new_unit_of_work()
        try:
            return await in_a_thread(function, *args, **kwargs)
        except PacingDeferred as deferred:
            await asyncio.sleep(deferred.delay)


async def send_sms_on_the_loop(
    easify_conn_id: str, from_number: str, to_number: str, message: str, *, country_code: str | None = None,
    hook: Any = None,
) -> str:
    """Send one SMS from a coroutine and return its ``sms_id``; never twice (see :mod:`..hooks.sending`).

    Raises :class:`~..exceptions.EasifySendUnconfirmedError` as ``send_sms`` does, and the send's own
    error when it certainly did not go out after the connection's ``max_retries``.
    """
    from airflow_provider_easify.hooks.easify import EasifyTriggerHook

    hook = hook or EasifyTriggerHook(easify_conn_id=easify_conn_id)
    failures = 0
    while True:
        hook.transport.new_unit_of_work()
        try:
            return await in_a_thread(hook.send_sms, from_number, to_number, message, country_code=country_code)
        except PacingDeferred as deferred:  # nothing posted; the slot is reserved
            await asyncio.sleep(deferred.delay)
        except EasifyRateLimitError as exc:
            if exc.status_code != 429:
                raise  # the budget is further away than max_rate_limit_wait
            failures += 1  # the server's 429 pushed the pacer back: the next try defers that long
            if failures > hook.settings.max_retries:
                raise
        except (EasifyServerError, EasifyTransportError) as exc:
            # Raised by send_sms only when the message certainly did not go out.
            failures += 1
            if failures > hook.settings.max_retries:
                raise
            hook.log.warning("Send failed (%s); trying again in a moment", type(exc).__name__)
            await asyncio.sleep(hook.backoff_seconds(failures))
