"""Where an export's finished file goes: S3 through ``S3Hook``, anything else through ``ObjectStoragePath``."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

_LOCAL_PROTOCOLS = ("", "file", "local")


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

    def lineage_name(self) -> tuple[str, str]:
        """The OpenLineage dataset (namespace, name) of what was written."""
        raise NotImplementedError


class S3Destination(Destination):
    """An S3 object, uploaded through ``S3Hook``'s client and transfer config (multipart when large)."""

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

    def lineage_name(self) -> tuple[str, str]:
        return f"s3://{self.bucket}", self.key

    def publish(self, local_path: str, replace: bool) -> None:
        # The client's upload_file, as the amazon provider's DynamoDBToS3Operator does: it reads the
        # parts from disk as they are sent (upload_fileobj keeps up to ~10 parts of 8 MB in memory),
        # and unlike S3Hook.load_file it does not report our temporary file as a lineage input.
        hook = self.hook
        self.ensure_writable(replace)
        hook.get_conn().upload_file(
            local_path, self.bucket, self.key, ExtraArgs=hook.extra_args, Config=hook.transfer_config
        )
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(
            context=hook, scheme="s3", asset_kwargs={"bucket": self.bucket, "key": self.key}
        )


class ObjectStorageDestination(Destination):
    """Any ``ObjectStoragePath``. Local files are renamed into place; remote ones get one ``put_file``."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self.uri = str(path)
        self.local = path.protocol in _LOCAL_PROTOCOLS

    def exists(self) -> bool:
        return bool(self.path.exists())

    def lineage_name(self) -> tuple[str, str]:
        # As the standard provider's FileTransferOperator names an ObjectStoragePath: `s3://bucket`, `key`.
        return str(self.path.namespace), str(self.path.key).lstrip("/")

    def staging_dir(self) -> str | None:
        if not self.local:
            return None
        parent = os.path.dirname(self.path.path) or "."
        os.makedirs(parent, exist_ok=True)
        return parent  # same file system as the target, so the final rename is atomic

    def publish(self, local_path: str, replace: bool) -> None:
        if self.local:
            if replace:
                os.replace(local_path, self.path.path)
            else:
                try:
                    os.link(local_path, self.path.path)  # atomic, and never over an existing file
                except FileExistsError:
                    raise AirflowException(f"{self.uri} already exists and replace=False") from None
        else:
            self.ensure_writable(replace)
            self.path.fs.put_file(local_path, self.path.path)
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=self.path, uri=self.uri)


def destination_from(destination: Any, conn_id: str | None) -> Destination:
    """A destination from an ``ObjectStoragePath`` or a URI (``s3://``, ``file://``, ``gs://``, a plain path)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath  # fsspec and upath: not at DAG parse time

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
