"""The Easify connection: its form in the Airflow UI, and the settings the hook reads from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_easify.exceptions import EasifyConfigurationError
from airflow_provider_easify.hooks.connection_fields import EXTRA_FIELDS, FIELDS_BY_NAME
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
            **{field.name: str(field.default) for field in EXTRA_FIELDS if field.default != ""},
        },
    }


def connection_form_widgets() -> dict[str, Any]:
    """The Airflow 2 form's extra fields, with the rules the hook applies (:mod:`.connection_fields`).

    Airflow 2 accepts only integer, string, password and boolean fields: numbers are text fields that
    the same check as the hook's validates.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField, ValidationError
    from wtforms.validators import Optional

    def as_the_hook_reads(name: str) -> Any:
        def validate(form: Any, wtf_field: Any) -> None:
            try:
                _number({name: wtf_field.data}, name)
            except EasifyConfigurationError as exc:
                raise ValidationError(str(exc)) from None

        return validate

    widgets = {}
    for field in EXTRA_FIELDS:
        validators: list[Any] = [Optional()]
        if field.kind != "string":
            validators.append(as_the_hook_reads(field.name))
        cls = IntegerField if field.kind == "integer" else StringField
        widgets[field.name] = cls(
            lazy_gettext(field.label), validators=validators, widget=BS3TextFieldWidget(),
            description=field.description,
        )
    return widgets


def settings_from_connection(conn: Any) -> EasifyConnectionSettings:
    token = (conn.password or "").strip()
    if not token:
        raise EasifyConfigurationError(
            "The Easify connection has no API token: put the Easify API token in its 'API token' "
            "(password) field."
        )
    extra = conn.extra_dejson or {}
    return EasifyConnectionSettings(
        base_url=_base_url(conn.host, conn.port, conn.schema, extra),
        token=token,
        timeout=_number(extra, "timeout"),
        send_per_minute=_number(extra, "send_per_minute"),
        read_per_minute=_number(extra, "read_per_minute"),
        max_retries=int(_number(extra, "max_retries")),
        backoff_base=_number(extra, "backoff_base"),
        backoff_max=_number(extra, "backoff_max"),
        server_timezone=_extra_timezone(extra),
        send_window_seconds=_number(extra, "send_window_seconds"),
        max_rate_limit_wait=_number(extra, "max_rate_limit_wait"),
        send_settle_seconds=_number(extra, "send_settle_seconds"),
        page_size=int(_number(extra, "page_size")),
        pacing_redis_conn_id=str(extra.get("pacing_redis_conn_id") or "").strip() or None,
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


def _number(extra: dict[str, Any], key: str) -> float:
    field = FIELDS_BY_NAME[key]
    value = extra.get(key)
    if value in (None, ""):
        return float(field.default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    integral = field.kind != "integer" or (number == number and number == int(number) and not isinstance(value, bool))
    minimum = field.minimum if field.minimum is not None else float("-inf")
    if not (number >= minimum and integral):
        kind = "an integer" if field.kind == "integer" else "a number"
        raise EasifyConfigurationError(
            f"Connection extra {key}={value!r} is invalid: must be {kind} >= {field.minimum}"
        )
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
