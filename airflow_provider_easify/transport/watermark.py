"""The token's send watermark: the ``sms_id`` the last send of this token returned.

Message ids grow across the account, so every message created after a send answered has a higher id
than that send's. A send therefore needs no read of the report to know which messages are older than
itself: the id the last send of *any* caller of the token returned bounds them all. The never-twice
lookup (:mod:`..hooks.sending`) only considers rows above it.

The value is kept per token (a hash of the API URL and token, never the token) in this process and in
one place every caller shares: Redis when the connection names ``pacing_redis_conn_id`` (every host),
else a small file in the pacing directory (every process of this machine, so that mapped tasks do not
each read one). The last id returned is stored, not the highest ever seen: a lower value only makes the
lookup consider more rows, while a value above the server's ids (a sandbox started afresh, a database
restored) would hide the very message looked for; the next send's id corrects it.

A shared store that fails costs nothing but sharing: the process's own value is used meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_easify.transport.pacing import pacing_dir

KEY_PREFIX = "easify:watermark:v1"
#: The Redis key outlives the last send by this long (a process then reads one id from the report).
KEY_TTL_SECONDS = 7 * 24 * 3600
#: Seconds before a failed shared store is asked again.
RETRY_SHARED_AFTER = 15.0

log = logging.getLogger(__name__)

_PROCESS: dict[str, int] = {}
_PROCESS_LOCK = threading.Lock()


class TokenWatermark:
    """The last ``sms_id`` a send of one token (``digest``) returned: in this process and a shared store."""

    def __init__(self, digest: str, *, redis_client_factory: Callable[[], Any] | None = None, name: str = "") -> None:
        self.digest = digest
        self.name = name
        self._redis_factory = redis_client_factory
        self._redis: Any = None
        self._failed_until = 0.0

    def known(self) -> int | None:
        """The shared value (or this process's, while the shared store fails); None when no send returned one."""
        shared = self._shared(None)
        with _PROCESS_LOCK:
            if shared is not None:
                _PROCESS[self.digest] = shared
            return _PROCESS.get(self.digest)

    def note(self, sms_id: int) -> None:
        """A send returned ``sms_id`` (or a read saw it as the newest): every later message has a higher id."""
        if sms_id <= 0:
            return
        with _PROCESS_LOCK:
            _PROCESS[self.digest] = sms_id
        self._shared(sms_id)

    # ------------------------------------------------------------------ the shared store

    def _shared(self, new: int | None) -> int | None:
        """Store ``new`` (when given) or read the shared value; None when there is none or the store failed."""
        if time.monotonic() < self._failed_until:
            return None
        try:
            if self._redis_factory is not None:
                return self._in_redis(new)
            return self._in_file(new)
        except Exception as exc:  # noqa: BLE001 - any failure: this process's value is used meanwhile
            self._failed_until = time.monotonic() + RETRY_SHARED_AFTER
            where = f"Redis ({self.name})" if self._redis_factory is not None else "the pacing directory"
            log.warning(
                "Easify send watermark in %s failed (%s); using this process's value", where, type(exc).__name__
            )
            return None

    def _in_redis(self, new: int | None) -> int | None:
        if self._redis is None:
            assert self._redis_factory is not None
            self._redis = self._redis_factory()
        key = f"{KEY_PREFIX}:{self.digest}"
        if new is not None:
            self._redis.set(key, int(new), ex=KEY_TTL_SECONDS)
            return new
        value = self._redis.get(key)
        return int(value) if value is not None else None

    def _in_file(self, new: int | None) -> int | None:
        with _locked(pacing_dir() / f"{self.digest}.watermark") as fd:
            if new is not None:
                os.pwrite(fd, struct.pack("q", int(new)), 0)
                os.ftruncate(fd, 8)
                return new
            raw = os.pread(fd, 8, 0)
            return struct.unpack("q", raw)[0] if len(raw) == 8 else None


@contextlib.contextmanager
def _locked(path: os.PathLike[str]) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def forget_in_process() -> None:
    """Drop what this process knows (tests: a process that starts afresh)."""
    with _PROCESS_LOCK:
        _PROCESS.clear()
