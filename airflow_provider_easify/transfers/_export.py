"""The one export path: Easify rows -> typed rows -> a local temporary file -> one upload.

Pieces used by the transfer operators: the column schemas, typing of the API's raw values, the
data-interval plan of a report export, progress logging, the destinations (S3 through ``S3Hook``,
anything else through ``ObjectStoragePath``) and :func:`write_and_publish`, which publishes nothing
unless the whole file was written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import tempfile
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException, ObjectStoragePath
from airflow_provider_easify.exceptions import EasifyError, EasifyInvalidParameterError
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.export_formats import Column, file_suffix, open_writer

if TYPE_CHECKING:
    from airflow_provider_easify.hooks.easify import EasifyHook

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
_ONE_MICROSECOND = dt.timedelta(microseconds=1)
_LOCAL_PROTOCOLS = ("", "file", "local")


# ---------------------------------------------------------------------- parameters


def source_zone(name: Any) -> zoneinfo.ZoneInfo:
    """The IANA zone the API's zone-less ``created_at`` is read in."""
    if isinstance(name, str) and name.strip():
        try:
            return zoneinfo.ZoneInfo(name.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    raise EasifyInvalidParameterError("source_timezone", name, "must be an IANA time zone name such as 'UTC'")


def positive_int_or_none(value: Any, parameter: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EasifyInvalidParameterError(parameter, value, "must be a positive integer")
    return value


# ---------------------------------------------------------------------- typing raw rows


def parse_vendor_time(value: str, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """``MM-DD-YYYY hh:mm:ss AM/PM`` (or ISO-8601) read in ``zone``, returned in UTC."""
    text = value.strip()
    try:
        naive = _parse_vendor_fast(text)
    except ValueError:
        try:
            naive = dt.datetime.strptime(text, dates.CREATED_AT_FORMAT)
        except ValueError:
            naive = dt.datetime.fromisoformat(text)
    aware = naive if naive.tzinfo is not None else naive.replace(tzinfo=zone)
    return aware.astimezone(dt.timezone.utc)


def _parse_vendor_fast(text: str) -> dt.datetime:
    """The common ``10-15-2024 05:36:32 PM`` shape without strptime (the export's hot path)."""
    if len(text) != 22 or text[2] != "-" or text[5] != "-" or text[10] != " " or text[13] != ":" or text[16] != ":":
        raise ValueError(text)
    hour = int(text[11:13])
    half = text[20:22].upper()
    if not 1 <= hour <= 12 or half not in ("AM", "PM"):
        raise ValueError(text)
    hour = hour % 12 + (12 if half == "PM" else 0)
    return dt.datetime(int(text[6:10]), int(text[0:2]), int(text[3:5]), hour, int(text[14:16]), int(text[17:19]))


class RowTyper:
    """Turns a raw API row into the typed row of a schema; fields outside the schema are dropped (logged once)."""

    def __init__(self, columns: Iterable[Column], zone: zoneinfo.ZoneInfo, log: logging.Logger) -> None:
        self.columns = tuple(columns)
        self.zone = zone
        self.log = log
        self._known = frozenset(c.name for c in self.columns)
        self._ignored: set[str] = set()

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        unknown = raw.keys() - self._known
        if unknown and not unknown <= self._ignored:
            self._ignored |= unknown
            self.log.warning("Fields not in the export schema are left out: %s", ", ".join(sorted(unknown)))
        typed = {}
        for column in self.columns:
            try:
                typed[column.name] = self._value(column, raw.get(column.name))
            except (TypeError, ValueError):
                raise EasifyError(
                    f"Row id={raw.get('id')!r}: unreadable {column.name} {raw.get(column.name)!r} "
                    f"(expected {column.kind})"
                ) from None
        return typed

    def _value(self, column: Column, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value in column.empty_values):
            return None
        kind = column.kind
        if kind == "str":
            return value if isinstance(value, str) else str(value)
        if kind == "timestamp":
            return parse_vendor_time(value, self.zone) if value != "" else None
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value.strip() if isinstance(value, str) else value)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(value)


# ---------------------------------------------------------------------- what a report export asks for


@dataclasses.dataclass(frozen=True)
class ReportPlan:
    """The API days to ask for and, for a data-interval export, the half-open instant range to keep."""

    first_day: dt.date | None
    last_day: dt.date | None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def windows(self) -> list[tuple[dt.date, dt.date]]:
        if self.first_day is None or self.last_day is None:
            return []
        return dates.report_windows(self.first_day, self.last_day)

    def keeps(self, created_at: dt.datetime | None) -> bool:
        if self.start is None or self.end is None:
            return True
        return created_at is not None and self.start <= created_at < self.end

    def describe(self) -> str:
        if self.first_day is None:
            return f"[{self.start}, {self.end}): empty interval, nothing to ask"
        days = f"API days {self.first_day} to {self.last_day}"
        return days if self.start is None else f"created in [{self.start}, {self.end}), {days}"


def plan_report(from_date: Any, to_date: Any, context: Any, zone: zoneinfo.ZoneInfo) -> ReportPlan:
    """Explicit inclusive days when given, else the run's data interval (rows filtered by timestamp)."""
    if from_date not in (None, "") or to_date not in (None, ""):
        if from_date in (None, ""):
            raise EasifyInvalidParameterError("from_date", from_date, "is required when to_date is given")
        if to_date in (None, ""):
            raise EasifyInvalidParameterError("to_date", to_date, "is required when from_date is given")
        first = dates.to_date(from_date, parameter="from_date")
        last = dates.to_date(to_date, parameter="to_date")
        dates.report_windows(first, last)  # refuses to_date < from_date
        return ReportPlan(first, last)
    start = context.get("data_interval_start") if context else None
    end = context.get("data_interval_end") if context else None
    if start is None or end is None:
        raise EasifyInvalidParameterError(
            "from_date", from_date, "from_date and to_date are required when the run has no data interval"
        )
    start = _utc(start, "data_interval_start")
    end = _utc(end, "data_interval_end")
    if end <= start:
        return ReportPlan(None, None, start, end)
    first = start.astimezone(zone).date()
    last = (end - _ONE_MICROSECOND).astimezone(zone).date()
    return ReportPlan(first, last, start, end)


def _utc(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise EasifyInvalidParameterError(name, value, "must be a time-zone aware datetime")
    return value.astimezone(dt.timezone.utc)


# ---------------------------------------------------------------------- progress


class ExportProgress:
    """Counts rows, requests and windows; logs at most every ``every_seconds`` and once at the end."""

    def __init__(
        self,
        log: logging.Logger,
        requests: Callable[[], int],
        *,
        windows: int = 1,
        every_seconds: float = 30.0,
    ) -> None:
        self.log = log
        self._requests = requests
        self._requests_at_start = requests()
        self.windows = windows
        self.windows_done = 0
        self.rows = 0
        self.dropped = 0
        self.every_seconds = every_seconds
        self._started = self._last_log = time.monotonic()

    @property
    def requests(self) -> int:
        return self._requests() - self._requests_at_start

    def row(self) -> None:
        self.rows += 1
        if not self.rows & 1023 and time.monotonic() - self._last_log >= self.every_seconds:
            self.log_progress()

    def window_done(self) -> None:
        self.windows_done += 1
        if self.windows > 1:
            self.log_progress()

    def log_progress(self, prefix: str = "Export progress") -> None:
        self._last_log = time.monotonic()
        elapsed = max(self._last_log - self._started, 1e-9)
        dropped = f", {self.dropped} outside the data interval" if self.dropped else ""
        self.log.info(
            "%s: %d rows written%s, %d API requests, window %d/%d done, %.0f rows/s",
            prefix, self.rows, dropped, self.requests, self.windows_done, self.windows, self.rows / elapsed,
        )


# ---------------------------------------------------------------------- sources


def report_rows(
    hook: EasifyHook,
    plan: ReportPlan,
    filters: dict[str, Any],
    typer: RowTyper,
    progress: ExportProgress,
    page_size: int | None,
) -> Iterator[dict[str, Any]]:
    """Typed report rows of the plan, oldest first, window by window. Filters are checked before any request."""
    windows = plan.windows
    pages = [hook.iter_sms_report(first, last, order="asc", page_size=page_size, **filters) for first, last in windows]
    return _report_rows(pages, plan, typer, progress)


def _report_rows(
    pages: list[Iterator[dict[str, Any]]], plan: ReportPlan, typer: RowTyper, progress: ExportProgress
) -> Iterator[dict[str, Any]]:
    for window in pages:
        for raw in window:
            row = typer(raw)
            if plan.keeps(row["created_at"]):
                yield row
            else:
                progress.dropped += 1
        progress.window_done()


def contact_rows(
    hook: EasifyHook, group_id: Any, typer: RowTyper, progress: ExportProgress, page_size: int | None
) -> Iterator[dict[str, Any]]:
    group = None if group_id in (None, "") else group_id
    pages = hook.iter_contacts(group_id=group, order="asc", page_size=page_size)
    return _contact_rows(pages, typer, progress)


def _contact_rows(
    pages: Iterator[dict[str, Any]], typer: RowTyper, progress: ExportProgress
) -> Iterator[dict[str, Any]]:
    for raw in pages:
        yield typer(raw)
    progress.window_done()


# ---------------------------------------------------------------------- destinations


class Destination:
    """Where the finished file goes. ``publish`` is the only write and is all-or-nothing."""

    uri: str

    def ensure_writable(self, replace: bool) -> None:
        """Fail before the export when the object exists and may not be replaced."""
        if not replace and self.exists():
            raise AirflowException(f"{self.uri} already exists and replace=False")

    def exists(self) -> bool:
        raise NotImplementedError

    def staging_dir(self) -> str | None:
        """Directory of the temporary file (None: the system's)."""
        return None

    def publish(self, local_path: str, replace: bool) -> None:
        raise NotImplementedError


class S3Destination(Destination):
    """An S3 object, uploaded with ``S3Hook.load_file_obj`` (boto3's transfer manager: multipart when large)."""

    def __init__(
        self, bucket: str, key: str, aws_conn_id: str | None, *, parameters: tuple[str, str] = ("s3_bucket", "s3_key")
    ) -> None:
        if not isinstance(bucket, str) or not bucket.strip():
            raise EasifyInvalidParameterError(parameters[0], bucket, "a bucket name is required")
        if not isinstance(key, str) or not key.strip() or key.endswith("/"):
            raise EasifyInvalidParameterError(parameters[1], key, "an object key (not ending with '/') is required")
        self.bucket = bucket.strip()
        self.key = key.strip().lstrip("/")
        self.aws_conn_id = aws_conn_id
        self.uri = f"s3://{self.bucket}/{self.key}"

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def exists(self) -> bool:
        return bool(self.hook.check_for_key(self.key, self.bucket))

    def publish(self, local_path: str, replace: bool) -> None:
        # load_file_obj (not load_file) so that lineage names the S3 object but not our temporary file.
        with open(local_path, "rb") as handle:
            self.hook.load_file_obj(handle, self.key, bucket_name=self.bucket, replace=replace)


class ObjectStorageDestination(Destination):
    """Any ``ObjectStoragePath``. Local files are renamed into place; remote ones get one ``put_file``."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self.uri = str(path)
        self.local = path.protocol in _LOCAL_PROTOCOLS

    def exists(self) -> bool:
        return bool(self.path.exists())

    def staging_dir(self) -> str | None:
        if not self.local:
            return None
        parent = os.path.dirname(self.path.path) or "."
        os.makedirs(parent, exist_ok=True)
        return parent  # same file system as the target, so the final rename is atomic

    def publish(self, local_path: str, replace: bool) -> None:
        if self.local:
            if not replace and os.path.exists(self.path.path):
                raise AirflowException(f"{self.uri} already exists and replace=False")
            os.replace(local_path, self.path.path)
        else:
            self.ensure_writable(replace)
            self.path.fs.put_file(local_path, self.path.path)
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self.path, uri=self.uri)


def destination_from(destination: Any, conn_id: str | None) -> Destination:
    """A destination from an ``ObjectStoragePath`` or a URI (``s3://``, ``file://``, ``gs://``, a plain path)."""
    if isinstance(destination, ObjectStoragePath):
        if destination.protocol in ("s3", "s3a"):
            bucket = destination.bucket.rpartition("@")[2]  # Airflow 2 puts "conn_id@" before the bucket
            conn = conn_id or getattr(destination, "conn_id", None) or "aws_default"
            return S3Destination(bucket, destination.key, conn, parameters=("destination", "destination"))
        return ObjectStorageDestination(destination)
    if not isinstance(destination, str) or not destination.strip():
        raise EasifyInvalidParameterError(
            "destination", destination, "must be an ObjectStoragePath or a URI such as s3://bucket/key or file:///path"
        )
    text = destination.strip()
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "s3a"):
        return S3Destination(
            parts.netloc, parts.path.lstrip("/"), conn_id or "aws_default", parameters=("destination", "destination")
        )
    if not parts.path.strip("/") or parts.path.endswith("/"):
        raise EasifyInvalidParameterError("destination", destination, "must name a file, not a directory")
    return ObjectStorageDestination(ObjectStoragePath(text, conn_id=conn_id))


# ---------------------------------------------------------------------- the export


def write_and_publish(
    rows: Iterable[dict[str, Any]],
    *,
    columns: tuple[Column, ...],
    file_format: str,
    compression: str | None,
    destination: Destination,
    replace: bool,
    skip_if_empty: bool,
    progress: ExportProgress,
) -> int:
    """Write every row to a temporary file, then publish it in one step. Returns the row count.

    Any failure while rows are read or written leaves the destination untouched.
    """
    staging = destination.staging_dir()
    prefix = ".easify-export-" if staging else "easify-export-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=staging) as workdir:
        local_path = os.path.join(workdir, "export" + file_suffix(file_format, compression))
        with open_writer(local_path, file_format, columns, compression) as writer:
            for row in rows:
                writer.write(row)
                progress.row()
        progress.log_progress("Export written")
        if writer.rows == 0 and skip_if_empty:
            raise AirflowSkipException(f"No rows to export; {destination.uri} not written (skip_if_empty=True)")
        size = os.path.getsize(local_path)
        progress.log.info("Uploading %d rows (%d bytes) to %s", writer.rows, size, destination.uri)
        destination.publish(local_path, replace)
    return writer.rows


def easify_asset_uri(base_url: str, endpoint: str) -> str:
    """``easify://backend.easify.app/api/v2/sms/report``: the Easify endpoint as a lineage asset."""
    parts = urlsplit(base_url)
    return f"easify://{parts.netloc}{parts.path.rstrip('/')}/{endpoint}"


def report_input_lineage(hook: EasifyHook, endpoint: str) -> None:
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    get_hook_lineage_collector().add_input_asset(context=hook, uri=easify_asset_uri(hook.settings.base_url, endpoint))
