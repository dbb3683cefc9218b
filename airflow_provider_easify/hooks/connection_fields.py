"""The extras of an Easify connection: one table that the Airflow 3 form (``conn-fields``), the Airflow 2
form (widgets) and the hook's checks all read, so that the form accepts exactly what the hook does.

Kept free of Airflow imports: ``get_provider_info()`` reads it while Airflow discovers providers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class ExtraField:
    name: str
    label: str
    description: str
    kind: Literal["number", "integer", "string"]
    default: Any
    minimum: float | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": [self.kind, "null"]}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        return schema


EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField("timeout", "Timeout (seconds)", "Timeout of every API request, at least 0.1 s. Default 30.",
               "number", 30.0, 0.1),
    ExtraField("send_per_minute", "Sends per minute",
               "Client-side pacing of /sms/send per token. Default 15; 0 turns pacing off.", "number", 15.0, 0),
    ExtraField("read_per_minute", "Reads per minute",
               "Client-side pacing of the GET endpoints per token. Default 60; 0 turns pacing off.", "number", 60.0, 0),
    ExtraField("max_retries", "Max retries",
               "Retries of 5xx, timeouts, dropped connections and 429s. Default 5; 0 retries nothing.",
               "integer", 5, 0),
    ExtraField("backoff_base", "Backoff base (seconds)",
               "First wait of the exponential backoff between retries (with jitter). Default 1.", "number", 1.0, 0),
    ExtraField("backoff_max", "Backoff max (seconds)", "Longest wait between two retries. Default 30.",
               "number", 30.0, 0),
    ExtraField("timezone", "API time zone",
               "IANA zone of the API's created_at timestamps (they carry none). Default UTC.", "string", "UTC"),
    ExtraField("send_window_seconds", "Send limit window (seconds)",
               "Length of the API's send-limit window, at least 0.1 s; sizes deferrable bulk bursts. Default 60.",
               "number", 60.0, 0.1),
    ExtraField("max_rate_limit_wait", "Longest rate-limit wait (seconds)",
               "The longest one call waits for budget (pacing and 429s together) before it raises. Default 300.",
               "number", 300.0, 0),
    ExtraField("send_settle_seconds", "Send settle time (seconds)",
               "How long a recorded send may take to show in the SMS report; a send whose answer was lost is "
               "looked up again after it before it is retried. Default 5.", "number", 5.0, 0),
    ExtraField("page_size", "Rows per page",
               "Rows asked for per page of the report and contacts. Default 1000; a server that refuses it "
               "is asked again with fewer.", "integer", 1000, 10),
    ExtraField("pacing_redis_conn_id", "Redis connection for pacing",
               "Id of an Airflow 'redis' connection through which every host shares the token's budget. "
               "Empty: each machine paces on its own.", "string", ""),
)

FIELDS_BY_NAME = {field.name: field for field in EXTRA_FIELDS}


def conn_fields() -> dict[str, Any]:
    """The ``conn-fields`` of the provider info (the Airflow 3 connection form)."""
    return {
        field.name: {"label": field.label, "description": field.description, "schema": field.schema()}
        for field in EXTRA_FIELDS
    }
