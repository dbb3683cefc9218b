"""Tracking at scale over real HTTP: many statuses from one read of the report, and large export pages."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from airflow_provider_easify.exceptions import EasifyInvalidParameterError

SENDER = "+13155550100"


def reads(sandbox, endpoint: str = "report") -> int:
    return sandbox.stats()["by_endpoint"].get(endpoint, 0)


def test_statuses_of_many_messages_from_few_reads(make_hook, sandbox):
    sandbox.configure(send_limit=0, read_limit=0)
    hook = make_hook()
    ids = [hook.send_sms(SENDER, f"+1315135{n:04d}", "hi", after_message_id=0) for n in range(27)]
    failed = hook.send_sms(SENDER, "+13151359990", "hi", after_message_id=0)
    undelivered = hook.send_sms(SENDER, "+13151359991", "hi", after_message_id=0)
    other_account = hook.send_sms("+13155550101", "+13151350000", "hi", after_message_id=0)
    import time

    time.sleep(0.5)  # past the sandbox's delivery lifecycle
    before = reads(sandbox)
    statuses = hook.get_sms_statuses([*ids, int(failed), undelivered, "999999999", other_account],
                                     sender=SENDER, page_size=10)
    assert {statuses[i] for i in ids} == {"Delivered"}
    assert (statuses[failed], statuses[undelivered]) == ("Failed", "Undelivered")
    assert statuses["999999999"] is None and statuses[other_account] is None, "other senders are not looked at"
    scanned = 30  # this sender's 29 rows of today, newest first, then the first older row ends the scan
    assert reads(sandbox) - before == math.ceil(scanned / 10), "one read per page scanned, not one per message"


def test_statuses_stop_at_the_first_page_when_the_newest_are_asked(make_hook, sandbox):
    sandbox.configure(send_limit=0, read_limit=0)
    hook = make_hook()
    ids = [hook.send_sms(SENDER, f"+1315135{n:04d}", "hi", after_message_id=0) for n in range(30)]
    before = reads(sandbox)
    statuses = hook.get_sms_statuses(ids[-5:], sender=SENDER, page_size=10)
    assert set(statuses) == set(ids[-5:]) and None not in statuses.values()
    assert reads(sandbox) - before == 1


def test_statuses_refuse_bad_ids_before_any_request(make_hook, sandbox):
    hook = make_hook()
    for bad in (["12", "abc"], [None], [True]):
        with pytest.raises(EasifyInvalidParameterError, match="sms_ids"):
            hook.get_sms_statuses(bad, sender=SENDER)
    with pytest.raises(EasifyInvalidParameterError, match="since"):
        hook.get_sms_statuses(["1"], sender=SENDER, since="2999-01-01")
    assert sandbox.stats()["total"] == 0


def test_a_75_day_report_of_1200_rows_takes_at_most_6_requests(make_hook, sandbox):
    sandbox.configure(read_limit=0)
    start = dt.date(2023, 1, 1)
    end = start + dt.timedelta(days=74)
    sandbox.generate_report(start.isoformat(), end.isoformat(), 16, clear=True)
    hook = make_hook()
    before = reads(sandbox)
    rows = list(hook.iter_sms_report(start, end))
    assert len(rows) == 1200 and len({r["id"] for r in rows}) == 1200
    assert reads(sandbox) - before <= 6


def test_a_refused_page_size_falls_back_and_is_remembered(make_hook, sandbox):
    sandbox.configure(limit_refused_above=20, read_limit=0)
    hook = make_hook()
    assert len({c["id"] for c in hook.iter_contacts()}) == 57
    assert sandbox.stats()["by_endpoint_status"]["contacts"].get("422") == 1
    assert len({c["id"] for c in hook.iter_contacts()}) == 57
    assert sandbox.stats()["by_endpoint_status"]["contacts"].get("422") == 1, "the smaller page was remembered"


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_fewer_rows_than_asked_lose_and_repeat_nothing(make_hook, sandbox, order):
    sandbox.configure(max_page_size=7, read_limit=0)
    hook = make_hook(page_size=50)
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=44)
    truth = sorted(r["id"] for r in sandbox.report_truth(start, end))
    rows = [r["id"] for r in hook.iter_sms_report(start, end, order=order)]
    assert sorted(rows) == truth and len(rows) == len(set(rows))
