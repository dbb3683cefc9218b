"""OpenLineage of the exports, with the openlineage provider installed (no transport: nothing leaves the machine).

Input: the Easify account's report or contacts, namespaced by the API host (never the token); output: the
object written, named as the official S3 and object storage operators name it."""

from __future__ import annotations

import datetime as dt
import json

import attrs
from airflow.providers.common.compat.sdk import ObjectStoragePath
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_easify.transfers.easify_to_s3 import (
    EasifyContactsToObjectStorageOperator,
    EasifySmsReportToS3Operator,
)
from tests.test_transfers import easify_conn, interval, s3, s3_endpoint  # noqa: F401 - fixtures


def datasets(lineage: OperatorLineage) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return ([(d.namespace, d.name) for d in lineage.inputs], [(d.namespace, d.name) for d in lineage.outputs])


def test_the_report_export_names_the_account_report_and_the_s3_object(sandbox, s3, easify_conn):  # noqa: F811
    start = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    op = EasifySmsReportToS3Operator(task_id="export", s3_bucket=s3.bucket, s3_key="sms/2026-11-30.csv",
                                     easify_conn_id=easify_conn)
    assert datasets(op.get_openlineage_facets_on_complete(None)) == ([], []), "nothing before it ran"

    op.execute(interval(start, start + dt.timedelta(days=1)))

    lineage = op.get_openlineage_facets_on_complete(None)
    host = sandbox.api_url.split("://", 1)[1].split("/", 1)[0]
    path = sandbox.api_url.split("://", 1)[1].partition("/")[2].strip("/")
    assert datasets(lineage) == ([(f"easify://{host}", f"{path}/sms/report".lstrip("/"))],
                                 [(f"s3://{s3.bucket}", "sms/2026-11-30.csv")])
    # What OpenLineage would send holds no secret.
    assert sandbox.token not in json.dumps([attrs.asdict(d) for d in lineage.inputs + lineage.outputs], default=str)


def test_the_contacts_export_names_an_object_storage_path_as_the_standard_provider_does(
    sandbox, easify_conn, tmp_path  # noqa: F811
):
    target = ObjectStoragePath(f"file://{tmp_path}/contacts.csv")
    op = EasifyContactsToObjectStorageOperator(task_id="contacts", destination=target, easify_conn_id=easify_conn)
    op.execute({})
    inputs, outputs = datasets(op.get_openlineage_facets_on_complete(None))
    assert [name for _, name in inputs] == [inputs[0][1]] and inputs[0][1].endswith("contacts")
    assert outputs == [(target.namespace, target.key.lstrip("/"))] == [("file", f"{tmp_path}/contacts.csv".lstrip("/"))]
