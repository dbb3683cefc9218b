"""The control API under ``/_sandbox`` (no auth, no rate limits, not counted in stats)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import unquote

from .api import report_filter
from .data import day_start
from .forms import as_text
from .models import (
    SUPPORTED_COUNTRY_CODES,
    Upload,
    country_code_digits,
    find_account,
    national_recipient,
    split_e164,
)
from .state import SandboxState


class ControlError(Exception):
    """A bad control request: answered ``{"ok": false, "error": ...}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        raise ControlError("the body is not valid JSON") from None


def _object(body: bytes) -> dict[str, Any]:
    data = _json_body(body)
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object")
    return data


def _date(value: Any, name: str) -> dt.date:
    text = as_text(value)
    if text is None:
        raise ControlError(f"{name} is required (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ControlError(f"{name} must be YYYY-MM-DD") from None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _receiver_e164(receiver: Any, country_code: Any) -> tuple[str, str]:
    """``(code, national)`` from an E.164 number, or national digits plus a country code."""
    text = as_text(receiver)
    if text is None:
        raise ControlError("receiver is required")
    code_text = as_text(country_code)
    if code_text is None:
        split = split_e164(text)
        if split is None:
            raise ControlError("receiver must be E.164 in +1, +44 or +972, or come with country_code")
        return split
    code = country_code_digits(code_text)
    if code not in SUPPORTED_COUNTRY_CODES:
        raise ControlError("country_code must be +1, +44 or +972")
    national = national_recipient(text, code)
    if national is None:
        raise ControlError("receiver must have 6-14 digits")
    return code, national


def handle(
    state: SandboxState, method: str, path: str, query: dict[str, str], body: bytes
) -> tuple[int, Any]:
    """Answer one control request: ``(status, JSON-able body)``, or ``(status, Upload)`` for media."""
    try:
        return _route(state, method, path, query, body)
    except ControlError as exc:
        return exc.status, {"ok": False, "error": str(exc)}
    except ValueError as exc:
        return 400, {"ok": False, "error": str(exc)}


def _route(
    state: SandboxState, method: str, path: str, query: dict[str, str], body: bytes
) -> tuple[int, Any]:
    routes: dict[str, tuple[str, ...]] = {
        "/_sandbox/health": ("GET",),
        "/_sandbox/ledger": ("GET",),
        "/_sandbox/stats": ("GET",),
        "/_sandbox/config": ("GET", "POST"),
        "/_sandbox/reset": ("POST",),
        "/_sandbox/faults": ("GET", "POST", "DELETE"),
        "/_sandbox/incoming": ("POST",),
        "/_sandbox/report": ("GET",),
        "/_sandbox/report/generate": ("POST",),
    }
    if path.startswith("/_sandbox/media/"):
        return _media(state, method, path)
    if path == "/_sandbox/outages" or path.startswith("/_sandbox/outages/"):
        return _outages(state, method, path, body)
    if path not in routes:
        raise ControlError("Not Found", 404)
    if method not in routes[path]:
        raise ControlError(f"{method} is not supported here; use {', '.join(routes[path])}", 405)

    if path == "/_sandbox/health":
        return 200, {"ok": True}
    if path == "/_sandbox/ledger":
        return 200, {"messages": state.ledger_rows()}
    if path == "/_sandbox/stats":
        return 200, state.stats_dict()
    if path == "/_sandbox/config":
        if method == "POST":
            return 200, state.update_config(_object(body))
        return 200, state.config_dict()
    if path == "/_sandbox/reset":
        state.reset(reset_config=_flag(_object(body).get("config", False)))
        return 200, {"ok": True, "config": state.config_dict()}
    if path == "/_sandbox/faults":
        if method == "DELETE":
            state.clear_faults()
            return 200, {"ok": True, "faults": []}
        if method == "POST":
            data = _json_body(body)
            specs = data if isinstance(data, list) else [data]
            return 200, {"ok": True, "faults": state.add_faults(specs)}
        return 200, {"faults": state.list_faults()}
    if path == "/_sandbox/incoming":
        return 200, _incoming(state, _object(body))
    if path == "/_sandbox/report":
        return 200, _truth(state, query)
    return 200, _generate(state, _object(body))


def _media(state: SandboxState, method: str, path: str) -> tuple[int, Any]:
    if method != "GET":
        raise ControlError("use GET", 405)
    parts = path.split("/")  # "", "_sandbox", "media", id, filename
    if len(parts) != 5 or not parts[3].isdigit():
        raise ControlError("Not Found", 404)
    upload: Upload | None = state.get_media(int(parts[3]))
    if upload is None or unquote(parts[4]) != upload.filename:
        raise ControlError("Not Found", 404)
    return 200, upload


def _outages(state: SandboxState, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """``GET /_sandbox/outages``; ``PUT`` / ``DELETE /_sandbox/outages/<endpoint>``."""
    if path == "/_sandbox/outages":
        if method != "GET":
            raise ControlError(f"{method} is not supported here; use GET", 405)
        return 200, {"outages": state.list_outages()}
    if method not in ("PUT", "DELETE"):
        raise ControlError(f"{method} is not supported here; use PUT, DELETE", 405)
    endpoint = unquote(path[len("/_sandbox/outages/"):])
    if method == "DELETE":
        return 200, {"ok": True, "outage": state.end_outage(endpoint)}
    return 200, {"ok": True, "outage": state.start_outage(endpoint, _object(body))}


def _incoming(state: SandboxState, data: dict[str, Any]) -> dict[str, Any]:
    account = find_account(as_text(data.get("sender")) or "")
    if account is None:
        raise ControlError("sender must be one of the account numbers")
    code, national = _receiver_e164(data.get("receiver"), data.get("country_code"))
    created = data.get("created_ts")
    created_ts = None if created is None else float(created)
    return state.record_incoming(account, f"+{code}{national}", str(data.get("message") or ""), created_ts)


def _truth(state: SandboxState, query: dict[str, str]) -> dict[str, Any]:
    first = _date(query.get("from_date"), "from_date")
    last = _date(query.get("to_date"), "to_date")
    if last < first:
        raise ControlError("to_date is before from_date")
    receiver = as_text(query.get("receiver"))
    code: str | None = None
    if receiver is not None:
        code, receiver = _receiver_e164(receiver, query.get("country_code"))
    status = as_text(query.get("status"))
    flt = report_filter(as_text(query.get("sender")), receiver, code, status)
    desc = (as_text(query.get("order")) or "asc").lower() == "desc"
    rows = state.report_all(day_start(first), day_start(last + dt.timedelta(days=1)), flt, desc)
    return {"data": rows, "total": len(rows)}


def _generate(state: SandboxState, data: dict[str, Any]) -> dict[str, Any]:
    first = _date(data.get("from_date"), "from_date")
    last = _date(data.get("to_date"), "to_date")
    per_day = data.get("per_day", state.config.report_rows_per_day)
    if isinstance(per_day, bool) or not isinstance(per_day, (int, str)) or not str(per_day).strip().isdigit():
        raise ControlError("per_day must be a non-negative integer")
    try:
        result = state.generate(first, last, int(per_day), _flag(data.get("clear", False)))
    except RuntimeError as exc:
        raise ControlError(str(exc), 409) from None
    return {"ok": True, **result}
