"""The inbound-SMS event trigger over real HTTP against the sandbox: new incoming messages only, its
filters, its cursor across a restart (in an asset state store), one read for many watchers, no spin."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_easify.exceptions import EasifyInvalidParameterError
from airflow_provider_easify.triggers.coalesce import InboundPoller
from airflow_provider_easify.triggers.inbound import EasifyInboundSmsTrigger
from airflow_provider_easify.utils.inbound import InboundCursor, InboundScan, approval_choice

MAIN, SUPPORT = "+13155550100", "+13155550101"
ALICE, BOB = "+13151357001", "+13151357002"


class MemoryAssetStore:
    """Stands in for Airflow's asset state store (the triggerer's; exercised for real in the deployment test)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def reads(sandbox) -> int:
    return sandbox.stats()["by_endpoint"].get("report", 0)


async def collect(triggers, act, *, count: int, timeout: float = 20) -> list[list[dict]]:
    """Run the triggers, call ``act`` once they have started, and gather events until ``count`` in all."""
    got: list[list[dict]] = [[] for _ in triggers]
    done = asyncio.Event()

    async def pump(index, trigger):
        async for event in trigger.run():
            got[index].append(event.payload)
            if sum(map(len, got)) >= count:
                done.set()

    tasks = [asyncio.ensure_future(pump(i, t)) for i, t in enumerate(triggers)]
    try:
        deadline = time.monotonic() + timeout
        while any(t.cursor.high is None for t in triggers):
            assert time.monotonic() < deadline, "the watchers never took their baseline"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(act)
        if count:
            await asyncio.wait_for(done.wait(), timeout)
        else:
            await asyncio.sleep(1.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got


def trigger(hook, **kwargs) -> EasifyInboundSmsTrigger:
    return EasifyInboundSmsTrigger(easify_conn_id=hook.easify_conn_id, poll_interval=0.2, **kwargs)


def test_fires_once_per_new_incoming_message_and_never_for_outgoing_or_old_ones(make_hook, sandbox):
    hook = make_hook()
    sandbox.inject_incoming(MAIN, ALICE, "before the watcher started")
    watcher = trigger(hook)

    def act():
        hook.send_sms(MAIN, ALICE, "an outgoing message", after_message_id=0)
        sandbox.inject_incoming(MAIN, ALICE, "Yes please")
        sandbox.inject_incoming(SUPPORT, BOB, "HELP")

    (events,) = asyncio.run(collect([watcher], act, count=2))
    assert [e["message"] for e in events] == ["Yes please", "HELP"]
    first = events[0]
    assert first["from_number"] == ALICE and first["to_number"] == MAIN
    assert first["sms_id"].isdigit() and first["created_at"].endswith("+00:00")
    assert set(first) >= {"sms_id", "from_number", "to_number", "message", "created_at"}
    assert events[1]["from_number"] == BOB and events[1]["to_number"] == SUPPORT


def test_filters_by_account_number_contact_and_pattern(make_hook, sandbox):
    hook = make_hook()
    stop = trigger(hook, pattern=r"^\s*stop\s*$")
    support_only = trigger(hook, account_numbers=[SUPPORT])
    from_bob = trigger(hook, from_numbers=BOB)

    def act():
        sandbox.inject_incoming(MAIN, ALICE, " STOP ")
        sandbox.inject_incoming(MAIN, ALICE, "please stop it")
        sandbox.inject_incoming(SUPPORT, ALICE, "support question")
        sandbox.inject_incoming(MAIN, BOB, "from bob")

    got = asyncio.run(collect([stop, support_only, from_bob], act, count=3))
    assert [[e["message"] for e in events] for events in got] == [[" STOP "], ["support question"], ["from bob"]]


def test_a_restart_with_an_asset_store_neither_replays_nor_misses(make_hook, sandbox):
    hook = make_hook()
    store = MemoryAssetStore()
    first = trigger(hook)
    first.asset_state_store = store
    (events,) = asyncio.run(collect([first], lambda: sandbox.inject_incoming(MAIN, ALICE, "one"), count=1))
    assert [e["message"] for e in events] == ["one"]
    assert list(store.values) == [first.state_key]

    # While no triggerer runs, two messages arrive; the restarted trigger (rebuilt from its kwargs) finds them.
    sandbox.inject_incoming(MAIN, ALICE, "two")
    sandbox.inject_incoming(MAIN, BOB, "three")
    classpath, kwargs = first.serialize()
    again = EasifyInboundSmsTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs) and again.state_key == first.state_key
    again.asset_state_store = store
    (events,) = asyncio.run(collect([again], lambda: None, count=2))
    assert [e["message"] for e in events] == ["two", "three"]

    # Without the store, a restart starts from the newest message: what came while it was down is not announced.
    sandbox.inject_incoming(MAIN, ALICE, "four")
    fresh = EasifyInboundSmsTrigger(**kwargs)
    (events,) = asyncio.run(collect([fresh], lambda: sandbox.inject_incoming(MAIN, ALICE, "five"), count=1))
    assert [e["message"] for e in events] == ["five"]


class TwoAssetStore(MemoryAssetStore):
    """The shape of Airflow 3.3's store for a watcher of two assets: per-asset accessors in private attributes."""

    def __init__(self) -> None:
        super().__init__()
        self._by_name = {"opt_outs": MemoryAssetStore(), "support_inbox": MemoryAssetStore()}
        self._by_uri: dict[str, MemoryAssetStore] = {}


def test_the_cursor_goes_to_every_watched_asset_on_3_3_and_through_the_public_store_elsewhere(make_hook, sandbox):
    from airflow_provider_easify.triggers.inbound import ASSET_STORE_PRIVATE_ACCESSORS
    from airflow_provider_easify.utils.hitl_support import airflow_version

    store = TwoAssetStore()
    first = trigger(make_hook())
    first.asset_state_store = store
    asyncio.run(collect([first], lambda: sandbox.inject_incoming(MAIN, ALICE, "one"), count=1))
    per_asset = [accessor.values for accessor in store._by_name.values()]
    if ASSET_STORE_PRIVATE_ACCESSORS.contains(airflow_version()):
        assert all(first.state_key in values for values in per_asset) and per_asset[0] == per_asset[1]
        assert store.values == {}
    else:  # the fallback every other release takes: the store's public aget/aset
        assert first.state_key in store.values and per_asset == [{}, {}]

    again = trigger(make_hook())
    again.asset_state_store = store
    (events,) = asyncio.run(collect([again], lambda: sandbox.inject_incoming(MAIN, ALICE, "two"), count=1))
    assert [e["message"] for e in events] == ["two"], "restarted from the stored cursor, nothing replayed"


def test_many_watchers_share_one_read_a_round(make_hook, sandbox):
    hook = make_hook()
    watchers = [trigger(hook, pattern=f"^w{n}$") for n in range(20)]

    async def scenario():
        async def act_later():
            await asyncio.sleep(0.5)
            before = reads(sandbox)
            await asyncio.sleep(2.0)
            return reads(sandbox) - before

        task = asyncio.ensure_future(act_later())
        got = await collect(watchers, lambda: [sandbox.inject_incoming(MAIN, ALICE, f"w{n}") for n in range(20)],
                            count=20)
        return got, await task

    got, rounds_reads = asyncio.run(scenario())
    assert [[e["message"] for e in events] for events in got] == [[f"w{n}"] for n in range(20)]
    # 2 s at one round per 0.2 s: about 10 reads for all twenty watchers, not 200.
    assert rounds_reads <= 16, rounds_reads
    assert InboundPoller._pollers == {}


def test_a_late_row_below_the_newest_id_is_still_announced():
    cursor = InboundCursor()
    cursor.advance(InboundScan(ids=[10, 9], incoming=[{"sms_id": "9"}]))
    assert (cursor.high, cursor.floor, cursor.seen) == (10, 8, [9])
    # Row 11 was committed after row 12: the first poll sees 12, the next one finds 11 under the high mark.
    assert [m["sms_id"] for m in cursor.advance(InboundScan(ids=[12, 10, 9], incoming=[{"sms_id": "12"},
                                                                                    {"sms_id": "9"}]))] == ["12"]
    late = cursor.advance(InboundScan(ids=[12, 11, 10], incoming=[{"sms_id": "12"}, {"sms_id": "11"}]))
    assert [m["sms_id"] for m in late] == ["11"]
    assert cursor.advance(InboundScan(ids=[12, 11], incoming=[{"sms_id": "12"}, {"sms_id": "11"}])) == []
    assert InboundCursor.from_json(cursor.to_json()) == cursor


def test_errors_back_off_instead_of_spinning(make_hook, sandbox):
    hook = make_hook(token="revoked-token")
    watcher = trigger(hook)

    async def run_for(seconds: float) -> None:
        task = asyncio.ensure_future(watcher.run().__anext__())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run_for(1.5))
    # 401 every time: a first poll, then pauses of 0.4 s and 0.8 s: at most three requests in 1.5 s.
    assert sandbox.stats()["by_endpoint_status"]["report"].get("401", 0) in (1, 2, 3)


def test_a_429_waits_the_servers_time_and_loses_nothing(make_hook, sandbox):
    hook = make_hook()
    watcher = trigger(hook)

    def act():
        sandbox.add_fault("report", "http_error", status=429, message="Too many requests. Try again in 1 seconds")
        sandbox.inject_incoming(MAIN, ALICE, "after the 429")

    started = time.monotonic()
    (events,) = asyncio.run(collect([watcher], act, count=1))
    assert [e["message"] for e in events] == ["after the 429"]
    assert sandbox.stats()["by_endpoint_status"]["report"].get("429") == 1
    assert time.monotonic() - started >= 1.0, "the next poll waited the second the server named"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"pattern": "("}, "pattern"),
        ({"from_numbers": "3151357001"}, "from_numbers"),
        ({"from_numbers": ["+4912345678901"]}, "from_numbers"),
        ({"account_numbers": []}, "account_numbers"),
        ({"account_numbers": "abc"}, "account_numbers"),
        ({"poll_interval": 0}, "poll_interval"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, parameter):
    with pytest.raises(EasifyInvalidParameterError) as info:
        EasifyInboundSmsTrigger(**kwargs)
    assert info.value.parameter == parameter


def test_kwargs_are_normalized_so_equal_watchers_deduplicate():
    one = EasifyInboundSmsTrigger(from_numbers=["+1 315 135 7002", "+13151357001"], account_numbers=SUPPORT)
    two = EasifyInboundSmsTrigger(from_numbers=["+13151357001", "+13151357002"], account_numbers=[SUPPORT])
    assert one.serialize() == two.serialize()


@pytest.mark.parametrize(
    ("text", "choice"),
    [("YES", "Approve"), (" y ", "Approve"), ("Approve!", "Approve"), ("ok.", "Approve"), ("1", "Approve"),
     ("no", "Reject"), ("N", "Reject"), ("reject", "Reject"), ("2", "Reject"),
     ("yes please", None), ("maybe", None), ("", None)],
)
def test_approval_words(text, choice):
    assert approval_choice(text) == choice
