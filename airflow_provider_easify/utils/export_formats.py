"""Row writers of the exports: csv, jsonl and parquet, optionally compressed, written batch by batch.

A writer receives batches of typed rows, column by column: a batch is one list of values per column
of the schema, in order, all of the same length. Values are ``int``, ``str``, ``bool``, ``None``, and
for timestamps the instant as a canonical UTC ISO-8601 string (``2024-10-15T17:36:32+00:00``), which
csv and jsonl write as is and parquet stores as ``timestamp[us, UTC]``. Output is deterministic: the
same rows give the same bytes (gzip headers carry no time stamp nor file name).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.util
import io
import json
from collections.abc import Sequence
from typing import IO, Any, Literal

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

ColumnKind = Literal["int", "str", "bool", "timestamp"]
#: One list of values per column, in the schema's order.
Batch = list[list[Any]]

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


def batch_size(batch: Batch) -> int:
    return len(batch[0]) if batch else 0


class RowWriter:
    """Writes batches of typed rows to ``path``; use as a context manager. ``rows`` counts what was written."""

    def __init__(self, path: str, columns: Sequence[Column]) -> None:
        self.path = path
        self.columns = tuple(columns)
        self.names = [c.name for c in self.columns]
        self.rows = 0

    def write_batch(self, batch: Batch) -> None:
        count = batch_size(batch)
        if count:
            self._write_batch(batch)
            self.rows += count

    def _write_batch(self, batch: Batch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _TextWriter(RowWriter):
    """A UTF-8 text file, gzip-wrapped when asked."""

    def __init__(self, path: str, columns: Sequence[Column], compression: str | None = None) -> None:
        super().__init__(path, columns)
        raw = open(path, "wb")  # closed in close()
        self._closers: list[Any] = [raw]
        binary: Any = raw
        if compression == "gzip":
            binary = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_GZIP_LEVEL)
            self._closers.insert(0, binary)
        self.stream: IO[str] = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        self._closers.insert(0, self.stream)

    def close(self) -> None:
        for stream in self._closers:
            stream.close()


class CsvWriter(_TextWriter):
    """RFC 4180 csv with a header row, ``\\n`` line ends, booleans as ``true``/``false``, null as empty."""

    def __init__(self, path: str, columns: Sequence[Column], compression: str | None = None) -> None:
        super().__init__(path, columns, compression)
        self._writer = csv.writer(self.stream, lineterminator="\n")
        self._writer.writerow(self.names)
        # csv writes None as an empty field and ints as digits; only booleans need spelling out.
        self._bools = [i for i, c in enumerate(self.columns) if c.kind == "bool"]

    def _write_batch(self, batch: Batch) -> None:
        if self._bools:
            batch = list(batch)
            for index in self._bools:
                batch[index] = [None if v is None else ("true" if v else "false") for v in batch[index]]
        self._writer.writerows(zip(*batch))


class JsonLinesWriter(_TextWriter):
    """One JSON object per line, keys in column order, UTF-8 (non-ASCII kept as is)."""

    def __init__(self, path: str, columns: Sequence[Column], compression: str | None = None) -> None:
        super().__init__(path, columns, compression)
        self._encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def _write_batch(self, batch: Batch) -> None:
        names, encode = self.names, self._encode
        self.stream.write("".join([encode(dict(zip(names, row))) + "\n" for row in zip(*batch)]))


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
        self._types = [types[c.kind] for c in self.columns]
        self._schema = pa.schema([pa.field(c.name, t) for c, t in zip(self.columns, self._types)])
        self._writer = pq.ParquetWriter(path, self._schema, compression=compression or "snappy")
        self._row_group_size = row_group_size
        self._buffer: Batch = [[] for _ in self.columns]

    def _write_batch(self, batch: Batch) -> None:
        for buffered, values in zip(self._buffer, batch):
            buffered.extend(values)
        while batch_size(self._buffer) >= self._row_group_size:
            size = self._row_group_size
            self._flush([values[:size] for values in self._buffer])
            self._buffer = [values[size:] for values in self._buffer]

    def _flush(self, batch: Batch) -> None:
        pa = self._pa
        arrays = []
        for values, kind in zip(batch, self._types):
            if pa.types.is_timestamp(kind):
                arrays.append(pa.array(values, pa.string()).cast(kind))
            else:
                arrays.append(pa.array(values, kind))
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        if batch_size(self._buffer):
            self._flush(self._buffer)
            self._buffer = [[] for _ in self.columns]
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
