"""Export the Easify SMS report and contacts to S3 or any object storage, streamed, one upload per run.

Every operator here runs the same path: rows come page by page from :class:`EasifyHook`, are typed
against a fixed schema, written to a local temporary file (csv, jsonl or parquet, optionally
compressed), and only a complete file is published. A failed run leaves no object behind; a re-run
of the same interval writes the same bytes.

Without ``from_date``/``to_date`` an SMS report export covers exactly the run's data interval
``[data_interval_start, data_interval_end)``: the API is asked for the whole days (in
``source_timezone``) covering it, and rows are kept by their ``created_at`` timestamp, so consecutive
runs neither overlap nor leave gaps. A zero-length interval (Airflow 3's plain ``"@daily"`` schedule,
a ``CronTriggerTimetable`` without ``interval``) is refused rather than exported as an empty file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.transfers._destinations import Destination, S3Destination, destination_from
from airflow_provider_easify.transfers._export import (
    ExportProgress,
    contact_batches,
    easify_lineage_name,
    plan_report,
    positive_int_or_none,
    report_batches,
    report_input_lineage,
    write_and_publish,
)
from airflow_provider_easify.transfers._rows import CONTACT_COLUMNS, REPORT_COLUMNS, BatchTyper, source_zone
from airflow_provider_easify.utils.export_formats import Batch, Column, require_parquet_support, validate_format
from airflow_provider_easify.utils.phone import mask_phone

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = [
    "EasifyContactsExportOperator",
    "EasifyContactsToObjectStorageOperator",
    "EasifyContactsToS3Operator",
    "EasifyExportOperator",
    "EasifySmsReportExportOperator",
    "EasifySmsReportToObjectStorageOperator",
    "EasifySmsReportToS3Operator",
]


class EasifyExportOperator(BaseOperator):
    """
    Base of the Easify exports: stream rows to a temporary file, then publish it in one step.

    Subclasses say what is read (:meth:`iter_rows`, ``columns``, ``endpoint``) and where it goes
    (:meth:`get_destination`). Returns ``{"uri": ..., "rows": N}`` (plus ``"s3_uri"`` for S3).

    :param file_format: ``csv`` (header row, fixed column order), ``jsonl`` or ``parquet`` (needs pyarrow).
    :param compression: ``None`` or ``"gzip"``; for parquet the codec: ``None`` (snappy), ``gzip``,
        ``snappy`` or ``zstd``.
    :param replace: Overwrite an existing object (default True, so a re-run replaces its own output).
        With False an existing object fails the task before anything is read.
    :param skip_if_empty: Skip the task instead of writing an empty file (header only) when no row matched.
    :param source_timezone: IANA zone of the API's dates: its zone-less ``created_at``/``updated_at`` are
        read in it, and a data interval is turned into API days in it (default ``UTC``, the sandbox's).
        Timestamps are written in UTC, ISO-8601 with offset (csv, jsonl) or ``timestamp[us, UTC]`` (parquet).
    :param page_size: Rows asked per API page (default: the hook's).
    :param easify_conn_id: The Easify connection.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#e8f4fd"
    columns: tuple[Column, ...] = ()
    endpoint = ""

    def __init__(
        self,
        *,
        file_format: str = "csv",
        compression: str | None = None,
        replace: bool = True,
        skip_if_empty: bool = False,
        source_timezone: str = "UTC",
        page_size: int | None = None,
        easify_conn_id: str = EasifyHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.file_format, self.compression = validate_format(file_format, compression)
        source_zone(source_timezone)
        self.replace = replace
        self.skip_if_empty = skip_if_empty
        self.source_timezone = source_timezone
        self.page_size = positive_int_or_none(page_size, "page_size")
        self.easify_conn_id = easify_conn_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the Easify account's report or contacts (namespaced by the API host, never the
        token) in, the object written out, named as the official S3 and object storage operators name it."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        lineage = getattr(self, "_lineage", None)
        if lineage is None:  # nothing was written (an empty export skipped, or a failure)
            return OperatorLineage()
        (in_namespace, in_name), (out_namespace, out_name) = lineage
        return OperatorLineage(
            inputs=[Dataset(namespace=in_namespace, name=in_name)],
            outputs=[Dataset(namespace=out_namespace, name=out_name)],
        )

    def get_destination(self) -> Destination:
        """Where the file goes; each concrete export operator says."""
        raise NotImplementedError

    def iter_rows(
        self, hook: EasifyHook, context: Context, typer: BatchTyper, progress: ExportProgress
    ) -> Iterator[Batch]:
        """Validate the rendered arguments (before any request), then return batches of typed rows lazily."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        if self.file_format == "parquet":
            require_parquet_support()
        destination = self.get_destination()
        hook = EasifyHook(easify_conn_id=self.easify_conn_id)
        typer = BatchTyper(self.columns, source_zone(self.source_timezone), self.log)
        progress = ExportProgress(self.log, lambda: hook.requests_made)
        rows = self.iter_rows(hook, context, typer, progress)
        destination.ensure_writable(self.replace)
        self.log.info("Exporting Easify %s as %s to %s", self.endpoint, self.file_format, destination.uri)
        count = write_and_publish(
            rows,
            columns=self.columns,
            file_format=self.file_format,
            compression=self.compression,
            destination=destination,
            replace=self.replace,
            skip_if_empty=self.skip_if_empty,
            progress=progress,
        )
        report_input_lineage(hook, self.endpoint)
        self._lineage = (easify_lineage_name(hook.settings.base_url, self.endpoint), destination.lineage_name())
        self.log.info("Exported %d rows to %s with %d API requests", count, destination.uri, progress.requests)
        result: dict[str, Any] = {"uri": destination.uri, "rows": count}
        if isinstance(destination, S3Destination):
            result["s3_uri"] = destination.uri
        return result


class EasifySmsReportExportOperator(EasifyExportOperator):
    """
    Export the SMS report (``GET /sms/report``); base of the SMS report transfers.

    Columns: id, sender, receiver, message, sms_type, send_by, media_url, status, created_at, reason.
    ``media_url``'s empty forms (``""``, ``null``, ``"null"``) are written as null.

    :param from_date: First day (``YYYY-MM-DD``, inclusive, templated). With ``to_date``, every row of
        those whole days is exported. Without both, the run's data interval is exported.
    :param to_date: Last day (inclusive, templated).
    :param status: Only rows with this status (templated).
    :param sender: Only rows sent from this account number (templated).
    :param receiver: Only rows to this number (templated); needs ``country_code`` unless E.164.
    :param country_code: The receiver's country code, e.g. ``+1`` (templated).
    """

    template_fields: Sequence[str] = ("from_date", "to_date", "status", "sender", "receiver", "country_code")
    columns = REPORT_COLUMNS
    endpoint = "sms/report"

    def __init__(
        self,
        *,
        from_date: str | None = None,
        to_date: str | None = None,
        status: str | None = None,
        sender: str | None = None,
        receiver: str | None = None,
        country_code: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.from_date = from_date
        self.to_date = to_date
        self.status = status
        self.sender = sender
        self.receiver = receiver
        self.country_code = country_code

    def iter_rows(
        self, hook: EasifyHook, context: Context, typer: BatchTyper, progress: ExportProgress
    ) -> Iterator[Batch]:
        plan = plan_report(self.from_date, self.to_date, context, typer.zone)
        filters = {
            name: value
            for name, value in (
                ("status", self.status),
                ("sender", self.sender),
                ("receiver", self.receiver),
                ("country_code", self.country_code),
            )
            if value not in (None, "")
        }
        shown = {k: mask_phone(v) if k in ("sender", "receiver") else v for k, v in filters.items()}
        self.log.info("SMS report rows %s, filters %s", plan.describe(), shown or "none")
        progress.windows = len(plan.windows)
        return report_batches(hook, plan, filters, typer, progress, self.page_size)


class EasifyContactsExportOperator(EasifyExportOperator):
    """
    Export the contacts (``GET /contacts``), all of them or one group's; base of the contacts transfers.

    Columns: id, group_name, first_name, last_name, phone_number, email_address, company,
    additional_1, additional_2, additional_3, shared_contact, created_at, updated_at.

    :param group_id: Only the contacts of this group (templated).
    """

    template_fields: Sequence[str] = ("group_id",)
    columns = CONTACT_COLUMNS
    endpoint = "contacts"

    def __init__(self, *, group_id: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_id = group_id

    def iter_rows(
        self, hook: EasifyHook, context: Context, typer: BatchTyper, progress: ExportProgress
    ) -> Iterator[Batch]:
        self.log.info("Contacts of %s", "every group" if self.group_id in (None, "") else f"group {self.group_id}")
        return contact_batches(hook, self.group_id, typer, progress, self.page_size)


# ---------------------------------------------------------------------- destinations


class _Output(EasifyExportOperator):
    """Where an export writes; a subclass of it and of an export templates both one's fields.

    An operator itself (not a plain mixin) so that Airflow wraps its ``__init__`` as it does every operator's.
    """

    destination_fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        export: Any = next((c for c in cls.__mro__ if c.__dict__.get("endpoint")), None)
        if export is not None:
            cls.template_fields = (*export.template_fields, *cls.destination_fields)


class _ObjectStorageOutput(_Output):
    """
    :param destination: The file to write: an ``ObjectStoragePath`` or a URI such as
        ``file:///data/sms/{{ ds }}.csv`` or ``s3://bucket/sms/{{ ds }}.csv`` (templated). ``s3://``
        destinations are written with ``S3Hook`` (no s3fs needed), others with ``ObjectStoragePath``.
    :param destination_conn_id: Connection of the storage (for ``s3://``, default ``aws_default``).
    """

    destination_fields = ("destination",)

    def __init__(self, *, destination: Any, destination_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.destination_conn_id = destination_conn_id

    def get_destination(self) -> Destination:
        return destination_from(self.destination, self.destination_conn_id)


class _S3Output(_Output):
    """
    Returns ``{"s3_uri": "s3://bucket/key", "uri": ..., "rows": N}``.

    :param s3_bucket: The bucket (templated). May be omitted when ``s3_key`` is a full ``s3://`` URL.
    :param s3_key: The object key (templated), e.g. ``easify/sms/{{ ds }}.csv``.
    :param aws_conn_id: The AWS connection.
    """

    destination_fields = ("s3_bucket", "s3_key")

    def __init__(
        self, *, s3_bucket: str | None = None, s3_key: str, aws_conn_id: str | None = "aws_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.aws_conn_id = aws_conn_id

    def get_destination(self) -> Destination:
        return s3_destination(self.s3_bucket, self.s3_key, self.aws_conn_id)


class EasifySmsReportToObjectStorageOperator(_ObjectStorageOutput, EasifySmsReportExportOperator):
    __doc__ = "Export the SMS report (:class:`EasifySmsReportExportOperator`) to any object storage.\n"
    __doc__ += _ObjectStorageOutput.__doc__ or ""


class EasifySmsReportToS3Operator(_S3Output, EasifySmsReportExportOperator):
    __doc__ = f"Export the SMS report (:class:`EasifySmsReportExportOperator`) to S3.\n{_S3Output.__doc__}"


class EasifyContactsToObjectStorageOperator(_ObjectStorageOutput, EasifyContactsExportOperator):
    __doc__ = "Export the contacts (:class:`EasifyContactsExportOperator`) to any object storage.\n"
    __doc__ += _ObjectStorageOutput.__doc__ or ""


class EasifyContactsToS3Operator(_S3Output, EasifyContactsExportOperator):
    __doc__ = f"Export the contacts (:class:`EasifyContactsExportOperator`) to one S3 object.\n{_S3Output.__doc__}"


def s3_destination(bucket: str | None, key: Any, aws_conn_id: str | None) -> S3Destination:
    """``s3_bucket`` + ``s3_key``, or a full ``s3://bucket/key`` in ``s3_key`` with no bucket."""
    if isinstance(key, str) and key.strip().lower().startswith("s3://"):
        if bucket not in (None, ""):
            raise EasifyInvalidParameterError("s3_bucket", bucket, "must be omitted when s3_key is a full s3:// URL")
        bucket, _, key = key.strip()[5:].partition("/")
    return S3Destination(bucket or "", key, aws_conn_id)
