"""What the transport needs to know about one Easify connection."""

from __future__ import annotations

import dataclasses

DEFAULT_BASE_URL = "https://backend.easify.app/api/v2"


@dataclasses.dataclass(frozen=True)
class EasifyConnectionSettings:
    """The settings read from the Airflow connection. The token is kept out of ``repr``."""

    base_url: str
    token: str = dataclasses.field(repr=False)
    timeout: float = 30.0
    send_per_minute: float = 15.0
    read_per_minute: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    server_timezone: str = "UTC"
    send_window_seconds: float = 60.0
    #: The longest one call may wait for budget: pacer slots and 429 push-backs together.
    max_rate_limit_wait: float = 300.0
    #: Seconds a recorded send may take to show in the report; a failed send is looked up again after it.
    send_settle_seconds: float = 5.0
    #: Rows asked for per page of the paginated listings.
    page_size: int = 1000
    #: An Airflow connection of type ``redis`` through which every host shares the budget; None: local.
    pacing_redis_conn_id: str | None = None
