"""SavedThreadMap and Outbox: the SQLite and Redis implementations behave the same (one contract, two stores),
and with Redis two replicas' ThreadSavers save a thread once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.ports import Outbox, OutboxItem, OutboxPart, SavedThreadMap
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.errors import Unavailable
from kbbot.store.redis_store import RedisOutbox, RedisSavedThreadMap, connect_redis
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.memory_kb import MemoryKnowledgeBase
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

Factory = Callable[[], Awaitable[tuple[SavedThreadMap, Outbox]]]


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Makes (map, outbox) pairs over ONE shared backing store: each call is another process/replica."""
    opened: list[Any] = []
    if request.param == "sqlite":

        async def make() -> tuple[SavedThreadMap, Outbox]:
            path = tmp_path / "threads.sqlite3"
            pair = (SqliteSavedThreadMap(path), SqliteOutbox(path))
            opened.extend(pair)
            return pair

        yield make
        for store in opened:
            await store.aclose()
        return
    server: RedisServer = request.getfixturevalue("redis_server")

    async def make_redis() -> tuple[SavedThreadMap, Outbox]:
        client = await connect_redis(server.url)
        opened.append(client)
        return RedisSavedThreadMap(client), RedisOutbox(client)

    yield make_redis
    for client in opened:
        await client.aclose()


def item(key: str = "slack:C1:1.2", title: str = "Deploy notes", n_parts: int = 1) -> OutboxItem:
    return OutboxItem(
        key=key,
        platform="slack",
        conversation_key=key.split(":", 1)[1],
        digest="d" * 16,
        title=title,
        tags=("saved", "ünï"),
        parts=tuple(OutboxPart(f"{title} ({i})", f"<p>part {i} — <b>x</b> 🚀</p>") for i in range(n_parts)),
    )


async def test_map_roundtrip_shared(stores: Factory) -> None:
    (m1, _), (m2, _) = await stores(), await stores()
    assert await m1.get("slack:C1:1.2") is None
    await m1.put("slack:C1:1.2", ["p1", "p2"])
    assert await m2.get("slack:C1:1.2") == ("p1", "p2")
    await m2.put("slack:C1:1.2", ["p9"])
    assert await m1.get("slack:C1:1.2") == ("p9",)
    await m1.delete("slack:C1:1.2")
    assert await m2.get("slack:C1:1.2") is None
    await m1.delete("never-there")  # deleting nothing is fine
    long_key = "discord:" + "9" * 5000
    await m1.put(long_key, [])
    assert await m2.get(long_key) == ()


async def test_outbox_add_claim_remove(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    assert await o1.pending() == []
    assert await o1.add(item(n_parts=2), now=100.0) == 1
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert claimed is not None
    assert claimed.attempts == 1 and claimed.revision == 1 and claimed.title == "Deploy notes"
    assert claimed.parts == item(n_parts=2).parts and claimed.tags == ("saved", "ünï") and claimed.retag
    # Leased: nobody else may send it until the lease runs out.
    assert await o1.claim("slack:C1:1.2", now=110.0, lease_seconds=30) is None
    assert await o2.remove("slack:C1:1.2", 1) is True
    assert await o1.pending() == []
    assert await o1.claim("slack:C1:1.2", now=200.0, lease_seconds=30) is None
    assert await o1.claim("unknown", now=200.0, lease_seconds=30) is None


async def test_outbox_keeps_whether_tags_replace_the_pages(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(replace(item(), retag=False), now=100.0)
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert claimed is not None and claimed.retag is False


async def test_outbox_expired_lease_can_be_claimed_again(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item(), now=100.0)
    assert await o1.claim("slack:C1:1.2", now=100.0, lease_seconds=30) is not None  # then the replica dies
    again = await o2.claim("slack:C1:1.2", now=131.0, lease_seconds=30)
    assert again is not None and again.attempts == 2


async def test_outbox_release_reschedules_and_orders_pending(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item("slack:C1:a", "A"), now=100.0)
    await o1.add(item("slack:C1:b", "B"), now=50.0)
    await o2.claim("slack:C1:b", now=100.0, lease_seconds=30)
    await o2.release("slack:C1:b", next_attempt_at=500.0, error="the wiki is down (503)")
    pending = await o1.pending()
    assert [p.key for p in pending] == ["slack:C1:a", "slack:C1:b"]
    assert pending[1].next_attempt_at == 500.0 and pending[1].last_error == "the wiki is down (503)"
    assert pending[1].attempts == 1
    # Released: claimable again right away by anyone.
    assert await o1.claim("slack:C1:b", now=101.0, lease_seconds=30) is not None
    await o1.release("slack:C1:b", next_attempt_at=600.0, error=None)
    assert (await o2.pending())[1].last_error is None


async def test_outbox_newer_save_replaces_and_keeps_attempts(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item(title="v1"), now=100.0)
    first = await o1.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert first is not None and first.revision == 1
    # While replica 1 sends v1, replica 2 queues v2 of the same thread.
    assert await o2.add(item(title="v2"), now=105.0) == 2
    assert await o1.remove("slack:C1:1.2", first.revision) is False  # v2 must not be lost
    (pending,) = await o2.pending()
    assert pending.title == "v2" and pending.revision == 2 and pending.attempts == 1
    await o1.release("slack:C1:1.2", next_attempt_at=105.0, error=None)
    second = await o2.claim("slack:C1:1.2", now=106.0, lease_seconds=30)
    assert second is not None and second.title == "v2" and second.attempts == 2
    assert await o2.remove("slack:C1:1.2", 2) is True


async def test_outbox_concurrent_claims_exactly_one_wins(stores: Factory) -> None:
    pairs = [await stores() for _ in range(2)]
    await pairs[0][1].add(item(), now=100.0)
    results = await asyncio.gather(*(o.claim("slack:C1:1.2", now=100.0, lease_seconds=30) for _, o in pairs * 10))
    assert sum(r is not None for r in results) == 1


# --- two replicas' ThreadSavers over Redis ------------------------------------------------------------------


def thread(key: str = "C1:1700000000.000100") -> Thread:
    messages = tuple(
        ThreadMessage(f"user{i}", f"U{i}", f"2026-01-05T09:0{i}:00+00:00", f"message {i} <!channel>") for i in range(3)
    )
    return Thread("slack", key, messages, "https://team.slack.com/archives/C1/p1", "ops")


@pytest.mark.redis
async def test_two_replicas_save_one_thread_once(redis_server: RedisServer) -> None:
    kb = MemoryKnowledgeBase()
    policy = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, poll_interval=0.05, lease_seconds=5)
    clients = [await connect_redis(redis_server.url) for _ in range(2)]
    savers = [ThreadSaver(kb, RedisSavedThreadMap(c), RedisOutbox(c), retry=policy) for c in clients]
    try:
        results = await asyncio.gather(*(s.save(thread()) for s in savers for _ in range(3)))
        assert len(kb.pages) == 1
        ids = {r.id for r in results if r.id}
        assert len(ids) == 1
        # A later re-save from the other replica updates the same page.
        again = await savers[1].save(thread())
        assert again.id in ids and not again.created and len(kb.pages) == 1
    finally:
        for c in clients:
            await c.aclose()


@pytest.mark.redis
async def test_save_queued_on_one_replica_is_sent_by_another(redis_server: RedisServer) -> None:
    """The pod that queued a save (wiki down) is gone; another replica's worker delivers it."""
    kb = MemoryKnowledgeBase()
    policy = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, poll_interval=0.05, lease_seconds=5)
    dying, survivor = await connect_redis(redis_server.url), await connect_redis(redis_server.url)
    try:
        kb.fail_next("create_page", Unavailable("the wiki is down (503)", status=503))
        queued = await ThreadSaver(kb, RedisSavedThreadMap(dying), RedisOutbox(dying), retry=policy).save(thread())
        assert queued.pending and not kb.pages
        await dying.aclose()
        saver = ThreadSaver(kb, RedisSavedThreadMap(survivor), RedisOutbox(survivor), retry=policy)
        async with asyncio.timeout(30):  # a hang guard; the retry is due within a fraction of a second
            while not kb.pages:
                await saver.retry_due()
                await asyncio.sleep(0.02)
        assert len(kb.pages) == 1
        assert await RedisOutbox(survivor).pending() == []
    finally:
        await survivor.aclose()


async def test_outbox_keeps_whether_a_landed_save_is_announced(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(replace(item(), announce=False), now=100.0)
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert claimed is not None and claimed.announce is False
    [pending] = await o1.pending()
    assert pending.announce is False
