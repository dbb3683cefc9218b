"""Client-side pacing shared by every hook, thread and process that uses the same token.

The API counts requests per token in fixed windows (15 sends and 60 reads a minute). Sending in
bursts draws 429s as soon as several tasks share a token, so calls are spread evenly instead: each
caller reserves the next free slot, ``60 / per_minute`` seconds after the previous one, and sleeps
until it. Slots live in a small file under the temp directory, locked with ``flock``, so parallel
task processes on one worker share the budget. The token itself is never written: the file name
is a hash of the API URL and token.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import struct
import tempfile
import threading
import time
from pathlib import Path

#: Spacing is stretched by this factor so latency jitter never packs one window too full.
SAFETY_FACTOR = 1.03

_thread_lock = threading.Lock()


def pacing_dir() -> Path:
    path = Path(os.environ.get("EASIFY_PACING_DIR") or Path(tempfile.gettempdir()) / "easify-pacing")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class Pacer:
    """Reserve evenly spaced request slots for one (API URL, token, kind) budget."""

    def __init__(self, base_url: str, token: str, kind: str, per_minute: float) -> None:
        self.kind = kind
        self.per_minute = per_minute
        digest = hashlib.sha256(f"{base_url}\0{token}\0{kind}".encode()).hexdigest()[:32]
        self._path = pacing_dir() / f"{digest}.slot"

    @property
    def interval(self) -> float:
        return 0.0 if self.per_minute <= 0 else 60.0 / self.per_minute * SAFETY_FACTOR

    @contextlib.contextmanager
    def _locked_file(self):  # type: ignore[no-untyped-def]
        with _thread_lock:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)

    def reserve(self) -> float:
        """Reserve the next slot and return how long to wait for it (seconds, >= 0)."""
        start, _ = self.reserve_block(1)
        return max(0.0, start - time.time())

    def reserve_block(self, count: int) -> tuple[float, float]:
        """Reserve ``count`` consecutive slots: ``(start, end)`` in epoch seconds.

        The holder may spend them at once from ``start`` (a burst the server's fixed window allows);
        every other caller's next slot begins at ``end``.
        """
        now = time.time()
        with self._locked_file() as fd:
            raw = os.pread(fd, 8, 0)
            next_free = struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0
            start = max(now, next_free)  # a 429 push-back holds callers even with pacing off
            end = start + self.interval * count
            if self.interval > 0:
                os.pwrite(fd, struct.pack("d", end), 0)
        return start, end

    def seconds_until_free(self) -> float:
        with self._locked_file() as fd:
            raw = os.pread(fd, 8, 0)
        next_free = struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0
        return max(0.0, next_free - time.time())

    def wait(self) -> float:
        """Block until this caller's slot; return the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)
        return delay

    def push_back(self, seconds: float) -> None:
        """After a 429, hold every caller of this budget for ``seconds`` from now."""
        with self._locked_file() as fd:
            raw = os.pread(fd, 8, 0)
            next_free = struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0
            os.pwrite(fd, struct.pack("d", max(next_free, time.time() + seconds)), 0)
