"""EasifyHook over real HTTP against the sandbox: endpoints, pagination, windows, errors, retries."""

from __future__ import annotations

import datetime as dt
import logging
import math

import pytest

from airflow_provider_easify.exceptions import (
    EasifyAuthError,
    EasifyConfigurationError,
    EasifyError,
    EasifyInsufficientCreditsError,
    EasifyInvalidParameterError,
    EasifyInvalidRecipientError,
    EasifyInvalidSenderError,
    EasifyPaymentRequiredError,
    EasifyPlanError,
    EasifyServerError,
    EasifyTransportError,
    EasifyValidationError,
)
from airflow_provider_easify.hooks.easify import DEFAULT_BASE_URL, EasifyHook, same_sms_id

SENDER = "+13155550100"
TO_US = "+13151350000"


def total_requests(sandbox) -> int:
    return sandbox.stats()["total"]


def endpoint_count(sandbox, endpoint: str) -> int:
    return sandbox.stats()["by_endpoint"].get(endpoint, 0)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# ---------------------------------------------------------------------- connection


class TestConnection:
    def test_issue_env_var_form(self, sandbox, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_EASIFY_DEFAULT",
            f'{{"conn_type":"easify","host":"{sandbox.api_url}","password":"{sandbox.token}","extra":{{"timeout":5}}}}',
        )
        hook = EasifyHook()
        assert hook.settings.base_url == sandbox.api_url
        assert hook.settings.timeout == 5
        assert (hook.settings.send_per_minute, hook.settings.read_per_minute, hook.settings.max_retries) == (15, 60, 5)
        assert len(hook.list_phone_numbers()) == 3

    def test_uri_form_and_default_host(self, sandbox, monkeypatch):
        port = sandbox.api_url.split(":")[2].split("/")[0]
        monkeypatch.setenv("AIRFLOW_CONN_EASIFY_URI", f"easify://:{sandbox.token}@127.0.0.1:{port}/api%2Fv2?scheme=http")
        hook = EasifyHook("easify_uri")
        assert hook.settings.base_url == sandbox.api_url
        assert hook.test_connection()[0] is True
        monkeypatch.setenv("AIRFLOW_CONN_EASIFY_NOHOST", '{"conn_type": "easify", "password": "x"}')
        assert EasifyHook("easify_nohost").settings.base_url == DEFAULT_BASE_URL

    def test_missing_token_fails_before_any_request(self, sandbox, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_EASIFY_NOTOKEN", f'{{"conn_type": "easify", "host": "{sandbox.api_url}"}}')
        with pytest.raises(EasifyConfigurationError, match="API token"):
            EasifyHook("easify_notoken").list_phone_numbers()
        assert total_requests(sandbox) == 0

    def test_bad_extra_is_named(self, make_hook):
        with pytest.raises(EasifyConfigurationError, match="timeout"):
            _ = make_hook(timeout="soon").settings

    def test_test_connection(self, make_hook, sandbox):
        ok, message = make_hook().test_connection()
        assert ok and "3 active phone number" in message
        ok, message = make_hook(token="wrong-token-123").test_connection()
        assert not ok and "401" in message and "wrong-token-123" not in message
        assert total_requests(sandbox) == 2

    def test_unreachable_server(self, make_hook):
        hook = make_hook(url="http://127.0.0.1:9/api/v2", max_retries=1)
        with pytest.raises(EasifyTransportError) as info:
            hook.list_phone_numbers()
        assert info.value.request_sent is False
        assert hook.test_connection()[0] is False


# ---------------------------------------------------------------------- read endpoints


class TestReads:
    def test_phone_numbers(self, make_hook):
        numbers = make_hook().list_phone_numbers()
        assert [n["number"] for n in numbers] == ["+13155550100", "+13155550101", "+13155550102"]

    def test_contacts_every_record_once(self, make_hook, sandbox):
        hook = make_hook()
        contacts = list(hook.iter_contacts(page_size=7))
        ids = [c["id"] for c in contacts]
        assert len(ids) == 57 and len(set(ids)) == 57
        assert ids == sorted(ids, reverse=True)
        assert endpoint_count(sandbox, "contacts") == math.ceil(57 / 7)

    def test_contacts_group_order_and_edges(self, make_hook, sandbox):
        hook = make_hook()
        group = list(hook.iter_contacts(group_id=1, order="asc"))
        assert len(group) == 30 and [c["id"] for c in group] == sorted(c["id"] for c in group)
        assert {c["group_name"] for c in group} == {"Customers"}
        before = endpoint_count(sandbox, "contacts")
        assert list(hook.iter_contacts(group_id=999)) == []  # empty listing: one request, no rows
        assert len(list(hook.iter_contacts(group_id=2, page_size=15))) == 15  # exactly one full page
        assert endpoint_count(sandbox, "contacts") - before == 2

    def test_iterators_are_lazy(self, make_hook, sandbox):
        hook = make_hook()
        rows = hook.iter_contacts(page_size=5)
        assert total_requests(sandbox) == 0
        next(rows)
        assert total_requests(sandbox) == 1

    def test_report_75_days_exact_in_windows(self, make_hook, sandbox):
        end = today() - dt.timedelta(days=1)
        start = end - dt.timedelta(days=74)
        truth = sandbox.report_truth(start.isoformat(), end.isoformat())
        rows = list(make_hook().iter_sms_report(start, end, page_size=100))
        assert len(truth) > 1000
        assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in truth)
        assert len({r["id"] for r in rows}) == len(rows)
        ids = [r["id"] for r in rows]
        assert ids == sorted(ids, reverse=True), "desc order holds across windows"
        by_endpoint_status = sandbox.stats()["by_endpoint_status"]["report"]
        assert set(by_endpoint_status) == {"200"}, "no window exceeded 30 days"

    def test_report_accepts_strings_datetimes_and_asc(self, make_hook, sandbox):
        day = today() - dt.timedelta(days=3)
        truth = sandbox.report_truth(day.isoformat(), day.isoformat())
        hook = make_hook()
        as_string = list(hook.iter_sms_report(day.isoformat(), day.isoformat(), order="asc", page_size=6))
        as_datetime = list(hook.iter_sms_report(dt.datetime.combine(day, dt.time(23, 0)), day))
        assert [r["id"] for r in as_string] == sorted(r["id"] for r in truth)
        assert sorted(r["id"] for r in as_datetime) == sorted(r["id"] for r in truth)

    def test_report_filters(self, make_hook, sandbox):
        end = today() - dt.timedelta(days=1)
        start = end - dt.timedelta(days=9)
        truth = sandbox.report_truth(start.isoformat(), end.isoformat())
        hook = make_hook()
        delivered = list(hook.iter_sms_report(start, end, status="delivered"))
        assert sorted(r["id"] for r in delivered) == sorted(r["id"] for r in truth if r["status"] == "Delivered")
        receiver = truth[0]["receiver"]
        by_receiver = list(hook.iter_sms_report(start, end, receiver=receiver))
        expected = [r["id"] for r in truth if r["receiver"] == receiver]
        assert expected and sorted(r["id"] for r in by_receiver) == sorted(expected)

    def test_report_no_duplicates_when_rows_arrive_while_paging(self, make_hook, sandbox):
        hook = make_hook()
        first_ids = [hook.send_sms(SENDER, f"+1315135{n:04d}", "hello") for n in range(5)]
        rows = hook.iter_sms_report(today(), today(), page_size=2)
        seen = [next(rows)["id"]]
        hook.send_sms(SENDER, "+13151351111", "late 1")
        hook.send_sms(SENDER, "+13151351112", "late 2")
        seen += [row["id"] for row in rows]
        assert len(seen) == len(set(seen))
        assert {int(i) for i in first_ids} <= set(seen)

    @pytest.mark.parametrize("order", ["desc", "asc"])
    def test_report_each_row_once_when_many_pages_of_rows_arrive_while_paging(self, make_hook, sandbox, order):
        """Newest first, new rows push old ones pages down; oldest first, late-visible old rows push new ones."""
        import time

        hook = make_hook()
        now = time.time()
        for n in range(30):
            sandbox.inject_incoming(SENDER, f"+1315137{n:04d}", f"before {n}", created_ts=now - 3600 + n * 60)
        snapshot = [r["id"] for r in sandbox.report_truth(today(), today()) if r["created_at"]]
        rows = hook.iter_sms_report(today(), today(), order=order, page_size=5)
        seen = []
        for index, row in enumerate(rows):
            seen.append(row["id"])
            if index % 5 == 4:  # after every page, more than a page of arrivals
                for n in range(12):
                    stamp = now if order == "desc" else now - 7200 - index * 10 - n
                    sandbox.inject_incoming(SENDER, "+13151389999", f"arrival {index}-{n}", created_ts=stamp)
        assert len(seen) == len(set(seen)), "no row twice"
        assert set(snapshot) <= set(seen), "no row of the listing lost"

    def test_contacts_each_once_while_paging(self, make_hook, sandbox):
        hook = make_hook()
        assert len({c["id"] for c in hook.iter_contacts(page_size=4)}) == 57

    def test_chat_history_and_status_beyond_newest_10(self, make_hook, sandbox):
        hook = make_hook()
        sms_id = hook.send_sms(SENDER, TO_US, "first")
        for n in range(14):
            sandbox.inject_incoming(SENDER, TO_US, f"reply {n}")
        history = hook.get_chat_history(SENDER, "3151350000", country_code="+1")
        assert len(history) == 10 and all(not same_sms_id(r["id"], sms_id) for r in history)
        assert hook.get_sms_status(sms_id, SENDER, TO_US) in ("Pending", "Success", "Delivered")
        assert hook.get_sms_status(int(sms_id), "3155550100", "3151350000", country_code="1") is not None
        assert hook.get_sms_status("99999999", SENDER, TO_US) is None

    def test_delivery_lifecycle_and_failures(self, make_hook, sandbox):
        hook = make_hook()
        ok = hook.send_sms(SENDER, TO_US, "hi")
        failed = hook.send_sms(SENDER, "+13151359990", "hi")
        undelivered = hook.send_sms(SENDER, "+13151359991", "hi")
        assert hook.get_sms_status(ok, SENDER, TO_US) == "Pending"
        import time

        time.sleep(0.5)
        assert hook.get_sms_status(ok, SENDER, TO_US) == "Delivered"
        assert hook.get_sms_status(failed, SENDER, "+13151359990") == "Failed"
        assert hook.get_sms_status(undelivered, SENDER, "+13151359991") == "Undelivered"


# ---------------------------------------------------------------------- sending


class TestSend:
    def test_send_national_and_e164(self, make_hook, sandbox):
        hook = make_hook()
        a = hook.send_sms("3155550100", "3151350000", "national", country_code="+1")
        b = hook.send_sms(SENDER, "+447700900123", "uk", lead_id="L-7", force_send=True)
        c = hook.send_sms(SENDER, "+972501234567", "israel")
        assert all(isinstance(x, str) for x in (a, b, c))
        ledger = sandbox.ledger()
        assert [(m["to_number"], m["country_code"]) for m in ledger] == [
            ("3151350000", "+1"),
            ("7700900123", "+44"),
            ("501234567", "+972"),
        ]
        assert [m["from_number"] for m in ledger] == ["3155550100"] * 3
        assert ledger[1]["lead_id"] == "L-7" and ledger[1]["force_send"] in (1, True, "1")
        assert [str(m["id"]) for m in ledger] == [a, b, c]

    def test_mms_url_and_file_upload(self, make_hook, sandbox, tmp_path):
        hook = make_hook()
        hook.send_sms(SENDER, TO_US, "see this", media="https://example.com/cat.png")
        image = tmp_path / "chart.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        hook.send_sms(SENDER, TO_US, media=str(image))
        url_mms, file_mms = sandbox.ledger()
        assert url_mms["sms_type"] == "mms" and url_mms["media_url"] == "https://example.com/cat.png"
        assert file_mms["sms_type"] == "mms" and file_mms["media_url"].endswith("/chart.png")
        import requests

        assert requests.get(file_mms["media_url"], timeout=5).content == image.read_bytes()

    @pytest.mark.parametrize(
        ("kwargs", "parameter"),
        [
            ({"to_number": "+4930123456"}, "to_number"),
            ({"to_number": "3151350000", "country_code": "+49"}, "country_code"),
            ({"to_number": "3151350000"}, "to_number"),
            ({"to_number": "+1315"}, "to_number"),
            ({"to_number": "+447700900123", "country_code": "+1"}, "country_code"),
            ({"message": ""}, "message"),
            ({"message": "   "}, "message"),
            ({"message": None}, "message"),
            ({"media": "/no/such/file.png"}, "media"),
            ({"from_number": "abc"}, "from_number"),
        ],
    )
    def test_bad_input_refused_before_any_request(self, make_hook, sandbox, kwargs, parameter):
        args = {"from_number": SENDER, "to_number": TO_US, "message": "hi", **kwargs}
        with pytest.raises(EasifyInvalidParameterError) as info:
            make_hook().send_sms(**args)
        assert info.value.parameter == parameter and parameter in str(info.value)
        assert total_requests(sandbox) == 0

    @pytest.mark.parametrize(
        ("call", "parameter"),
        [
            (lambda h: list(h.iter_sms_report("2024-02-10", "2024-02-01")), "to_date"),
            (lambda h: list(h.iter_sms_report("10/02/2024", "2024-02-11")), "from_date"),
            (lambda h: list(h.iter_sms_report("2024-02-01", "2024-02-11", status="Sent")), "status"),
            (lambda h: list(h.iter_sms_report("2024-02-01", "2024-02-11", country_code="+1")), "country_code"),
            (lambda h: list(h.iter_sms_report("2024-02-01", "2024-02-11", order="up")), "order"),
            (lambda h: list(h.iter_contacts(page_size=0)), "page_size"),
            (lambda h: h.get_chat_history(SENDER, "+33612345678"), "receiver"),
            (lambda h: h.get_chat_history(SENDER, TO_US, limit=0), "limit"),
            (lambda h: h.get_sms_status("", SENDER, TO_US), "sms_id"),
        ],
    )
    def test_bad_read_arguments_refused_locally(self, make_hook, sandbox, call, parameter):
        with pytest.raises(EasifyInvalidParameterError) as info:
            call(make_hook())
        assert info.value.parameter == parameter
        assert total_requests(sandbox) == 0


# ---------------------------------------------------------------------- API errors


class TestApiErrors:
    @pytest.mark.parametrize(
        ("token", "error", "status"),
        [
            ("not-a-token", EasifyAuthError, 401),
            ("sandbox-expired", EasifyPaymentRequiredError, 402),
            ("sandbox-basic", EasifyPlanError, 403),
        ],
    )
    def test_account_errors_never_retry(self, make_hook, sandbox, token, error, status):
        hook = make_hook(token=token)
        with pytest.raises(error) as info:
            hook.list_phone_numbers()
        assert info.value.status_code == status and info.value.message
        with pytest.raises(error):
            hook.send_sms(SENDER, TO_US, "hi")
        assert total_requests(sandbox) == 2
        assert token not in str(info.value)

    @pytest.mark.parametrize(
        ("to_number", "error", "message"),
        [
            ("+13151359992", EasifyInvalidRecipientError, "blacklisted"),
            ("+13151359993", EasifyInvalidRecipientError, "InvalidRecipient"),
            ("+13151359994", EasifyInsufficientCreditsError, "credits"),
        ],
    )
    def test_send_refusals(self, make_hook, sandbox, to_number, error, message):
        with pytest.raises(error, match=message) as info:
            make_hook().send_sms(SENDER, to_number, "hi")
        assert info.value.status_code == 400
        assert endpoint_count(sandbox, "send") == 1 and sandbox.ledger() == []

    def test_invalid_sender(self, make_hook, sandbox):
        with pytest.raises(EasifyInvalidSenderError, match="from number is invalid"):
            make_hook().send_sms("+13155559999", TO_US, "hi")
        assert endpoint_count(sandbox, "send") == 1

    def test_validation_shapes_422_and_400(self, make_hook):
        hook = make_hook()
        with pytest.raises(EasifyValidationError) as info:
            hook._request("POST", "sms/send", json={"to_number": "3151350000", "country_code": "+1", "message": "x"})
        assert info.value.status_code == 422 and "from_number" in info.value.errors
        with pytest.raises(EasifyValidationError) as info:
            hook._request("POST", "sms/send", json={"from_number": "3155550100", "to_number": "3151350000"})
        assert info.value.status_code == 400 and "country_code" in info.value.errors
        with pytest.raises(EasifyValidationError, match="cannot exceed 30 days") as info:
            hook._request("GET", "sms/report", params={"from_date": "2024-01-01", "to_date": "2024-03-01"})
        assert info.value.status_code == 400
        with pytest.raises(EasifyValidationError) as info:
            hook._request("GET", "sms/chat-history", params={"sender": "3155550100", "receiver": "3151350000"})
        assert info.value.status_code == 422 and "country_code" in info.value.errors


# ---------------------------------------------------------------------- retries, faults, limits


class TestResilience:
    def test_429_waits_then_recovers(self, make_hook, sandbox):
        sandbox.configure(read_limit=3, read_window_seconds=1)
        hook = make_hook()
        for _ in range(7):
            assert len(hook.list_phone_numbers()) == 3
        statuses = sandbox.stats()["by_status"]
        assert statuses.get("429", 0) >= 1 and statuses["200"] == 7

    @pytest.mark.parametrize("kind", ["http_error", "drop", "malformed"])
    def test_transient_read_faults_give_exact_records(self, make_hook, sandbox, kind):
        sandbox.add_fault("contacts", kind, times=2, status=503)
        rows = list(make_hook().iter_contacts(page_size=10))
        assert len(rows) == 57 and len({r["id"] for r in rows}) == 57, "every contact exactly once"
        assert sandbox.stats()["faults_fired"] == 2

    def test_timeout_is_retried(self, make_hook, sandbox):
        sandbox.add_fault("phone-numbers", "slow", times=1, delay=1.5)
        hook = make_hook(timeout=0.5)
        assert len(hook.list_phone_numbers()) == 3
        assert endpoint_count(sandbox, "phone-numbers") == 2

    def test_retries_are_bounded(self, make_hook, sandbox):
        sandbox.add_fault("phone-numbers", "http_error", times=10, status=500)
        with pytest.raises(EasifyServerError) as info:
            make_hook(max_retries=2).list_phone_numbers()
        assert info.value.status_code == 500
        assert endpoint_count(sandbox, "phone-numbers") == 3

    @pytest.mark.parametrize(
        ("kind", "status"),
        [("http_error", 503), ("http_error", 500), ("drop", None), ("recorded_502", None),
         ("recorded_drop", None), ("malformed", None)],
    )
    def test_send_fault_never_duplicates_never_loses(self, make_hook, sandbox, kind, status):
        hook = make_hook()
        sandbox.add_fault("send", kind, times=1, **({"status": status} if status else {}))
        sms_id = hook.send_sms(SENDER, TO_US, "exactly once")
        ledger = sandbox.ledger()
        assert len(ledger) == 1 and str(ledger[0]["id"]) == sms_id

    def test_unpaced_send_waits_out_a_429_instead_of_hammering(self, make_hook, sandbox):
        sandbox.configure(send_limit=2, send_window_seconds=1)
        hook = make_hook(send_per_minute=0)
        ids = [hook.send_sms(SENDER, f"+131513500{n:02d}", "burst", paced=False) for n in range(3)]
        assert len(set(ids)) == 3 and len(sandbox.ledger()) == 3
        assert sandbox.stats()["by_endpoint_status"]["send"].get("429", 0) == 1, "one 429, then the named wait"

    def test_recorded_fault_does_not_confuse_an_earlier_identical_message(self, make_hook, sandbox):
        hook = make_hook()
        first = hook.send_sms(SENDER, TO_US, "daily reminder")
        sandbox.add_fault("send", "http_error", times=1, status=502)
        second = hook.send_sms(SENDER, TO_US, "daily reminder")
        assert first != second and [str(m["id"]) for m in sandbox.ledger()] == [first, second]

    def test_pacing_draws_no_429(self, make_hook, sandbox):
        import threading
        import time

        sandbox.configure(send_limit=5, send_window_seconds=2, read_limit=1000)
        hooks = [make_hook(send_per_minute=150, read_per_minute=0) for _ in range(2)]
        # both hooks use the same token and URL, so they share one pacing budget
        start = time.monotonic()
        threads = [
            threading.Thread(target=lambda h=h, k=k: [h.send_sms(SENDER, f"+1315135{k}{n:03d}", "x") for n in range(6)])
            for k, h in enumerate(hooks)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        assert len(sandbox.ledger()) == 12
        assert sandbox.stats()["by_status"].get("429", 0) == 0
        assert elapsed >= 11 * 0.4


# ---------------------------------------------------------------------- secrets and PII


def test_token_and_pii_never_logged(make_hook, sandbox, caplog, capsys):
    secret = "sandbox-token"
    caplog.set_level(logging.DEBUG)
    hook = make_hook()
    sandbox.add_fault("send", "recorded_502", times=1)
    hook.send_sms(SENDER, TO_US, "top secret body")
    hook.get_chat_history(SENDER, TO_US)
    make_hook(token="bad-token-xyz").test_connection()
    with pytest.raises(EasifyError) as info:
        make_hook(token="bad-token-xyz").list_phone_numbers()
    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err  # Airflow 3 hooks log through structlog to stdout
    assert "3151350000" not in text, "phone numbers are masked"
    assert "+1315***0000" in text
    assert "top secret body" not in text
    assert secret not in text and "bad-token-xyz" not in text
    assert secret not in repr(hook) and secret not in repr(hook.settings) and "bad-token-xyz" not in str(info.value)
    assert any(r.name.startswith("urllib3") for r in caplog.records), "DEBUG request lines were captured"


def test_urllib3_lines_of_other_hosts_are_left_alone(make_hook, sandbox, caplog):
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    make_hook().get_chat_history(SENDER, TO_US)
    pool = logging.getLogger("urllib3.connectionpool")
    pool.debug('%s://%s:%s "%s %s %s" %s %s', "https", "api.other.example", 443, "GET", "/v1?to=13151350000",
               "HTTP/1.1", 200, 12)
    other = caplog.records[-1]
    assert other.args and "13151350000" in other.getMessage(), "another library's record is not rewritten"
    ours = [r for r in caplog.records if r.name == "urllib3.connectionpool" and "chat-history" in r.getMessage()]
    assert ours and all("3151350000" not in r.getMessage() for r in ours)


def test_same_sms_id():
    assert same_sms_id("315", 315) and same_sms_id(315, "315 ") and not same_sms_id("315", 316)
    assert not same_sms_id(None, None)
