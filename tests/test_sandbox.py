"""The Easify sandbox over real HTTP: documented shapes and errors, pagination, limits, faults, CLI."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_easify.sandbox import (
    EasifySandbox,
    SandboxClient,
    SandboxConfig,
    SandboxError,
    pytest_plugin,
)
from airflow_provider_easify.sandbox.pagination import page_window

ROOT = Path(__file__).resolve().parents[1]
MAIN = "+13155550100"
COUNTRY_TEXT = (
    "Currently, this service is only available in the following countries: "
    "Canada, United States, Israel, United Kingdom. Please verify the country code."
)
ENTERPRISE_TEXT = (
    "Access denied. Your current plan does not allow access to this feature. "
    "Please upgrade to the Enterprise plan."
)
ROW_KEYS = [
    "id",
    "sender",
    "receiver",
    "message",
    "sms_type",
    "send_by",
    "media_url",
    "status",
    "created_at",
    "reason",
]
CONTACT_KEYS = [
    "id",
    "group_name",
    "first_name",
    "last_name",
    "phone_number",
    "email_address",
    "company",
    "additional_1",
    "additional_2",
    "additional_3",
    "shared_contact",
    "created_at",
    "updated_at",
]


def fail(message: str) -> dict[str, Any]:
    return {"status": False, "message": message, "errors": []}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class Api:
    """A bearer-token client for /api/v2."""

    def __init__(self, sandbox: EasifySandbox, token: str | None = None) -> None:
        self.base = sandbox.api_url
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", params=params, timeout=10)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(f"{self.base}/{path}", timeout=10, **kwargs)

    def send(self, **fields: Any) -> requests.Response:
        payload = {"from_number": "3155550100", "country_code": "+1", "message": "hi", **fields}
        return self.post("sms/send", json={k: v for k, v in payload.items() if v is not None})


@pytest.fixture
def sbx() -> Iterator[EasifySandbox]:
    config = SandboxConfig(read_limit=0, send_limit=0, pending_seconds=0.3, delivered_seconds=0.6)
    with EasifySandbox(config=config) as sandbox:
        yield sandbox


@pytest.fixture
def api(sbx: EasifySandbox) -> Api:
    return Api(sbx, sbx.token)


# --------------------------------------------------------------------------- basics


def test_a_limit_above_limit_refused_above_is_a_422(sandbox):
    sandbox.configure(limit_refused_above=200)
    api = Api(sandbox, sandbox.token)
    refused = api.get("contacts", limit=201)
    assert refused.status_code == 422 and "limit" in refused.json()["errors"]
    assert api.get("contacts", limit=200).json()["meta"]["per_page"] == 200


def test_lifecycle_urls_and_conn_json() -> None:
    sandbox = EasifySandbox(token="tok-1")
    with pytest.raises(RuntimeError):
        _ = sandbox.url
    with sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:") and sandbox.port > 0
        assert sandbox.api_url == sandbox.url + "/api/v2"
        assert sandbox.health() and SandboxClient(sandbox.url).health() and sandbox.client.health()
        conn = json.loads(sandbox.conn_uri_json({"timeout": 5}))
        assert conn == {
            "conn_type": "easify",
            "host": sandbox.api_url,
            "password": "tok-1",
            "extra": {"timeout": 5},
        }
        url = sandbox.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_sandbox/health", timeout=2)


def test_pytest_plugin_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest_plugin.running_sandbox(monkeypatch, send_limit=3, token="plugin-token") as sandbox:
        conn = json.loads(os.environ[pytest_plugin.CONN_ENV])
        assert conn["host"] == sandbox.api_url and conn["password"] == "plugin-token"
        assert sandbox.get_config()["send_limit"] == 3


@pytest.mark.easify_sandbox(send_limit=7, token="marker-token")
def test_easify_sandbox_fixture_as_a_dag_author_uses_it(easify_sandbox: EasifySandbox) -> None:
    """The fixture comes from the installed package's ``pytest11`` entry point, not from our conftest."""
    from airflow_provider_easify.hooks.easify import EasifyHook

    assert easify_sandbox.token == "marker-token" and easify_sandbox.get_config()["send_limit"] == 7
    sms_id = EasifyHook().send_sms("+13155550100", "+13151350000", "hi")  # easify_default, set by the fixture
    assert [str(m["id"]) for m in easify_sandbox.ledger()] == [sms_id]


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 401, fail("Unauthenticated")),
        ({"Authorization": "Bearer nope"}, 401, fail("Unauthenticated")),
        ({"Authorization": "Basic sandbox-token"}, 401, fail("Unauthenticated")),
        (
            {"Authorization": "Bearer sandbox-expired"},
            402,
            fail("You need to recharge your account to proceed"),
        ),
        ({"Authorization": "Bearer sandbox-basic"}, 403, fail(ENTERPRISE_TEXT)),
    ],
)
def test_auth(sbx: EasifySandbox, headers: dict[str, str], status: int, body: dict[str, Any]) -> None:
    for method, path in [("GET", "phone-numbers"), ("GET", "sms/report"), ("POST", "sms/send")]:
        response = requests.request(method, f"{sbx.api_url}/{path}", headers=headers, timeout=5)
        assert (response.status_code, response.json()) == (status, body)
        assert response.headers["Content-Type"] == "application/json"
    assert sbx.stats()["by_status"] == {str(status): 3}


def test_unknown_path_and_wrong_method(api: Api, sbx: EasifySandbox) -> None:
    response = api.get("sms/nothing")
    assert (response.status_code, response.json()) == (404, fail("Not Found"))
    response = api.get("sms/send")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json() == fail(
        "The GET method is not supported for route api/v2/sms/send. Supported methods: POST."
    )
    assert api.post("contacts").status_code == 405
    assert requests.get(sbx.url + "/elsewhere", timeout=5).json() == fail("Not Found")
    assert api.session.head(f"{api.base}/phone-numbers", timeout=5).status_code == 200


# --------------------------------------------------------------------------- reads


def test_phone_numbers(api: Api) -> None:
    body = api.get("phone-numbers").json()
    assert body["status"] is True and body["message"] == "Phone Numbers" and body["links"] == []
    assert body["data"][0] == {
        "id": 52,
        "number": "+13155550100",
        "approved": "Approved",
        "gateway": "Twilio",
        "name": "Main line",
        "status": "Active",
        "webhook_url": None,
        "created_at": "07-12-2024 11:03:12 AM",
    }
    assert [(n["id"], n["number"], n["name"]) for n in body["data"]] == [
        (52, "+13155550100", "Main line"),
        (53, "+13155550101", "Support"),
        (54, "+13155550102", "Marketing"),
    ]
    page = api.get("phone-numbers", limit=2, page=2).json()
    assert [n["id"] for n in page["data"]] == [54]
    assert page["links"]["next"] is None and page["links"]["prev"].endswith("/api/v2/phone-numbers?page=1")
    assert (page["meta"]["total"], page["meta"]["last_page"], page["meta"]["from"], page["meta"]["to"]) == (
        3,
        2,
        3,
        3,
    )


def test_contacts_pagination(api: Api, sbx: EasifySandbox) -> None:
    first = api.get("contacts").json()
    assert first["message"] == "Contacts" and first["status"] is True
    assert [c["id"] for c in first["data"]] == list(range(57, 47, -1))
    assert list(first["data"][0]) == CONTACT_KEYS
    meta = first["meta"]
    assert (meta["total"], meta["per_page"], meta["last_page"], meta["from"], meta["to"]) == (
        57,
        10,
        6,
        1,
        10,
    )
    assert meta["path"] == f"{sbx.api_url}/contacts"
    assert first["links"] == {
        "first": f"{sbx.api_url}/contacts?page=1",
        "last": f"{sbx.api_url}/contacts?page=6",
        "prev": None,
        "next": f"{sbx.api_url}/contacts?page=2",
    }
    assert meta["links"][0] == {"url": None, "label": "« Previous", "active": False}
    assert meta["links"][1] == {"url": f"{sbx.api_url}/contacts?page=1", "label": "1", "active": True}
    assert meta["links"][-1]["label"] == "Next »"

    ids: list[int] = []
    url: str | None = f"{sbx.api_url}/contacts"
    params: dict[str, Any] = {"limit": 7, "order": "asc", "group_id": 1}
    while url:
        body = api.session.get(url, params=params, timeout=5).json()
        ids += [c["id"] for c in body["data"]]
        url = body["links"]["next"]
        assert url is None or url.endswith(f"/api/v2/contacts?page={body['meta']['current_page'] + 1}")
        params = {**params, "page": body["meta"]["current_page"] + 1}
    assert len(ids) == 30 and ids == sorted(ids)

    everyone = api.get("contacts", limit=5000).json()
    assert everyone["meta"]["per_page"] == 1000 and len(everyone["data"]) == 57
    sizes = {
        name: sum(c["group_name"] == name for c in everyone["data"]) for name in ("Customers", "Staff", "VIP")
    }
    assert sizes == {"Customers": 30, "Staff": 15, "VIP": 12}
    for contact in everyone["data"]:
        number = contact["phone_number"]
        assert number.startswith("+1315555") and len(number) == 12 and not number[-4:].startswith("999")
        assert contact["shared_contact"] is (contact["group_name"] == "VIP")
        assert "group_id" not in contact
    assert len({c["phone_number"] for c in everyone["data"]}) == 57

    last = api.get("contacts", limit=10, page=6).json()
    assert last["links"]["next"] is None and (last["meta"]["from"], last["meta"]["to"]) == (51, 57)
    beyond = api.get("contacts", limit=10, page=9).json()
    assert beyond["data"] == [] and beyond["meta"]["from"] is None and beyond["meta"]["to"] is None
    assert beyond["links"]["next"] is None
    empty = api.get("contacts", group_id=999)
    assert empty.status_code == 200 and empty.json()["data"] == [] and empty.json()["meta"]["last_page"] == 1
    assert api.get("contacts", page="junk").json()["meta"]["current_page"] == 1
    bad = api.get("contacts", limit="x")
    assert (bad.status_code, bad.json()) == (
        422,
        {"message": "The limit must be an integer.", "errors": {"limit": ["The limit must be an integer."]}},
    )
    with EasifySandbox() as twin:
        again = Api(twin, twin.token).get("contacts", limit=100).json()["data"]
    assert again == everyone["data"], "same seed, same contacts"


def test_page_window_is_laravels() -> None:
    assert page_window(1, 5) == [1, 2, 3, 4, 5]
    assert page_window(3, 50) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None, 49, 50]
    assert page_window(25, 50) == [1, 2, None, 22, 23, 24, 25, 26, 27, 28, None, 49, 50]
    assert page_window(48, 50) == [1, 2, None, *range(41, 51)]


# --------------------------------------------------------------------------- report


def _err(field: str, text: str) -> dict[str, Any]:
    return {"message": text, "errors": {field: [text]}}


def test_report_validation(api: Api) -> None:
    day = today().isoformat()
    cases: list[tuple[dict[str, Any], int, dict[str, Any]]] = [
        ({"to_date": day}, 422, _err("from_date", "The from date field is required.")),
        (
            {"from_date": "2024/10/01", "to_date": day},
            422,
            _err("from_date", "The from date does not match the format Y-m-d."),
        ),
        (
            {"from_date": day, "to_date": "2024-02-30"},
            422,
            _err("to_date", "The to date does not match the format Y-m-d."),
        ),
        (
            {"from_date": "2024-10-05", "to_date": "2024-10-01"},
            422,
            _err("to_date", "The to date must be a date after or equal to from date."),
        ),
        (
            {"from_date": day, "to_date": day, "status": "delivered"},
            422,
            _err("status", "The selected status is invalid."),
        ),
        (
            {"from_date": day, "to_date": day, "receiver": "3151350000"},
            422,
            _err("country_code", "The country code field is required when receiver is present."),
        ),
        (
            {"from_date": day, "to_date": day, "country_code": "+1"},
            422,
            _err("receiver", "The receiver field is required when country code is present."),
        ),
        (
            {"from_date": day, "to_date": day, "receiver": "3151350000", "country_code": "+49"},
            422,
            _err("country_code", COUNTRY_TEXT),
        ),
        (
            {"from_date": "2024-10-01", "to_date": "2024-10-31"},
            400,
            fail("The date range cannot exceed 30 days."),
        ),
        (
            {"from_date": "2024-01-01", "to_date": "2024-03-01"},
            400,
            fail("The date range cannot exceed 30 days."),
        ),
    ]
    for params, status, body in cases:
        response = api.get("sms/report", **params)
        assert (response.status_code, response.json()) == (status, body), params
    both = api.get("sms/report").json()
    assert both["message"] == "The from date field is required. (and 1 more error)"
    assert set(both["errors"]) == {"from_date", "to_date"}
    assert api.get("sms/report", from_date="2024-10-01", to_date="2024-10-30").status_code == 200  # 30 days


def test_report_rows_links_and_filters(api: Api, sbx: EasifySandbox) -> None:
    end = today() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=9)
    truth = sbx.report_truth(start, end)
    assert len(truth) == 200 and [r["id"] for r in truth] == sorted(r["id"] for r in truth)
    assert all(list(row) == ROW_KEYS for row in truth)
    statuses = {r["status"] for r in truth}
    assert {"Delivered", "Failed"} <= statuses and {r["send_by"] for r in truth} == {"sender", "receiver"}
    assert {r["sender"] for r in truth} == {"+13155550100", "+13155550101", "+13155550102"}
    assert {r["receiver"][:3] for r in truth} >= {"+13", "+44", "+97"}

    params = {"from_date": start.isoformat(), "to_date": end.isoformat(), "limit": 30, "status": "Delivered"}
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        body = api.get("sms/report", **params, page=page).json()
        assert body["message"] == "SMS Report"
        for link in (body["links"]["first"], body["links"]["last"], body["links"]["next"]):
            assert link is None or (link.split("?")[1].startswith("page=") and "&" not in link)
        rows += body["data"]
        if body["links"]["next"] is None:
            assert page == body["meta"]["last_page"]
            break
        assert body["links"]["next"] == f"{sbx.api_url}/sms/report?page={page + 1}"
        page += 1
    delivered = [r for r in truth if r["status"] == "Delivered"]
    assert [r["id"] for r in rows] == [r["id"] for r in reversed(delivered)], "desc by (created_at, id)"

    asc = api.get(
        "sms/report", from_date=start.isoformat(), to_date=end.isoformat(), order="asc", limit=100
    ).json()
    assert asc["data"] == truth[:100] and asc["meta"]["total"] == 200 and asc["meta"]["last_page"] == 2

    receiver = next(r["receiver"] for r in truth if r["receiver"].startswith("+44"))
    expected = [r["id"] for r in truth if r["receiver"] == receiver]
    for value in (receiver, receiver[3:]):
        body = api.get(
            "sms/report",
            from_date=start.isoformat(),
            to_date=end.isoformat(),
            receiver=value,
            country_code="+44",
            order="asc",
            limit=100,
        ).json()
        assert [r["id"] for r in body["data"]] == expected
    for sender in ("3155550101", "+13155550101"):
        body = api.get(
            "sms/report", from_date=start.isoformat(), to_date=end.isoformat(), sender=sender, limit=100
        ).json()
        assert body["meta"]["total"] == sum(r["sender"] == "+13155550101" for r in truth)
    nobody = api.get("sms/report", from_date=start.isoformat(), to_date=end.isoformat(), sender="3155559999")
    assert nobody.status_code == 200 and nobody.json()["data"] == []

    one_day = api.get("sms/report", from_date=end.isoformat(), to_date=end.isoformat(), limit=100).json()
    assert {r["created_at"][:10] for r in one_day["data"]} == {end.strftime("%m-%d-%Y")}, (
        "UTC dates, inclusive"
    )


def test_generate_200k_rows_and_page_through_them(api: Api, sbx: EasifySandbox) -> None:
    result = sbx.generate_report("2023-01-01", "2023-07-19", 1000)
    assert result["added"] == 200_000
    seeded_max = max(r["id"] for r in sbx.report_truth(today() - dt.timedelta(days=2), today()))
    assert result["first_id"] > seeded_max
    for page in (1, 100, 300):
        body = api.get(
            "sms/report", from_date="2023-03-01", to_date="2023-03-30", limit=100, page=page
        ).json()
        assert body["meta"]["total"] == 30_000 and len(body["data"]) == 100
    march_first = sbx.report_truth("2023-03-01", "2023-03-01")
    assert len(march_first) == 1000 and all(r["created_at"].startswith("03-01-2023") for r in march_first)
    again = sbx.generate_report("2023-03-01", "2023-03-01", 5, clear=True)
    assert again["added"] == 5 and len(sbx.report_truth("2023-01-01", "2023-12-31")) == 5
    with pytest.raises(SandboxError):
        sbx.generate_report("2023-03-02", "2023-03-01", 5)


# --------------------------------------------------------------------------- send


def test_send_validation_bodies(api: Api, sbx: EasifySandbox) -> None:
    cases: list[tuple[dict[str, Any], int, dict[str, Any]]] = [
        (
            {"from_number": None, "country_code": None},
            422,
            {
                "message": "The from_number is required.",
                "errors": {"from_number": ["The from number is required."]},
            },
        ),
        (
            {"country_code": None, "message": None},
            400,
            _err("country_code", "The country code field is required."),
        ),
        ({"country_code": "+49", "message": None}, 422, _err("country_code", COUNTRY_TEXT)),
        (
            {"message": "   "},
            422,
            _err("message", "The message field is required when media is not present."),
        ),
        ({"from_number": "+13155559999"}, 400, fail("Selected from number is invalid")),
        ({"to_number": "12345"}, 400, fail("InvalidRecipient!")),
        ({"to_number": "123456789012345"}, 400, fail("InvalidRecipient!")),
        ({"to_number": "+443151350000"}, 400, fail("InvalidRecipient!")),
        ({"to_number": "3151359992"}, 400, fail(" Sorry, this recipient is blacklisted! ")),
        ({"to_number": "315-135-9993"}, 400, fail("InvalidRecipient!")),
        (
            {"to_number": "+1 315 135 9994"},
            400,
            fail("Sorry, you do not have enough credits to send this SMS. Please recharge for more."),
        ),
        ({"to_number": None}, 422, _err("to_number", "The to number field is required.")),
        ({"force_send": "maybe"}, 422, _err("force_send", "The force send field must be true or false.")),
    ]
    for fields, status, body in cases:
        response = api.send(**{"to_number": "3151350000", **fields})
        assert (response.status_code, response.json()) == (status, body), fields
    assert sbx.ledger() == []
    assert sbx.stats()["by_endpoint"] == {"send": len(cases)}


def test_send_success_forms_and_ledger(api: Api, sbx: EasifySandbox) -> None:
    seeded_max = max(r["id"] for r in sbx.report_truth(today() - dt.timedelta(days=3), today()))
    ok = api.send(from_number=MAIN, to_number="+13151350000", lead_id="L-1", force_send=True)
    assert ok.status_code == 200 and ok.json()["message"] == " SMS Processed successfully."
    sms_id = ok.json()["data"]["sms_id"]
    assert isinstance(sms_id, str) and int(sms_id) > seeded_max
    form = api.post(
        "sms/send",
        data={
            "from_number": "13155550101",
            "to_number": "7700900123",
            "country_code": "44",
            "message": "form",
            "force_send": "0",
        },
    )
    upload = api.post(
        "sms/send",
        data={"from_number": "3155550102", "to_number": "501234567", "country_code": "+972"},
        files={"media": ("chart.png", b"\x89PNG\r\n\x00\xff" * 50, "image/png")},
    )
    by_url = api.post(
        "sms/send",
        data={
            "from_number": "3155550100",
            "to_number": "3151350000",
            "country_code": "+1",
            "media": "https://example.com/cat.png",
        },
    )
    in_query = api.post("sms/send?from_number=3155550100&to_number=3151350001&country_code=%2B1&message=q")
    assert [r.status_code for r in (form, upload, by_url, in_query)] == [200] * 4
    ledger = sbx.ledger()
    assert [m["sms_id"] for m in ledger] == [sms_id] + [
        r.json()["data"]["sms_id"] for r in (form, upload, by_url, in_query)
    ]
    ids = [m["id"] for m in ledger]
    assert ids == sorted(ids) and len(set(ids)) == 5
    first, second, third, fourth, _ = ledger
    assert (first["from_number"], first["from_number_raw"], first["to_number"], first["country_code"]) == (
        "3155550100",
        MAIN,
        "3151350000",
        "+1",
    )
    assert (first["lead_id"], first["force_send"], first["sms_type"]) == ("L-1", True, "sms")
    assert (first["sender"], first["receiver"]) == (MAIN, "+13151350000")
    assert (second["sender"], second["receiver"], second["force_send"]) == (
        "+13155550101",
        "+447700900123",
        False,
    )
    assert third["receiver"] == "+972501234567" and third["sms_type"] == "mms" and third["message"] == ""
    assert third["media_url"] == f"{sbx.url}/_sandbox/media/{third['id']}/chart.png"
    assert requests.get(third["media_url"], timeout=5).content == b"\x89PNG\r\n\x00\xff" * 50
    assert fourth["media_url"] == "https://example.com/cat.png" and fourth["sms_type"] == "mms"
    assert first["created_at"] == dt.datetime.fromtimestamp(first["created_ts"], dt.UTC).strftime(
        "%m-%d-%Y %I:%M:%S %p"
    )
    plain = [api.send(to_number=f"315135000{n}").json()["data"]["sms_id"] for n in range(3)]
    media_urls = {m["sms_id"]: m["media_url"] for m in sbx.ledger()}
    assert sorted(map(repr, (media_urls[i] for i in plain))) == sorted(map(repr, ["", None, "null"]))


@pytest.mark.parametrize("content", [b"line\r\n", b"line\n", b"\r\n\r\n", b"", b"--x\r\n--"])
def test_multipart_upload_is_byte_exact(api: Api, sbx: EasifySandbox, content: bytes) -> None:
    fields = {"from_number": "3155550100", "to_number": "3151350000", "country_code": "+1", "message": "m"}
    response = api.post("sms/send", data=fields, files={"media": ("a b.txt", content, "text/plain")})
    assert response.status_code == 200
    (entry,) = sbx.ledger()
    assert entry["media_url"].endswith("/a%20b.txt") and entry["sms_type"] == "mms"
    assert entry["media_filename"] == "a b.txt" and sbx.media(entry["id"], "a%20b.txt") == content


def test_delivery_lifecycle(api: Api, sbx: EasifySandbox) -> None:
    # Half a second of slack around each check: the statuses are read over HTTP from a busy machine.
    sbx.configure(pending_seconds=1.0, delivered_seconds=2.0)
    ids = [api.send(to_number=n).json()["data"]["sms_id"] for n in ("3151350000", "3151359990", "3151359991")]
    created = time.time()

    def statuses() -> list[tuple[str, Any]]:
        history = {}
        for number in ("3151350000", "3151359990", "3151359991"):
            rows = api.get(
                "sms/chat-history", sender="3155550100", receiver=number, country_code="+1"
            ).json()["data"]
            history.update({str(r["id"]): (r["status"], r["reason"]) for r in rows})
        return [history[i] for i in ids]

    assert statuses() == [("Pending", None)] * 3
    pending = api.get(
        "sms/report", from_date=today().isoformat(), to_date=today().isoformat(), status="Pending"
    )
    assert sorted(str(r["id"]) for r in pending.json()["data"]) == sorted(ids)
    time.sleep(max(0.0, created + 1.5 - time.time()))
    assert statuses() == [("Success", None)] * 3
    time.sleep(max(0.0, created + 2.3 - time.time()))
    assert statuses() == [
        ("Delivered", None),
        ("Failed", "Carrier rejected the message"),
        ("Undelivered", "Handset unreachable"),
    ]
    report = api.get(
        "sms/report", from_date=today().isoformat(), to_date=today().isoformat(), status="Failed"
    ).json()
    assert [str(r["id"]) for r in report["data"]] == [ids[1]]
    assert [m["status"] for m in sbx.ledger()] == ["Delivered", "Failed", "Undelivered"]


# --------------------------------------------------------------------------- chat history


def test_chat_history(api: Api, sbx: EasifySandbox) -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"receiver": "3151350000", "country_code": "+1"}, _err("sender", "The sender field is required.")),
        ({"sender": "3155550100", "country_code": "+1"}, _err("receiver", "The receiver field is required.")),
        (
            {"sender": "3155550100", "receiver": "3151350000"},
            _err("country_code", "The Country code field is required."),
        ),
        (
            {"sender": "3155550100", "receiver": "3151350000", "country_code": "+33"},
            _err("country_code", COUNTRY_TEXT),
        ),
    ]
    for params, body in cases:
        response = api.get("sms/chat-history", **params)
        assert (response.status_code, response.json()) == (422, body)

    sent = api.send(to_number="3151350000", message="first").json()["data"]["sms_id"]
    replies = [sbx.inject_incoming(MAIN, "+13151350000", f"reply {n}") for n in range(11)]
    other = sbx.inject_incoming("3155550100", "7700900555", "uk", country_code="+44")
    assert list(replies[0]) == ROW_KEYS and replies[0]["send_by"] == "receiver"
    assert (other["receiver"], other["status"], other["sms_type"]) == ("+447700900555", "Delivered", "sms")

    body = api.get("sms/chat-history", sender=MAIN, receiver="3151350000", country_code="1").json()
    assert set(body) == {"status", "message", "data"} and body["message"] == "Chat History"
    assert [r["id"] for r in body["data"]] == [r["id"] for r in reversed(replies)][:10]
    full = api.get(
        "sms/chat-history", sender="3155550100", receiver="+13151350000", country_code="+1", limit=50
    ).json()["data"]
    assert len(full) == 12 and full[-1]["id"] == int(sent) and full[-1]["send_by"] == "sender"
    assert all(isinstance(r["id"], int) for r in full)
    assert (
        len(
            api.get(
                "sms/chat-history", sender=MAIN, receiver="3151350000", country_code="+1", limit=3
            ).json()["data"]
        )
        == 3
    )
    assert (
        api.get("sms/chat-history", sender="3155559999", receiver="3151350000", country_code="+1").json()[
            "data"
        ]
        == []
    )
    truth = sbx.report_truth(today(), today())
    assert {r["id"] for r in replies} | {other["id"], int(sent)} <= {r["id"] for r in truth}
    past = sbx.inject_incoming(MAIN, "+13151350000", "old", created_ts=time.time() - 5 * 86400)
    day = (today() - dt.timedelta(days=5)).isoformat()
    assert past["id"] in {r["id"] for r in sbx.report_truth(day, day)}
    with pytest.raises(SandboxError):
        sbx.inject_incoming("+13155559999", "+13151350000", "not ours")


# --------------------------------------------------------------------------- rate limits


def test_rate_limits(sbx: EasifySandbox) -> None:
    # 3 s windows: every call below lands in the first window even on a busy machine.
    sbx.configure(send_limit=2, send_window_seconds=3, read_limit=3, read_window_seconds=3)
    api = Api(sbx, sbx.token)
    window_opened = time.monotonic()
    assert [api.send(to_number="3151350000").status_code for _ in range(2)] == [200, 200]
    limited = api.send(to_number="3151350000")
    # The server rounds up the rest of its window, which opened a moment after window_opened.
    at_least = math.ceil(3 - (time.monotonic() - window_opened))
    assert limited.status_code == 429
    assert limited.json() in [fail(f"Too many requests. Try again in {n} seconds") for n in (at_least, at_least + 1)]
    assert "Retry-After" not in limited.headers
    reads = [
        api.get("phone-numbers"),
        api.get("contacts"),
        api.get("sms/report"),
        api.get("sms/chat-history"),
    ]
    assert [r.status_code for r in reads] == [200, 200, 422, 429], (
        "one read bucket; validation after the limit"
    )
    assert Api(sbx, "sandbox-expired").get("contacts").status_code == 402, "auth comes first"
    time.sleep(max(0.0, window_opened + 3.05 - time.monotonic()))
    assert api.send(to_number="3151350000").status_code == 200
    assert api.get("phone-numbers").status_code == 200
    stats = sbx.stats()
    assert stats["by_endpoint_status"]["send"] == {"200": 3, "429": 1}
    assert len(sbx.ledger()) == 3
    sbx.configure(send_limit=0, read_limit=0)
    assert all(api.get("phone-numbers").status_code == 200 for _ in range(8))


# --------------------------------------------------------------------------- faults


def test_faults_on_send(api: Api, sbx: EasifySandbox) -> None:
    sbx.add_fault("send", "http_error", status=503)
    response = api.send(to_number="3151350000")
    assert (response.status_code, response.json()) == (503, fail("Server Error")) and sbx.ledger() == []

    sbx.add_fault("send", "drop")
    with pytest.raises(requests.ConnectionError):
        api.send(to_number="3151350000")
    assert sbx.ledger() == []

    sbx.add_fault("send", "recorded_502")
    response = api.send(to_number="3151350000")
    assert (response.status_code, response.json()) == (502, fail("Bad Gateway")) and len(sbx.ledger()) == 1

    sbx.add_fault("send", "recorded_drop")
    with pytest.raises(requests.ConnectionError):
        api.send(to_number="3151350000")
    assert len(sbx.ledger()) == 2

    sbx.add_fault("send", "malformed")
    response = api.send(to_number="3151350000")
    assert response.status_code == 200 and response.content == b'{"status": true, "data": {'
    assert len(sbx.ledger()) == 3

    sbx.add_fault("send", "slow", delay=0.3)
    started = time.monotonic()
    assert api.send(to_number="3151350000").status_code == 200
    assert time.monotonic() - started >= 0.3 and len(sbx.ledger()) == 4

    assert api.send(to_number="3151350000").status_code == 200, "each fault fired once"
    stats = sbx.stats()
    assert stats["faults_fired"] == 6
    assert [r["fault"] for r in stats["requests"]] == [
        "http_error",
        "drop",
        "recorded_502",
        "recorded_drop",
        "malformed",
        "slow",
        None,
    ]
    assert [r["status"] for r in stats["requests"]] == [503, 0, 502, 0, 200, 200, 200]


def test_fault_matching_times_probability_and_clear(api: Api, sbx: EasifySandbox) -> None:
    sbx.add_fault("contacts", "http_error", times=2, status=500)
    assert [api.get("contacts").status_code for _ in range(3)] == [500, 500, 200]
    assert api.get("phone-numbers").status_code == 200, "other endpoints untouched"
    sbx.add_faults([{"endpoint": "*", "kind": "http_error", "probability": 1.0, "status": 504}])
    assert [api.get(p).status_code for p in ("contacts", "phone-numbers", "contacts")] == [504] * 3
    assert api.send(to_number="3151350000").status_code == 504
    assert sbx.faults()[0]["fired"] == 4
    sbx.clear_faults()
    assert sbx.faults() == [] and api.get("contacts").status_code == 200
    sbx.add_fault("*", "http_error", probability=0.5)
    hits = sum(api.get("phone-numbers").status_code == 500 for _ in range(40))
    assert 5 < hits < 35
    sbx.clear_faults()
    sbx.add_fault("*", "recorded_502", times=1)
    assert api.get("contacts").status_code == 200, "send-only kinds skip other endpoints"
    assert api.send(to_number="3151350000").status_code == 502
    sbx.add_fault("report", "malformed")
    assert api.get("sms/report").content == b'{"status": true, "data": {'
    sbx.add_fault("chat-history", "drop")
    with pytest.raises(requests.ConnectionError):
        api.get("sms/chat-history")
    for bad in (
        {"endpoint": "report", "kind": "recorded_502"},
        {"endpoint": "x", "kind": "drop"},
        {"endpoint": "send", "kind": "explode"},
        {"endpoint": "send", "kind": "drop", "times": 0},
    ):
        with pytest.raises(SandboxError):
            sbx.add_faults([bad])
    assert Api(sbx).get("contacts").status_code == 401, "faults come after auth"


# --------------------------------------------------------------------------- outages


def report_day(api: Api) -> requests.Response:
    day = (today() - dt.timedelta(days=1)).isoformat()
    return api.get("sms/report", from_date=day, to_date=day)


def test_outage_html_5xx_on_report(api: Api, sbx: EasifySandbox) -> None:
    outage = sbx.start_outage("report", status=503)
    assert (outage["endpoint"], outage["mode"], outage["status"], outage["hits"]) == ("report", "html_5xx", 503, 0)
    assert sbx.outages() == [outage]
    down = [report_day(api), api.get("sms/report")]  # validation never runs either
    for response in down:
        assert response.status_code == 503 and response.headers["Content-Type"] == "text/html"
        assert response.text.startswith("<html>") and "<h1>503 Service Unavailable</h1>" in response.text
    assert api.get("contacts").status_code == 200 and api.get("phone-numbers").status_code == 200
    sent = api.send(to_number="3151350000")
    assert sent.status_code == 200, "other endpoints are up, a send is recorded"
    assert [m["sms_id"] for m in sbx.ledger()] == [sent.json()["data"]["sms_id"]]
    assert Api(sbx).get("sms/report").status_code == 401, "auth comes first"

    ended = sbx.end_outage("report")
    assert ended is not None and ended["hits"] == 2 and sbx.outages() == []
    assert sbx.end_outage("report") is None, "ending it again is harmless"
    assert report_day(api).status_code == 200

    stats = sbx.stats()
    assert stats["faults_by_kind"] == {"outage": 2} and stats["faults_fired"] == 2
    assert stats["by_endpoint_status"]["report"] == {"503": 2, "401": 1, "200": 1}
    assert [(r["endpoint"], r["status"], r["fault"]) for r in stats["requests"] if r["fault"]] == [
        ("report", 503, "outage"),
        ("report", 503, "outage"),
    ]

    sbx.start_outage("report", "html_5xx")
    sbx.start_outage("report", "html_5xx", status=500)  # replaces the one on
    assert [o["status"] for o in sbx.outages()] == [500]
    response = report_day(api)
    assert response.status_code == 500 and "<h1>500 Internal Server Error</h1>" in response.text


def test_outage_timeout_holds_then_drops_the_connection(api: Api, sbx: EasifySandbox) -> None:
    outage = sbx.start_outage("report", "timeout", delay=0.3)
    assert (outage["mode"], outage["delay"], outage["status"], outage["retry_after"]) == ("timeout", 0.3, None, None)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        report_day(api)
    assert 0.3 <= time.monotonic() - started < 5
    with pytest.raises(requests.ReadTimeout):  # a client whose read timeout is shorter than the delay
        api.session.get(f"{api.base}/sms/report", timeout=(5, 0.1))
    assert api.send(to_number="3151350000").status_code == 200 and len(sbx.ledger()) == 1
    sbx.end_outage("report")
    assert report_day(api).status_code == 200
    time.sleep(0.4)  # the request given up on by its client is dropped all the same
    statuses = [(r["endpoint"], r["status"], r["fault"]) for r in sbx.stats()["requests"]]
    assert statuses == [
        ("report", 0, "outage"),
        ("report", 0, "outage"),
        ("send", 200, None),
        ("report", 200, None),
    ]


def test_a_timeout_outage_does_not_hold_up_stopping_the_sandbox(sbx: EasifySandbox) -> None:
    sbx.start_outage("contacts", "timeout")  # 30 s by default
    api = Api(sbx, sbx.token)
    errors: list[Exception] = []

    def call() -> None:
        try:
            api.get("contacts")
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while sbx.stats()["by_endpoint"].get("contacts") != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    sbx.stop()
    caller.join(timeout=5)
    assert not caller.is_alive() and time.monotonic() - started < 5
    assert len(errors) == 1 and isinstance(errors[0], requests.ConnectionError)


def test_outage_rate_limit_answers_429_with_retry_after(api: Api, sbx: EasifySandbox) -> None:
    sbx.start_outage("report", "rate_limit", retry_after=7)
    for _ in range(3):
        response = report_day(api)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == fail("Too many requests. Try again in 7 seconds")
    assert api.get("chat-history").status_code == 404 and api.get("contacts").status_code == 200
    assert sbx.start_outage("report", "rate_limit")["retry_after"] == 60
    assert report_day(api).headers["Retry-After"] == "60"
    assert sbx.stats()["faults_by_kind"] == {"outage": 4}


def test_outage_on_send_records_nothing(api: Api, sbx: EasifySandbox) -> None:
    for mode, options in [("html_5xx", {"status": 502}), ("rate_limit", {"retry_after": 1})]:
        with sbx.outage("send", mode, **options):
            assert api.send(to_number="3151350000").status_code in (502, 429)
    with sbx.outage("send", "timeout", delay=0.05), pytest.raises(requests.ConnectionError):
        api.send(to_number="3151350000")
    assert sbx.ledger() == [] and sbx.outages() == []
    assert api.send(to_number="3151350000").status_code == 200 and len(sbx.ledger()) == 1


def test_outage_context_manager_faults_clear_and_reset(api: Api, sbx: EasifySandbox) -> None:
    with pytest.raises(RuntimeError, match="boom"), sbx.outage("report", mode="rate_limit", retry_after=1) as on:
        assert on["mode"] == "rate_limit" and sbx.outages() == [on]
        raise RuntimeError("boom")
    assert sbx.outages() == [], "ended on exit, also when the block raises"

    sbx.add_fault("report", "http_error", status=500)
    sbx.start_outage("report", "html_5xx", status=504)
    assert report_day(api).status_code == 504, "the outage answers before any fault"
    sbx.clear_faults()
    assert [o["endpoint"] for o in sbx.outages()] == ["report"], "clear_faults keeps outages"
    assert report_day(api).status_code == 504
    sbx.start_outage("contacts", "timeout", delay=1)
    assert [o["endpoint"] for o in sbx.outages()] == ["report", "contacts"]
    sbx.reset()
    assert sbx.outages() == [] and report_day(api).status_code == 200


@pytest.mark.parametrize(
    ("endpoint", "body", "error"),
    [
        ("sms/report", {"mode": "html_5xx"}, "endpoint must be one of send, report, contacts, phone-numbers"),
        ("nothing", {"mode": "html_5xx"}, "endpoint must be one of send, report, contacts, phone-numbers"),
        ("report", {}, "mode must be one of html_5xx, timeout, rate_limit"),
        ("report", {"mode": "down"}, "mode must be one of html_5xx, timeout, rate_limit"),
        ("report", {"mode": "html_5xx", "status": 404}, "status must be an integer HTTP status within 500-599"),
        ("report", {"mode": "html_5xx", "status": "x"}, "status must be an integer HTTP status within 500-599"),
        ("report", {"mode": "html_5xx", "status": 503.5}, "status must be an integer HTTP status within 500-599"),
        ("report", {"mode": "timeout", "status": 503}, "status applies to mode html_5xx only"),
        ("report", {"mode": "html_5xx", "delay": 1}, "delay applies to mode timeout only"),
        ("report", {"mode": "timeout", "retry_after": 5}, "retry_after applies to mode rate_limit only"),
        ("report", {"mode": "rate_limit", "retry_after": -1}, "retry_after must be a whole number of seconds >= 0"),
        ("report", {"mode": "rate_limit", "retry_after": 1.5}, "retry_after must be a whole number of seconds >= 0"),
        ("report", {"mode": "timeout", "delay": -0.1}, "delay must be a number of seconds >= 0"),
        ("report", {"mode": "timeout", "delay": True}, "delay must be a number of seconds >= 0"),
        ("report", {"mode": "timeout", "color": 1}, "unknown outage field(s): color; allowed: mode, status"),
        ("report", [], "the body must be a JSON object"),
    ],
)
def test_bad_outages_are_refused(sbx: EasifySandbox, endpoint: str, body: Any, error: str) -> None:
    response = requests.put(f"{sbx.url}/_sandbox/outages/{endpoint}", json=body, timeout=5)
    assert response.status_code == 400 and response.json()["ok"] is False
    assert response.json()["error"].startswith(error)
    assert sbx.outages() == []


def test_outage_control_routes(sbx: EasifySandbox) -> None:
    base = f"{sbx.url}/_sandbox/outages"
    assert requests.put(f"{base}/report", data=b"{nope", timeout=5).status_code == 400
    assert requests.post(base, json={"mode": "timeout"}, timeout=5).status_code == 405
    assert requests.get(f"{base}/report", timeout=5).status_code == 405
    deleted = requests.delete(f"{base}/nothing", timeout=5)
    assert deleted.status_code == 400 and deleted.json()["error"].startswith("endpoint must be one of send")
    assert requests.delete(f"{base}/chat-history", timeout=5).json() == {"ok": True, "outage": None}
    assert requests.put(f"{base}/chat-history", json={"mode": "timeout"}, timeout=5).json()["outage"]["delay"] == 30
    assert [o["endpoint"] for o in requests.get(base, timeout=5).json()["outages"]] == ["chat-history"]
    with pytest.raises(SandboxError) as refused:
        sbx.start_outage("report", "html_5xx", status=200)
    assert refused.value.status == 400 and "status must be" in str(refused.value)
    assert sbx.stats()["total"] == 0, "the control API is not counted"


def test_outage_as_a_dag_author_uses_it(easify_sandbox: EasifySandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example of docs/sandbox.md: the report down, sends still going out."""
    from airflow_provider_easify.exceptions import EasifyServerError
    from airflow_provider_easify.hooks.easify import EasifyHook

    def sent_today() -> list[str]:  # the DAG author's code
        day = dt.datetime.now(dt.UTC).date()
        return [str(row["id"]) for row in EasifyHook().iter_sms_report(day, day) if row["send_by"] == "sender"]

    extra = {"max_retries": 1, "backoff_base": 0.01}
    monkeypatch.setenv("AIRFLOW_CONN_EASIFY_DEFAULT", easify_sandbox.conn_uri_json(extra))
    with easify_sandbox.outage("report", mode="html_5xx", status=503):
        with pytest.raises(EasifyServerError) as caught:
            sent_today()
        assert caught.value.status_code == 503
        sms_id = EasifyHook().send_sms(MAIN, "+13151350000", "hi")
    assert sent_today() == [sms_id]
    assert [str(m["id"]) for m in easify_sandbox.ledger()] == [sms_id]


# --------------------------------------------------------------------------- control API, concurrency, CLI


def test_config_and_reset(api: Api, sbx: EasifySandbox) -> None:
    config = sbx.configure(max_page_size=5, pending_seconds="0.5")
    assert config["max_page_size"] == 5 and config["pending_seconds"] == 0.5 and config["read_limit"] == 0
    assert api.get("contacts", limit=50).json()["meta"]["per_page"] == 5
    with pytest.raises(SandboxError):
        sbx.configure(nonsense=1)
    with pytest.raises(SandboxError):
        sbx.configure(send_limit="many")
    api.send(to_number="3151350000")
    sbx.inject_incoming(MAIN, "+13151350000", "hey")
    sbx.add_fault("send", "drop")
    sbx.reset()
    assert sbx.ledger() == [] and sbx.faults() == [] and sbx.stats()["total"] == 0
    assert sbx.get_config()["max_page_size"] == 5, "reset keeps the config"
    assert (
        api.get("sms/chat-history", sender=MAIN, receiver="3151350000", country_code="+1").json()["data"]
        == []
    )
    sbx.reset(config=True)
    assert (
        sbx.get_config()
        == SandboxConfig(read_limit=0, send_limit=0, pending_seconds=0.3, delivered_seconds=0.6).to_dict()
    )


def test_stats_count_each_answer_before_the_client_has_it(api: Api, sbx: EasifySandbox) -> None:
    for n in range(1, 31):
        if n % 2:
            api.get("phone-numbers")
        else:
            api.send(to_number="3151350000")
        stats = sbx.stats()
        assert stats["total"] == n and sum(stats["by_status"].values()) == n
        assert stats["requests"][-1]["status"] == 200
    assert sbx.stats()["by_endpoint"] == {"phone-numbers": 15, "send": 15}


def test_concurrent_sends_recorded_once(sbx: EasifySandbox) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        api = Api(sbx, sbx.token)
        for n in range(25):
            response = api.send(to_number=f"315136{k}{n:03d}", message=f"{k}-{n}")
            assert response.status_code == 200
            with lock:
                results.append(response.json()["data"]["sms_id"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger = sbx.ledger()
    assert len(results) == len(set(results)) == 100
    assert sorted(m["sms_id"] for m in ledger) == sorted(results)
    assert len({m["message"] for m in ledger}) == 100
    assert sbx.stats()["by_endpoint_status"]["send"] == {"200": 100}


def test_cli(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_easify.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--token",
            "cli-token",
            "--send-limit",
            "4",
            "--pending-seconds",
            "0.1",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        port = int(port_file.read_text())
        assert line == f"Easify sandbox listening on http://127.0.0.1:{port}/api/v2 (token: cli-token)"
        client = SandboxClient(f"http://127.0.0.1:{port}")
        client.wait_ready(5)
        assert client.get_config()["send_limit"] == 4 and client.get_config()["pending_seconds"] == 0.1
        response = requests.get(
            f"{client.api_url}/phone-numbers", headers={"Authorization": "Bearer cli-token"}, timeout=5
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
