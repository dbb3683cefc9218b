"""The five /api/v2 endpoints: validation in the vendor's order, then the work, as ``(status, body)``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .data import day_start
from .forms import as_text
from .models import (
    ACCOUNT_NUMBERS,
    BLACKLISTED,
    BLACKLISTED_SUFFIX,
    COUNTRY_UNSUPPORTED,
    FROM_INVALID,
    INVALID_SUFFIX,
    NO_CREDITS,
    NO_CREDITS_SUFFIX,
    RECIPIENT_INVALID,
    REPORT_STATUSES,
    SEND_OK,
    SUPPORTED_COUNTRY_CODES,
    Response,
    Upload,
    country_code_digits,
    failure,
    find_account,
    invalid,
    national_recipient,
)
from .pagination import paginated, resolve_page
from .state import ReportFilter, SandboxState

_INTEGER = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _limit(state: SandboxState, params: dict[str, Any], errors: dict[str, list[str]], default: int = 10) -> int:
    """``limit``: an integer >= 1 (422 otherwise; above ``limit_refused_above`` too), ``default`` when absent."""
    raw = as_text(params.get("limit"))
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        errors["limit"] = ["The limit must be an integer."]
        return default
    if int(raw) < 1:
        errors["limit"] = ["The limit must be at least 1."]
        return default
    refused_above = state.config.limit_refused_above
    if refused_above and int(raw) > refused_above:
        errors["limit"] = [f"The limit field must not be greater than {refused_above}."]
        return default
    return int(raw)


def _page_args(state: SandboxState, params: dict[str, Any], limit: int) -> tuple[int, int, int]:
    """(page, per_page, offset); per_page is ``limit`` clamped to ``max_page_size``."""
    per_page = min(limit, state.config.max_page_size)
    page = resolve_page(as_text(params.get("page")))
    return page, per_page, (page - 1) * per_page


def _date(params: dict[str, Any], name: str, label: str, errors: dict[str, list[str]]) -> dt.date | None:
    raw = as_text(params.get(name))
    if raw is None:
        errors[name] = [f"The {label} field is required."]
        return None
    if _DATE.fullmatch(raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    errors[name] = [f"The {label} does not match the format Y-m-d."]
    return None


# --------------------------------------------------------------------------- GET /phone-numbers


def phone_numbers(state: SandboxState, params: dict[str, Any], base_url: str) -> Response:
    rows = [account.render() for account in ACCOUNT_NUMBERS]
    if as_text(params.get("limit")) is None:
        return 200, {"status": True, "message": "Phone Numbers", "data": rows, "links": []}
    errors: dict[str, list[str]] = {}
    limit = _limit(state, params, errors)
    if errors:
        return invalid(errors)
    page, per_page, offset = _page_args(state, params, limit)
    return 200, paginated(
        "Phone Numbers", rows[offset:offset + per_page], total=len(rows), page=page, per_page=per_page,
        path=f"{base_url}/api/v2/phone-numbers",
    )


# --------------------------------------------------------------------------- GET /contacts


def contacts(state: SandboxState, params: dict[str, Any], base_url: str) -> Response:
    errors: dict[str, list[str]] = {}
    limit = _limit(state, params, errors)
    group_raw = as_text(params.get("group_id"))
    if group_raw is not None and not _INTEGER.fullmatch(group_raw):
        errors["group_id"] = ["The group id must be an integer."]
    if errors:
        return invalid(errors)
    desc = (as_text(params.get("order")) or "desc").lower() != "asc"
    page, per_page, offset = _page_args(state, params, limit)
    group_id = int(group_raw) if group_raw is not None else None
    total, rows = state.contacts_page(group_id, desc, offset, per_page)
    return 200, paginated(
        "Contacts", rows, total=total, page=page, per_page=per_page, path=f"{base_url}/api/v2/contacts"
    )


# --------------------------------------------------------------------------- GET /sms/report


def report(state: SandboxState, params: dict[str, Any], base_url: str) -> Response:
    errors: dict[str, list[str]] = {}
    first = _date(params, "from_date", "from date", errors)
    last = _date(params, "to_date", "to date", errors)
    if first is not None and last is not None and last < first:
        errors["to_date"] = ["The to date must be a date after or equal to from date."]
    limit = _limit(state, params, errors)
    status = as_text(params.get("status"))
    if status is not None and status not in REPORT_STATUSES:
        errors["status"] = ["The selected status is invalid."]
    receiver = as_text(params.get("receiver"))
    code_raw = as_text(params.get("country_code"))
    if receiver is None and code_raw is not None:
        errors["receiver"] = ["The receiver field is required when country code is present."]
    code = country_code_digits(code_raw) if code_raw is not None else None
    if receiver is not None and code_raw is None:
        errors["country_code"] = ["The country code field is required when receiver is present."]
    elif code is not None and code not in SUPPORTED_COUNTRY_CODES:
        errors["country_code"] = [COUNTRY_UNSUPPORTED]
    if errors or first is None or last is None:
        return invalid(errors)
    max_days = state.config.report_max_days
    if (last - first).days + 1 > max_days:
        return 400, failure(f"The date range cannot exceed {max_days} days.")

    flt = report_filter(as_text(params.get("sender")), receiver, code, status)
    desc = (as_text(params.get("order")) or "desc").lower() != "asc"
    page, per_page, offset = _page_args(state, params, limit)
    lo, hi = day_start(first), day_start(last + dt.timedelta(days=1))
    total, rows = state.report_page(lo, hi, flt, desc, offset, per_page)
    return 200, paginated(
        "SMS Report", rows, total=total, page=page, per_page=per_page, path=f"{base_url}/api/v2/sms/report"
    )


def report_filter(
    sender: str | None, receiver: str | None, code: str | None, status: str | None
) -> ReportFilter:
    """Report filters (also of the truth endpoint); a sender or receiver that cannot match gives no rows."""
    sender_e164: str | None = None
    receiver_e164: str | None = None
    if sender is not None:
        account = find_account(sender)
        if account is None:
            return ReportFilter(nothing=True)
        sender_e164 = account.number
    if receiver is not None and code is not None:
        national = national_recipient(receiver, code)
        if national is None:
            return ReportFilter(nothing=True)
        receiver_e164 = f"+{code}{national}"
    return ReportFilter(sender=sender_e164, receiver=receiver_e164, status=status)


# --------------------------------------------------------------------------- GET /sms/chat-history


def chat_history(state: SandboxState, params: dict[str, Any], base_url: str) -> Response:
    errors: dict[str, list[str]] = {}
    sender = as_text(params.get("sender"))
    receiver = as_text(params.get("receiver"))
    code_raw = as_text(params.get("country_code"))
    if sender is None:
        errors["sender"] = ["The sender field is required."]
    if receiver is None:
        errors["receiver"] = ["The receiver field is required."]
    code = country_code_digits(code_raw) if code_raw is not None else None
    if code is None:
        errors["country_code"] = ["The Country code field is required."]
    elif code not in SUPPORTED_COUNTRY_CODES:
        errors["country_code"] = [COUNTRY_UNSUPPORTED]
    limit = _limit(state, params, errors)
    if errors or sender is None or receiver is None or code is None:
        return invalid(errors)
    account = find_account(sender)
    national = national_recipient(receiver, code)
    rows: list[dict[str, Any]] = []
    if account is not None and national is not None:
        limit = min(limit, state.config.max_page_size)
        rows = state.conversation(account.number, f"+{code}{national}", limit)
    return 200, {"status": True, "message": "Chat History", "data": rows}


# --------------------------------------------------------------------------- POST /sms/send


def send(state: SandboxState, fields: dict[str, Any], files: dict[str, Upload], base_url: str) -> Response:
    from_raw = as_text(fields.get("from_number"))
    if from_raw is None:
        return invalid({"from_number": ["The from number is required."]}, "The from_number is required.")
    to_raw = as_text(fields.get("to_number"))
    if to_raw is None:
        return invalid({"to_number": ["The to number field is required."]})
    code_raw = as_text(fields.get("country_code"))
    if code_raw is None:
        required = "The country code field is required."
        return 400, {"message": required, "errors": {"country_code": [required]}}
    code = country_code_digits(code_raw)
    if code not in SUPPORTED_COUNTRY_CODES:
        return invalid({"country_code": [COUNTRY_UNSUPPORTED]})
    upload = files.get("media")
    media_url = as_text(fields.get("media")) if upload is None else None
    text = _message_text(state, fields.get("message"))
    if text is None and upload is None and media_url is None:
        return invalid({"message": ["The message field is required when media is not present."]})
    force_raw = as_text(fields.get("force_send"))
    if force_raw is not None and force_raw.lower() not in ("0", "1", "true", "false"):
        return invalid({"force_send": ["The force send field must be true or false."]})
    account = find_account(from_raw)
    if account is None:
        return 400, failure(FROM_INVALID)
    national = national_recipient(to_raw, code)
    if national is None:
        return 400, failure(RECIPIENT_INVALID)
    suffix = national[-4:]
    if suffix == BLACKLISTED_SUFFIX:
        return 400, failure(BLACKLISTED)
    if suffix == INVALID_SUFFIX:
        return 400, failure(RECIPIENT_INVALID)
    if suffix == NO_CREDITS_SUFFIX:
        return 400, failure(NO_CREDITS)
    entry = state.record_send(
        account=account,
        from_raw=from_raw,
        national=national,
        country_code=code,
        text=text or "",
        media_url=media_url,
        upload=upload,
        base_url=base_url,
        lead_id=as_text(fields.get("lead_id")),
        force_send=(force_raw or "0").lower() in ("1", "true"),
    )
    return 200, {"status": True, "message": SEND_OK, "data": {"sms_id": str(entry.message.id)}}


#: path -> (endpoint name, handler) of the GET endpoints; send is dispatched separately (it has a body).
READ_ENDPOINTS = {
    "/api/v2/phone-numbers": ("phone-numbers", phone_numbers),
    "/api/v2/contacts": ("contacts", contacts),
    "/api/v2/sms/report": ("report", report),
    "/api/v2/sms/chat-history": ("chat-history", chat_history),
}
SEND_PATH = "/api/v2/sms/send"


def _message_text(state: SandboxState, value: Any) -> str | None:
    """The message as this server reading stores it: trimmed (Laravel's default) or not, newlines kept or not."""
    if state.config.trim_strings or not isinstance(value, str):
        text = as_text(value)
    else:
        text = value if value.strip() else None
    if text is not None and state.config.normalize_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text
