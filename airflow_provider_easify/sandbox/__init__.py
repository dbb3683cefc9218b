"""Easify sandbox: a local, standard-library-only fake of the Easify REST API v2.

It reproduces the vendor documentation (``shared/easify-api/*.md``): the same paths, parameter names
and JSON bodies, for success and for every documented error, byte for byte where the vendor gives
the text (``" SMS Processed successfully."``, ``" Sorry, this recipient is blacklisted! "``, ...).
Where the vendor text is ambiguous the sandbox picks one reading; every such choice is listed below.

Quick start
===========

In-process (tests)::

    from airflow_provider_easify.sandbox import EasifySandbox, SandboxConfig

    with EasifySandbox(config=SandboxConfig(pending_seconds=0.1)) as sandbox:
        sandbox.api_url          # http://127.0.0.1:PORT/api/v2 (port 0 picks a free port)
        sandbox.token            # "sandbox-token"
        sandbox.conn_uri_json()  # value for AIRFLOW_CONN_EASIFY_DEFAULT
        sandbox.ledger(); sandbox.stats(); sandbox.add_fault("send", "recorded_502")

The pytest fixture ``easify_sandbox`` (:mod:`.pytest_plugin`) starts a fresh sandbox per test and sets
``AIRFLOW_CONN_EASIFY_DEFAULT``. From the command line::

    python -m airflow_provider_easify.sandbox --host 127.0.0.1 --port 8088 --token TOKEN \\
        [--seed N] [--send-limit N] [--send-window S] [--read-limit N] [--read-window S] \\
        [--pending-seconds S] [--delivered-seconds S] [--max-page-size N] [--report-days N] \\
        [--rows-per-day N] [--log-requests] [--port-file PATH]

prints ``Easify sandbox listening on http://HOST:PORT/api/v2 (token: TOKEN)`` once listening, writes
the port to ``--port-file`` (atomically) when given, and exits 0 on SIGTERM/SIGINT.
:class:`SandboxClient` (``SandboxClient("http://HOST:PORT")``) drives a sandbox in another process.

Configuration
=============

:class:`SandboxConfig` (defaults): ``seed`` 7, ``pending_seconds`` 1.0, ``delivered_seconds`` 2.0,
``send_limit`` 15, ``send_window_seconds`` 60, ``read_limit`` 60, ``read_window_seconds`` 60,
``max_page_size`` 1000, ``limit_refused_above`` 0, ``report_days`` 120, ``report_rows_per_day`` 20,
``report_max_days`` 30, ``log_requests`` False; the readings of the vendor text (below) ``trim_strings``
True, ``normalize_newlines`` False, ``history_order`` "newest_first", ``visibility_delay_seconds`` 0.
All can be changed at run time (``configure(**fields)`` /
``POST /_sandbox/config``); ``seed`` and ``report_*`` shape the seeded data at the next reset.

Tokens
======

``Authorization: Bearer <token>`` (scheme case-insensitive) is checked first, on every /api/v2 request:

* the sandbox's token (``token=``, default ``"sandbox-token"``): an active enterprise account;
* ``"sandbox-expired"``: 402 ``{"status": false, "message": "You need to recharge your account to
  proceed", "errors": []}``;
* ``"sandbox-basic"``: 403 with the documented "Access denied ... Enterprise plan." body;
* anything else, a missing header or another scheme: 401 ``{"status": false, "message":
  "Unauthenticated", "errors": []}``.

Order of checks on /api/v2: route (404 unknown path, 405 wrong method; neither needs a token) ->
auth (401/402/403) -> outage -> rate limit (429) -> injected fault -> validation -> work.

The account
===========

Phone numbers (the only valid ``from_number`` / ``sender``): ``+13155550100`` (id 52, "Main line"),
``+13155550101`` (53, "Support"), ``+13155550102`` (54, "Marketing"); all Approved / Active / Twilio,
``webhook_url`` null. An account number is recognised from its national digits (``3155550100``),
E.164 (``+13155550100``) or E.164 digits (``13155550100``); spaces, dashes, dots and parentheses are
ignored. Country codes are accepted with or without the ``+`` (a ``+`` that a client forgot to
URL-encode arrives as a space and is trimmed, as Laravel's TrimStrings does).

Magic recipients (last four digits of the *national* to_number) on POST /sms/send:

=========  ======================================================================
``9990``   accepted, ends ``Failed`` (reason ``"Carrier rejected the message"``)
``9991``   accepted, ends ``Undelivered`` (reason ``"Handset unreachable"``)
``9992``   400 ``" Sorry, this recipient is blacklisted! "``
``9993``   400 ``"InvalidRecipient!"``
``9994``   400 ``"Sorry, you do not have enough credits to send this SMS. Please recharge for more."``
=========  ======================================================================

Seeded numbers never end in ``999x``.

Endpoints (``/api/v2``)
=======================

Every answer is ``Content-Type: application/json``. Input is read as Laravel reads it: query string
and body merged (the body wins; the vendor lists /sms/send's fields as "Query Parameters"), strings
trimmed, empty strings treated as missing, the last value of a repeated name wins.

``GET /phone-numbers``
    Without ``limit``: ``{"status": true, "message": "Phone Numbers", "data": [...], "links": []}``;
    with ``limit`` (and ``page``): the paginated shape below.

``GET /contacts`` (``limit`` = 10, ``page`` = 1, ``order`` = desc by id, ``group_id``)
    57 deterministic contacts (``seed``) in group 1 "Customers" (30), 2 "Staff" (15), 3 "VIP" (12),
    ids 1-57, numbers ``+1315555xxxx`` (xxxx in 1000-8999). ``shared_contact`` is true for the VIP
    group (the sandbox's "shared contact group"). The group id is kept internally only (the vendor's
    record has no such field). An unknown ``group_id`` gives empty ``data`` (200); a non-integer one
    is a 422 ``"The group id must be an integer."``. Contacts' ``created_at`` lie in 2024.

``GET /sms/report``
    ``from_date``/``to_date`` required, strictly ``YYYY-MM-DD`` (422 ``"The from date field is
    required."`` / ``"The from date does not match the format Y-m-d."``; ``to_date`` before
    ``from_date``: 422 ``errors.to_date`` ``"The to date must be a date after or equal to from
    date."``). **30-day rule, strict reading**: when the inclusive day count ``(to - from).days + 1``
    exceeds 30 (``report_max_days``), 400 ``{"status": false, "message": "The date range cannot exceed
    30 days.", "errors": []}``; 30 days inclusive is fine. ``status`` must be one of Pending, Success,
    Delivered, Undelivered, Failed, Scheduled, case-sensitive (else 422 ``"The selected status is
    invalid."``). ``receiver`` and ``country_code`` are required together (422 ``"The country code
    field is required when receiver is present."`` / ``"The receiver field is required when country
    code is present."``); an unsupported code is the documented 422. ``sender`` that is not an account
    number, or a receiver that is not a valid number, matches no row (200, empty). The date filter is
    on the UTC date of ``created_at``, inclusive on both ends; ``order`` (asc/desc, anything else is
    desc) sorts by (created_at, id). Rows: id, sender, receiver (E.164), message, sms_type, send_by,
    media_url, status, created_at, reason. Seeded rows, sent messages and injected incoming messages
    are all included. Several 422 errors are reported together, Laravel style: the message is the
    first one followed by ``" (and N more error(s))"``.

``POST /sms/send`` (JSON, form-urlencoded, or multipart with ``media`` as a file part or URL field)
    Checked in this order, the first failure answers:

    1. missing ``from_number``: 422 ``{"message": "The from_number is required.", "errors":
       {"from_number": ["The from number is required."]}}``;
    2. missing ``to_number`` (not documented): 422 ``"The to number field is required."`` (Laravel's
       default text);
    3. missing ``country_code``: **400** ``{"message": "The country code field is required.",
       "errors": {...}}`` (no ``status`` key, as documented);
    4. ``country_code`` not +1, +972, +44: the documented 422;
    5. neither ``message`` nor ``media``: 422 ``"The message field is required when media is not
       present."``;
    6. ``force_send`` not 0/1/true/false (not documented): 422 ``"The force send field must be true or
       false."``;
    7. ``from_number`` not an account number: 400 ``"Selected from number is invalid"``;
    8. ``to_number``, after dropping spaces/dashes/dots/parentheses and a leading ``+<country code>``,
       not 6-14 digits (a ``+`` followed by another code is invalid): 400 ``"InvalidRecipient!"``;
    9. the magic recipients above.

    Success: ``{"status": true, "message": " SMS Processed successfully.", "data": {"sms_id":
    "<id>"}}`` with the id as a *string* (the report and chat history use integers). Ids come from one
    counter shared with every other row, always above every existing id. The row: sender = the
    account number (E.164), receiver = E.164, ``sms_type`` ``mms`` when there is media, ``send_by``
    ``sender``, ``reason`` null until it fails; ``media_url`` = the URL for URL media,
    ``http://<Host header>/_sandbox/media/<id>/<filename>`` for an uploaded file, and for a plain SMS,
    in turn by id (``id % 3``), ``""``, ``null`` and ``"null"`` (all three documented forms).
    ``force_send`` and ``lead_id`` are stored; **no opening hours are simulated**, so nothing is ever
    ``Scheduled`` by the sandbox (seeded history has a few Scheduled rows).

``GET /sms/chat-history`` (``sender``, ``receiver``, ``country_code`` required; ``limit`` = 10)
    422s as documented (``"The Country code field is required."`` with a capital C); several missing
    fields are reported together. Returns ``{"status": true, "message": "Chat History", "data":
    [...]}`` (no links/meta): the newest ``limit`` messages by id between that account number and that
    receiver, both directions (``send_by`` ``sender`` outgoing, ``receiver`` incoming). A sender that
    is not an account number gives empty data. ``limit`` is clamped to ``max_page_size``.

Other answers: unknown path 404 ``{"status": false, "message": "Not Found", "errors": []}``; wrong
method 405 ``{"status": false, "message": "The GET method is not supported for route api/v2/sms/send.
Supported methods: POST.", "errors": []}`` with an ``Allow`` header. ``limit`` that is not an integer
>= 1 is a 422 (``"The limit must be an integer."`` / ``"The limit must be at least 1."``); an invalid
``page`` is page 1 (Laravel's paginator). HEAD works on the GET endpoints.

Delivery lifecycle
==================

A sent message's status is computed from its age when it is read: ``Pending`` for
``pending_seconds`` (1.0), then ``Success`` until ``delivered_seconds`` (2.0, from creation), then
``Delivered`` (or ``Failed`` / ``Undelivered`` for the 9990 / 9991 recipients, whose reason appears
only then). The same status shows in the report, chat history and ledger. Seeded rows have fixed
statuses; injected incoming messages are ``Delivered``.

Timestamps
==========

The clock is ``time.time()``. Every ``created_at`` is rendered **in UTC** as ``MM-DD-YYYY hh:mm:ss
AM/PM`` (e.g. ``10-15-2024 05:36:32 PM``); the vendor names no zone. Report date filters use the
same UTC dates.

Pagination (contacts, report, paginated phone numbers)
======================================================

Laravel's length-aware paginator: ``per_page = min(limit, max_page_size)`` (**clamped** to 1000 by
default, ``meta.per_page`` shows the clamped value), ``last_page = max(1, ceil(total / per_page))``,
``{"status", "message", "data", "links": {first, last, prev, next}, "meta": {current_page, from,
last_page, links, path, per_page, to, total}}``. As in the vendor's sample, link URLs carry **only**
``?page=N`` (filters are not appended), built from the request's Host header. ``prev`` is null on page
1 and ``next`` null on (and past) the last page; a page past the end has empty data and ``from``/``to``
null. ``from``/``to`` are 1-based row positions. ``meta.links`` follows Laravel's URL window (3 pages
on each side, ``"..."`` gaps) with the labels ``"« Previous"`` / ``"Next »"`` as the vendor shows them.

Seeded report data
==================

On start and on reset, from ``seed``: ``report_days`` (120) days ending yesterday (UTC), each with
``report_rows_per_day`` (20) rows at random seconds of the day, ids ascending with time from 100001.
Senders are the three account numbers; receivers a pool of 40 numbers (the first 28 contacts, six
``+447700900xxx``, six ``+972501234xxx``). About 1 in 8 rows is incoming (``send_by`` receiver,
Delivered); outgoing rows are ~80% Delivered, ~6% Failed (reason ``"Carrier rejected the message"``,
or ``""`` for one in four, like the vendor sample), ~5% Undelivered (``"Handset unreachable"``), ~5%
Success, ~2% Pending, ~2% Scheduled; ~1 in 16 outgoing rows is an MMS. Each day has its own RNG, so a
day's rows do not depend on today's date. Rows live in one list sorted by (created_at, id): an
unfiltered report page is two bisections and a slice (O(log n + page)); filtered queries scan the
date range.

Rate limits
===========

Per token, fixed windows: a ``send`` bucket for POST /sms/send (``send_limit`` 15 per
``send_window_seconds`` 60) and **one read bucket shared by all GET endpoints** (strict reading of
"60 requests per minute": ``read_limit`` 60 per ``read_window_seconds`` 60). A window opens at the
first request after the previous one expired. Over the limit: 429 ``{"status": false, "message":
"Too many requests. Try again in N seconds", "errors": []}``, N = ceil(seconds until the window
ends), at least 1 (always "seconds"). **No Retry-After header** and no X-RateLimit headers: the
vendor only puts the delay in the text (a ``rate_limit`` outage, below, sends one). Rejected requests
do not count; a limit of 0 disables its bucket. Only requests that pass auth are counted.

Readings of the vendor text
===========================

Where the vendor text leaves a server free, switches pick the reading, so that clients can be tested
against each: ``trim_strings`` (Laravel's TrimStrings: a sent message is stored without surrounding
whitespace; off: stored as sent), ``normalize_newlines`` (CRLF and CR stored as LF),
``history_order`` (chat history's ``limit`` takes the newest rows newest first, the oldest rows
oldest first (``oldest_first``) or newest first (``oldest_newest_first``), or the newest rows in any
order), ``visibility_delay_seconds`` (a message shows in chat history
and the report only that long after it was created), ``max_page_size`` (``limit`` silently clamped)
and ``limit_refused_above`` (a larger ``limit`` answered 422). Faults with ``body`` "html" or "empty"
answer a 5xx as a gateway would.

Injectable faults
=================

``POST /_sandbox/faults`` with an object or a list of objects ``{"endpoint": "send" | "report" |
"contacts" | "phone-numbers" | "chat-history" | "*", "kind": ..., "times": N, "probability": p,
"status": 500, "delay": 1.0}``. ``times`` defaults to 1; with ``probability`` (and no ``times``) each
matching request fires with probability p (RNG seeded from ``seed``) until the faults are cleared;
with both, at most ``times`` hits. The first matching fault fires; it is checked after auth and rate
limit, and counted in ``stats.faults_fired`` (and on the request's entry). Kinds:

* ``http_error``: answer ``status`` (default 500; any 4xx/5xx) ``{"status": false, "message": "Server
  Error", "errors": []}`` without doing the work; ``message`` replaces the text (e.g. a 429's
  "Try again in 2 minutes 5 seconds"), ``body`` "html" answers a gateway's HTML page instead and
  "empty" an empty body;
* ``drop``: close the connection without a response, nothing done;
* ``slow``: sleep ``delay`` seconds (default 1.0), then handle normally;
* ``malformed``: handle normally (a send *is* recorded), answer 200 ``{"status": true, "data": {``;
* ``recorded_502`` (send only): handle normally, then answer 502 ``{"status": false, "message": "Bad
  Gateway", "errors": []}`` whatever the outcome;
* ``recorded_drop`` (send only): handle normally, then close without a response.

Any fault may carry ``hold`` (seconds, default 0): the server holds the request that long before the
fault acts, e.g. a 403 that arrives after a second, while a client has other requests in flight.

``DELETE /_sandbox/faults`` clears them, ``GET /_sandbox/faults`` lists them.

Outages
=======

``PUT /_sandbox/outages/<endpoint>`` (``send``, ``report``, ``contacts``, ``phone-numbers``,
``chat-history``) with ``{"mode": ..., option}`` puts one endpoint down until ``DELETE
/_sandbox/outages/<endpoint>`` (answers ``{"ok": true, "outage": the ended outage or null}``); ``GET
/_sandbox/outages`` -> ``{"outages": [...]}``. A PUT replaces the endpoint's outage and answers ``{"ok":
true, "outage": {"endpoint", "mode", "status", "retry_after", "delay", "started_ts", "hits"}}`` (the
options of other modes are null). While it is on, every request to that endpoint, once past auth, gets
the same answer, before the rate limit (nothing is counted in a rate window) and before faults (none
fires), and nothing is done (a send is never recorded). Modes:

* ``html_5xx``: a gateway's HTML page (``Content-Type: text/html``, e.g. ``<h1>503 Service
  Unavailable</h1>``) with ``status`` (default 503, 500-599);
* ``timeout``: no answer: the request is held ``delay`` seconds (default 30), then the connection is
  closed (stopping the sandbox cuts the wait short); a client whose read timeout is shorter sees a
  timeout;
* ``rate_limit``: 429 ``{"status": false, "message": "Too many requests. Try again in N seconds",
  "errors": []}`` **with** ``Retry-After: N``, N = ``retry_after`` (default 60, whole seconds >= 0).

An option of another mode, an unknown field, endpoint or mode, or a value out of range is a 400
naming the field and the allowed values. Answers are counted in the stats like faults: kind
``"outage"`` in ``faults_by_kind`` (and ``faults_fired``) and on the request's entry, status ``0`` for a
``timeout``. ``DELETE /_sandbox/faults`` keeps outages; ``POST /_sandbox/reset`` ends them.

Control API (no auth, not rate limited, not counted in stats)
=============================================================

* ``GET /_sandbox/health`` -> ``{"ok": true}``
* ``GET /_sandbox/ledger`` -> ``{"messages": [...]}``: every message accepted by /sms/send, in send
  order: id, sms_id (str), from_number (the account's national digits), from_number_raw (as sent),
  to_number (national), country_code (``"+1"``), sender, receiver, message, media_url, media_filename,
  sms_type, lead_id, force_send (bool), status and reason (current), created_at, created_ts (epoch).
* ``GET /_sandbox/stats`` -> ``{"total", "by_endpoint", "by_status", "by_endpoint_status",
  "faults_fired", "faults_by_kind", "requests": [{"t", "endpoint", "method", "status", "fault"}]}``
  for /api/v2 requests. A request is counted (``total``, ``by_endpoint``, ``requests``) when it
  arrives, and its status just *before* the answer is written, so a client that has its answer finds
  it counted (``t`` is the arrival time; status ``0`` means the connection was closed without a
  response; ``None`` while still being handled, e.g. during a ``slow`` fault). Unknown /api/v2 paths
  count as endpoint ``"unknown"``.
* ``GET /_sandbox/config``; ``POST /_sandbox/config`` partial JSON update of :class:`SandboxConfig`
  (unknown fields or bad values: 400), returns the whole config. ``seed``/``report_*`` take effect
  at the next reset.
* ``POST /_sandbox/reset`` clears ledger, stats, faults, outages, rate windows, injected and generated
  rows and uploaded media, and re-seeds; it keeps the config unless the body is ``{"config": true}``,
  which restores the config the sandbox was **started with** (``SandboxConfig()`` defaults unless one
  was passed to the constructor or the CLI).
* ``POST /_sandbox/incoming`` ``{"sender": account number, "receiver": E.164 (or national with
  "country_code"), "message": ..., "created_ts": optional epoch}`` records an incoming message
  (``send_by`` receiver, Delivered, sms) and returns its row.
* ``GET /_sandbox/report?from_date=&to_date=`` -> ``{"data": [...], "total": n}``: every row of those
  UTC days, oldest first, unpaginated, any range; optional ``sender``, ``receiver`` (+
  ``country_code`` unless E.164), ``status``, ``order``.
* ``POST /_sandbox/report/generate`` ``{"from_date", "to_date", "per_day", "clear": false}`` adds
  ``per_day`` deterministic rows per day (ids continue the global counter; ``clear`` drops all
  seeded/generated rows first, keeping sent and injected ones); at most 5,000,000 rows per call
  (1,000,000 take about 3 s).
* ``GET /_sandbox/media/<id>/<filename>`` -> the uploaded bytes.
* ``GET /_sandbox/outages``, ``PUT`` / ``DELETE /_sandbox/outages/<endpoint>``: see Outages above.

Control errors answer ``{"ok": false, "error": "..."}`` (400, 404, 405).

Python API
==========

:class:`SandboxConfig` (all knobs), :class:`EasifySandbox` (``start()``, ``stop()``, context manager,
``url``, ``api_url``, ``token``, ``port``, ``state``, ``client``, ``conn_uri_json(extra=None)`` plus
every :class:`SandboxClient` helper: ``ledger()``, ``stats()``, ``get_config()``,
``configure(**fields)``, ``add_fault(endpoint, kind, **kw)``, ``add_faults(list)``, ``faults()``,
``clear_faults()``, ``start_outage(endpoint, mode="html_5xx", **options)``, ``end_outage(endpoint)``,
``outages()``, ``outage(endpoint, mode="html_5xx", **options)`` (a context manager that ends it on
exit), ``inject_incoming(sender, receiver, message, country_code=None,
created_ts=None)``, ``reset(config=False)``, ``report_truth(from_date, to_date, **filters)``,
``generate_report(from_date, to_date, per_day, clear=False)``, ``media(sms_id, filename)``,
``health()``, ``wait_ready(timeout)``). Refused control calls raise :class:`SandboxError`.

The server is a ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, daemon threads) with all state behind
one lock; ``stop()`` also cuts open keep-alive connections.
"""

from __future__ import annotations

from .client import SandboxClient, SandboxError
from .config import SandboxConfig
from .server import EasifySandbox

__all__ = ["EasifySandbox", "SandboxClient", "SandboxConfig", "SandboxError"]
