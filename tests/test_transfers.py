"""Exports to S3 and object storage: a real sandbox over HTTP, a real S3 protocol server (moto), real Airflow.

Most tests call ``operator.execute(context)`` with a context holding the data interval (our real code,
end to end); ``test_daily_dag_through_airflow`` runs the example DAG with ``airflow dags test`` so that
templating and the data interval come from Airflow itself.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import importlib.util
import io
import itertools
import json
import os
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException, ObjectStoragePath
from moto.server import ThreadedMotoServer

from airflow_provider_easify.exceptions import EasifyInvalidParameterError, EasifyServerError
from airflow_provider_easify.transfers.easify_to_s3 import (
    EasifyContactsToObjectStorageOperator,
    EasifyContactsToS3Operator,
    EasifySmsReportToObjectStorageOperator,
    EasifySmsReportToS3Operator,
)

HAVE_PYARROW = importlib.util.find_spec("pyarrow") is not None
REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DAG = REPO_ROOT / "example_dags" / "example_easify_daily_report_to_s3.py"
UTC = dt.UTC
VENDOR_TIME = "%m-%d-%Y %I:%M:%S %p"
REPORT_FIELDS = ("id", "sender", "receiver", "message", "sms_type", "send_by", "media_url", "status", "created_at",
                 "reason")
CONTACT_FIELDS = ("id", "group_name", "first_name", "last_name", "phone_number", "email_address", "company",
                  "additional_1", "additional_2", "additional_3", "shared_contact", "created_at", "updated_at")


# ---------------------------------------------------------------------- S3 server and connections


@pytest.fixture(scope="session")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_conn_json(endpoint: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing-key",
            "password": "testing-secret",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


class S3:
    """A fresh bucket on the moto server, read back with plain boto3 (not the code under test)."""

    def __init__(self, endpoint: str) -> None:
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing-key", aws_secret_access_key="testing-secret",
        )
        self.bucket = f"easify-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=self.bucket)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self) -> list[str]:
        return [o["Key"] for o in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> S3:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn_json(s3_endpoint))
    return S3(s3_endpoint)


@pytest.fixture
def easify_conn(make_hook) -> str:
    return make_hook().easify_conn_id


# ---------------------------------------------------------------------- expectations, computed independently


def utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def yesterday() -> dt.date:
    return dt.datetime.now(UTC).date() - dt.timedelta(days=1)


def vendor_time(value: str, zone: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime.strptime(value, VENDOR_TIME).replace(tzinfo=zone).astimezone(UTC)


def expected_report(raw: dict[str, Any], zone: dt.tzinfo = UTC) -> dict[str, Any]:
    row = {name: raw[name] for name in REPORT_FIELDS}
    row["id"] = int(raw["id"])
    row["media_url"] = None if raw["media_url"] in (None, "", "null") else raw["media_url"]
    row["created_at"] = vendor_time(raw["created_at"], zone)
    return row


def truth_between(sandbox, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The sandbox's own rows created in ``[start, end)``, oldest first, as the export should type them."""
    rows = sandbox.report_truth(start.date(), (end - dt.timedelta(microseconds=1)).date())
    typed = [expected_report(raw) for raw in rows]
    return [row for row in typed if start <= row["created_at"] < end]


def expected_contact(contact) -> dict[str, Any]:
    raw = contact.render()
    row = {name: raw[name] for name in CONTACT_FIELDS}
    row["created_at"] = vendor_time(raw["created_at"])
    row["updated_at"] = vendor_time(raw["updated_at"])
    return row


def blank_to_none(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """csv cannot tell an empty string from null."""
    return [{k: (None if v == "" else v) for k, v in row.items()} for row in rows]


# ---------------------------------------------------------------------- reading exports back


def read_rows(data: bytes, file_format: str, compression: str | None, kinds: dict[str, str]) -> list[dict[str, Any]]:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    if compression == "gzip":
        assert data[:2] == b"\x1f\x8b", "not a gzip stream"
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    if file_format == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        return [{k: _typed(v, kinds.get(k, "str")) for k, v in row.items()} for row in rows]
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    return [{k: _typed(v or None, kinds.get(k, "str")) for k, v in row.items()} for row in records]


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "timestamp":
        parsed = dt.datetime.fromisoformat(value)
        assert parsed.utcoffset() is not None, f"{value} has no offset"
        return parsed
    if kind == "bool":
        return value if isinstance(value, bool) else {"true": True, "false": False}[value]
    return value


REPORT_KINDS = {"id": "int", "created_at": "timestamp"}
CONTACT_KINDS = {"id": "int", "created_at": "timestamp", "updated_at": "timestamp", "shared_contact": "bool"}


def header_of(data: bytes, compression: str | None) -> list[str]:
    text = (gzip.decompress(data) if compression == "gzip" else data).decode()
    return text.splitlines()[0].split(",")


def interval(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {"data_interval_start": start, "data_interval_end": end}


def report_requests(sandbox) -> int:
    return sandbox.stats()["by_endpoint"].get("report", 0)


# ---------------------------------------------------------------------- row sets


@pytest.mark.parametrize("days", [1, 31, 75])
def test_data_interval_exports_exactly_the_truth(sandbox, s3, easify_conn, days, caplog, capsys):
    end = utc_midnight(yesterday())
    start = end - dt.timedelta(days=days)
    key = f"sms/{days}d.csv"
    op = EasifySmsReportToS3Operator(
        task_id="export", s3_bucket=s3.bucket, s3_key=key, easify_conn_id=easify_conn, page_size=100
    )

    with caplog.at_level("INFO"):
        result = op.execute(interval(start, end))

    truth = truth_between(sandbox, start, end)
    assert len(truth) >= 15 * days  # the seeded history really covers the interval
    data = s3.get(key)
    assert header_of(data, None) == list(REPORT_FIELDS)
    assert read_rows(data, "csv", None, REPORT_KINDS) == blank_to_none(truth)
    assert result == {"s3_uri": f"s3://{s3.bucket}/{key}", "uri": f"s3://{s3.bucket}/{key}", "rows": len(truth)}
    windows = -(-days // 30)
    # One request per page per 30-day window, nothing more: the export reads each page once.
    pages = sum(-(-len(sandbox.report_truth(a, b)) // 100) for a, b in _windows(start.date(), end.date(), 30))
    assert report_requests(sandbox) == pages
    assert pages >= windows
    log = logged(caplog, capsys)
    assert f"window {windows}/{windows} done" in log
    assert f"Exported {len(truth)} rows to s3://{s3.bucket}/{key} with {pages} API requests" in log


def _windows(first: dt.date, end_exclusive: dt.date, size: int) -> list[tuple[dt.date, dt.date]]:
    out, day = [], first
    while day < end_exclusive:
        last = min(day + dt.timedelta(days=size - 1), end_exclusive - dt.timedelta(days=1))
        out.append((day, last))
        day = last + dt.timedelta(days=1)
    return out


def test_consecutive_intervals_partition_the_data(sandbox, s3, easify_conn):
    """Intervals not aligned on days (06:30 to 06:30): each run asks two API days and keeps its own rows."""
    first = utc_midnight(yesterday() - dt.timedelta(days=5)) + dt.timedelta(hours=6, minutes=30)
    bounds = [first + dt.timedelta(days=n) for n in range(4)]
    exported: list[list[dict[str, Any]]] = []
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        key = f"sms/run{n}.jsonl"
        op = EasifySmsReportToS3Operator(
            task_id="export", s3_bucket=s3.bucket, s3_key=key, file_format="jsonl", easify_conn_id=easify_conn
        )
        assert op.execute(interval(start, end))["rows"] > 0
        rows = read_rows(s3.get(key), "jsonl", None, REPORT_KINDS)
        assert all(start <= row["created_at"] < end for row in rows)
        exported.append(rows)

    union = [row for rows in exported for row in rows]
    ids = [row["id"] for row in union]
    assert len(ids) == len(set(ids)), "consecutive runs overlap"
    assert union == truth_between(sandbox, bounds[0], bounds[-1]), "consecutive runs leave a gap"


def test_explicit_days_and_source_timezone(sandbox, s3, easify_conn):
    """from_date/to_date export whole inclusive days; created_at is read in source_timezone, written in UTC."""
    day = yesterday() - dt.timedelta(days=3)
    op = EasifySmsReportToObjectStorageOperator(
        task_id="export",
        destination=f"s3://{s3.bucket}/sms/explicit.jsonl",
        file_format="jsonl",
        from_date=day.isoformat(),
        to_date=day.isoformat(),
        source_timezone="America/New_York",
        easify_conn_id=easify_conn,
    )
    # A data interval in the context is ignored when the days are explicit.
    result = op.execute(interval(utc_midnight(day) - dt.timedelta(days=9), utc_midnight(day) - dt.timedelta(days=8)))

    new_york = zoneinfo.ZoneInfo("America/New_York")
    truth = [expected_report(raw, new_york) for raw in sandbox.report_truth(day, day)]
    assert read_rows(s3.get("sms/explicit.jsonl"), "jsonl", None, REPORT_KINDS) == truth
    assert result == {"uri": f"s3://{s3.bucket}/sms/explicit.jsonl", "s3_uri": f"s3://{s3.bucket}/sms/explicit.jsonl",
                      "rows": len(truth)}
    assert truth[0]["created_at"] - vendor_time(sandbox.report_truth(day, day)[0]["created_at"]) in (
        dt.timedelta(hours=4), dt.timedelta(hours=5)
    )


def test_filters_are_passed_and_masked_in_the_log(sandbox, s3, easify_conn, caplog, capsys):
    day = yesterday() - dt.timedelta(days=1)
    op = EasifySmsReportToS3Operator(
        task_id="export", s3_bucket=s3.bucket, s3_key="sms/delivered.csv", easify_conn_id=easify_conn,
        from_date=day.isoformat(), to_date=day.isoformat(), status="delivered", sender="+13155550101",
    )
    with caplog.at_level("INFO"):
        op.execute({})
    truth = [expected_report(r) for r in sandbox.report_truth(day, day, status="Delivered", sender="3155550101")]
    assert truth
    assert read_rows(s3.get("sms/delivered.csv"), "csv", None, REPORT_KINDS) == blank_to_none(truth)
    log = logged(caplog, capsys)
    assert "'status': 'delivered'" in log and "Exported" in log  # the log was captured...
    assert "3155550101" not in log  # ... with the sender masked
    assert sandbox.token not in log


def logged(caplog, capsys) -> str:
    """The task log: Airflow 2 logs through logging (caplog), Airflow 3's structlog prints to stdout."""
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


# ---------------------------------------------------------------------- formats


FORMATS = [("csv", None), ("csv", "gzip"), ("jsonl", None), ("jsonl", "gzip"), ("parquet", None), ("parquet", "gzip")]


@pytest.mark.parametrize(("file_format", "compression"), FORMATS)
def test_each_format_reads_back_and_reruns_are_identical(sandbox, s3, easify_conn, file_format, compression):
    end = utc_midnight(yesterday())
    start = end - dt.timedelta(days=2)
    key = f"sms/export.{file_format}"
    op = EasifySmsReportToS3Operator(
        task_id="export", s3_bucket=s3.bucket, s3_key=key, file_format=file_format, compression=compression,
        easify_conn_id=easify_conn,
    )
    if file_format == "parquet" and not HAVE_PYARROW:
        with pytest.raises(EasifyInvalidParameterError, match="pyarrow"):
            op.execute(interval(start, end))
        assert sandbox.stats()["total"] == 0 and s3.keys() == []
        return

    op.execute(interval(start, end))
    first = s3.get(key)
    truth = truth_between(sandbox, start, end)
    rows = read_rows(first, file_format, compression, REPORT_KINDS)
    assert rows == (blank_to_none(truth) if file_format == "csv" else truth)
    if file_format == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(io.BytesIO(first))
        assert schema.names == list(REPORT_FIELDS)
        assert str(schema.field("id").type) == "int64"
        assert str(schema.field("created_at").type) == "timestamp[us, tz=UTC]"
        codec = pq.ParquetFile(io.BytesIO(first)).metadata.row_group(0).column(0).compression
        assert codec == ("GZIP" if compression == "gzip" else "SNAPPY")

    op.execute(interval(start, end))
    assert s3.get(key) == first, "a re-run of the same interval must write the same bytes"


def test_empty_interval(sandbox, s3, easify_conn):
    future = utc_midnight(yesterday() + dt.timedelta(days=30))
    formats = [("csv", None), ("csv", "gzip"), ("jsonl", None)] + ([("parquet", None)] if HAVE_PYARROW else [])
    for file_format, compression in formats:
        key = f"empty/{file_format}-{compression}"
        op = EasifySmsReportToS3Operator(
            task_id="export", s3_bucket=s3.bucket, s3_key=key, file_format=file_format, compression=compression,
            easify_conn_id=easify_conn,
        )
        assert op.execute(interval(future, future + dt.timedelta(days=1)))["rows"] == 0
        data = s3.get(key)
        assert read_rows(data, file_format, compression, REPORT_KINDS) == []
        if file_format == "csv":
            assert header_of(data, compression) == list(REPORT_FIELDS)
        if file_format == "jsonl":
            assert data == b""
        if file_format == "parquet":
            import pyarrow.parquet as pq

            assert pq.read_schema(io.BytesIO(data)).names == list(REPORT_FIELDS)

    skipping = EasifySmsReportToS3Operator(
        task_id="export", s3_bucket=s3.bucket, s3_key="empty/skipped.csv", skip_if_empty=True,
        easify_conn_id=easify_conn,
    )
    with pytest.raises(AirflowSkipException):
        skipping.execute(interval(future, future + dt.timedelta(days=1)))
    assert "empty/skipped.csv" not in s3.keys()

    # A zero-length interval (Airflow 3's default "@daily" timetable) is refused, not exported as empty.
    before = report_requests(sandbox)
    zero = EasifySmsReportToS3Operator(
        task_id="export", s3_bucket=s3.bucket, s3_key="empty/zero.csv", easify_conn_id=easify_conn
    )
    with pytest.raises(EasifyInvalidParameterError, match="CronDataIntervalTimetable") as raised:
        zero.execute(interval(future, future))
    assert raised.value.parameter == "from_date"
    assert report_requests(sandbox) == before
    assert "empty/zero.csv" not in s3.keys()


# ---------------------------------------------------------------------- atomicity


def test_fault_mid_export_leaves_nothing_and_a_retry_completes(sandbox, s3, make_hook, tmp_path):
    conn = make_hook(max_retries=1).easify_conn_id
    end = utc_midnight(yesterday())
    start = end - dt.timedelta(days=45)
    local_dir = tmp_path / "exports"
    operators = [
        EasifySmsReportToS3Operator(
            task_id="export", s3_bucket=s3.bucket, s3_key="sms/45d.csv.gz", compression="gzip",
            easify_conn_id=conn, page_size=50,
        ),
        EasifySmsReportToObjectStorageOperator(
            task_id="export", destination=f"file://{local_dir}/sms/45d.jsonl", file_format="jsonl",
            easify_conn_id=conn, page_size=50,
        ),
    ]
    local_files = lambda: [p for p in local_dir.rglob("*") if p.is_file()] if local_dir.exists() else []  # noqa: E731
    for op in operators:
        sandbox.clear_faults()
        # Two pages go through, then the third fails on both tries (max_retries=1).
        sandbox.add_faults([
            {"endpoint": "report", "kind": "slow", "delay": 0, "times": 2},
            {"endpoint": "report", "kind": "http_error", "status": 500, "times": 2},
        ])
        fired = sandbox.stats()["faults_fired"]
        with pytest.raises(EasifyServerError):
            op.execute(interval(start, end))
        assert sandbox.stats()["faults_fired"] == fired + 4
        assert s3.keys() == ([] if op is operators[0] else ["sms/45d.csv.gz"])
        assert local_files() == []

        result = op.execute(interval(start, end))  # the task's retry
        assert result["rows"] == len(truth_between(sandbox, start, end))

    truth = truth_between(sandbox, start, end)
    assert read_rows(s3.get("sms/45d.csv.gz"), "csv", "gzip", REPORT_KINDS) == blank_to_none(truth)
    local_file = local_dir / "sms" / "45d.jsonl"
    assert read_rows(local_file.read_bytes(), "jsonl", None, REPORT_KINDS) == truth
    assert [p.name for p in local_file.parent.iterdir()] == ["45d.jsonl"], "staging files left behind"


def test_a_large_export_is_one_multipart_upload(sandbox, s3, easify_conn):
    """Past S3Hook's multipart threshold the file goes up in parts, read from disk, as one object."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    threshold = S3Hook().transfer_config.multipart_threshold
    sandbox.configure(read_limit=0)
    sandbox.generate_report("2023-05-01", "2023-05-02", 40_000)
    op = EasifySmsReportToS3Operator(
        task_id="export", s3_bucket=s3.bucket, s3_key="sms/large.csv", from_date="2023-05-01",
        to_date="2023-05-02", easify_conn_id=easify_conn,
    )

    result = op.execute({})

    head = s3.client.head_object(Bucket=s3.bucket, Key="sms/large.csv")
    assert head["ContentLength"] > threshold, "the export must be large enough to need a multipart upload"
    parts = int(head["ETag"].strip('"').rpartition("-")[2])  # a multipart object's ETag ends in -<parts>
    assert parts == -(-head["ContentLength"] // S3Hook().transfer_config.multipart_chunksize)
    truth = [expected_report(raw) for raw in sandbox.report_truth("2023-05-01", "2023-05-02")]
    assert result["rows"] == len(truth) >= 80_000
    assert read_rows(s3.get("sms/large.csv"), "csv", None, REPORT_KINDS) == blank_to_none(truth)
    assert s3.keys() == ["sms/large.csv"]


def test_replace_false_fails_before_reading(sandbox, s3, easify_conn, tmp_path):
    s3.client.put_object(Bucket=s3.bucket, Key="sms/existing.csv", Body=b"old")
    existing = tmp_path / "existing.csv"
    existing.write_text("old")
    day = yesterday().isoformat()
    ops = [
        EasifySmsReportToS3Operator(task_id="a", s3_bucket=s3.bucket, s3_key="sms/existing.csv", replace=False,
                                    from_date=day, to_date=day, easify_conn_id=easify_conn),
        EasifySmsReportToObjectStorageOperator(task_id="b", destination=str(existing), replace=False,
                                               from_date=day, to_date=day, easify_conn_id=easify_conn),
    ]
    for op in ops:
        with pytest.raises(AirflowException, match="already exists"):
            op.execute({})
    assert sandbox.stats()["total"] == 0
    assert s3.get("sms/existing.csv") == b"old" and existing.read_text() == "old"


# ---------------------------------------------------------------------- contacts


def test_contacts_all_groups_and_one_group(sandbox, s3, easify_conn):
    everyone = sorted(sandbox.state.contacts, key=lambda c: c.id)
    all_op = EasifyContactsToS3Operator(
        task_id="contacts", s3_bucket=s3.bucket, s3_key="contacts/all.csv", easify_conn_id=easify_conn, page_size=10
    )
    assert all_op.execute({})["rows"] == len(everyone)
    rows = read_rows(s3.get("contacts/all.csv"), "csv", None, CONTACT_KINDS)
    assert rows == blank_to_none([expected_contact(c) for c in everyone])
    assert header_of(s3.get("contacts/all.csv"), None) == list(CONTACT_FIELDS)

    group = everyone[0].group_id
    members = [c for c in everyone if c.group_id == group]
    assert 0 < len(members) < len(everyone)
    one_op = EasifyContactsToS3Operator(
        task_id="contacts", s3_bucket=s3.bucket, s3_key="contacts/group.jsonl", file_format="jsonl",
        group_id=str(group), easify_conn_id=easify_conn,
    )
    assert one_op.execute({})["rows"] == len(members)
    assert read_rows(s3.get("contacts/group.jsonl"), "jsonl", None, CONTACT_KINDS) == [
        expected_contact(c) for c in members
    ]


# ---------------------------------------------------------------------- object storage destinations


def test_local_file_destinations(sandbox, easify_conn, tmp_path):
    day = yesterday() - dt.timedelta(days=2)
    truth = [expected_report(raw) for raw in sandbox.report_truth(day, day)]
    targets = {
        "uri": f"file://{tmp_path}/a/b/report.jsonl",
        "path": ObjectStoragePath(f"file://{tmp_path}/c/report.jsonl"),
        "plain": str(tmp_path / "d" / "report.jsonl"),
    }
    for name, target in targets.items():
        op = EasifySmsReportToObjectStorageOperator(
            task_id=f"export_{name}", destination=target, file_format="jsonl", from_date=day.isoformat(),
            to_date=day.isoformat(), easify_conn_id=easify_conn,
        )
        result = op.execute({})
        path = Path(str(target).removeprefix("file://"))
        assert result == {"uri": f"file://{path}", "rows": len(truth)}
        assert read_rows(path.read_bytes(), "jsonl", None, REPORT_KINDS) == truth
        assert os.listdir(path.parent) == ["report.jsonl"]

    contacts_path = tmp_path / "contacts" / "all.csv"
    EasifyContactsToObjectStorageOperator(
        task_id="contacts", destination=f"file://{contacts_path}", easify_conn_id=easify_conn
    ).execute({})
    assert len(read_rows(contacts_path.read_bytes(), "csv", None, CONTACT_KINDS)) == len(sandbox.state.contacts)


def test_remote_object_storage_destination(sandbox, easify_conn):
    """A non-local ObjectStoragePath (fsspec's in-memory store attached to Airflow, standing in for gs:// etc.)."""
    import fsspec

    try:
        from airflow.sdk.io import attach
    except ImportError:  # Airflow 2
        from airflow.io.store import attach

    memory = fsspec.filesystem("memory")
    attach("memory", fs=memory)
    prefix = f"/exports-{uuid.uuid4().hex[:8]}"
    destination = f"memory:/{prefix}/contacts.jsonl.gz"
    op = EasifyContactsToObjectStorageOperator(
        task_id="contacts", destination=destination, file_format="jsonl", compression="gzip",
        easify_conn_id=easify_conn,
    )
    result = op.execute({})
    expected = [expected_contact(c) for c in sorted(sandbox.state.contacts, key=lambda c: c.id)]
    # The URI as Airflow spells it (Airflow 2 writes memory:///..., Airflow 3 memory://...).
    assert result == {"uri": str(ObjectStoragePath(destination)), "rows": len(expected)}
    assert read_rows(memory.cat(f"{prefix}/contacts.jsonl.gz"), "jsonl", "gzip", CONTACT_KINDS) == expected
    assert memory.ls(prefix, detail=False) == [f"{prefix}/contacts.jsonl.gz"]

    requests = sandbox.stats()["total"]
    refused = EasifyContactsToObjectStorageOperator(
        task_id="contacts", destination=ObjectStoragePath(f"memory:/{prefix}/contacts.jsonl.gz"), replace=False,
        easify_conn_id=easify_conn,
    )
    with pytest.raises(AirflowException, match="already exists"):
        refused.execute({})
    assert sandbox.stats()["total"] == requests


# ---------------------------------------------------------------------- refused input


def test_bad_input_is_refused_before_any_request(sandbox, s3, easify_conn, tmp_path):
    common = {"task_id": "export", "s3_bucket": s3.bucket, "s3_key": "k.csv", "easify_conn_id": easify_conn}
    for kwargs, parameter in [
        ({"file_format": "xml"}, "file_format"),
        ({"file_format": "csv", "compression": "bz2"}, "compression"),
        ({"source_timezone": "Mars/Olympus_Mons"}, "source_timezone"),
        ({"page_size": 0}, "page_size"),
    ]:
        with pytest.raises(EasifyInvalidParameterError) as raised:
            EasifySmsReportToS3Operator(**common, **kwargs)
        assert raised.value.parameter == parameter

    day = yesterday().isoformat()
    earlier = (yesterday() - dt.timedelta(days=1)).isoformat()
    for kwargs, context, parameter in [
        ({"from_date": day}, {}, "to_date"),
        ({"to_date": day}, {}, "from_date"),
        ({"from_date": day, "to_date": earlier}, {}, "to_date"),
        ({"from_date": "yesterday", "to_date": day}, {}, "from_date"),
        ({}, {}, "from_date"),  # no dates and no data interval
        ({"status": "Lost"}, interval(utc_midnight(yesterday()), utc_midnight(yesterday()) + dt.timedelta(days=1)),
         "status"),
        ({"country_code": "+1"}, interval(utc_midnight(yesterday()), utc_midnight(yesterday()) + dt.timedelta(1)),
         "country_code"),
        ({"s3_bucket": ""}, {}, "s3_bucket"),
        ({"s3_key": "folder/"}, {}, "s3_key"),
        ({"s3_key": f"s3://{s3.bucket}/k.csv"}, {}, "s3_bucket"),  # a full URL with a bucket as well
    ]:
        op = EasifySmsReportToS3Operator(**{**common, **kwargs})
        with pytest.raises(EasifyInvalidParameterError) as raised:
            op.execute(context)
        assert raised.value.parameter == parameter, kwargs
    for destination in ["", f"file://{tmp_path}/dir/", None]:
        op = EasifySmsReportToObjectStorageOperator(
            task_id="export", destination=destination, from_date=day, to_date=day, easify_conn_id=easify_conn
        )
        with pytest.raises(EasifyInvalidParameterError, match="destination"):
            op.execute({})
    assert sandbox.stats()["total"] == 0
    assert s3.keys() == []


def test_other_ways_to_name_an_s3_object(sandbox, s3, easify_conn):
    op = EasifyContactsToS3Operator(task_id="c", s3_key=f"s3://{s3.bucket}/contacts/full.csv",
                                    easify_conn_id=easify_conn)
    assert op.execute({})["s3_uri"] == f"s3://{s3.bucket}/contacts/full.csv"
    # An s3:// ObjectStoragePath goes through S3Hook too (no s3fs needed).
    path = ObjectStoragePath(f"s3://{s3.bucket}/contacts/path.csv", conn_id="aws_default")
    op = EasifyContactsToObjectStorageOperator(task_id="c", destination=path, easify_conn_id=easify_conn)
    result = op.execute({})
    assert result == {"uri": f"s3://{s3.bucket}/contacts/path.csv", "s3_uri": f"s3://{s3.bucket}/contacts/path.csv",
                      "rows": len(sandbox.state.contacts)}
    assert sorted(s3.keys()) == ["contacts/full.csv", "contacts/path.csv"]
    assert s3.get("contacts/full.csv") == s3.get("contacts/path.csv")


# ---------------------------------------------------------------------- lineage


def test_lineage_names_the_easify_input_and_the_output(sandbox, s3, easify_conn, tmp_path, monkeypatch):
    import airflow.providers.common.compat.sdk as compat_sdk

    # A real collector, as Airflow creates once a hook-lineage reader (e.g. OpenLineage) is installed.
    collector = compat_sdk.HookLineageCollector()
    monkeypatch.setattr(compat_sdk, "get_hook_lineage_collector", lambda: collector, raising=False)
    day = yesterday().isoformat()
    EasifySmsReportToS3Operator(
        task_id="a", s3_bucket=s3.bucket, s3_key="sms/lineage.csv", from_date=day, to_date=day,
        easify_conn_id=easify_conn,
    ).execute({})
    EasifyContactsToObjectStorageOperator(
        task_id="b", destination=f"file://{tmp_path}/contacts.csv", easify_conn_id=easify_conn
    ).execute({})

    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    lineage = get_hook_lineage_collector().collected_assets
    inputs = sorted(info.asset.uri for info in lineage.inputs)
    outputs = sorted(info.asset.uri for info in lineage.outputs)
    api = sandbox.api_url.split("://", 1)[1]
    assert inputs == [f"easify://{api}/contacts", f"easify://{api}/sms/report"]
    assert outputs == sorted([f"file://{tmp_path}/contacts.csv", f"s3://{s3.bucket}/sms/lineage.csv"])


# ---------------------------------------------------------------------- typing, filtering, prefetching


def test_typing_of_raw_values(caplog, capsys):
    import logging

    from airflow_provider_easify.exceptions import EasifyError
    from airflow_provider_easify.transfers._rows import CONTACT_COLUMNS, REPORT_COLUMNS, BatchTyper, source_zone

    log = logging.getLogger("test_transfers")
    typer = BatchTyper(REPORT_COLUMNS, source_zone("UTC"), log)
    raws = [
        {"id": 1, "media_url": "", "created_at": "10-15-2024 05:36:32 PM", "status": "Failed", "reason": ""},
        {"id": "2", "media_url": "null", "created_at": "10-15-2024 12:00:00 AM", "sender": 3155550100},
        {"id": 3, "media_url": None, "created_at": "10-31-2024 12:59:59 pm", "new_field": "x"},  # day > 28, "pm"
        {"id": 4, "media_url": "https://x/y.jpg", "created_at": "2024-10-15T19:36:32+02:00"},  # ISO with offset
    ]
    with caplog.at_level("WARNING"):
        batch = typer(raws)
    columns = dict(zip(typer.names, batch))
    assert columns["id"] == [1, 2, 3, 4]
    assert columns["media_url"] == [None, None, None, "https://x/y.jpg"]
    assert columns["sender"] == [None, "3155550100", None, None]  # missing fields are null
    assert columns["reason"] == ["", None, None, None]  # only media_url's empty forms are null
    assert columns["created_at"] == [
        "2024-10-15T17:36:32+00:00", "2024-10-15T00:00:00+00:00", "2024-10-31T12:59:59+00:00",
        "2024-10-15T17:36:32+00:00",
    ]
    assert "new_field" in logged(caplog, capsys)

    new_york = BatchTyper(REPORT_COLUMNS, source_zone("America/New_York"), log)
    created = dict(zip(new_york.names, new_york([{"id": 1, "created_at": "07-01-2024 08:00:00 PM"}])))["created_at"]
    assert created == ["2024-07-02T00:00:00+00:00"]  # EDT is UTC-4

    contacts = BatchTyper(CONTACT_COLUMNS, source_zone("UTC"), log)
    shared = dict(zip(contacts.names, contacts([{"id": 1, "shared_contact": "true"}, {"id": 2, "shared_contact": 0}])))
    assert shared["shared_contact"] == [True, False]

    for bad, column in [
        ({"id": 7, "created_at": "yesterday"}, "created_at"),
        ({"id": 8, "created_at": "02-29-2023 01:00:00 AM"}, "created_at"),  # not a leap year
        ({"id": 9, "created_at": "10-15-2024 00:30:00 AM"}, "created_at"),  # no hour 0 on a 12-hour clock
        ({"id": "x7"}, "id"),
    ]:
        with pytest.raises(EasifyError, match=f"unreadable {column}"):
            typer([raws[0], bad])


def test_interval_filter_on_timestamps_with_fractions():
    from airflow_provider_easify.transfers._export import ReportPlan

    start = dt.datetime(2024, 10, 15, 6, 30, 0, 500000, tzinfo=UTC)
    plan = ReportPlan(start.date(), start.date(), start, start + dt.timedelta(hours=1))
    keep = plan.batch_filter(0)
    created = ["2024-10-15T06:30:00+00:00", "2024-10-15T06:30:00.400000+00:00", "2024-10-15T06:30:00.500000+00:00",
               "2024-10-15T06:30:01+00:00", "2024-10-15T07:30:00.499999+00:00", "2024-10-15T07:30:00.500000+00:00",
               None]
    assert keep([created, list(range(7))]) == [created[2:5], [2, 3, 4]]


def test_prefetching_keeps_order_raises_in_place_and_stops_early():
    import threading
    import time

    from airflow_provider_easify.transfers._export import prefetched

    def failing():
        yield 1
        yield 2
        raise ValueError("page 3 failed")

    seen = []
    with pytest.raises(ValueError, match="page 3 failed"):
        for item in prefetched(failing(), 1):
            seen.append(item)
    assert seen == [1, 2]

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    for item in prefetched(endless(), 2):
        if item == 3:
            break
    time.sleep(0.5)
    assert len(produced) <= 3 + 2 + 2  # read ahead at most the queue's depth, then stopped
    assert not [t for t in threading.enumerate() if t.name == "easify-export-fetch"]


def test_a_failure_while_writing_stops_fetching_and_publishes_nothing(tmp_path):
    import logging
    import threading
    import time

    from airflow_provider_easify.exceptions import EasifyError
    from airflow_provider_easify.transfers._destinations import destination_from
    from airflow_provider_easify.transfers._export import (
        ExportProgress,
        _raw_batches,
        _typed_batches,
        write_and_publish,
    )
    from airflow_provider_easify.transfers._rows import REPORT_COLUMNS, BatchTyper, source_zone

    log = logging.getLogger("test_transfers")
    fetched = []

    def pages():  # 1000 good rows, then one the typer refuses, then more than anyone should read
        for n in range(100_000):
            fetched.append(n)
            yield {"id": n if n != 1000 else "x", "created_at": "10-15-2024 05:36:32 PM"}

    typer = BatchTyper(REPORT_COLUMNS, source_zone("UTC"), log)
    progress = ExportProgress(log, lambda: 0)
    batches = _typed_batches(_raw_batches([pages()], 100), typer, progress, None)
    target = tmp_path / "out" / "report.csv"
    # ``raised`` keeps the traceback, and with it the generators' frames, alive (as a task's error handling would).
    with pytest.raises(EasifyError, match="unreadable id") as raised:
        write_and_publish(batches, columns=REPORT_COLUMNS, file_format="csv", compression=None,
                          destination=destination_from(str(target), None), replace=True, skip_if_empty=False,
                          progress=progress)
    time.sleep(0.5)
    assert raised.traceback and not [t for t in threading.enumerate() if t.name == "easify-export-fetch"]
    assert len(fetched) < 2000
    assert os.listdir(target.parent) == []


# ---------------------------------------------------------------------- real Airflow


def test_daily_dag_through_airflow(sandbox, s3, s3_endpoint, airflow_home):
    """The example DAG: the bucket is templated from a Variable, the key and interval come from Airflow."""
    airflow_home.env["AIRFLOW_CONN_AWS_DEFAULT"] = aws_conn_json(s3_endpoint)
    airflow_home.env["AIRFLOW_VAR_EASIFY_EXPORT_BUCKET"] = s3.bucket
    airflow_home.add_dag_file(EXAMPLE_DAG)
    logical = yesterday() - dt.timedelta(days=1)

    run = airflow_home.dags_test("example_easify_daily_report_to_s3", logical_date=logical.isoformat())

    run.assert_success()
    sms = run.xcoms["sms_report_to_s3"]
    key = sms["s3_uri"].removeprefix(f"s3://{s3.bucket}/")
    partition = dt.date.fromisoformat(key.split("dt=")[1].split("/")[0])
    # CronDataIntervalTimetable: on Airflow 2 and 3 alike, the run at midnight covers the day before.
    assert partition == logical - dt.timedelta(days=1)
    start = utc_midnight(partition)
    truth = truth_between(sandbox, start, start + dt.timedelta(days=1))
    assert sms["rows"] == len(truth) > 0
    assert read_rows(s3.get(key), "csv", "gzip", REPORT_KINDS) == blank_to_none(truth)
    contacts = run.xcoms["contacts_to_s3"]
    assert contacts["rows"] == len(sandbox.state.contacts)
    assert contacts["s3_uri"] == f"s3://{s3.bucket}/easify/contacts/dt={partition.isoformat()}/contacts.jsonl"
    assert sandbox.token not in run.log
