"""Phone-number normalisation and masking.

The API wants national digits plus a separate ``country_code`` (``"+1"``, ``"+972"``, ``"+44"``).
Callers may pass E.164 (``+447700900123``) or national numbers with ``country_code``.
Numbers are parsed with ``phonenumbers`` and checked for a possible length for their country;
full validity is not required, because test and newly allocated ranges are often "invalid" in
libphonenumber's metadata while being deliverable.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

SUPPORTED_COUNTRY_CODES: tuple[str, ...] = ("+1", "+972", "+44")
_ALLOWED_CODES_TEXT = "one of +1, +972, +44 (the countries Easify serves)"
_PHONE_LIKE = re.compile(r"(?:\+|%2B)?\d{7,15}")


class PhoneNumber(NamedTuple):
    """A recipient as the API wants it."""

    national: str
    country_code: str

    @property
    def e164(self) -> str:
        return f"{self.country_code}{self.national}"


def normalize_country_code(country_code: str | int, *, parameter: str = "country_code") -> str:
    """Return ``country_code`` as ``+N`` if Easify supports it, else raise."""
    text = str(country_code).strip()
    digits = text[2:] if text.startswith("00") else text.removeprefix("+")
    candidate = f"+{digits}"
    if not digits.isdigit() or candidate not in SUPPORTED_COUNTRY_CODES:
        raise EasifyInvalidParameterError(parameter, country_code, f"must be {_ALLOWED_CODES_TEXT}")
    return candidate


def parse_phone_number(
    number: str | int,
    country_code: str | int | None = None,
    *,
    parameter: str = "to_number",
) -> PhoneNumber:
    """Split ``number`` into national digits and a supported country code.

    ``number`` is E.164 (``+13151350000``), or national digits when ``country_code`` is given.
    When both an E.164 number and ``country_code`` are given they must agree.
    """
    import phonenumbers  # imported on first use so that DAG files parse fast
    from phonenumbers import NumberParseException, ValidationResult

    text = str(number).strip() if number is not None else ""
    if not text:
        raise EasifyInvalidParameterError(parameter, number, "a phone number is required")
    code = normalize_country_code(country_code) if country_code not in (None, "") else None
    if not text.startswith("+") and code is None:
        raise EasifyInvalidParameterError(
            parameter,
            mask_phone(text),
            "a national number needs country_code (+1, +972 or +44), or give the number in E.164 (+13151350000)",
        )
    region = None if text.startswith("+") else phonenumbers.region_code_for_country_code(int(code[1:]))  # type: ignore[index]
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise EasifyInvalidParameterError(
            parameter, mask_phone(text), f"must be a phone number in E.164 or national form ({exc})"
        ) from None
    parsed_code = f"+{parsed.country_code}"
    if parsed_code not in SUPPORTED_COUNTRY_CODES:
        raise EasifyInvalidParameterError(
            parameter, mask_phone(text), f"country code {parsed_code} is not supported: must be {_ALLOWED_CODES_TEXT}"
        )
    if code is not None and code != parsed_code:
        raise EasifyInvalidParameterError(
            "country_code", country_code, f"{parameter} is a {parsed_code} number; give a matching country_code"
        )
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        why = {
            ValidationResult.TOO_SHORT: "too short",
            ValidationResult.TOO_LONG: "too long",
            ValidationResult.INVALID_LENGTH: "of an impossible length",
            ValidationResult.INVALID_COUNTRY_CODE: "in an unknown country",
        }.get(reason, "not a possible number")
        raise EasifyInvalidParameterError(
            parameter, mask_phone(text), f"is {why} for {parsed_code}; expected a full phone number"
        )
    return PhoneNumber(national=phonenumbers.national_significant_number(parsed), country_code=parsed_code)


def sender_digits(number: str | int, *, parameter: str = "from_number") -> str:
    """Return the account's own number as national digits (the API's documented form).

    E.164 input is parsed; national input is kept as its digits (its country may differ from the
    recipient's, so no country is assumed).
    """
    text = str(number).strip() if number is not None else ""
    if text.startswith("+"):
        return parse_phone_number(text, parameter=parameter).national
    digits = re.sub(r"[\s().-]", "", text)
    if not digits.isdigit() or not 6 <= len(digits) <= 14:
        raise EasifyInvalidParameterError(
            parameter, mask_phone(text), "must be one of the account's numbers, in E.164 or national digits"
        )
    return digits


def mask_phone(number: object) -> str:
    """Mask a phone number for logs: ``+13151350000`` -> ``+1315***0000``."""
    text = re.sub(r"[\s().-]", "", str(number))
    if len(text) < 6:
        return "***"
    if text.startswith("+"):
        import phonenumbers
        from phonenumbers import NumberParseException

        try:
            parsed = phonenumbers.parse(text, None)
            code = f"+{parsed.country_code}"
            national = phonenumbers.national_significant_number(parsed)
            return f"{code}{national[:3]}***{national[-4:]}" if len(national) > 7 else f"{code}***{national[-3:]}"
        except NumberParseException:
            pass
    return f"{text[:4]}***{text[-4:]}" if len(text) > 8 else f"***{text[-3:]}"


def mask_phone_numbers_in_text(text: str) -> str:
    """Mask every phone-like digit run in free text (used for log lines and error messages)."""
    return _PHONE_LIKE.sub(lambda m: mask_phone(m.group(0).replace("%2B", "+")), text)
