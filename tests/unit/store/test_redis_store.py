"""Redis stores against a real redis-server; two independent clients stand for two replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from kbbot.core.models import Answer, PageRef, Source
from kbbot.errors import KbbotError, QuotaExceeded, RateLimited, ShuttingDown, TransportFailure, Unavailable
from kbbot.store.redis_store import (
    RedisAnswerCache,
    RedisDeduper,
    RedisFeedbackStore,
    RedisQuotaGate,
    RedisSingleFlight,
    connect_redis,
    limits_storage_uri,
)
from tests.cancels import HANG_GUARD_SECONDS, LOSES_CANCELS, LostSend
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session, lapse  # noqa: F401

pytestmark = pytest.mark.redis
Replicas = tuple[aioredis.Redis, aioredis.Redis]

ANSWER = Answer(
    text="Use the VPN — *always*. <script>alert(1)</script>",
    related_pages=(PageRef("p1", "VPN setup", "https://wiki.example/p1"), PageRef("p2", "Ünïcødé 🚀", None)),
    source=Source.AI,
    empty=False,
    notice="AI answers are paused",
)


async def _until_leased(client: aioredis.Redis) -> None:
    """Wait until some replica holds a single-flight lease (instead of hoping a fixed sleep was enough)."""
    for _ in range(500):
        if await client.keys("kbbot:{flight}:lock:*"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no lease was taken")


async def _renewed(client: aioredis.Redis, pattern: str, *, times: int) -> None:
    """Wait until the lease key matching ``pattern`` has been extended ``times`` times by its holder (its TTL
    went up), all the while held by the same token: the holder outlived several leases."""
    [key] = await client.keys(pattern)
    token, last, seen = await client.get(key), await client.pttl(key), 0
    while seen < times:
        await asyncio.sleep(0.01)
        assert await client.get(key) == token, "the lease changed hands"
        ttl = await client.pttl(key)
        seen += ttl > last
        last = ttl


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[Replicas]:
    a = await connect_redis(redis_server.url)
    b = await connect_redis(redis_server.url)
    yield a, b
    await a.aclose()
    await b.aclose()


# --- connect ------------------------------------------------------------------------------------------------


async def test_connect_unreachable_names_no_url() -> None:
    from tests.fakes.redis_server import free_port

    url = f"redis://:supersecretpw@127.0.0.1:{free_port()}/0"
    with pytest.raises(Unavailable) as info:
        await connect_redis(url, timeout_seconds=0.5)
    assert "supersecretpw" not in str(info.value)
    assert "127.0.0.1" not in str(info.value)


def test_limits_storage_uri() -> None:
    assert limits_storage_uri("redis://:pw@h:6379/1") == "async+redis://:pw@h:6379/1"
    assert limits_storage_uri("rediss://h:6380/0") == "async+rediss://h:6380/0"
    assert limits_storage_uri("unix:///tmp/r.sock") == "async+redis+unix:///tmp/r.sock"
    from kbbot.errors import ConfigError

    for bad in ("h:6379", "http://h:6379"):
        with pytest.raises(ConfigError):
            limits_storage_uri(bad)


# --- answer cache -------------------------------------------------------------------------------------------


async def test_cache_roundtrip_shared_between_replicas(replicas: Replicas) -> None:
    a, b = replicas
    ca = RedisAnswerCache(a, ttl_seconds=60, max_entries=100)
    cb = RedisAnswerCache(b, ttl_seconds=60, max_entries=100)
    key = "how do i set up the vpn " + "é" * 5000  # long unicode keys are hashed, not stored verbatim
    assert await cb.get(key) is None
    await ca.set(key, ANSWER)
    assert await cb.get(key) == ANSWER
    assert await ca.size() == 1
    assert all(len(k) < 100 for k in await a.keys("*"))


async def test_cache_ttl_expires(replicas: Replicas) -> None:
    a, b = replicas
    ca = RedisAnswerCache(a, ttl_seconds=60, max_entries=100)
    cb = RedisAnswerCache(b, ttl_seconds=60, max_entries=100)
    await ca.set("q", ANSWER)
    assert await cb.get("q") == ANSWER
    await lapse(a, "*{cache}:a:*", ttl_seconds=60)
    assert await cb.get("q") is None
    assert await cb.size() == 0  # the recency index forgets expired entries too


async def test_cache_ttl_zero_disables(replicas: Replicas) -> None:
    a, _ = replicas
    cache = RedisAnswerCache(a, ttl_seconds=0, max_entries=100)
    await cache.set("q", ANSWER)
    assert await cache.get("q") is None
    assert await a.dbsize() == 0


async def test_cache_size_bound_evicts_least_recently_used(replicas: Replicas) -> None:
    a, b = replicas
    ca = RedisAnswerCache(a, ttl_seconds=60, max_entries=3)
    cb = RedisAnswerCache(b, ttl_seconds=60, max_entries=3)
    for i in range(3):
        await ca.set(f"q{i}", Answer(text=f"a{i}"))
    assert await cb.get("q0") is not None  # q0 is now the most recently used
    await cb.set("q3", Answer(text="a3"))
    await ca.set("q4", Answer(text="a4"))
    assert await ca.size() == 3
    assert await ca.get("q1") is None and await ca.get("q2") is None
    assert [(await cb.get(k)) is not None for k in ("q0", "q3", "q4")] == [True, True, True]
    # Every entry key in Redis is accounted for: no orphaned values beyond the bound.
    assert len(await a.keys("kbbot:{cache}:a:*")) == 3


async def test_cache_corrupt_entry_is_a_miss(replicas: Replicas) -> None:
    a, _ = replicas
    cache = RedisAnswerCache(a, ttl_seconds=60, max_entries=10)
    await cache.set("q", ANSWER)
    (key,) = await a.keys("kbbot:{cache}:a:*")
    await a.set(key, b"\xff not json")
    assert await cache.get("q") is None


async def test_cache_prefix_isolates_bots(replicas: Replicas) -> None:
    a, b = replicas
    await RedisAnswerCache(a, ttl_seconds=60, max_entries=10, prefix="bot1:").set("q", ANSWER)
    assert await RedisAnswerCache(b, ttl_seconds=60, max_entries=10, prefix="bot2:").get("q") is None


# --- single flight ------------------------------------------------------------------------------------------


async def test_single_flight_50_concurrent_across_two_replicas_one_call(
    replicas: Replicas,
) -> None:
    a, b = replicas
    fa, fb = RedisSingleFlight(a, poll_seconds=0.01), RedisSingleFlight(b, poll_seconds=0.01)
    calls = 0

    async def upstream() -> Answer:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return ANSWER

    results = await asyncio.gather(
        *(fa.run("same question", upstream) for _ in range(25)),
        *(fb.run("same question", upstream) for _ in range(25)),
    )
    assert calls == 1
    assert results == [ANSWER] * 50
    assert await a.keys("kbbot:{flight}:lock:*") == []  # lease released


async def test_single_flight_distinct_keys_run_separately(replicas: Replicas) -> None:
    a, b = replicas
    fa, fb = RedisSingleFlight(a, poll_seconds=0.01), RedisSingleFlight(b, poll_seconds=0.01)
    seen: list[str] = []

    def make(q: str):  # type: ignore[no-untyped-def]
        async def fn() -> Answer:
            seen.append(q)
            await asyncio.sleep(0.05)
            return Answer(text=q)

        return fn

    out = await asyncio.gather(fa.run("x", make("x")), fb.run("y", make("y")), fa.run("z", make("z")))
    assert [o.text for o in out] == ["x", "y", "z"]
    assert sorted(seen) == ["x", "y", "z"]


async def test_single_flight_sequential_calls_run_again(replicas: Replicas) -> None:
    """A finished flight is not a cache: the next call after it runs fn again (the AnswerCache caches)."""
    a, _ = replicas
    flight = RedisSingleFlight(a, poll_seconds=0.01)
    calls = 0

    async def fn() -> Answer:
        nonlocal calls
        calls += 1
        return ANSWER

    await flight.run("q", fn)
    await flight.run("q", fn)
    assert calls == 2


async def test_single_flight_dead_holder_lease_expires_and_other_takes_over(
    replicas: Replicas,
) -> None:
    a, b = replicas
    # A replica that took the lease and then died: its lock stays until the lease (300 ms) runs out.
    crashed = RedisSingleFlight(a, lease_seconds=0.3)
    import hashlib

    lock = "kbbot:{flight}:lock:" + hashlib.sha256(b"q").hexdigest()
    assert await a.set(lock, "dead-replica-token", nx=True, px=300)
    del crashed
    survivor = RedisSingleFlight(b, poll_seconds=0.01)
    calls = 0

    async def fn() -> Answer:
        nonlocal calls
        calls += 1
        # It waited for the dead replica's lease to lapse rather than barging in: the lease now is its own.
        assert await a.get(lock) not in (b"dead-replica-token", "dead-replica-token")
        return ANSWER

    assert await survivor.run("q", fn) == ANSWER
    assert calls == 1


_EXPIRE_IF_HELD = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], 1) end return 0"

_HOLDER = """
import asyncio, sys
from kbbot.store.redis_store import RedisSingleFlight, connect_redis

async def main():
    client = await connect_redis(sys.argv[1])
    flight = RedisSingleFlight(client, lease_seconds=1.0)

    async def hang():
        print("holding", flush=True)
        await asyncio.sleep(60)

    await flight.run("q", hang)

asyncio.run(main())
"""


async def test_single_flight_holder_process_killed_mid_call(replicas: Replicas, redis_server: RedisServer) -> None:
    """A replica holding the lease is SIGKILLed mid-call: its lease lapses and another replica answers."""
    import signal
    import sys

    _, b = replicas
    import os
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, redis_server.url, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).strip() == b"holding"
        calls = 0

        async def fn() -> Answer:
            nonlocal calls
            calls += 1
            return Answer(text="from the survivor")

        follower = RedisSingleFlight(b, poll_seconds=0.01)
        waiting = asyncio.create_task(follower.run("q", fn))
        # The live holder keeps renewing its 1 s lease (every third of it): after four renewals it has held
        # the flight for more than a lease, and nobody took over.
        await _renewed(b, "*{flight}:lock:*", times=4)
        assert not waiting.done() and calls == 0
        [lock] = await b.keys("*{flight}:lock:*")
        holder = await b.get(lock)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        # Its last lease runs out now rather than within the second (only if it is still the dead holder's).
        await b.eval(_EXPIRE_IF_HELD, 1, lock, holder)
        answer = await asyncio.wait_for(waiting, timeout=5)
        assert answer.text == "from the survivor" and calls == 1
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_single_flight_lease_is_renewed_for_slow_calls(
    replicas: Replicas,
) -> None:
    a, b = replicas
    fa = RedisSingleFlight(a, lease_seconds=0.5, poll_seconds=0.01)
    fb = RedisSingleFlight(b, lease_seconds=0.5, poll_seconds=0.01)
    calls = 0
    outlived = asyncio.Event()

    async def slow() -> Answer:
        nonlocal calls
        calls += 1
        await outlived.wait()  # several leases long
        return ANSWER

    first = asyncio.create_task(fa.run("q", slow))
    await _until_leased(a)
    second = asyncio.create_task(fb.run("q", slow))
    await _renewed(a, "*{flight}:lock:*", times=3)  # a lease and more, renewed by its holder
    outlived.set()
    assert await asyncio.gather(first, second) == [ANSWER, ANSWER]
    assert calls == 1


async def test_single_flight_lease_renewer_whose_cancel_was_lost_still_stops(replicas: Replicas) -> None:
    """The leader is done just as its renewer's command completes: that cancel is lost on 3.11 (see
    tests/cancels.py). The renewer must still stop before the lease goes, and not renew it again: a runaway
    renewer keeps a lease nobody holds alive, and every follower waits on it."""
    a, _ = replicas

    async def at_once(_seconds: float) -> None:  # the renewer renews without waiting a third of the lease
        await asyncio.sleep(0)

    flight = RedisSingleFlight(a, lease_seconds=30, sleep=at_once)
    send = LostSend()
    renewers: list[asyncio.Task[Any]] = []
    ran_on: list[str] = []
    real_renew = flight._renew

    async def renew(**kwargs: Any) -> Any:
        renewers.append(cast("asyncio.Task[Any]", asyncio.current_task()))
        await send()  # the renew command's send, through wait_for as redis-py sends it
        ran_on.append("renewed after the send")
        return await real_renew(**kwargs)

    flight._renew = renew  # type: ignore[method-assign]

    async def answer() -> Answer:
        await send.inside.wait()  # the lease is being renewed ...
        send.complete()  # ... its send completes, and the leader, done, cancels the renewer in the same step
        return ANSWER

    leader = asyncio.create_task(flight.run("q", answer))
    done, _ = await asyncio.wait({leader}, timeout=HANG_GUARD_SECONDS)
    assert done and leader.result() == ANSWER
    [renewer] = set(renewers)
    assert renewer.cancelled(), "the leader returned while its renewer still ran"
    assert send.calls == 1 and ran_on == (["renewed after the send"] if LOSES_CANCELS else [])
    assert await a.keys("*{flight}:lock:*") == []  # the lease is free: a follower would take over at once


async def test_single_flight_leader_error_reaches_other_replica(
    replicas: Replicas,
) -> None:
    a, b = replicas
    fa, fb = RedisSingleFlight(a, poll_seconds=0.01), RedisSingleFlight(b, poll_seconds=0.01)
    calls = 0

    async def quota_gone() -> Answer:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        raise QuotaExceeded("the monthly AI quota is used up", status=402)

    first = asyncio.create_task(fa.run("q", quota_gone))
    await _until_leased(a)
    with pytest.raises(QuotaExceeded) as info:
        await fb.run("q", quota_gone)
    assert info.value.status == 402
    with pytest.raises(QuotaExceeded):
        await first
    assert calls == 1  # a billed 402 is not repeated by every waiting replica


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", retry_after=7.5),
        ShuttingDown(),
        TransportFailure("could not reach the knowledgebase (ConnectError)", request_sent=False, timed_out=False),
    ],
    ids=type,
)
async def test_single_flight_error_is_rebuilt_faithfully_on_the_other_replica(
    replicas: Replicas, error: KbbotError
) -> None:
    a, b = replicas
    fa, fb = RedisSingleFlight(a, poll_seconds=0.01), RedisSingleFlight(b, poll_seconds=0.01)

    async def fail() -> Answer:
        await asyncio.sleep(0.2)
        raise error

    first = asyncio.create_task(fa.run("q", fail))
    await _until_leased(a)
    with pytest.raises(type(error)) as info:
        await fb.run("q", fail)
    assert str(info.value) == str(error) and vars(info.value) == vars(error)
    with pytest.raises(type(error)):
        await first


async def test_single_flight_unexpected_error_lets_follower_take_over(
    replicas: Replicas,
) -> None:
    a, b = replicas
    fa, fb = RedisSingleFlight(a, poll_seconds=0.01), RedisSingleFlight(b, poll_seconds=0.01)

    async def boom() -> Answer:
        await asyncio.sleep(0.2)
        raise RuntimeError("bug")

    async def fine() -> Answer:
        return Answer(text="fine")

    first = asyncio.create_task(fa.run("q", boom))
    await _until_leased(a)
    assert (await fb.run("q", fine)).text == "fine"
    with pytest.raises(RuntimeError):
        await first


async def test_single_flight_wait_is_bounded(replicas: Replicas) -> None:
    a, b = replicas
    import hashlib

    lock = "kbbot:{flight}:lock:" + hashlib.sha256(b"q").hexdigest()
    await a.set(lock, "busy-holder", px=60_000)
    flight = RedisSingleFlight(b, wait_seconds=0.3, poll_seconds=0.02)

    async def fn() -> Answer:
        raise AssertionError("must not run while another replica holds the lease")

    with pytest.raises(Unavailable):  # after its 0.3 s, not the holder's 60 s (the guard below would fire)
        await asyncio.wait_for(flight.run("q", fn), 30)


async def test_single_flight_one_local_caller_cancelled_others_still_served(
    replicas: Replicas,
) -> None:
    a, _ = replicas
    flight = RedisSingleFlight(a, poll_seconds=0.01)

    async def fn() -> Answer:
        await asyncio.sleep(0.2)
        return ANSWER

    impatient = asyncio.create_task(flight.run("q", fn))
    patient = asyncio.create_task(flight.run("q", fn))
    await _until_leased(a)
    impatient.cancel()
    assert await patient == ANSWER


# --- quota gate ---------------------------------------------------------------------------------------------


async def test_quota_gate_one_402_pauses_every_replica(replicas: Replicas) -> None:
    a, b = replicas
    ga, gb = RedisQuotaGate(a, probe_seconds=60), RedisQuotaGate(b, probe_seconds=60)
    assert await ga.allow() and await gb.allow()
    assert (await gb.state()).paused is False
    await ga.trip()
    state = await gb.state()
    assert state.paused and state.next_probe_at is not None and state.next_probe_at > time.time()
    # Within the interval nobody asks (the 402 itself was this interval's call).
    assert [await g.allow() for g in (ga, gb, ga, gb)] == [False] * 4
    await lapse(a, "*{quota}:probe", ttl_seconds=60)
    # Next interval: exactly one probe across both replicas, however many ask at once.
    allowed = await asyncio.gather(*(g.allow() for g in (ga, gb) * 10))
    assert sum(allowed) == 1
    await lapse(a, "*{quota}:probe", ttl_seconds=60)
    assert sum(await asyncio.gather(*(g.allow() for g in (ga, gb) * 10))) == 1
    # A successful probe resets the breaker for everyone.
    await gb.reset()
    assert (await ga.state()).paused is False
    assert all(await asyncio.gather(*(g.allow() for g in (ga, gb) * 3)))


async def test_quota_gate_trip_again_restarts_interval(replicas: Replicas) -> None:
    a, b = replicas
    ga, gb = RedisQuotaGate(a, probe_seconds=60), RedisQuotaGate(b, probe_seconds=60)
    await ga.trip()
    await lapse(a, "*{quota}:probe", ttl_seconds=60)
    assert await gb.allow()  # the probe…
    await gb.trip()  # …got a 402 again
    assert not await ga.allow()
    assert (await ga.state()).paused


# --- dedupe -------------------------------------------------------------------------------------------------


async def test_deduper_exactly_one_replica_sees_an_event(replicas: Replicas) -> None:
    a, b = replicas
    da, db = RedisDeduper(a), RedisDeduper(b)
    results = await asyncio.gather(*(d.first_seen("Ev0123ABC") for d in (da, db) * 20))
    assert sum(results) == 1
    assert await db.first_seen("Ev-other")
    assert not await da.first_seen("Ev-other")


async def test_deduper_forgets_after_ttl(replicas: Replicas) -> None:
    a, b = replicas
    before = set(await a.keys("*"))
    assert await RedisDeduper(a).first_seen("ev", ttl_seconds=60)
    assert not await RedisDeduper(b).first_seen("ev", ttl_seconds=60)
    [key] = set(await a.keys("*")) - before
    await lapse(a, key.decode() if isinstance(key, bytes) else key, ttl_seconds=60)
    assert await RedisDeduper(b).first_seen("ev", ttl_seconds=60)


# --- feedback -----------------------------------------------------------------------------------------------


async def test_feedback_one_vote_per_user_per_question(replicas: Replicas) -> None:
    a, b = replicas
    fa, fb = RedisFeedbackStore(a), RedisFeedbackStore(b)
    await fa.record(platform="slack", question="vpn?", user_id="U1", helpful=True)
    await fb.record(platform="slack", question="vpn?", user_id="U1", helpful=True)  # repeat: no change
    await fb.record(platform="slack", question="vpn?", user_id="U2", helpful=False)
    await fa.record(platform="discord", question="vpn?", user_id="U1", helpful=False)
    counts = await fb.counts()
    assert (counts.helpful, counts.not_helpful) == (1, 2)
    await fa.record(platform="slack", question="vpn?", user_id="U2", helpful=True)  # changed their mind
    counts = await fa.counts()
    assert (counts.helpful, counts.not_helpful) == (2, 1)


async def test_feedback_concurrent_votes_are_counted_exactly(
    replicas: Replicas,
) -> None:
    a, b = replicas
    fa, fb = RedisFeedbackStore(a), RedisFeedbackStore(b)
    await asyncio.gather(
        *(
            (fa if i % 2 else fb).record(platform="slack", question="q", user_id=f"U{i % 30}", helpful=i % 3 == 0)
            for i in range(90)
        )
    )
    counts = await fa.counts()
    assert counts.helpful + counts.not_helpful == 30


