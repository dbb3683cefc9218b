"""Sending on a half-broken API, over real HTTP to the sandbox.

A send the server may have recorded (committed, then a 502, a dropped connection or an answer too slow)
is posted again only after a lookup that ran to completion found it absent. While ``sms/report`` is
down (an HTML 503, a timeout, a 429 longer than ``max_rate_limit_wait``, a 4xx), the send is never
posted twice: ``EasifySendUnconfirmedError``. No report read is spent per send, and a report that is
down never holds a send back.
"""

from __future__ import annotations

import collections
import multiprocessing
import pickle
import time

import pytest

from airflow_provider_easify.exceptions import (
    EasifyApiError,
    EasifyError,
    EasifySendUnconfirmedError,
    EasifyServerError,
    EasifyValidationError,
)
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.transport import watermark as watermark_store
from tests.conftest import FAST, conn_json
from tests.redis_server import RedisServer

SENDER = "+13155550100"
TO = "+13151350000"

#: The ways a send is committed and its answer lost.
AMBIGUOUS_SENDS = {
    "recorded_502": {"endpoint": "send", "kind": "recorded_502", "times": 1},
    "recorded_drop": {"endpoint": "send", "kind": "recorded_drop", "times": 1},
    "slow_answer": {"endpoint": "send", "kind": "slow", "delay": 2.5, "times": 1},
}
#: The ways the report is down.
REPORT_OUTAGES = {
    "html_503": {"mode": "html_5xx", "status": 503},
    "timeout": {"mode": "timeout", "delay": 2.0},
    "rate_limited": {"mode": "rate_limit", "retry_after": 120},
}


def _hook(make_hook, **extra) -> EasifyHook:
    # A timeout shorter than the slow answer and the held report; a 429 of 120 s is beyond the wait allowed.
    return make_hook(**{"timeout": 1, "max_retries": 2, "max_rate_limit_wait": 5, "send_settle_seconds": 0.3, **extra})


def _ledger_after(sandbox, seconds: float = 0.0) -> list[dict]:
    time.sleep(seconds)  # a slow answer's message is recorded when the server gets to it
    return sandbox.ledger()


def _report_reads(sandbox) -> int:
    return sandbox.stats()["by_endpoint"].get("report", 0)


@pytest.mark.parametrize("outage", list(REPORT_OUTAGES), ids=list(REPORT_OUTAGES))
@pytest.mark.parametrize("fault", list(AMBIGUOUS_SENDS), ids=list(AMBIGUOUS_SENDS))
def test_ambiguous_send_while_the_report_is_down_is_posted_once_and_unconfirmed(make_hook, sandbox, fault, outage):
    hook = _hook(make_hook)
    first = hook.send_sms(SENDER, TO, "before the outage")  # the process now knows a message id
    sandbox.add_fault(**AMBIGUOUS_SENDS[fault])
    with sandbox.outage("report", **REPORT_OUTAGES[outage]):
        started = time.time()
        with pytest.raises(EasifySendUnconfirmedError) as info:
            hook.send_sms(SENDER, TO, "Your code is 4242")
    ledger = _ledger_after(sandbox, 2.0 if fault == "slow_answer" else 0.0)
    assert [m["message"] for m in ledger] == ["before the outage", "Your code is 4242"], "posted exactly once"
    error = info.value
    assert isinstance(error, EasifyError) and not isinstance(error, EasifyApiError)
    text = str(error)
    assert "+1315***0000" in text and TO not in text and "4242" not in text and sandbox.token not in text
    assert error.recipients == ["+1315***0000"]
    assert abs(error.attempted_at.timestamp() - started) < 5
    assert "unconfirmed" in text and "lookup failed" in text
    assert int(first) < int(ledger[-1]["id"])


def test_a_dropped_connection_of_the_lookup_is_unconfirmed(make_hook, sandbox):
    hook = _hook(make_hook)
    hook.send_sms(SENDER, TO, "before")
    sandbox.add_fault("send", "recorded_drop", times=1)
    sandbox.add_fault("report", "drop", times=10)
    with pytest.raises(EasifySendUnconfirmedError):
        hook.send_sms(SENDER, TO, "again")
    assert len(sandbox.ledger()) == 2


def test_the_notifier_alerts_while_the_report_is_down_and_never_twice(make_hook, sandbox):
    from airflow_provider_easify.notifications.easify import EasifySmsNotifier

    hook = _hook(make_hook)
    notifier = EasifySmsNotifier(
        from_number=SENDER, to_number=[TO, "+13151350001"], message="Pipeline failed",
        easify_conn_id=hook.easify_conn_id,
    )
    with sandbox.outage("report", mode="html_5xx", status=503):
        notifier.notify({})  # the read side is down: the alert still goes out
        assert len(sandbox.ledger()) == 2
        sandbox.add_fault("send", "recorded_502", times=1)
        with pytest.raises(EasifySendUnconfirmedError, match="unconfirmed for 1 of 2"):
            notifier.notify({})
    assert len(sandbox.ledger()) == 4, "each alert once: the unconfirmed one was not posted again"


@pytest.mark.parametrize("status", [400, 422, 404])
def test_a_4xx_from_the_lookup_is_unconfirmed_not_the_sends_validation_error(make_hook, sandbox, status):
    hook = _hook(make_hook)
    hook.send_sms(SENDER, TO, "before")
    sandbox.add_fault("send", "recorded_502", times=1)
    sandbox.add_fault("report", "http_error", status=status, message="The limit field is invalid.", times=10)
    with pytest.raises(EasifySendUnconfirmedError) as info:
        hook.send_sms(SENDER, TO, "again")
    assert not isinstance(info.value, EasifyValidationError)
    assert len(sandbox.ledger()) == 2


@pytest.mark.parametrize("media", ["url", "file"])
def test_mms_ambiguous_while_the_report_is_down(make_hook, sandbox, tmp_path, media):
    hook = _hook(make_hook)
    hook.send_sms(SENDER, TO, "before")
    picture = tmp_path / "flyer.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    attachment = "https://example.com/flyer.png" if media == "url" else str(picture)
    sandbox.add_fault("send", "recorded_502", times=1)
    with sandbox.outage("report", mode="html_5xx", status=502), pytest.raises(EasifySendUnconfirmedError):
        hook.send_sms(SENDER, TO, "See the flyer", media=attachment)
    ledger = sandbox.ledger()
    assert len(ledger) == 2 and ledger[-1]["message"] == "See the flyer"


def test_an_ambiguous_send_is_posted_again_only_after_a_lookup_found_it_absent(make_hook, sandbox):
    """The report readable: a gateway 502 that recorded nothing is looked up, found absent, posted again."""
    hook = _hook(make_hook)
    hook.send_sms(SENDER, TO, "first")
    sandbox.add_fault("send", "http_error", status=502, body="html", times=1)
    reads = _report_reads(sandbox)
    sms_id = hook.send_sms(SENDER, TO, "second")
    assert [m["message"] for m in sandbox.ledger()] == ["first", "second"]
    assert str(sandbox.ledger()[-1]["id"]) == sms_id
    assert _report_reads(sandbox) - reads == 2, "one lookup, and one more after the settle time"


def test_a_recorded_send_found_by_the_lookup_is_not_posted_again(make_hook, sandbox):
    hook = _hook(make_hook)
    hook.send_sms(SENDER, TO, "same text")
    sandbox.add_fault("send", "recorded_502", times=1)
    sms_id = hook.send_sms(SENDER, TO, "same text")  # the older identical message is not taken for it
    ledger = sandbox.ledger()
    assert len(ledger) == 2 and str(ledger[-1]["id"]) == sms_id


def test_no_known_id_and_the_report_down_the_send_still_goes_out_once(make_hook, sandbox):
    hook = _hook(make_hook)
    sandbox.add_fault("send", "recorded_502", times=1)
    with sandbox.outage("report", mode="html_5xx", status=503), pytest.raises(EasifySendUnconfirmedError) as info:
        hook.send_sms(SENDER, TO, "first of the day")
    assert len(sandbox.ledger()) == 1
    assert "no message id was known" in str(info.value)


def test_report_down_from_the_start_thirty_sends_go_out_exactly_once(make_hook, sandbox):
    sandbox.configure(send_limit=0)
    hook = _hook(make_hook)
    numbers = [f"+1315136{n:04d}" for n in range(30)]
    with sandbox.outage("report", mode="html_5xx", status=503):
        returned = [hook.send_sms(SENDER, number, f"alert {n}") for n, number in enumerate(numbers)]
    ledger = sandbox.ledger()
    assert len(ledger) == 30 and len(set(returned)) == 30
    assert collections.Counter(f"+{m['country_code'].lstrip('+')}{m['to_number']}" for m in ledger) == {
        number: 1 for number in numbers
    }
    assert _report_reads(sandbox) == 1, "one failed read for the first id, none per send"


def test_no_report_read_per_send(make_hook, sandbox):
    sandbox.configure(send_limit=0)
    hook = _hook(make_hook)
    for n in range(30):
        hook.send_sms(SENDER, f"+1315137{n:04d}", "reminder")
    assert _report_reads(sandbox) == 1, "the first id of the process, then none"
    assert hook.send_watermark() == max(int(m["id"]) for m in sandbox.ledger())


def test_a_watermark_above_the_servers_ids_is_corrected_by_the_next_send(make_hook, sandbox):
    """A server whose ids went back (a sandbox started afresh, a restored database): the last id returned wins."""
    hook = _hook(make_hook)
    hook.transport.watermark.note(900_000_000)
    sms_id = hook.send_sms(SENDER, TO, "hello")
    assert hook.send_watermark() == int(sms_id) < 900_000_000
    sandbox.add_fault("send", "recorded_502", times=1)
    second = hook.send_sms(SENDER, TO, "hello")  # found above the corrected watermark: not posted again
    assert len(sandbox.ledger()) == 2 and int(second) > int(sms_id)


def test_unconfirmed_error_survives_pickling():
    error = EasifySendUnconfirmedError.for_send(
        TO, time.time(), known="the report could not be read", send_error=EasifyServerError("x", status_code=502)
    )
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.recipients == error.recipients and copy.attempted_at == error.attempted_at


# ---------------------------------------------------------------------- every host shares one watermark

REDIS_CONN = "easify_watermark_redis"


def _fresh_process_sends(args: tuple[str, str, str, str]) -> tuple[int | None, str]:
    """A new process: nothing in its memory; it sends once and says what it knew before."""
    conn, redis_conn, pacing, number = args
    import os

    os.environ["AIRFLOW_CONN_EASIFY_HOSTS"] = conn
    os.environ["EASIFY_PACING_DIR"] = pacing
    if redis_conn:
        os.environ[f"AIRFLOW_CONN_{REDIS_CONN.upper()}"] = redis_conn
    watermark_store.forget_in_process()
    hook = EasifyHook(easify_conn_id="easify_hosts")
    known = hook.transport.watermark.known()
    return known, hook.send_sms(SENDER, number, "from another process")


def _one_after_another(jobs: list[tuple[str, str, str, str]]) -> list[tuple[int | None, str]]:
    context = multiprocessing.get_context("spawn")
    results = []
    for job in jobs:  # each new process starts from what the last one sent
        with context.Pool(1) as pool:
            results.append(pool.map(_fresh_process_sends, [job])[0])
    return results


def test_hosts_share_the_watermark_through_redis(sandbox, tmp_path):
    with RedisServer() as redis:
        conn = conn_json(sandbox.api_url, sandbox.token, {**FAST, "pacing_redis_conn_id": REDIS_CONN})
        # Each "host" has its own pacing directory: only Redis can carry the id from one to the next.
        results = _one_after_another(
            [(conn, redis.conn_json(), str(tmp_path / f"host{n}"), f"+1315138{n:04d}") for n in range(3)]
        )
    assert results[0][0] is None, "the first host knew nothing"
    assert [known for known, _ in results[1:]] == [int(sms_id) for _, sms_id in results[:-1]]
    assert _report_reads(sandbox) == 1, "only the first host read an id"


def test_processes_of_one_machine_share_the_watermark(sandbox, tmp_path):
    conn = conn_json(sandbox.api_url, sandbox.token, FAST)
    results = _one_after_another([(conn, "", str(tmp_path / "machine"), f"+1315139{n:04d}") for n in range(3)])
    assert results[0][0] is None
    assert [known for known, _ in results[1:]] == [int(sms_id) for _, sms_id in results[:-1]]
    assert _report_reads(sandbox) == 1, "only the first process read an id"
