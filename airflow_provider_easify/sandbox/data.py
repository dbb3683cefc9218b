"""Deterministic seed data: contacts, the receiver pool and report history rows."""

from __future__ import annotations

import calendar
import datetime as dt
import random
from collections.abc import Sequence

from .models import (
    ACCOUNT_NUMBERS,
    FAILED_REASON,
    UNDELIVERED_REASON,
    Contact,
    Message,
)

#: Contact groups: id -> (name, size). 57 contacts in all.
GROUPS: dict[int, tuple[str, int]] = {1: ("Customers", 30), 2: ("Staff", 15), 3: ("VIP", 12)}
#: Group whose contacts are "in the main user's shared contact group" (``shared_contact`` true).
SHARED_GROUP_ID = 3
#: Ids of seeded report rows start here (the vendor's sample ids are in the 100,000s).
FIRST_REPORT_ID = 100001

_FIRST_NAMES = (
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mason", "Sophia", "Lucas", "Mia", "Ethan", "Amelia", "Logan",
    "Harper", "James", "Ella", "Aiden", "Chloe", "Elijah", "Grace", "Henry", "Zoe", "Jack", "Nora", "Owen",
)
_LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark", "Lewis",
    "Walker", "Hall", "Young", "King", "Wright", "Lopez", "Hill", "Scott", "Green", "Adams", "Baker",
)
_COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella LLC", "Stark Industries", "Hooli", None)
_EXTRAS = ("one", "two", "three", "gold", "newsletter", "referral", None, None)
_TEMPLATES = (
    "Hai",
    "Your appointment is confirmed for tomorrow at 10am.",
    "Thanks for your order! Reply STOP to opt out.",
    "Your verification code is 482913",
    "Reminder: your invoice is due on Friday.",
    "We are open today from 9am to 6pm.",
    "Can you call me back?",
    "Ok, see you then",
    "Your package has shipped.",
    "Happy holidays from the whole team!",
    "Yes please",
    "What time do you close?",
)
_CONTACTS_EPOCH = calendar.timegm((2024, 1, 1, 0, 0, 0))
_DAY = 86400


def day_start(day: dt.date) -> int:
    """Epoch of 00:00:00 UTC on ``day``."""
    return calendar.timegm((day.year, day.month, day.day, 0, 0, 0))


def seed_contacts(seed: int) -> list[Contact]:
    rng = random.Random(f"contacts:{seed}")
    group_ids = [gid for gid, (_, size) in GROUPS.items() for _ in range(size)]
    rng.shuffle(group_ids)
    # 1000..8999: never the account numbers (555-010x) nor a magic suffix (999x).
    suffixes = rng.sample(range(1000, 9000), len(group_ids))
    contacts: list[Contact] = []
    for index, (group_id, suffix) in enumerate(zip(group_ids, suffixes, strict=True), start=1):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        created = _CONTACTS_EPOCH + rng.randrange(300 * _DAY)
        updated = created + rng.choice((0, 0, rng.randrange(60 * _DAY)))
        contacts.append(
            Contact(
                id=index,
                group_id=group_id,
                group_name=GROUPS[group_id][0],
                first_name=first,
                last_name=last,
                phone_number=f"+1315555{suffix:04d}",
                email_address=f"{first.lower()}.{last.lower()}{index}@example.com",
                company=rng.choice(_COMPANIES),
                additional_1=rng.choice(_EXTRAS),
                additional_2=rng.choice(_EXTRAS),
                additional_3=rng.choice(_EXTRAS),
                shared_contact=group_id == SHARED_GROUP_ID,
                created_ts=float(created),
                updated_ts=float(updated),
            )
        )
    return contacts


def receiver_pool(contacts: Sequence[Contact]) -> list[str]:
    """40 customer numbers: the first 28 contacts (+1), 6 UK (+44) and 6 Israeli (+972) numbers."""
    pool = [c.phone_number for c in contacts[:28]]
    pool += [f"+447700900{n:03d}" for n in (101, 215, 333, 478, 562, 690)]
    pool += [f"+972501234{n:03d}" for n in (117, 248, 356, 421, 589, 634)]
    return pool


def _status(bucket: int) -> str:
    if bucket < 80:
        return "Delivered"
    if bucket < 86:
        return "Failed"
    if bucket < 91:
        return "Undelivered"
    if bucket < 96:
        return "Success"
    if bucket < 98:
        return "Pending"
    return "Scheduled"


_STATUS_TABLE = tuple(_status(b * 100 // 128) for b in range(128))
_PLAIN_MEDIA_URLS: tuple[str | None, ...] = ("", None, "null")


def plain_media_url(message_id: int) -> str | None:
    """media_url of a plain SMS: the three documented empties, in turn by id."""
    return _PLAIN_MEDIA_URLS[message_id % 3]


def generate_rows(
    seed: int,
    salt: str,
    first_day: dt.date,
    last_day: dt.date,
    per_day: int,
    first_id: int,
    receivers: Sequence[str],
) -> list[Message]:
    """``per_day`` rows for each UTC day of ``[first_day, last_day]``, sorted by time, ids from ``first_id``.

    Each day has its own RNG (seed, salt, day), so a day's rows do not depend on the range around it.
    One 64-bit draw per row gives every choice: the top 17 bits the second of the day, the rest the
    sender, receiver, status, direction, type and text.
    """
    rows: list[Message] = []
    append = rows.append
    senders = [a.number for a in ACCOUNT_NUMBERS]
    n_senders, n_receivers, n_templates = len(senders), len(receivers), len(_TEMPLATES)
    statuses = _STATUS_TABLE
    next_id = first_id
    day = first_day
    while day <= last_day:
        getrandbits = random.Random(f"report:{seed}:{salt}:{day.isoformat()}").getrandbits
        base = day_start(day)
        draws = [getrandbits(64) for _ in range(per_day)]
        draws.sort()
        for value in draws:
            ts = base + (((value >> 47) * 86400) >> 17)
            sender = senders[(value & 0xFF) % n_senders]
            receiver = receivers[((value >> 8) & 0xFF) % n_receivers]
            text = _TEMPLATES[((value >> 32) & 0xFF) % n_templates]
            if ((value >> 23) & 0xF) < 2:  # 1 in 8 is an incoming reply
                append(Message(next_id, ts, sender, receiver, text, "sms", "receiver",
                               plain_media_url(next_id), "Delivered", None, False, "seed"))
            else:
                status = statuses[(value >> 16) & 0x7F]
                if status == "Failed":
                    reason: str | None = "" if next_id % 4 == 0 else FAILED_REASON
                elif status == "Undelivered":
                    reason = UNDELIVERED_REASON
                else:
                    reason = None
                if ((value >> 27) & 0x1F) < 2:  # 1 in 16 is an MMS
                    url = f"https://media.easify.example/mms/{next_id}.jpg"
                    append(Message(next_id, ts, sender, receiver, text, "mms", "sender",
                                   url, status, reason, False, "seed"))
                else:
                    append(Message(next_id, ts, sender, receiver, text, "sms", "sender",
                                   plain_media_url(next_id), status, reason, False, "seed"))
            next_id += 1
        day += dt.timedelta(days=1)
    return rows
