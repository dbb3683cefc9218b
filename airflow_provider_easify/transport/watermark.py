"""The token's send watermark: the highest ``sms_id`` any send of this token is known to have returned.

Message ids grow across the account, so every message created after a send answered has a higher id
than that send's. A send therefore needs no read of the report to know which messages are older than
itself: the last id returned to *any* caller of the token bounds them all. The never-twice lookup
(:mod:`..hooks.sending`) only considers rows above it.

The value is kept per token (a hash of the API URL and token, never the token) in this process and,
when the connection names ``pacing_redis_conn_id``, in Redis too, so that every host raises and reads
one value. It only ever goes up. Redis failing costs nothing but sharing: the process's own value is
used until Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

KEY_PREFIX = "easify:watermark:v1"
#: The Redis key outlives the last send by this long (a fresh value is read once per process after it).
KEY_TTL_SECONDS = 7 * 24 * 3600
#: Seconds before a failed Redis is asked again.
RETRY_REDIS_AFTER = 15.0

log = logging.getLogger(__name__)

_LOCAL: dict[str, int] = {}
_LOCAL_LOCK = threading.Lock()

# KEYS[1] the watermark. ARGV: a new id (0: only read), ttl seconds. Answers the stored value after the call.
_SCRIPT = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local new = tonumber(ARGV[1])
if new > stored then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return ARGV[1]
end
if stored > 0 and new > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return tostring(stored)
"""


class TokenWatermark:
    """The highest ``sms_id`` known for one token (``digest``); shared through Redis with a client factory."""

    def __init__(self, digest: str, *, redis_client_factory: Callable[[], Any] | None = None, name: str = "") -> None:
        self.digest = digest
        self.key = f"{KEY_PREFIX}:{digest}"
        self.name = name
        self._client_factory = redis_client_factory
        self._script: Any = None
        self._failed_until = 0.0

    def known(self) -> int | None:
        """The highest id known here or in Redis; None when no send of this token returned one yet."""
        shared = self._redis(0)
        with _LOCAL_LOCK:
            if shared:
                _LOCAL[self.digest] = max(_LOCAL.get(self.digest, 0), shared)
            value = _LOCAL.get(self.digest)
        return value

    def raise_to(self, sms_id: int) -> None:
        """Note an id a send returned (or a read saw): the watermark becomes at least ``sms_id``."""
        if sms_id <= 0:
            return
        with _LOCAL_LOCK:
            _LOCAL[self.digest] = max(_LOCAL.get(self.digest, 0), sms_id)
        self._redis(sms_id)

    def _redis(self, new: int) -> int | None:
        if self._client_factory is None or time.monotonic() < self._failed_until:
            return None
        try:
            if self._script is None:
                self._script = self._client_factory().register_script(_SCRIPT)
            answer = self._script(keys=[self.key], args=[int(new), KEY_TTL_SECONDS])
            return int(float(answer))
        except Exception as exc:  # noqa: BLE001 - any Redis failure: this process's value is used meanwhile
            self._failed_until = time.monotonic() + RETRY_REDIS_AFTER
            log.warning(
                "Easify send watermark through Redis (%s) failed (%s); using this process's value", self.name,
                type(exc).__name__,
            )
            return None


def forget_all() -> None:
    """Drop every watermark this process knows (tests: a fresh process)."""
    with _LOCAL_LOCK:
        _LOCAL.clear()
