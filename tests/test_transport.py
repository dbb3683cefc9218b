"""The transport over real HTTP against the sandbox: status-first error mapping, bounded 429 waits,
retries of sends, and local pacing that survives planted, corrupt and foreign slot files."""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_easify.exceptions import (
    EasifyConfigurationError,
    EasifyRateLimitError,
    EasifyServerError,
)
from airflow_provider_easify.transport.pacing import LocalPacer, budget_digest, pacing_dir
from airflow_provider_easify.transport.responses import retry_after_seconds

SENDER = "+13155550100"


def count(sandbox, endpoint: str, status: str | None = None) -> int:
    stats = sandbox.stats()
    if status is None:
        return stats["by_endpoint"].get(endpoint, 0)
    return stats["by_endpoint_status"].get(endpoint, {}).get(status, 0)


# ---------------------------------------------------------------------- error mapping


@pytest.mark.parametrize("body", ["html", "empty"])
def test_a_5xx_with_any_body_is_a_server_error(make_hook, sandbox, body):
    sandbox.add_fault("phone-numbers", "http_error", status=502, body=body)
    hook = make_hook(max_retries=0)
    with pytest.raises(EasifyServerError) as caught:
        hook.list_phone_numbers()
    assert caught.value.status_code == 502
    if body == "html":
        assert "502 Bad Gateway" in caught.value.message and "<" not in caught.value.message


def test_a_5xx_html_page_is_retried_like_any_server_error(make_hook, sandbox):
    sandbox.add_fault("phone-numbers", "http_error", status=504, body="html", times=2)
    assert len(make_hook(max_retries=3).list_phone_numbers()) == 3
    assert count(sandbox, "phone-numbers") == 3


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Too many requests. Try again in 59 seconds", 59),
        ("Too many requests. Try again in 2 minutes 5 seconds", 125),
        ("Too many requests. Try again in 1 minute", 60),
        ("Too many requests. Try again in 1 hour 1 second", 3601),
        ("Too many requests.", 60),
    ],
)
def test_retry_after_reads_every_unit(message, seconds):
    assert retry_after_seconds(message) == seconds


def test_a_429_naming_minutes_is_read_whole(make_hook, sandbox):
    sandbox.add_fault(
        "phone-numbers", "http_error", status=429, message="Too many requests. Try again in 2 minutes 5 seconds"
    )
    with pytest.raises(EasifyRateLimitError) as caught:
        make_hook(max_retries=0).list_phone_numbers()
    assert caught.value.retry_after == 125 and caught.value.status_code == 429


# ---------------------------------------------------------------------- bounded 429 waits


def test_max_retries_zero_raises_a_429_at_once(make_hook, sandbox):
    sandbox.configure(read_limit=1, read_window_seconds=30)
    hook = make_hook(max_retries=0)
    hook.list_phone_numbers()
    with pytest.raises(EasifyRateLimitError):
        hook.list_phone_numbers()
    assert count(sandbox, "phone-numbers") == 2


@pytest.mark.parametrize("paced", [True, False], ids=["paced", "unpaced"])
def test_a_429_longer_than_max_rate_limit_wait_raises_with_retry_after(make_hook, sandbox, paced):
    sandbox.configure(read_limit=1, read_window_seconds=30)
    hook = make_hook(max_retries=5, max_rate_limit_wait=2, read_per_minute=6000 if paced else 0)
    hook.list_phone_numbers()
    started = time.monotonic()
    with pytest.raises(EasifyRateLimitError) as caught:
        hook.list_phone_numbers()
    assert caught.value.retry_after > 2
    assert count(sandbox, "phone-numbers") == 2, "the 429 was not retried"
    assert time.monotonic() - started < 20, "it did not wait out the 30 s window"


def test_a_429_within_max_rate_limit_wait_is_waited_out(make_hook, sandbox):
    sandbox.configure(read_limit=1, read_window_seconds=1.5)
    hook = make_hook(max_retries=3, max_rate_limit_wait=10, read_per_minute=6000)
    hook.list_phone_numbers()
    assert len(hook.list_phone_numbers()) == 3
    assert count(sandbox, "phone-numbers", "429") == 1


def test_test_connection_answers_at_once_when_rate_limited(make_hook, sandbox):
    sandbox.configure(read_limit=1, read_window_seconds=60)
    hook = make_hook(max_retries=5)
    assert hook.test_connection()[0] is True
    ok, message = hook.test_connection()
    assert ok is False and "429" in message
    assert count(sandbox, "phone-numbers") == 2


def test_a_slot_further_than_max_rate_limit_wait_is_refused_before_any_request(make_hook, sandbox):
    hook = make_hook(send_per_minute=60, max_rate_limit_wait=5)
    start, end = hook.reserve_send_slots(30)  # another caller holds the next 30 s of sends
    assert end - start == pytest.approx(30 * 1.03, rel=0.01)
    with pytest.raises(EasifyRateLimitError) as caught:
        hook.send_sms(SENDER, "+13151350000", "hello")
    assert caught.value.retry_after > 5
    assert sandbox.ledger() == [] and count(sandbox, "send") == 0


# ---------------------------------------------------------------------- sends


def test_a_send_answered_by_a_gateway_page_is_checked_then_retried_once(make_hook, sandbox):
    sandbox.add_fault("send", "http_error", status=502, body="html")
    sms_id = make_hook(max_retries=2).send_sms(SENDER, "+13151350000", "hello")
    assert [str(m["id"]) for m in sandbox.ledger()] == [sms_id]
    assert count(sandbox, "send") == 2


def test_a_send_429_is_retried_blindly(make_hook, sandbox):
    sandbox.add_fault("send", "http_error", status=429, message="Too many requests. Try again in 1 seconds")
    sms_id = make_hook(max_retries=2).send_sms(SENDER, "+13151350000", "hello")
    assert [str(m["id"]) for m in sandbox.ledger()] == [sms_id]


# ---------------------------------------------------------------------- local pacing files


def _slot_file(hook, kind: str) -> Path:
    s = hook.settings
    return pacing_dir() / f"{budget_digest(s.base_url, s.token)}.{kind}.slot"


@pytest.mark.parametrize(
    "content", [struct.pack("d", time.time() + 10**9), struct.pack("d", float("nan")), b"\x01\x02\x03"],
    ids=["far-future", "nan", "garbage"],
)
def test_a_planted_or_corrupt_slot_file_never_stalls_a_send(make_hook, sandbox, content):
    hook = make_hook(send_per_minute=60, max_rate_limit_wait=5)
    path = _slot_file(hook, "send")
    path.write_bytes(content)
    started = time.monotonic()
    sms_id = hook.send_sms(SENDER, "+13151350000", "hello")
    assert [str(m["id"]) for m in sandbox.ledger()] == [sms_id]
    assert time.monotonic() - started < 4
    stored = struct.unpack("d", path.read_bytes())[0]
    assert time.time() - 5 < stored < time.time() + 5, "the impossible slot was replaced"


def test_a_pacing_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    foreign = tmp_path / "pacing"
    foreign.mkdir()
    if os.geteuid() != 0:
        pytest.fail("this test changes a directory's owner and needs root, as on this project's machines")
    os.chown(foreign, 65534, 65534)
    monkeypatch.setenv("EASIFY_PACING_DIR", str(foreign))
    with pytest.raises(EasifyConfigurationError, match="EASIFY_PACING_DIR"):
        LocalPacer("digest", "send", 15, horizon=60)


def test_local_pacing_spaces_threads_and_refuses_far_slots(tmp_path, monkeypatch):
    monkeypatch.setenv("EASIFY_PACING_DIR", str(tmp_path))
    pacer = LocalPacer("d" * 32, "send", 600, horizon=100)
    starts: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        slot = pacer.reserve()
        with lock:
            starts.append(slot.start)

    threads = [threading.Thread(target=reserve) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.1 * 1.03, rel=0.01)
    from airflow_provider_easify.transport.pacing import PacingRefused

    with pytest.raises(PacingRefused):
        pacer.reserve(max_wait=0.5)
    assert pacer.seconds_until_free() == pytest.approx(starts[-1] + 0.103 - time.time(), abs=0.05)


# ---------------------------------------------------------------------- triggers never block a thread


def test_a_trigger_waits_for_budget_on_the_event_loop_and_a_cancelled_one_sends_nothing(make_hook, sandbox):
    from airflow_provider_easify.triggers.sms import EasifySmsStatusTrigger

    hook = make_hook(read_per_minute=60)
    hook.transport.reserve("read", 3)  # the next ~3 s of reads belong to another caller
    trigger = EasifySmsStatusTrigger(
        sms_id="1", sender=SENDER, receiver="+13151350000", poke_interval=1, easify_conn_id=hook.easify_conn_id
    )

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        from concurrent.futures import ThreadPoolExecutor

        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        task = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await asyncio.to_thread(lambda: None)  # the only thread is free: the trigger is not sleeping in it
        free_after = time.monotonic() - started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return free_after

    free_after = asyncio.run(scenario())
    assert free_after < 1.0
    assert count(sandbox, "report") == 0, "the cancelled trigger spent no request"
