"""Row writers of the exports: csv, jsonl and parquet, optionally compressed, streamed row by row.

A writer receives typed rows (``int``, ``str``, ``bool``, tz-aware ``datetime`` or ``None``) in the
column order of its schema and writes them to a local file. Output is deterministic: the same rows
give the same bytes (gzip headers carry no time stamp nor file name).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import importlib.util
import io
import json
from collections.abc import Sequence
from typing import IO, Any, Literal

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

ColumnKind = Literal["int", "str", "bool", "timestamp"]

FILE_FORMATS = ("csv", "jsonl", "parquet")
#: Compressions per format. csv and jsonl are gzip-wrapped; for parquet the value is its internal codec.
COMPRESSIONS: dict[str, tuple[str | None, ...]] = {
    "csv": (None, "gzip"),
    "jsonl": (None, "gzip"),
    "parquet": (None, "gzip", "snappy", "zstd"),
}
#: Rows per parquet row group: what is held in memory before it is written.
DEFAULT_ROW_GROUP_SIZE = 10_000
_GZIP_LEVEL = 6


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind = "str"
    #: Raw values that mean "no value" for this column (written as null / an empty csv field).
    empty_values: tuple[str, ...] = ()


def validate_format(file_format: Any, compression: Any) -> tuple[str, str | None]:
    """Return the normalised ``(file_format, compression)`` or raise naming the bad parameter."""
    fmt = file_format.strip().lower() if isinstance(file_format, str) else file_format
    if fmt not in FILE_FORMATS:
        raise EasifyInvalidParameterError("file_format", file_format, f"must be one of {', '.join(FILE_FORMATS)}")
    codec = compression.strip().lower() if isinstance(compression, str) else compression
    if codec in ("", "none"):
        codec = None
    if codec not in COMPRESSIONS[fmt]:
        allowed = ", ".join(repr(c) for c in COMPRESSIONS[fmt])
        raise EasifyInvalidParameterError("compression", compression, f"for {fmt} must be one of {allowed}")
    return fmt, codec


def require_parquet_support() -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise EasifyInvalidParameterError(
            "file_format", "parquet", "needs pyarrow: pip install 'airflow-provider-easify[parquet]'"
        )


def file_suffix(file_format: str, compression: str | None) -> str:
    if file_format == "parquet" or compression is None:
        return f".{file_format}"
    return f".{file_format}.gz"


class RowWriter:
    """Writes typed rows to ``path``; use as a context manager. ``rows`` counts what was written."""

    def __init__(self, path: str, columns: Sequence[Column]) -> None:
        self.path = path
        self.columns = tuple(columns)
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self._write(row)
        self.rows += 1

    def _write(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open_text(path: str, compression: str | None) -> tuple[IO[str], list[IO[Any]]]:
    """A text stream on ``path`` and the streams to close, innermost first."""
    raw = open(path, "wb")  # closed by the writer
    if compression == "gzip":
        zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_GZIP_LEVEL)
        text = io.TextIOWrapper(zipped, encoding="utf-8", newline="")
        return text, [text, zipped, raw]
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    return text, [text, raw]


def _plain(value: Any) -> Any:
    """A JSON-compatible value: datetimes become ISO-8601 with their offset."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class CsvWriter(RowWriter):
    """RFC 4180 csv with a header row, ``\\n`` line ends, booleans as ``true``/``false``, null as empty."""

    def __init__(self, path: str, columns: Sequence[Column], compression: str | None = None) -> None:
        super().__init__(path, columns)
        self._stream, self._closers = _open_text(path, compression)
        self._writer = csv.writer(self._stream, lineterminator="\n")
        self._writer.writerow([c.name for c in self.columns])

    def _write(self, row: dict[str, Any]) -> None:
        self._writer.writerow([_csv_value(row.get(c.name)) for c in self.columns])

    def close(self) -> None:
        for stream in self._closers:
            stream.close()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _plain(value)


class JsonLinesWriter(RowWriter):
    """One JSON object per line, keys in column order, UTF-8 (non-ASCII kept as is)."""

    def __init__(self, path: str, columns: Sequence[Column], compression: str | None = None) -> None:
        super().__init__(path, columns)
        self._stream, self._closers = _open_text(path, compression)

    def _write(self, row: dict[str, Any]) -> None:
        record = {c.name: _plain(row.get(c.name)) for c in self.columns}
        self._stream.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        self._stream.write("\n")

    def close(self) -> None:
        for stream in self._closers:
            stream.close()


class ParquetWriter(RowWriter):
    """Typed parquet (int64, string, bool, timestamp[us, UTC]) written in row groups of ``row_group_size``."""

    def __init__(
        self,
        path: str,
        columns: Sequence[Column],
        compression: str | None = None,
        row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(path, columns)
        types = {"int": pa.int64(), "str": pa.string(), "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC")}
        self._pa = pa
        self._schema = pa.schema([pa.field(c.name, types[c.kind]) for c in self.columns])
        self._writer = pq.ParquetWriter(path, self._schema, compression=compression or "snappy")
        self._row_group_size = row_group_size
        self._buffer: dict[str, list[Any]] = {c.name: [] for c in self.columns}
        self._buffered = 0

    def _write(self, row: dict[str, Any]) -> None:
        for column in self.columns:
            self._buffer[column.name].append(row.get(column.name))
        self._buffered += 1
        if self._buffered >= self._row_group_size:
            self._flush()

    def _flush(self) -> None:
        if self._buffered:
            batch = self._pa.RecordBatch.from_pydict(self._buffer, schema=self._schema)
            self._writer.write_batch(batch, row_group_size=self._row_group_size)
            self._buffer = {c.name: [] for c in self.columns}
            self._buffered = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def open_writer(
    path: str,
    file_format: str,
    columns: Sequence[Column],
    compression: str | None = None,
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
) -> RowWriter:
    fmt, codec = validate_format(file_format, compression)
    if fmt == "csv":
        return CsvWriter(path, columns, codec)
    if fmt == "jsonl":
        return JsonLinesWriter(path, columns, codec)
    require_parquet_support()
    return ParquetWriter(path, columns, codec, row_group_size)
