"""Client-side pacing of one token's budget: evenly spaced request slots, shared by every caller.

The API counts requests per token in fixed windows (15 sends and 60 reads a minute). Sending in
bursts draws 429s as soon as several tasks share a token, so calls are spread evenly instead: each
caller reserves the next free slot, ``60 / per_minute`` seconds after the previous one, and waits
until it. A 429 pushes the next free slot back by the time the server named, for every caller.

:class:`LocalPacer` keeps the next free slot in a small file under the pacing directory, locked with
``flock``: every thread and process of one machine shares it. :mod:`.redis_pacing` shares it across
machines. The token itself is never written: names are a hash of the API URL and token.

No reservation waits longer than the caller allows (``max_wait``): a slot further away is refused
with :class:`PacingRefused` and not taken. A stored slot further away than any caller could have
reserved (``horizon``: a planted or corrupt file) is discarded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import math
import os
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from airflow_provider_easify.exceptions import EasifyConfigurationError

#: Spacing is stretched by this factor so latency jitter never packs one window too full.
SAFETY_FACTOR = 1.03
PACING_DIR_ENV = "EASIFY_PACING_DIR"

log = logging.getLogger(__name__)
_thread_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Reservation:
    """``count`` slots from ``start``; the next caller's first slot is ``end`` (epoch seconds, local clock)."""

    start: float
    end: float
    count: int = 1

    @property
    def delay(self) -> float:
        return max(0.0, self.start - time.time())


class PacingRefused(Exception):
    """The next free slot is ``wait`` seconds away, more than the caller may wait; nothing was reserved."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        super().__init__(f"next free slot in {wait:.1f}s")


class Pacer(Protocol):
    """Spaces one kind of request (``send`` or ``read``) of one token: on this machine, or through Redis."""

    kind: str
    interval: float

    def reserve(self, count: int = 1, *, max_wait: float = math.inf) -> Reservation:
        """Take the next ``count`` slots; refused (:class:`PacingRefused`) if the first is beyond ``max_wait``."""
        ...

    def push_back(self, seconds: float) -> None:
        """Keep every caller of this budget off it for ``seconds`` (after a 429)."""
        ...

    def seconds_until_free(self) -> float:
        """Seconds until the next slot is free, reserving nothing."""
        ...


def budget_digest(base_url: str, token: str) -> str:
    """A name for one token's budget that reveals neither the token nor the URL."""
    return hashlib.sha256(f"{base_url}\0{token}".encode()).hexdigest()[:32]


def slot_interval(per_minute: float) -> float:
    """Seconds between two slots at ``per_minute`` (with a safety margin); 0 turns pacing off."""
    return 0.0 if per_minute <= 0 else 60.0 / per_minute * SAFETY_FACTOR


def next_start(now: float, stored: float, horizon: float) -> tuple[float, bool]:
    """Where the next reservation starts, and whether ``stored`` was unusable (corrupt or beyond the horizon)."""
    if not math.isfinite(stored) or stored > now + horizon:
        return now, True
    return max(now, stored), False


def pacing_dir() -> Path:
    """The directory of this machine's slot files; refused when another user owns it (they could stall us)."""
    path = Path(os.environ.get(PACING_DIR_ENV) or Path(tempfile.gettempdir()) / "easify-pacing")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner = path.stat().st_uid
    if owner != os.geteuid():
        raise EasifyConfigurationError(
            f"The Easify pacing directory {path} belongs to user id {owner}, not to this user "
            f"({os.geteuid()}): set {PACING_DIR_ENV} to a directory of your own."
        )
    return path


class LocalPacer:
    """Reserve evenly spaced slots of one (API URL, token, kind) budget on this machine."""

    def __init__(self, digest: str, kind: str, per_minute: float, *, horizon: float) -> None:
        self.kind = kind
        self.per_minute = per_minute
        self.interval = slot_interval(per_minute)
        self.horizon = horizon
        self._path = pacing_dir() / f"{digest}.{kind}.slot"

    @contextlib.contextmanager
    def _slot(self) -> Iterator[tuple[float, list[float]]]:
        """The stored next free slot (0 if none) under an exclusive lock; append a value to store it."""
        with _thread_lock:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.pread(fd, 8, 0)
                stored = struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0
                update: list[float] = []
                yield stored, update
                if update:
                    os.pwrite(fd, struct.pack("d", update[0]), 0)
                    os.ftruncate(fd, 8)
            finally:
                os.close(fd)

    def reserve(self, count: int = 1, *, max_wait: float = math.inf) -> Reservation:
        """See :meth:`Pacer.reserve`."""
        now = time.time()
        with self._slot() as (stored, update):
            start, discarded = next_start(now, stored, self.horizon)
            if discarded and stored != 0.0:
                log.warning("Discarded an impossible Easify pacing slot in %s", self._path)
                update.append(now)
            if start - now > max_wait:
                raise PacingRefused(start - now)
            end = start + self.interval * count
            if self.interval > 0:
                update[:] = [end]
        return Reservation(start, end, count)

    def push_back(self, seconds: float) -> None:
        """See :meth:`Pacer.push_back`."""
        now = time.time()
        hold = now + min(max(seconds, 0.0), self.horizon)
        with self._slot() as (stored, update):
            start, _ = next_start(now, stored, self.horizon)
            if hold > start:
                update.append(hold)

    def seconds_until_free(self) -> float:
        """See :meth:`Pacer.seconds_until_free`."""
        now = time.time()
        with self._slot() as (stored, _):
            start, _ = next_start(now, stored, self.horizon)
        return start - now
