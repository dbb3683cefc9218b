"""All mutable sandbox state behind one lock: messages, ledger, rate windows, faults and stats."""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import math
import random
import threading
import time
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any
from urllib.parse import quote

from .config import SandboxConfig
from .data import FIRST_REPORT_ID, generate_rows, plain_media_url, receiver_pool, seed_contacts
from .models import (
    FAILED_REASON,
    FAILED_SUFFIX,
    UNDELIVERED_REASON,
    UNDELIVERED_SUFFIX,
    AccountNumber,
    LedgerEntry,
    Message,
    Upload,
)

ENDPOINTS = ("send", "report", "contacts", "phone-numbers", "chat-history")
FAULT_KINDS = ("http_error", "drop", "slow", "malformed", "recorded_502", "recorded_drop")
SEND_ONLY_FAULTS = ("recorded_502", "recorded_drop")
FAULT_BODIES = ("json", "html", "empty")
OUTAGE_MODES = ("html_5xx", "timeout", "rate_limit")
#: An outage's options, each with the mode it applies to and its default.
OUTAGE_OPTIONS = {"status": ("html_5xx", 503), "retry_after": ("rate_limit", 60), "delay": ("timeout", 30.0)}
#: Refuse /_sandbox/report/generate calls that would add more rows than this.
MAX_GENERATED_ROWS = 5_000_000

_order_key = attrgetter("ts", "id")
_ts_key = attrgetter("ts")
_id_key = attrgetter("id")


def utc_today() -> dt.date:
    return dt.datetime.fromtimestamp(time.time(), dt.UTC).date()


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    id: int
    endpoint: str
    kind: str
    times: int | None  # hits left; None: unlimited (probability faults)
    probability: float | None
    status: int
    delay: float
    fired: int = 0
    #: ``http_error`` only: "json" (the vendor's shape), "html" (a gateway's page) or "empty".
    body: str = "json"
    #: ``http_error`` only: the JSON answer's message (None: the default text).
    message: str | None = None
    #: Seconds the server holds the request before the fault acts (a slow answer that then fails).
    hold: float = 0.0

    def matches(self, endpoint: str) -> bool:
        if self.endpoint not in ("*", endpoint):
            return False
        return endpoint == "send" or self.kind not in SEND_ONLY_FAULTS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_fault(spec: Any, fault_id: int) -> Fault:
    if not isinstance(spec, dict):
        raise ValueError("a fault is a JSON object")
    known = {"endpoint", "kind", "times", "probability", "status", "delay", "body", "message", "hold"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
    endpoint = spec.get("endpoint", "*")
    if endpoint not in (*ENDPOINTS, "*"):
        raise ValueError(f"endpoint must be one of {', '.join((*ENDPOINTS, '*'))}")
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    if kind in SEND_ONLY_FAULTS and endpoint not in ("send", "*"):
        raise ValueError(f"{kind} applies to the send endpoint only")
    probability = spec.get("probability")
    if probability is not None:
        probability = float(probability)
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
    times = spec.get("times")
    if times is None:
        times = None if probability is not None else 1
    elif isinstance(times, bool) or int(times) < 1:
        raise ValueError("times must be a positive integer")
    else:
        times = int(times)
    status = int(spec.get("status", 500))
    if not 400 <= status <= 599:
        raise ValueError("status must be an HTTP error status (400-599)")
    delay = float(spec.get("delay", 1.0))
    if delay < 0:
        raise ValueError("delay must be >= 0")
    body = spec.get("body", "json")
    if body not in FAULT_BODIES:
        raise ValueError(f"body must be one of {', '.join(FAULT_BODIES)}")
    message = spec.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError("message must be a string")
    hold = float(spec.get("hold", 0.0))
    if hold < 0:
        raise ValueError("hold must be >= 0")
    return Fault(fault_id, endpoint, kind, times, probability, status, delay, body=body, message=message, hold=hold)


# --------------------------------------------------------------------------- outages


@dataclass
class Outage:
    """One endpoint down until the outage is ended: every request (after auth) gets the same answer."""

    endpoint: str
    mode: str
    #: ``html_5xx`` only: the status of the gateway's HTML page (500-599).
    status: int | None = None
    #: ``rate_limit`` only: the ``Retry-After`` seconds of the 429.
    retry_after: int | None = None
    #: ``timeout`` only: seconds the request is held before the connection is closed unanswered.
    delay: float | None = None
    started_ts: float = 0.0
    #: Requests answered by this outage so far.
    hits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _outage_number(value: Any, name: str, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be {rule}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be {rule}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {rule}")
    return number


def parse_outage(endpoint: str, spec: Any, started_ts: float) -> Outage:
    """Validate ``PUT /_sandbox/outages/<endpoint>``'s body; raise ``ValueError`` naming the bad field."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
    if not isinstance(spec, dict):
        raise ValueError("an outage is a JSON object")
    allowed = ("mode", *OUTAGE_OPTIONS)
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"unknown outage field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    mode = spec.get("mode")
    if mode not in OUTAGE_MODES:
        raise ValueError(f"mode must be one of {', '.join(OUTAGE_MODES)}")
    for name, (applies_to, _) in OUTAGE_OPTIONS.items():
        if spec.get(name) is not None and applies_to != mode:
            raise ValueError(f"{name} applies to mode {applies_to} only")
    outage = Outage(endpoint, mode, started_ts=started_ts)
    if mode == "html_5xx":
        rule = "an integer HTTP status within 500-599"
        status = _outage_number(spec.get("status", OUTAGE_OPTIONS["status"][1]), "status", rule)
        if status != int(status) or not 500 <= status <= 599:
            raise ValueError(f"status must be {rule}")
        outage.status = int(status)
    elif mode == "rate_limit":
        rule = "a whole number of seconds >= 0"
        retry_after = _outage_number(spec.get("retry_after", OUTAGE_OPTIONS["retry_after"][1]), "retry_after", rule)
        if retry_after != int(retry_after) or retry_after < 0:
            raise ValueError(f"retry_after must be {rule}")
        outage.retry_after = int(retry_after)
    else:
        rule = "a number of seconds >= 0"
        delay = _outage_number(spec.get("delay", OUTAGE_OPTIONS["delay"][1]), "delay", rule)
        if delay < 0:
            raise ValueError(f"delay must be {rule}")
        outage.delay = delay
    return outage


# --------------------------------------------------------------------------- stats


class Stats:
    """Counters of /api/v2 requests. A request is counted when it arrives, its status when it is answered."""

    def __init__(self) -> None:
        self.total = 0
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_endpoint_status: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.faults_fired = 0
        self.faults_by_kind: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "by_endpoint_status": {name: dict(counts) for name, counts in self.by_endpoint_status.items()},
            "faults_fired": self.faults_fired,
            "faults_by_kind": dict(self.faults_by_kind),
            "requests": [dict(entry) for entry in self.requests],
        }


@dataclass
class RequestRecord:
    """Handle on one counted request, to fill in its status (and fault) later."""

    stats: Stats
    entry: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- report filters


@dataclass(frozen=True)
class ReportFilter:
    sender: str | None = None  # E.164
    receiver: str | None = None  # E.164
    status: str | None = None
    nothing: bool = False  # a filter no row can match (e.g. a sender that is not an account number)

    @property
    def empty(self) -> bool:
        return not (self.sender or self.receiver or self.status or self.nothing)


# --------------------------------------------------------------------------- state


class SandboxState:
    """Everything the HTTP handlers read and write. Every public method takes the lock."""

    def __init__(self, config: SandboxConfig, token: str) -> None:
        self.lock = threading.RLock()
        self.initial_config = config.copy()
        self.config = config.copy()
        self.token = token
        self.epoch = 0
        self._reset_data()

    # ------------------------------------------------------------------ reset

    def reset(self, reset_config: bool = False) -> None:
        with self.lock:
            if reset_config:
                self.config = self.initial_config.copy()
            self.epoch += 1
            self._reset_data()

    def _reset_data(self) -> None:
        cfg = self.config
        self.contacts = seed_contacts(cfg.seed)
        self.receivers = receiver_pool(self.contacts)
        today = utc_today()
        rows: list[Message] = []
        if cfg.report_days > 0 and cfg.report_rows_per_day > 0:
            rows = generate_rows(
                cfg.seed,
                "seed",
                today - dt.timedelta(days=cfg.report_days),
                today - dt.timedelta(days=1),
                cfg.report_rows_per_day,
                FIRST_REPORT_ID,
                self.receivers,
            )
        self.messages: list[Message] = rows
        # Ids never go back, as on a real server, even across a reset: a client's watermark stays below them.
        self.next_id = max(rows[-1].id + 1 if rows else FIRST_REPORT_ID, getattr(self, "next_id", 0))
        self.conversations: dict[tuple[str, str], list[Message]] = {}
        self._index(rows)
        self.ledger: list[LedgerEntry] = []
        self.media: dict[int, Upload] = {}
        self.faults: list[Fault] = []
        self.fault_rng = random.Random(f"faults:{cfg.seed}")
        self._next_fault_id = 1
        #: Endpoint -> its outage. Kept by ``clear_faults``, cleared by ``reset``.
        self.outages: dict[str, Outage] = {}
        self.windows: dict[tuple[str, str], list[float]] = {}
        self.stats = Stats()

    def _index(self, rows: list[Message]) -> None:
        conversations = self.conversations
        for m in rows:
            key = (m.sender, m.receiver)
            bucket = conversations.get(key)
            if bucket is None:
                conversations[key] = [m]
            else:
                bucket.append(m)

    # ------------------------------------------------------------------ config

    def config_dict(self) -> dict[str, Any]:
        with self.lock:
            return self.config.to_dict()

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config.update(changes)
            return self.config.to_dict()

    def lifecycle(self) -> tuple[float, float]:
        cfg = self.config
        return cfg.pending_seconds, cfg.delivered_seconds

    # ------------------------------------------------------------------ rate limits

    def take_rate(self, token: str, bucket: str, now: float) -> int | None:
        """Count one request in ``bucket``; return the seconds to wait instead when over the limit."""
        with self.lock:
            cfg = self.config
            if bucket == "send":
                limit, window = cfg.send_limit, cfg.send_window_seconds
            else:
                limit, window = cfg.read_limit, cfg.read_window_seconds
            if limit <= 0:
                return None
            state = self.windows.get((token, bucket))
            if state is None or now >= state[0] + window:
                state = [now, 0.0]
                self.windows[(token, bucket)] = state
            if state[1] >= limit:
                return max(1, math.ceil(state[0] + window - now))
            state[1] += 1
            return None

    # ------------------------------------------------------------------ faults

    def add_faults(self, specs: list[Any]) -> list[dict[str, Any]]:
        with self.lock:
            parsed: list[Fault] = []
            for spec in specs:
                parsed.append(parse_fault(spec, self._next_fault_id + len(parsed)))
            self._next_fault_id += len(parsed)
            self.faults.extend(parsed)
            return [f.to_dict() for f in self.faults]

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def list_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_dict() for f in self.faults]

    def take_fault(self, endpoint: str, record: RequestRecord) -> Fault | None:
        """The first fault that fires for this request (consumed and counted), if any."""
        with self.lock:
            for fault in list(self.faults):
                if not fault.matches(endpoint):
                    continue
                if fault.probability is not None and self.fault_rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                record.stats.faults_fired += 1
                record.stats.faults_by_kind[fault.kind] += 1
                record.entry["fault"] = fault.kind
                return dataclasses.replace(fault)
            return None

    # ------------------------------------------------------------------ outages

    def start_outage(self, endpoint: str, spec: Any) -> dict[str, Any]:
        """Put ``endpoint`` down (replacing an outage already on it); returns the outage."""
        outage = parse_outage(endpoint, spec, time.time())
        with self.lock:
            self.outages[endpoint] = outage
            return outage.to_dict()

    def end_outage(self, endpoint: str) -> dict[str, Any] | None:
        """End the outage of ``endpoint``; returns it, or None when there was none."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        with self.lock:
            outage = self.outages.pop(endpoint, None)
            return None if outage is None else outage.to_dict()

    def list_outages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.outages[name].to_dict() for name in ENDPOINTS if name in self.outages]

    def take_outage(self, endpoint: str, record: RequestRecord) -> Outage | None:
        """The outage answering this request, if ``endpoint`` is down (counted like a fault, kind "outage")."""
        with self.lock:
            outage = self.outages.get(endpoint)
            if outage is None:
                return None
            outage.hits += 1
            record.stats.faults_fired += 1
            record.stats.faults_by_kind["outage"] += 1
            record.entry["fault"] = "outage"
            return dataclasses.replace(outage)

    # ------------------------------------------------------------------ stats

    def begin_request(self, endpoint: str, method: str, t: float) -> RequestRecord:
        with self.lock:
            stats = self.stats
            stats.total += 1
            stats.by_endpoint[endpoint] += 1
            entry: dict[str, Any] = {
                "t": t, "endpoint": endpoint, "method": method, "status": None, "fault": None
            }
            stats.requests.append(entry)
            return RequestRecord(stats, entry)

    def finish_request(self, record: RequestRecord, status: int) -> None:
        """``status`` 0 means the connection was closed without a response."""
        with self.lock:
            key = str(status)
            record.entry["status"] = status
            record.stats.by_status[key] += 1
            record.stats.by_endpoint_status[record.entry["endpoint"]][key] += 1

    def stats_dict(self) -> dict[str, Any]:
        with self.lock:
            return self.stats.to_dict()

    # ------------------------------------------------------------------ messages

    def _add_message(self, m: Message) -> None:
        insort(self.messages, m, key=_order_key)
        self._index([m])

    def record_send(
        self,
        *,
        account: AccountNumber,
        from_raw: str,
        national: str,
        country_code: str,
        text: str,
        media_url: str | None,
        upload: Upload | None,
        base_url: str,
        lead_id: str | None,
        force_send: bool,
    ) -> LedgerEntry:
        with self.lock:
            message_id = self.next_id
            self.next_id += 1
            if upload is not None:
                self.media[message_id] = upload
                media_url = f"{base_url}/_sandbox/media/{message_id}/{quote(upload.filename)}"
            has_media = media_url is not None
            if not has_media:
                media_url = plain_media_url(message_id)
            suffix = national[-4:]
            if suffix == FAILED_SUFFIX:
                status, reason = "Failed", FAILED_REASON
            elif suffix == UNDELIVERED_SUFFIX:
                status, reason = "Undelivered", UNDELIVERED_REASON
            else:
                status, reason = "Delivered", None
            message = Message(
                message_id,
                time.time(),
                account.number,
                f"+{country_code}{national}",
                text,
                "mms" if has_media else "sms",
                "sender",
                media_url,
                status,
                reason,
                True,
                "send",
            )
            self._add_message(message)
            entry = LedgerEntry(
                message=message,
                from_number=account.national,
                from_number_raw=from_raw,
                to_number=national,
                country_code=f"+{country_code}",
                lead_id=lead_id,
                force_send=force_send,
                media_filename=upload.filename if upload is not None else None,
            )
            self.ledger.append(entry)
            return entry

    def record_incoming(
        self, account: AccountNumber, receiver: str, text: str, ts: float | None
    ) -> dict[str, Any]:
        with self.lock:
            message_id = self.next_id
            self.next_id += 1
            created = time.time() if ts is None else ts
            message = Message(
                message_id, created, account.number, receiver, text, "sms", "receiver", "", "Delivered", None,
                False, "incoming",
            )
            self._add_message(message)
            return message.render(time.time(), *self.lifecycle())

    def ledger_rows(self) -> list[dict[str, Any]]:
        with self.lock:
            now = time.time()
            return [entry.render(now, *self.lifecycle()) for entry in self.ledger]

    def get_media(self, message_id: int) -> Upload | None:
        with self.lock:
            return self.media.get(message_id)

    # ------------------------------------------------------------------ queries

    def contacts_page(
        self, group_id: int | None, desc: bool, offset: int, count: int
    ) -> tuple[int, list[dict[str, Any]]]:
        with self.lock:
            contacts = self.contacts
        if group_id is not None:
            contacts = [c for c in contacts if c.group_id == group_id]
        ordered = sorted(contacts, key=_id_key, reverse=desc)
        return len(ordered), [c.render() for c in ordered[offset:offset + count]]

    def _predicate(self, flt: ReportFilter, now: float) -> Any:
        pending, delivered = self.lifecycle()

        def keep(m: Message) -> bool:
            if flt.nothing:
                return False
            if flt.sender is not None and m.sender != flt.sender:
                return False
            if flt.receiver is not None and m.receiver != flt.receiver:
                return False
            return flt.status is None or m.current(now, pending, delivered)[0] == flt.status

        return keep

    def _range(self, lo: float, hi: float) -> tuple[int, int]:
        hi = min(hi, self._visible_until())
        return bisect_left(self.messages, lo, key=_ts_key), bisect_left(self.messages, max(lo, hi), key=_ts_key)

    def _visible_until(self) -> float:
        """Messages created after this moment are not visible yet (``visibility_delay_seconds``)."""
        delay = self.config.visibility_delay_seconds
        return time.time() - delay if delay > 0 else float("inf")

    def report_page(
        self, lo: float, hi: float, flt: ReportFilter, desc: bool, offset: int, count: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Rows with ``lo <= created_ts < hi`` matching ``flt``: (total, the requested slice, rendered).

        Without a filter this is O(log n + count): two bisections on the sorted list and one slice.
        """
        with self.lock:
            now = time.time()
            start, stop = self._range(lo, hi)
            msgs = self.messages
            if flt.empty:
                total = stop - start
                if desc:
                    top = stop - offset
                    chosen = msgs[max(start, top - count):max(start, top)][::-1]
                else:
                    chosen = msgs[min(stop, start + offset):min(stop, start + offset + count)]
            else:
                keep = self._predicate(flt, now)
                matched = [m for m in msgs[start:stop] if keep(m)]
                total = len(matched)
                if desc:
                    matched.reverse()
                chosen = matched[offset:offset + count]
            lifecycle = self.lifecycle()
            return total, [m.render(now, *lifecycle) for m in chosen]

    def report_all(self, lo: float, hi: float, flt: ReportFilter, desc: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            now = time.time()
            start, stop = self._range(lo, hi)
            rows = self.messages[start:stop]
            if not flt.empty:
                keep = self._predicate(flt, now)
                rows = [m for m in rows if keep(m)]
            if desc:
                rows.reverse()
            lifecycle = self.lifecycle()
            return [m.render(now, *lifecycle) for m in rows]

    def conversation(self, sender: str, receiver: str, limit: int) -> list[dict[str, Any]]:
        """``limit`` messages between an account number and a customer, both directions: the newest by id,
        or the oldest with the ``oldest_*`` history orders (see :data:`.config.HISTORY_ORDERS`)."""
        with self.lock:
            now = time.time()
            visible_until = self._visible_until()
            messages = [m for m in self.conversations.get((sender, receiver), []) if m.ts <= visible_until]
            order = self.config.history_order
            if order in ("oldest_first", "oldest_newest_first"):
                # Laravel's paginate($limit) on an ascending query: the oldest rows, listed either way.
                chosen = heapq.nsmallest(limit, messages, key=_id_key)
                if order == "oldest_newest_first":
                    chosen.reverse()
            else:
                chosen = heapq.nlargest(limit, messages, key=_id_key)
                if order == "shuffled":
                    self.fault_rng.shuffle(chosen)
            lifecycle = self.lifecycle()
            return [m.render(now, *lifecycle) for m in chosen]

    # ------------------------------------------------------------------ generation

    def generate(self, first_day: dt.date, last_day: dt.date, per_day: int, clear: bool) -> dict[str, Any]:
        """Add ``per_day`` deterministic rows on each day of the range; ids continue the global counter."""
        days = (last_day - first_day).days + 1
        if days < 1:
            raise ValueError("to_date is before from_date")
        if per_day < 0:
            raise ValueError("per_day must be >= 0")
        count = days * per_day
        if count > MAX_GENERATED_ROWS:
            raise ValueError(f"at most {MAX_GENERATED_ROWS} rows per call")
        started = time.perf_counter()
        with self.lock:
            epoch, seed, receivers = self.epoch, self.config.seed, self.receivers
            first_id = self.next_id
            self.next_id += count
        salt = f"generate:{first_day.isoformat()}:{last_day.isoformat()}:{per_day}"
        rows = generate_rows(seed, salt, first_day, last_day, per_day, first_id, receivers) if count else []
        with self.lock:
            if epoch != self.epoch:
                raise RuntimeError("the sandbox was reset during generation")
            if clear:
                self.messages = [m for m in self.messages if m.origin != "seed"]
                self.conversations = {}
                self._index(self.messages)
            msgs = self.messages
            if rows:
                if not msgs or _order_key(rows[0]) >= _order_key(msgs[-1]):
                    msgs.extend(rows)
                elif _order_key(rows[-1]) <= _order_key(msgs[0]):
                    self.messages = rows + msgs
                else:
                    msgs.extend(rows)
                    msgs.sort(key=_order_key)
                self._index(rows)
            return {
                "added": count,
                "total": len(self.messages),
                "first_id": first_id if count else None,
                "last_id": first_id + count - 1 if count else None,
                "seconds": round(time.perf_counter() - started, 3),
            }
