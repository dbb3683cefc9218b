"""Records, constants, vendor response bodies and phone-number helpers shared by the sandbox modules."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- tokens and account

DEFAULT_TOKEN = "sandbox-token"
#: Every /api/v2 request with this token answers 402 (subscription ended).
EXPIRED_TOKEN = "sandbox-expired"
#: Every /api/v2 request with this token answers 403 (not an enterprise plan).
BASIC_TOKEN = "sandbox-basic"

#: Country codes /sms/send and /sms/chat-history accept (digits, without the ``+``).
SUPPORTED_COUNTRY_CODES = ("1", "972", "44")

#: Report status filter values.
REPORT_STATUSES = ("Pending", "Success", "Delivered", "Undelivered", "Failed", "Scheduled")

#: Last four digits of the national to_number that /sms/send refuses.
BLACKLISTED_SUFFIX = "9992"
INVALID_SUFFIX = "9993"
NO_CREDITS_SUFFIX = "9994"
#: Last four digits of the national to_number whose message ends Failed / Undelivered.
FAILED_SUFFIX = "9990"
UNDELIVERED_SUFFIX = "9991"
FAILED_REASON = "Carrier rejected the message"
UNDELIVERED_REASON = "Handset unreachable"


@dataclass(frozen=True)
class AccountNumber:
    id: int
    number: str  # E.164
    name: str
    created_ts: float

    @property
    def country_code(self) -> str:
        return "1"

    @property
    def national(self) -> str:
        return self.number[1 + len(self.country_code):]

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "approved": "Approved",
            "gateway": "Twilio",
            "name": self.name,
            "status": "Active",
            "webhook_url": None,
            "created_at": fmt_ts(self.created_ts),
        }


ACCOUNT_NUMBERS: tuple[AccountNumber, ...] = (
    AccountNumber(52, "+13155550100", "Main line", 1720782192.0),  # 07-12-2024 11:03:12 AM UTC
    AccountNumber(53, "+13155550101", "Support", 1721045471.0),
    AccountNumber(54, "+13155550102", "Marketing", 1722868865.0),
)

# --------------------------------------------------------------------------- vendor bodies

UNAUTHENTICATED = "Unauthenticated"
RECHARGE = "You need to recharge your account to proceed"
ENTERPRISE_ONLY = (
    "Access denied. Your current plan does not allow access to this feature. "
    "Please upgrade to the Enterprise plan."
)
COUNTRY_UNSUPPORTED = (
    "Currently, this service is only available in the following countries: "
    "Canada, United States, Israel, United Kingdom. Please verify the country code."
)
SEND_OK = " SMS Processed successfully."
FROM_INVALID = "Selected from number is invalid"
RECIPIENT_INVALID = "InvalidRecipient!"
BLACKLISTED = " Sorry, this recipient is blacklisted! "
NO_CREDITS = "Sorry, you do not have enough credits to send this SMS. Please recharge for more."
RANGE_TOO_LONG = "The date range cannot exceed 30 days."
SERVER_ERROR = "Server Error"
BAD_GATEWAY = "Bad Gateway"
NOT_FOUND = "Not Found"
#: Body of the ``malformed`` fault: truncated JSON.
MALFORMED_BODY = b'{"status": true, "data": {'

Response = tuple[int, Any]


def failure(message: str) -> dict[str, Any]:
    """The vendor's ``{status: false, message, errors: []}`` shape."""
    return {"status": False, "message": message, "errors": []}


def invalid(errors: dict[str, list[str]], message: str | None = None) -> Response:
    """A Laravel 422: ``{message, errors: {field: [...]}}`` (no ``status`` key).

    ``message`` is the first error, followed by ``(and N more error[s])`` when there are several,
    as Laravel renders it; pass ``message`` to override (the vendor's from_number case).
    """
    messages = [text for texts in errors.values() for text in texts]
    if message is None:
        message = messages[0]
        extra = len(messages) - 1
        if extra:
            message += f" (and {extra} more error{'s' if extra > 1 else ''})"
    return 422, {"message": message, "errors": errors}


# --------------------------------------------------------------------------- time


def fmt_ts(ts: float) -> str:
    """Render an epoch as the vendor's ``MM-DD-YYYY hh:mm:ss AM/PM``, in UTC (locale independent)."""
    t = time.gmtime(ts)
    hour = t.tm_hour % 12 or 12
    half = "AM" if t.tm_hour < 12 else "PM"
    return f"{t.tm_mon:02d}-{t.tm_mday:02d}-{t.tm_year:04d} {hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {half}"


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class Message:
    """One row of the report / chat history.

    ``status``/``reason`` hold the fixed values of seeded and incoming rows, and the *final* values of
    rows sent through /sms/send (``lifecycle`` True), whose shown status depends on their age.
    """

    id: int
    ts: float
    sender: str  # account number, E.164
    receiver: str  # customer number, E.164
    message: str
    sms_type: str
    send_by: str
    media_url: str | None
    status: str
    reason: str | None
    lifecycle: bool = False
    origin: str = "seed"  # "seed" | "send" | "incoming"

    def current(self, now: float, pending_seconds: float, delivered_seconds: float) -> tuple[str, str | None]:
        if not self.lifecycle:
            return self.status, self.reason
        age = now - self.ts
        if age < pending_seconds:
            return "Pending", None
        if age < delivered_seconds:
            return "Success", None
        return self.status, self.reason

    def render(self, now: float, pending_seconds: float, delivered_seconds: float) -> dict[str, Any]:
        status, reason = self.current(now, pending_seconds, delivered_seconds)
        return {
            "id": self.id,
            "sender": self.sender,
            "receiver": self.receiver,
            "message": self.message,
            "sms_type": self.sms_type,
            "send_by": self.send_by,
            "media_url": self.media_url,
            "status": status,
            "created_at": fmt_ts(self.ts),
            "reason": reason,
        }


@dataclass(slots=True)
class LedgerEntry:
    """What /sms/send recorded, beyond the report row."""

    message: Message
    from_number: str  # the account number, national digits
    from_number_raw: str  # as the client sent it
    to_number: str  # national digits
    country_code: str  # "+1"
    lead_id: str | None
    force_send: bool
    media_filename: str | None

    def render(self, now: float, pending_seconds: float, delivered_seconds: float) -> dict[str, Any]:
        m = self.message
        status, reason = m.current(now, pending_seconds, delivered_seconds)
        return {
            "id": m.id,
            "sms_id": str(m.id),
            "from_number": self.from_number,
            "from_number_raw": self.from_number_raw,
            "to_number": self.to_number,
            "country_code": self.country_code,
            "sender": m.sender,
            "receiver": m.receiver,
            "message": m.message,
            "media_url": m.media_url,
            "media_filename": self.media_filename,
            "sms_type": m.sms_type,
            "lead_id": self.lead_id,
            "force_send": self.force_send,
            "status": status,
            "reason": reason,
            "created_at": fmt_ts(m.ts),
            "created_ts": m.ts,
        }


@dataclass(slots=True)
class Contact:
    id: int
    group_id: int  # internal only: the vendor's record has no group_id
    group_name: str
    first_name: str
    last_name: str
    phone_number: str
    email_address: str
    company: str | None
    additional_1: str | None
    additional_2: str | None
    additional_3: str | None
    shared_contact: bool
    created_ts: float
    updated_ts: float

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group_name": self.group_name,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "phone_number": self.phone_number,
            "email_address": self.email_address,
            "company": self.company,
            "additional_1": self.additional_1,
            "additional_2": self.additional_2,
            "additional_3": self.additional_3,
            "shared_contact": self.shared_contact,
            "created_at": fmt_ts(self.created_ts),
            "updated_at": fmt_ts(self.updated_ts),
        }


@dataclass(slots=True)
class Upload:
    """A file part of a multipart body."""

    filename: str
    content_type: str
    data: bytes


# --------------------------------------------------------------------------- phone numbers

_PHONE_PUNCTUATION = str.maketrans("", "", " -().\t")


def country_code_digits(raw: str) -> str:
    """``"+972"``, ``"972"`` and ``" 972"`` (a ``+`` decoded as a space in a query) all give ``"972"``."""
    return raw.strip().removeprefix("+").strip()


def find_account(raw: str) -> AccountNumber | None:
    """The account number ``raw`` names: national digits, E.164, or E.164 digits without the ``+``."""
    compact = raw.strip().translate(_PHONE_PUNCTUATION).removeprefix("+")
    if not (compact.isascii() and compact.isdigit()):
        return None
    for account in ACCOUNT_NUMBERS:
        if compact in (account.national, account.number[1:]):
            return account
    return None


def national_recipient(raw: str, country_code: str) -> str | None:
    """National digits of a recipient, or None when they are not 6-14 digits.

    Spaces, dashes, dots and parentheses are dropped; a leading ``+`` must be followed by the country code,
    which is stripped.
    """
    compact = raw.strip().translate(_PHONE_PUNCTUATION)
    if compact.startswith("+"):
        if not compact.startswith("+" + country_code):
            return None
        compact = compact[1 + len(country_code):]
    if compact.isascii() and compact.isdigit() and 6 <= len(compact) <= 14:
        return compact
    return None


def split_e164(raw: str) -> tuple[str, str] | None:
    """``(country_code, national)`` of an E.164 number in a supported country, longest code first."""
    compact = raw.strip().translate(_PHONE_PUNCTUATION)
    if not compact.startswith("+"):
        return None
    for code in sorted(SUPPORTED_COUNTRY_CODES, key=len, reverse=True):
        if compact.startswith("+" + code):
            national = national_recipient(compact, code)
            return (code, national) if national else None
    return None
