"""Checks of the hook's arguments, made before any request; each refusal names the parameter."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

REPORT_STATUSES = ("Pending", "Success", "Delivered", "Undelivered", "Failed", "Scheduled")


def positive_int(value: Any, parameter: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise EasifyInvalidParameterError(parameter, value, "must be a positive integer")
    number = int(value)
    if number < 1:
        raise EasifyInvalidParameterError(parameter, value, "must be a positive integer")
    return number


def message_id(value: Any, parameter: str) -> int:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise EasifyInvalidParameterError(parameter, value, "must be a message id (a non-negative integer)")
    return int(text)


def int_id(value: Any) -> int:
    """A row's id as an integer (0 when unreadable): ids are integers in history and reports."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def order(value: str) -> str:
    if not isinstance(value, str) or value.lower() not in ("asc", "desc"):
        raise EasifyInvalidParameterError("order", value, "must be 'asc' or 'desc'")
    return value.lower()


def report_status(status: str) -> str:
    for known in REPORT_STATUSES:
        if isinstance(status, str) and status.strip().lower() == known.lower():
            return known
    raise EasifyInvalidParameterError("status", status, f"must be one of {', '.join(REPORT_STATUSES)}")


def message_text(message: Any, media: Any) -> None:
    if message is not None and not isinstance(message, str):
        raise EasifyInvalidParameterError("message", type(message).__name__, "must be a string")
    if (message is None or not message.strip()) and media is None:
        raise EasifyInvalidParameterError("message", message, "a non-empty message or a media is required")


def media_file(media: str | os.PathLike[str]) -> Path | None:
    """A local file to upload, or None when ``media`` is a URL. Unusable values are refused."""
    text = os.fspath(media).strip() if isinstance(media, (str, os.PathLike)) else ""
    if not text:
        raise EasifyInvalidParameterError("media", media, "must be a URL or the path of a readable local file")
    if re.match(r"^https?://", text, re.IGNORECASE):
        return None
    path = Path(text).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise EasifyInvalidParameterError(
            "media", text, "must be an http(s) URL or the path of a readable local file (no such file)"
        )
    return path
