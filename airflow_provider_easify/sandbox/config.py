"""The sandbox's tunable knobs (:class:`SandboxConfig`) and their validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

HISTORY_ORDERS = ("newest_first", "oldest_first", "shuffled", "oldest_newest_first")


@dataclass
class SandboxConfig:
    """Every knob of the sandbox; all can be changed at run time through ``POST /_sandbox/config``.

    Fields that shape the seeded data (``seed``, ``report_days``, ``report_rows_per_day``) take effect
    at the next reset; all other fields take effect on the next request.
    """

    #: Seed of every random choice (contacts, report history, probabilistic faults).
    seed: int = 7
    #: A sent message is ``Pending`` for this many seconds after it was created...
    pending_seconds: float = 1.0
    #: ... then ``Success`` until this many seconds after creation, then its final status.
    delivered_seconds: float = 2.0
    #: POST /sms/send budget per token and fixed window (0 disables the bucket).
    send_limit: int = 15
    send_window_seconds: float = 60.0
    #: One budget shared by every GET endpoint, per token and fixed window (0 disables the bucket).
    read_limit: int = 60
    read_window_seconds: float = 60.0
    #: ``limit`` values above this are clamped (``meta.per_page`` shows the clamped value).
    max_page_size: int = 1000
    #: ``limit`` values above this are refused with a 422 instead (0: never refused).
    limit_refused_above: int = 0
    #: Seeded report history: this many days ending yesterday (UTC), this many rows per day.
    report_days: int = 120
    report_rows_per_day: int = 20
    #: The report's date-range rule: an inclusive day count above this answers 400.
    report_max_days: int = 30
    #: Print one line per request on stderr.
    log_requests: bool = False
    # Readings of the vendor text that a real server may take (see the package docstring).
    #: Laravel's TrimStrings: a sent message is stored without surrounding whitespace.
    trim_strings: bool = True
    #: A sent message's CRLF and CR line endings are stored as LF.
    normalize_newlines: bool = False
    #: Chat history: "newest_first" (the newest ``limit``), "oldest_first" (the oldest ``limit``, oldest
    #: first) or "shuffled" (the newest ``limit`` in any order).
    history_order: str = "newest_first"
    #: A message shows in chat history and the report only this many seconds after it was created.
    visibility_delay_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (what ``GET /_sandbox/config`` answers)."""
        return dataclasses.asdict(self)

    def copy(self) -> SandboxConfig:
        """An independent copy."""
        return dataclasses.replace(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, coercing JSON values to the field types; raise ValueError on bad input."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        coerced = {name: _coerce(name, fields[name].type, value) for name, value in changes.items()}
        candidate = dataclasses.replace(self, **coerced)
        candidate.validate()
        for name, value in coerced.items():
            setattr(self, name, value)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting out of range."""
        if self.history_order not in HISTORY_ORDERS:
            raise ValueError(f"history_order must be one of {', '.join(HISTORY_ORDERS)}")
        for name in (
            "pending_seconds", "delivered_seconds", "send_window_seconds", "read_window_seconds",
            "visibility_delay_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("send_limit", "read_limit", "report_days", "report_rows_per_day", "limit_refused_above"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_page_size < 1:
            raise ValueError("max_page_size must be >= 1")
        if self.report_max_days < 1:
            raise ValueError("report_max_days must be >= 1")
        if self.delivered_seconds < self.pending_seconds:
            raise ValueError("delivered_seconds must be >= pending_seconds")


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    kind = str(annotation)
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.strip().lower() in ("1", "true", "yes", "on"):
                    return True
                if value.strip().lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(value, bool):
            raise ValueError(value)
        if kind == "int":
            number = float(value)
            if number != int(number):
                raise ValueError(value)
            return int(number)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {kind}, got {value!r}") from None
    return value
