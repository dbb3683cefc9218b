"""The one export path: Easify pages -> typed batches -> a local temporary file -> one upload.

Used by the transfer operators: the data-interval plan of a report export, progress logging, the
sources (fetching the next pages in a background thread while the current ones are written) and
:func:`write_and_publish`, which publishes nothing unless the whole file was written. Row typing is
in :mod:`._rows`, destinations in :mod:`._destinations`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import os
import queue
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.transfers._destinations import Destination
from airflow_provider_easify.transfers._rows import BatchTyper, Logger
from airflow_provider_easify.utils import dates
from airflow_provider_easify.utils.dates import utc_iso
from airflow_provider_easify.utils.export_formats import Batch, Column, batch_size, file_suffix, open_writer

if TYPE_CHECKING:
    from airflow_provider_easify.hooks.easify import EasifyHook

_ONE_MICROSECOND = dt.timedelta(microseconds=1)


def positive_int_or_none(value: Any, parameter: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EasifyInvalidParameterError(parameter, value, "must be a positive integer")
    return value


# ---------------------------------------------------------------------- what a report export asks for


@dataclasses.dataclass(frozen=True)
class ReportPlan:
    """The API days to ask for and, for a data-interval export, the half-open instant range to keep."""

    first_day: dt.date
    last_day: dt.date
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def windows(self) -> list[tuple[dt.date, dt.date]]:
        return dates.report_windows(self.first_day, self.last_day)

    def batch_filter(self, created_at_index: int) -> Callable[[Batch], Batch] | None:
        """Keeps the rows of a batch created in the interval (None: every row of the days belongs)."""
        if self.start is None or self.end is None:
            return None
        low, high = utc_iso(self.start), utc_iso(self.end)

        def keep(batch: Batch) -> Batch:
            inside = [v is not None and low <= v < high for v in batch[created_at_index]]
            return batch if all(inside) else [list(itertools.compress(values, inside)) for values in batch]

        return keep

    def describe(self) -> str:
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
        # Airflow 3 schedules "@daily" with CronTriggerTimetable by default: start == end. Exporting
        # that would silently write an empty file every day.
        raise EasifyInvalidParameterError(
            "from_date",
            from_date,
            f"from_date and to_date are required: the run's data interval [{start}, {end}) is empty. Schedule "
            "the DAG with CronDataIntervalTimetable or CronTriggerTimetable(..., interval=...) to export by "
            "data interval",
        )
    first = start.astimezone(zone).date()
    last = (end - _ONE_MICROSECOND).astimezone(zone).date()
    return ReportPlan(first, last, start, end)


def _utc(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise EasifyInvalidParameterError(name, value, "must be a time-zone aware datetime")
    return value.astimezone(dt.UTC)


# ---------------------------------------------------------------------- progress


class ExportProgress:
    """Counts rows, requests and windows; logs at most every ``every_seconds``, per window and at the end."""

    def __init__(
        self,
        log: Logger,
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

    def written(self, rows: int) -> None:
        self.rows += rows
        if time.monotonic() - self._last_log >= self.every_seconds:
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


def report_batches(
    hook: EasifyHook,
    plan: ReportPlan,
    filters: dict[str, Any],
    typer: BatchTyper,
    progress: ExportProgress,
    page_size: int | None,
) -> Iterator[Batch]:
    """Typed report rows of the plan in batches, oldest first. Arguments are checked before any request."""
    windows = [
        hook.iter_sms_report(first, last, order="asc", page_size=page_size, **filters) for first, last in plan.windows
    ]
    keep = plan.batch_filter(typer.index("created_at"))
    return _typed_batches(_raw_batches(windows, BATCH_ROWS), typer, progress, keep)


def contact_batches(
    hook: EasifyHook, group_id: Any, typer: BatchTyper, progress: ExportProgress, page_size: int | None
) -> Iterator[Batch]:
    group = None if group_id in (None, "") else group_id
    contacts = hook.iter_contacts(group_id=group, order="asc", page_size=page_size)
    return _typed_batches(_raw_batches([contacts], BATCH_ROWS), typer, progress, None)


#: Rows handed from the fetching thread to the writing one at a time: several pages, since each
#: hand-over costs a thread switch.
BATCH_ROWS = 1000
#: Batches the fetching thread may run ahead of the writer: with BATCH_ROWS, what bounds the rows in memory.
PREFETCH_BATCHES = 4


def _raw_batches(windows: list[Iterator[dict[str, Any]]], size: int) -> Iterator[list[dict[str, Any]] | None]:
    """Raw rows in lists of ``size``; None after each window."""
    for rows in windows:
        batch: list[dict[str, Any]] = []
        for raw in rows:
            batch.append(raw)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
        yield None


def _typed_batches(
    raw_batches: Iterator[list[dict[str, Any]] | None],
    typer: BatchTyper,
    progress: ExportProgress,
    keep: Callable[[Batch], Batch] | None,
) -> Iterator[Batch]:
    for raws in prefetched(raw_batches, PREFETCH_BATCHES):
        if raws is None:
            progress.window_done()
            continue
        batch = typer(raws)
        if keep is not None:
            batch = keep(batch)
            progress.dropped += len(raws) - batch_size(batch)
        yield batch


_T = TypeVar("_T")
_END = object()


def prefetched(items: Iterator[_T], depth: int) -> Iterator[_T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    The next API pages are fetched while this thread types and writes the current ones; errors are
    raised here, in order. When the consumer stops early the fetching thread stops after its current item.
    """
    handover: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                handover.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put((False, exc))

    thread = threading.Thread(target=produce, name="easify-export-fetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = handover.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()


# ---------------------------------------------------------------------- the export


def write_and_publish(
    batches: Iterable[Batch],
    *,
    columns: tuple[Column, ...],
    file_format: str,
    compression: str | None,
    destination: Destination,
    replace: bool,
    skip_if_empty: bool,
    progress: ExportProgress,
) -> int:
    """Write every batch of rows to a temporary file, then publish it in one step. Returns the row count.

    Any failure while rows are read or written leaves the destination untouched.
    """
    staging = destination.staging_dir()
    prefix = ".easify-export-" if staging else "easify-export-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=staging) as workdir:
        local_path = os.path.join(workdir, "export" + file_suffix(file_format, compression))
        with open_writer(local_path, file_format, columns, compression) as writer, _closing(batches):
            for batch in batches:
                writer.write_batch(batch)
                progress.written(batch_size(batch))
        progress.log_progress("Export written")
        if writer.rows == 0 and skip_if_empty:
            raise AirflowSkipException(f"No rows to export; {destination.uri} not written (skip_if_empty=True)")
        size = os.path.getsize(local_path)
        progress.log.info("Uploading %d rows (%d bytes) to %s", writer.rows, size, destination.uri)
        destination.publish(local_path, replace)
    return writer.rows


@contextlib.contextmanager
def _closing(batches: Iterable[Batch]) -> Iterator[None]:
    """Close the batches' generator on any exit, which stops its fetching thread at once (not at garbage collection)."""
    try:
        yield
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def easify_asset_uri(base_url: str, endpoint: str) -> str:
    """``easify://backend.easify.app/api/v2/sms/report``: the Easify endpoint as a lineage asset."""
    parts = urlsplit(base_url)
    return f"easify://{parts.netloc}{parts.path.rstrip('/')}/{endpoint}"


def easify_lineage_name(base_url: str, endpoint: str) -> tuple[str, str]:
    """The OpenLineage dataset of an endpoint: namespace ``easify://<API host>``, name its path."""
    parts = urlsplit(base_url)
    return f"easify://{parts.netloc}", f"{parts.path.strip('/')}/{endpoint}".lstrip("/")


def report_input_lineage(hook: EasifyHook, endpoint: str) -> None:
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    get_hook_lineage_collector().add_input_asset(context=hook, uri=easify_asset_uri(hook.settings.base_url, endpoint))
