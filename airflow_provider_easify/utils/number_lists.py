"""Lists given as templated text: a rendered JSON list, a Python list literal (what Jinja makes of an
XCom), or comma-separated values; and lists of phone numbers that must name at least one."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from typing import Any

from airflow_provider_easify.exceptions import EasifyInvalidParameterError


def list_from_text(text: str, parameter: str) -> list[Any]:
    """The list a rendered template field holds (its numbers or dicts are checked by the caller)."""
    text = text.strip()
    if not text.startswith("["):
        return [part for part in text.split(",") if part.strip()]
    try:
        return list(json.loads(text))
    except ValueError:
        pass
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list):
        raise EasifyInvalidParameterError(
            parameter, f"<text of {len(text)} characters>",
            "a string must be a JSON list, a Python list literal (a rendered XCom) or comma-separated numbers",
        )
    return value


def number_list(value: Any, parameter: str) -> list[str]:
    """One number, a list of them, or the text of a list, as stripped strings: at least one, none empty."""
    if isinstance(value, str) and value.strip().startswith("["):
        value = list_from_text(value, parameter)
    values = [value] if isinstance(value, (str, int)) else value
    if not isinstance(values, Iterable) or isinstance(values, dict):
        raise EasifyInvalidParameterError(parameter, type(value).__name__, "must be a phone number or a list of them")
    numbers = [str(v).strip() for v in values if v is not None]
    if not numbers or not all(numbers):
        raise EasifyInvalidParameterError(parameter, "<empty>", "at least one phone number is required")
    return numbers
