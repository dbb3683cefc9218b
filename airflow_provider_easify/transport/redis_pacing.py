"""Pacing shared by every host through Redis, falling back to this machine's pacing when Redis fails.

One key per (API URL + token hash, kind) holds the next free slot, in the **Redis server's** clock:
each reservation is one Lua script that reads ``TIME``, takes the next slot and stores the one after
it, so hosts whose clocks disagree still space their requests evenly and no two hosts can take the
same slot. The script answers in seconds *from now*, which the caller adds to its own clock. Keys
carry a prefix and expire a while after the last slot they hold.

When Redis is down, unreachable, slow (no answer within the socket timeout) or answers an error, the
pacer warns once per process, paces locally (:class:`~.pacing.LocalPacer`) and tries Redis again
:data:`RETRY_REDIS_AFTER` seconds later. Pacing is the only thing Redis decides: a send is never
held, repeated or dropped because of it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_easify.transport.pacing import LocalPacer, PacingRefused, Reservation, slot_interval

KEY_PREFIX = "easify:pacing:v1"
#: Seconds before a failed Redis is asked again.
RETRY_REDIS_AFTER = 15.0
#: A key lives this long after the last slot it holds.
KEY_TTL_SECONDS = 600

log = logging.getLogger(__name__)

# KEYS[1] slot key. ARGV: interval, count, max_wait (-1: none), horizon, ttl_ms, push_back (-1: reserve).
# Answers {refused(0|1), start - now, end - now, discarded(0|1)} as strings (Lua numbers would be truncated).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_wait, horizon, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local push_back = tonumber(ARGV[6])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local discarded = 0
if stored ~= stored or stored > now + horizon then stored = 0; discarded = 1 end
local start = math.max(now, stored)
if push_back >= 0 then
  local hold = now + math.min(push_back, horizon)
  if hold > start then
    redis.call('SET', KEYS[1], string.format('%.6f', hold), 'PX', ttl + math.ceil((hold - now) * 1000))
  end
  return {'0', tostring(math.max(hold, start) - now), '0', tostring(discarded)}
end
if max_wait >= 0 and start - now > max_wait then
  return {'1', tostring(start - now), '0', tostring(discarded)}
end
local finish = start + interval * count
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', finish), 'PX', ttl + math.ceil((finish - now) * 1000))
elseif discarded == 1 then
  redis.call('DEL', KEYS[1])
end
return {'0', tostring(start - now), tostring(finish - now), tostring(discarded)}
"""

_warned: set[str] = set()
_warned_lock = threading.Lock()


class RedisPacer:
    """The :class:`~.pacing.Pacer` of one budget, kept in Redis; ``fallback`` paces while Redis fails."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        digest: str,
        kind: str,
        per_minute: float,
        horizon: float,
        fallback: LocalPacer,
        name: str,
    ) -> None:
        self.kind = kind
        self.interval = slot_interval(per_minute)
        self.horizon = horizon
        self.key = f"{KEY_PREFIX}:{digest}:{kind}"
        self.fallback = fallback
        self.name = name  # the Airflow connection id, for log lines
        self._client_factory = client_factory
        self._script: Any = None
        self._failed_until = 0.0

    @property
    def using_redis(self) -> bool:
        return time.monotonic() >= self._failed_until

    def _run(self, count: int, max_wait: float, push_back: float) -> list[float] | None:
        """The script's answer, or None when Redis failed (then the fallback paces)."""
        if not self.using_redis:
            return None
        try:
            if self._script is None:
                self._script = self._client_factory().register_script(_SCRIPT)
            args = [
                repr(self.interval), count, repr(max_wait) if math.isfinite(max_wait) else -1,
                repr(self.horizon), KEY_TTL_SECONDS * 1000, repr(push_back),
            ]
            answer = self._script(keys=[self.key], args=args)
        except Exception as exc:  # noqa: BLE001 - any Redis failure means: pace locally for now
            self._fail(exc)
            return None
        if self._failed_until:
            log.info("Easify pacing is shared through Redis (%s) again", self.name)
            self._failed_until = 0.0
        values = [float(value) for value in answer]
        if values[3]:
            log.warning("Discarded an impossible Easify pacing slot in Redis key %s", self.key)
        return values

    def _fail(self, exc: BaseException) -> None:
        self._failed_until = time.monotonic() + RETRY_REDIS_AFTER
        with _warned_lock:
            first = self.name not in _warned
            _warned.add(self.name)
        message = "Easify pacing through Redis (%s) failed (%s: %s); pacing on this machine only until it answers"
        if first:
            log.warning(message, self.name, type(exc).__name__, exc)
        else:
            log.debug(message, self.name, type(exc).__name__, exc)

    def reserve(self, count: int = 1, *, max_wait: float = math.inf) -> Reservation:
        answer = self._run(count, max_wait, -1.0)
        if answer is None:
            return self.fallback.reserve(count, max_wait=max_wait)
        refused, wait, until_end, _ = answer
        if refused:
            raise PacingRefused(wait)
        now = time.time()
        return Reservation(now + wait, now + until_end, count)

    def push_back(self, seconds: float) -> None:
        # This machine is held too, so that a fallback during the hold keeps honouring it.
        self.fallback.push_back(seconds)
        self._run(0, math.inf, max(seconds, 0.0))

    def seconds_until_free(self) -> float:
        answer = self._run(0, 0.0, -1.0)
        if answer is None:
            return self.fallback.seconds_until_free()
        return answer[1]
