"""Phone numbers, report windows, created_at parsing and the shared pacer."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.utils.dates import parse_created_at, report_windows, to_date
from airflow_provider_easify.utils.phone import (
    mask_phone,
    mask_phone_numbers_in_text,
    normalize_country_code,
    parse_phone_number,
    sender_digits,
)


@pytest.mark.parametrize(
    ("number", "country_code", "national", "code"),
    [
        ("+13151350000", None, "3151350000", "+1"),
        ("+447700900123", None, "7700900123", "+44"),
        ("+972501234567", None, "501234567", "+972"),
        ("3151350000", "+1", "3151350000", "+1"),
        ("(315) 135-0000", "1", "3151350000", "+1"),
        ("07700 900123", "+44", "7700900123", "+44"),
        ("050-123-4567", "972", "501234567", "+972"),
        ("+1 315 135 0000", "+1", "3151350000", "+1"),
    ],
)
def test_parse_phone_number(number, country_code, national, code):
    parsed = parse_phone_number(number, country_code)
    assert (parsed.national, parsed.country_code) == (national, code)
    assert parsed.e164 == f"{code}{national}"


@pytest.mark.parametrize(
    ("number", "country_code", "parameter", "needle"),
    [
        ("+4930123456", None, "to_number", "+49"),
        ("3151350000", "+49", "country_code", "+972"),
        ("3151350000", None, "to_number", "country_code"),
        ("+1315", None, "to_number", "too short"),
        ("+13151350000123456", None, "to_number", "too long"),
        ("+447700900123", "+1", "country_code", "+44"),
        ("hello", "+1", "to_number", "phone number"),
        ("", "+1", "to_number", "required"),
    ],
)
def test_parse_phone_number_errors(number, country_code, parameter, needle):
    with pytest.raises(EasifyInvalidParameterError) as info:
        parse_phone_number(number, country_code)
    assert info.value.parameter == parameter and needle in str(info.value)


def test_country_codes_and_sender():
    assert [normalize_country_code(c) for c in ("+1", "1", 44, "00972")] == ["+1", "+1", "+44", "+972"]
    assert sender_digits("+13155550100") == "3155550100"
    assert sender_digits("315-555-0100") == "3155550100"
    with pytest.raises(EasifyInvalidParameterError, match="from_number"):
        sender_digits("12")


def test_masking():
    assert mask_phone("+13151350000") == "+1315***0000"
    assert mask_phone("+447700900123") == "+44770***0123"
    assert "3151350000" not in mask_phone("3151350000")
    text = mask_phone_numbers_in_text("GET /sms/chat-history?sender=3155550100&receiver=3151350000 HTTP/1.1")
    assert "3155550100" not in text and "3151350000" not in text and "chat-history" in text


def test_to_date():
    assert to_date("2024-02-29", parameter="from_date") == dt.date(2024, 2, 29)
    assert to_date(dt.datetime(2024, 2, 29, 23, 59), parameter="x") == dt.date(2024, 2, 29)
    for bad in ("2024-02-30", "02/01/2024", 20240201, None):
        with pytest.raises(EasifyInvalidParameterError, match="YYYY-MM-DD"):
            to_date(bad, parameter="from_date")


@pytest.mark.parametrize("days", [1, 29, 30, 31, 60, 61, 75, 365])
def test_report_windows_cover_range_exactly(days):
    start = dt.date(2024, 1, 15)
    end = start + dt.timedelta(days=days - 1)
    windows = report_windows(start, end)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all((b - a).days + 1 <= 30 for a, b in windows)
    assert all(nxt[0] == prev[1] + dt.timedelta(days=1) for prev, nxt in itertools.pairwise(windows))
    assert sum((b - a).days + 1 for a, b in windows) == days
    assert len(windows) == -(-days // 30)
    assert report_windows(start, end, newest_first=True) == windows[::-1]


def test_report_windows_reject_reversed_range():
    with pytest.raises(EasifyInvalidParameterError, match="to_date"):
        report_windows(dt.date(2024, 2, 2), dt.date(2024, 2, 1))


def test_parse_created_at():
    assert parse_created_at("10-15-2024 05:36:32 PM").isoformat() == "2024-10-15T17:36:32+00:00"
    assert parse_created_at("10-15-2024 12:05:00 AM", timezone="America/New_York").isoformat() == (
        "2024-10-15T00:05:00-04:00"
    )
