"""The rows of the exports: their column schemas and the typing of the API's raw values.

Timestamps become canonical UTC ISO-8601 strings (``2024-10-15T17:36:32+00:00``): the API's
``created_at`` has no zone and is read in the export's ``source_timezone``.
"""

from __future__ import annotations

import operator
import zoneinfo
from collections.abc import Callable, Iterable
from typing import Any

from airflow_provider_easify.exceptions import EasifyError, EasifyInvalidParameterError
from airflow_provider_easify.utils.dates import created_at_to_utc_iso
from airflow_provider_easify.utils.export_formats import Batch, Column

#: Anything with the ``logging.Logger`` methods used here (Airflow 3's task logger is not one).
Logger = Any

REPORT_COLUMNS: tuple[Column, ...] = (
    Column("id", "int"),
    Column("sender"),
    Column("receiver"),
    Column("message"),
    Column("sms_type"),
    Column("send_by"),
    Column("media_url", empty_values=("", "null")),
    Column("status"),
    Column("created_at", "timestamp"),
    Column("reason"),
)
CONTACT_COLUMNS: tuple[Column, ...] = (
    Column("id", "int"),
    Column("group_name"),
    Column("first_name"),
    Column("last_name"),
    Column("phone_number"),
    Column("email_address"),
    Column("company"),
    Column("additional_1"),
    Column("additional_2"),
    Column("additional_3"),
    Column("shared_contact", "bool"),
    Column("created_at", "timestamp"),
    Column("updated_at", "timestamp"),
)


def source_zone(name: Any) -> zoneinfo.ZoneInfo:
    """The IANA zone the API's zone-less ``created_at`` is read in."""
    if isinstance(name, str) and name.strip():
        try:
            return zoneinfo.ZoneInfo(name.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise EasifyInvalidParameterError("source_timezone", name, "must be an IANA time zone name such as 'UTC'")


class BatchTyper:
    """Types a list of raw API rows into a :data:`Batch` (column by column); fields outside the schema are dropped.

    Column-wise because it is the export's hot path: a column already of the right type (the usual case)
    is checked in C and kept as is.
    """

    def __init__(self, columns: Iterable[Column], zone: zoneinfo.ZoneInfo, log: Logger) -> None:
        self.columns = tuple(columns)
        self.names = [c.name for c in self.columns]
        self.zone = zone
        self.log = log
        self._known = frozenset(self.names)
        self._ignored: set[str] = set()
        self._get = operator.itemgetter(*self.names)
        self._types = [_column_type(c, zone) for c in self.columns]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def __call__(self, raws: list[dict[str, Any]]) -> Batch:
        known = self._known
        if not all(raw.keys() <= known for raw in raws):
            self._note_unknown(raws)
        try:
            rows = list(map(self._get, raws))
        except KeyError:  # a field is missing from some row: null
            rows = [tuple([raw.get(name) for name in self.names]) for raw in raws]
        batch: Batch = [list(values) for values in zip(*rows)] if rows else [[] for _ in self.names]
        for index, (scalar, ready) in enumerate(self._types):
            values = batch[index]
            if ready and set(map(type, values)) <= ready:
                continue
            try:
                batch[index] = [scalar(value) for value in values]
            except (TypeError, ValueError):
                self._raise_unreadable(raws, index)
        return batch

    def _raise_unreadable(self, raws: list[dict[str, Any]], index: int) -> None:
        column, (scalar, _) = self.columns[index], self._types[index]
        for raw in raws:
            value = raw.get(column.name)
            try:
                scalar(value)
            except (TypeError, ValueError):
                raise EasifyError(
                    f"Row id={raw.get('id')!r}: unreadable {column.name} {value!r} (expected {column.kind})"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_unknown(self, raws: list[dict[str, Any]]) -> None:
        unknown = set().union(*(raw.keys() for raw in raws)) - self._known
        if not unknown <= self._ignored:
            self._ignored |= unknown
            self.log.warning("Fields not in the export schema are left out: %s", ", ".join(sorted(unknown)))


_NONE = type(None)


def _column_type(column: Column, zone: zoneinfo.ZoneInfo) -> tuple[Callable[[Any], Any], frozenset[type]]:
    """How to type one value of ``column``, and the Python types that need no typing (empty: always type)."""
    empty = (None, *column.empty_values)
    if column.kind == "str":
        if column.empty_values:
            return (lambda v: None if v in empty else (v if v.__class__ is str else str(v))), frozenset()
        return (lambda v: v if v is None or v.__class__ is str else str(v)), frozenset((str, _NONE))
    if column.kind == "timestamp":
        to_iso = created_at_to_utc_iso(zone)
        return (lambda v: None if v is None or v == "" else to_iso(v)), frozenset()
    if column.kind == "int":
        return (lambda v: v if v is None or v.__class__ is int else _to_int(v)), frozenset((int, _NONE))
    return (lambda v: v if v is None or v.__class__ is bool else _to_bool(v)), frozenset((bool, _NONE))


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value.strip() if isinstance(value, str) else value)


def _to_bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(value)
