"""Request input the way Laravel sees it: query string, JSON, form-urlencoded and multipart bodies."""

from __future__ import annotations

import json
import os
from email.parser import HeaderParser
from typing import Any
from urllib.parse import parse_qsl

from .models import Upload


def parse_query(query: str) -> dict[str, str]:
    """Last value wins for a repeated name (PHP semantics); ``+`` decodes as a space."""
    return dict(parse_qsl(query, keep_blank_values=True))


def _header_params(header: str) -> tuple[str, dict[str, str]]:
    message = HeaderParser().parsestr(f"Content-Type: {header}\r\n\r\n")
    params: dict[str, str] = {}
    for key, value in message.get_params(header="content-type", failobj=[])[1:]:
        params[key.lower()] = value if isinstance(value, str) else str(value)
    return message.get_content_type(), params


def parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, str], dict[str, Upload]]:
    """A small, byte-exact multipart/form-data parser (no ``cgi``)."""
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.removeprefix(b"\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
            if not sep:
                continue
        # The line break before the next delimiter belongs to the delimiter, not to the content.
        content = content[:-2] if content.endswith(b"\r\n") else content.removesuffix(b"\n")
        headers = HeaderParser().parsestr(head.decode("utf-8", "replace") + "\r\n\r\n")
        disposition = headers.get("Content-Disposition", "")
        name = headers.get_param("name", header="content-disposition")
        if not disposition or not isinstance(name, str):
            continue
        filename = headers.get_filename()
        if filename is None:
            fields[name] = content.decode("utf-8", "replace")
        elif filename or content:
            safe = os.path.basename(filename.replace("\\", "/")) or "media"
            files[name] = Upload(safe, headers.get_content_type(), content)
    return fields, files


def parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Fields and files of a request body; an unreadable body gives no fields (Laravel sees empty input)."""
    if not body:
        return {}, {}
    media_type, params = _header_params(content_type or "application/octet-stream")
    if media_type == "multipart/form-data" and params.get("boundary"):
        return parse_multipart(body, params["boundary"])
    if media_type == "application/x-www-form-urlencoded":
        return parse_query(body.decode("utf-8", "replace")), {}
    if media_type.endswith("/json") or media_type.endswith("+json") or body.lstrip().startswith(b"{"):
        try:
            data = json.loads(body)
        except ValueError:
            return {}, {}
        return (data, {}) if isinstance(data, dict) else ({}, {})
    return {}, {}


def as_text(value: Any) -> str | None:
    """A field as Laravel's TrimStrings + ConvertEmptyStringsToNull leave it: trimmed text, or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value)
    text = text.strip()
    return text or None
