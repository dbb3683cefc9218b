"""Daily export of the Easify SMS report, plus a contacts snapshot, to S3.

Each run exports exactly the messages created during its data interval
``[data_interval_start, data_interval_end)``, the day before the run: consecutive runs neither overlap
nor leave gaps, and a re-run (or a backfill) of a day replaces that day's object with the same messages,
each with its status as of the re-run (a message still Pending at midnight may be Delivered by then).
The contacts file is a snapshot of the contact list when the task runs, filed under the same day: a
re-run replaces it with the list as it is at the re-run.

Connections: ``easify_default`` (the API token in its password) and ``aws_default``. The bucket comes
from the Airflow Variable ``easify_export_bucket``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_easify.transfers.easify_to_s3 import EasifyContactsToS3Operator, EasifySmsReportToS3Operator

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2
    from airflow.timetables.interval import CronDataIntervalTimetable

BUCKET = "{{ var.value.get('easify_export_bucket', 'my-data-lake') }}"
PARTITION = "dt={{ data_interval_start | ds }}"

with DAG(
    dag_id="example_easify_daily_report_to_s3",
    # A run at midnight covers the day before it. (Airflow 3's plain "@daily" has no data interval.)
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
    tags=["easify", "example"],
) as dag:
    sms_report = EasifySmsReportToS3Operator(
        task_id="sms_report_to_s3",
        s3_bucket=BUCKET,
        s3_key=f"easify/sms_report/{PARTITION}/sms_report.csv.gz",
        file_format="csv",
        compression="gzip",
    )

    contacts = EasifyContactsToS3Operator(
        task_id="contacts_to_s3",
        s3_bucket=BUCKET,
        s3_key=f"easify/contacts/{PARTITION}/contacts.jsonl",
        file_format="jsonl",
    )
