"""The Easify connection: its form in the Airflow UI, and the settings the hook reads from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_easify.exceptions import EasifyConfigurationError
from airflow_provider_easify.transport.settings import DEFAULT_BASE_URL, EasifyConnectionSettings

#: Seconds a Redis command used for pacing may take before pacing falls back to this machine.
REDIS_SOCKET_TIMEOUT = 2.0


def ui_field_behaviour() -> dict[str, Any]:
    return {
        "hidden_fields": ["schema", "login", "port"],
        "relabeling": {"password": "API token", "host": "API base URL"},
        "placeholders": {
            "host": DEFAULT_BASE_URL,
            "password": "Settings > API Settings in the Easify app",
            "extra": '{"timeout": 30, "send_per_minute": 15, "read_per_minute": 60, "max_retries": 5}',
        },
    }


def connection_form_widgets() -> dict[str, Any]:
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional

    def number(label: str) -> Any:
        return IntegerField(
            lazy_gettext(label), validators=[Optional(), NumberRange(min=0)], widget=BS3TextFieldWidget()
        )

    return {
        "timeout": StringField(lazy_gettext("Timeout (seconds)"), widget=BS3TextFieldWidget()),
        "send_per_minute": number("Sends per minute (0 = no pacing)"),
        "read_per_minute": number("Reads per minute (0 = no pacing)"),
        "max_retries": number("Max retries"),
        "max_rate_limit_wait": number("Longest wait for rate limits per call (seconds)"),
        "pacing_redis_conn_id": StringField(
            lazy_gettext("Redis connection id for pacing shared across hosts"), widget=BS3TextFieldWidget()
        ),
    }


def settings_from_connection(conn: Any, conn_id: str) -> EasifyConnectionSettings:
    token = (conn.password or "").strip()
    if not token:
        raise EasifyConfigurationError(
            f"Connection {conn_id!r} has no API token: put the Easify API token "
            "in the connection's password field ('API token')."
        )
    extra = conn.extra_dejson or {}
    redis_conn_id = str(extra.get("pacing_redis_conn_id") or "").strip() or None
    return EasifyConnectionSettings(
        base_url=_base_url(conn.host, conn.port, conn.schema, extra),
        token=token,
        timeout=_extra_number(extra, "timeout", 30.0, minimum=0.001),
        send_per_minute=_extra_number(extra, "send_per_minute", 15.0, minimum=0),
        read_per_minute=_extra_number(extra, "read_per_minute", 60.0, minimum=0),
        max_retries=int(_extra_number(extra, "max_retries", 5, minimum=0)),
        backoff_base=_extra_number(extra, "backoff_base", 1.0, minimum=0),
        backoff_max=_extra_number(extra, "backoff_max", 30.0, minimum=0),
        server_timezone=_extra_timezone(extra),
        send_window_seconds=_extra_number(extra, "send_window_seconds", 60.0, minimum=0.001),
        max_rate_limit_wait=_extra_number(extra, "max_rate_limit_wait", 300.0, minimum=0),
        pacing_redis_conn_id=redis_conn_id,
    )


def redis_client_factory(
    redis_conn_id: str, *, timeout: float, get_connection: Callable[[str], Any]
) -> Callable[[], Any]:
    """Check the ``pacing_redis_conn_id`` connection now; return what builds its client on first use.

    The client is the Redis provider's (host, port, password, ``db`` and ``ssl`` as it reads them), with
    socket timeouts and no client-side retries, so a slow or dead Redis costs at most ``timeout``.
    """
    try:
        from airflow.providers.redis.hooks.redis import RedisHook
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise EasifyConfigurationError(
            f"Connection extra pacing_redis_conn_id={redis_conn_id!r} needs the Redis provider: "
            "pip install 'airflow-provider-easify[redis]'"
        ) from None
    try:
        redis_conn = get_connection(redis_conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises AirflowNotFoundException, secrets backends others
        raise EasifyConfigurationError(
            f"Connection extra pacing_redis_conn_id={redis_conn_id!r} names no Airflow connection: "
            "create a connection of type 'redis' with that id, or remove the extra for pacing on each machine."
        ) from None
    if (redis_conn.conn_type or "").lower() != "redis":
        raise EasifyConfigurationError(
            f"Connection extra pacing_redis_conn_id={redis_conn_id!r} names a connection of type "
            f"{redis_conn.conn_type!r}: it must be of type 'redis'."
        )
    socket_timeout = min(REDIS_SOCKET_TIMEOUT, timeout)

    def build() -> Any:
        client = RedisHook(redis_conn_id=redis_conn_id).get_conn()
        no_retry = Retry(NoBackoff(), 0)
        client.connection_pool.connection_kwargs.update(
            socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry=no_retry,
            orig_socket_timeout=socket_timeout, orig_socket_connect_timeout=socket_timeout,
        )
        if hasattr(client, "retry"):
            client.retry = no_retry
        return client

    return build


def _base_url(host: str | None, port: int | None, schema: str | None, extra: dict[str, Any]) -> str:
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" in host:
        return host.rstrip("/")
    netloc = f"{host}:{port}" if port else host
    path = (schema or "api/v2").strip("/")
    return f"{extra.get('scheme', 'https')}://{netloc}/{path}"


def _extra_number(extra: dict[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return float(default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum:
        raise EasifyConfigurationError(f"Connection extra {key}={value!r} is invalid: must be a number >= {minimum}")
    return number


def _extra_timezone(extra: dict[str, Any]) -> str:
    import pendulum

    name = str(extra.get("timezone") or "UTC")
    try:
        pendulum.timezone(name)
    except Exception:  # noqa: BLE001 - pendulum raises several types for unknown zones
        raise EasifyConfigurationError(
            f"Connection extra timezone={name!r} is invalid: must be an IANA time zone such as 'UTC'"
        ) from None
    return name
