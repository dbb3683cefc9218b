"""Pacing shared across hosts through a real redis-server: one budget for every host, the Redis
server's clock, 429 push-back for all, hashed expiring keys, and a fallback when Redis fails."""

from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import time

import pytest

from airflow_provider_easify.exceptions import EasifyConfigurationError
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.transport import redis_pacing
from airflow_provider_easify.transport import watermark as watermark_store
from airflow_provider_easify.transport.pacing import budget_digest
from tests.conftest import FAST, conn_json
from tests.redis_server import RedisServer

SENDER = "+13155550100"
REDIS_CONN = "easify_pacing_redis"


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_conn(redis_server, monkeypatch):
    redis_server.client().flushdb()
    monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN.upper()}", redis_server.conn_json())
    monkeypatch.setattr(redis_pacing, "_warned", set())
    return redis_server


def _host(args: tuple[str, str, str, list[str]]) -> list[str]:
    """One "host": its own pacing directory and temp dir, its own hook, sending its share."""
    conn, pacing, start_at, numbers = args
    os.environ["EASIFY_PACING_DIR"] = pacing
    os.environ["TMPDIR"] = pacing
    os.environ["AIRFLOW_CONN_EASIFY_HOSTS"] = conn
    hook = EasifyHook(easify_conn_id="easify_hosts")
    time.sleep(max(0.0, float(start_at) - time.time()))
    return [hook.send_sms(SENDER, number, f"hosts {number}") for number in numbers]


def _run_hosts(sandbox, tmp_path, extra: dict, hosts: int = 3, per_host: int = 5) -> list[str]:
    conn = conn_json(sandbox.api_url, sandbox.token, {**FAST, **extra})
    start_at = str(time.time() + 1.0)
    jobs = [
        (conn, str(tmp_path / f"host{h}"), start_at, [f"+1315140{h}{n:03d}" for n in range(per_host)])
        for h in range(hosts)
    ]
    for job in jobs:
        os.makedirs(job[1], exist_ok=True)
    with multiprocessing.get_context("fork").Pool(hosts) as pool:
        return [sms_id for ids in pool.map(_host, jobs) for sms_id in ids]


def test_hosts_share_one_send_budget_through_redis(sandbox, redis_conn, tmp_path):
    sandbox.configure(send_limit=5, send_window_seconds=2, read_limit=0)
    extra = {"send_per_minute": 150, "send_window_seconds": 2, "pacing_redis_conn_id": REDIS_CONN}
    ids = _run_hosts(sandbox, tmp_path, extra)
    ledger = sandbox.ledger()
    assert sorted(str(m["id"]) for m in ledger) == sorted(ids) and len(ledger) == 15
    assert len(set(collections.Counter(m["to_number"] for m in ledger).values())) == 1, "each exactly once"
    assert sandbox.stats()["by_endpoint_status"]["send"].get("429", 0) == 0


def test_without_redis_separate_hosts_overrun_the_budget(sandbox, tmp_path):
    """The same three hosts with local pacing: each paces alone, together they draw 429s (what Redis fixes)."""
    sandbox.configure(send_limit=5, send_window_seconds=2, read_limit=0)
    ids = _run_hosts(sandbox, tmp_path, {"send_per_minute": 150, "send_window_seconds": 2})
    assert len(sandbox.ledger()) == 15 and len(set(ids)) == 15
    assert sandbox.stats()["by_endpoint_status"]["send"].get("429", 0) > 0


def test_keys_are_hashed_prefixed_and_expire(make_hook, sandbox, redis_conn):
    hook = make_hook(send_per_minute=60, read_per_minute=600, pacing_redis_conn_id=REDIS_CONN)
    hook.send_sms(SENDER, "+13151350000", "hello")
    client = redis_conn.client()
    keys = sorted(client.keys("*"))
    digest = budget_digest(hook.settings.base_url, hook.settings.token)
    pacing = [f"easify:pacing:v1:{digest}:read", f"easify:pacing:v1:{digest}:send"]
    watermark = f"easify:watermark:v1:{digest}"  # the last id a send returned, for every host
    assert keys == [*pacing, watermark]
    assert all(hook.settings.token not in key for key in keys)
    assert all(0 < client.pttl(key) <= (redis_pacing.KEY_TTL_SECONDS + 5) * 1000 for key in pacing)
    assert 0 < client.pttl(watermark) <= watermark_store.KEY_TTL_SECONDS * 1000


def test_reservations_use_the_redis_servers_clock(make_hook, sandbox, redis_conn, monkeypatch):
    """A host whose clock runs 100 s ahead still queues behind the others' slots."""
    hook = make_hook(send_per_minute=60, pacing_redis_conn_id=REDIS_CONN)
    first = hook.transport.reserve("send")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 100)
    skewed = make_hook(send_per_minute=60, pacing_redis_conn_id=REDIS_CONN)
    second = skewed.transport.reserve("send")
    assert second.start - time.time() == pytest.approx(first.start + 60 * 1.03 / 60 - real_time(), abs=0.2)


def test_a_429_on_one_host_holds_back_every_host(make_hook, sandbox, redis_conn, tmp_path, monkeypatch):
    hook = make_hook(read_per_minute=600, max_retries=0, pacing_redis_conn_id=REDIS_CONN)
    sandbox.add_fault("phone-numbers", "http_error", status=429, message="Too many requests. Try again in 4 seconds")
    with pytest.raises(Exception, match="Try again"):
        hook.list_phone_numbers()
    monkeypatch.setenv("EASIFY_PACING_DIR", str(tmp_path / "other-host"))
    other_host = make_hook(read_per_minute=600, pacing_redis_conn_id=REDIS_CONN)
    assert 3 < other_host.transport.seconds_until_free("read") <= 4
    local_only = make_hook(read_per_minute=600)
    assert local_only.transport.seconds_until_free("read") == 0, "without Redis the other host knows nothing"


def test_redis_down_slow_and_back(make_hook, sandbox, redis_conn, caplog, monkeypatch):
    monkeypatch.setattr(redis_pacing, "RETRY_REDIS_AFTER", 0.5)
    hook = make_hook(send_per_minute=600, read_per_minute=0, timeout=1, pacing_redis_conn_id=REDIS_CONN)
    hook.send_sms(SENDER, "+13151350000", "one")
    key = f"easify:pacing:v1:{budget_digest(hook.settings.base_url, hook.settings.token)}:send"
    assert redis_conn.client().exists(key)

    caplog.set_level(logging.WARNING, logger=redis_pacing.__name__)
    redis_conn.pause()  # slow: no answer within the socket timeout
    try:
        started = time.monotonic()
        hook.send_sms(SENDER, "+13151350001", "two")
        assert time.monotonic() - started < 5, "no call hangs on a silent Redis"
    finally:
        redis_conn.resume()
    redis_conn.stop()  # down
    try:
        time.sleep(0.6)
        hook.send_sms(SENDER, "+13151350002", "three")
        time.sleep(0.6)
        hook.send_sms(SENDER, "+13151350003", "four")
    finally:
        redis_conn.start()
    warnings = [r for r in caplog.records if "pacing on this machine only" in r.getMessage()]
    assert len(warnings) == 1, "one warning per process"
    assert [m["message"] for m in sandbox.ledger()] == ["one", "two", "three", "four"], "none lost or doubled"

    time.sleep(0.6)
    hook.send_sms(SENDER, "+13151350004", "five")
    assert redis_conn.client().exists(key), "pacing went back to Redis"


@pytest.mark.parametrize(
    ("redis_conn_json", "match"),
    [
        (None, "names no Airflow connection"),
        (json.dumps({"conn_type": "http", "host": "127.0.0.1"}), "must be of type 'redis'"),
    ],
    ids=["missing", "wrong-type"],
)
def test_a_bad_pacing_redis_conn_id_fails_before_any_request(make_hook, sandbox, monkeypatch, redis_conn_json, match):
    if redis_conn_json is not None:
        monkeypatch.setenv("AIRFLOW_CONN_EASIFY_NOT_REDIS", redis_conn_json)
    hook = make_hook(pacing_redis_conn_id="easify_not_redis")
    with pytest.raises(EasifyConfigurationError, match=f"pacing_redis_conn_id='easify_not_redis'.*{match}"):
        hook.send_sms(SENDER, "+13151350000", "hello")
    assert sandbox.stats()["total"] == 0


def test_a_redis_that_answers_errors_is_a_fault_not_a_crash(make_hook, sandbox, redis_conn, monkeypatch, caplog):
    """A Redis that answers errors (here: a database it does not have) leaves pacing local; one send goes out."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_EASIFY_PACING_REDIS_AUTH",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": redis_conn.port, "extra": {"db": 99}}),
    )
    caplog.set_level(logging.WARNING, logger=redis_pacing.__name__)
    hook = make_hook(send_per_minute=600, pacing_redis_conn_id="easify_pacing_redis_auth")
    sms_id = hook.send_sms(SENDER, "+13151350000", "hello")
    assert [str(m["id"]) for m in sandbox.ledger()] == [sms_id]
    assert any("pacing on this machine only" in r.getMessage() for r in caplog.records)
