"""The conversation store: SQLite and Redis keep the same contract (expiry, links, damaged entries)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbbot.core.ports import Conversation, ConversationStore
from kbbot.store.conversations import RedisConversations, SqliteConversations
from kbbot.store.redis_store import connect_redis
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    if request.param == "sqlite":
        sqlite = SqliteConversations(tmp_path / "conversations.sqlite3")
        yield sqlite
        await sqlite.aclose()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = await connect_redis(server.url)
    yield RedisConversations(client, prefix="kbbot:test-kb:")
    await client.aclose()


async def test_round_trip_with_unicode(store: ConversationStore) -> None:
    kept = Conversation(questions=("Wie geht das VPN? 🙂", "<script>x</script>"), needs_help=True, save_offered=True)
    await store.put("slack:C1:1.1", kept, 60)
    assert await store.get("slack:C1:1.1") == kept
    assert await store.get("slack:C1:2.2") is None
    await store.put("slack:C1:1.1", Conversation(questions=("a",), stopped=True), 60)
    assert (await store.get("slack:C1:1.1")) == Conversation(questions=("a",), stopped=True)


async def test_links_from_answer_messages(store: ConversationStore) -> None:
    await store.link("discord:msg:42", "discord:thread:7", 60)
    assert await store.thread_of("discord:msg:42") == "discord:thread:7"
    assert await store.thread_of("discord:msg:43") is None


async def test_sqlite_entries_expire(tmp_path: Path) -> None:
    store = SqliteConversations(tmp_path / "conversations.sqlite3")
    await store.put("k", Conversation(questions=("q",)), 0)
    await store.link("m", "k", 0)
    assert await store.get("k") is None and await store.thread_of("m") is None
    await store.aclose()


async def test_redis_entries_carry_a_ttl(redis_server: RedisServer) -> None:
    client = await connect_redis(redis_server.url)
    try:
        await RedisConversations(client, prefix="kbbot:t:").put("k", Conversation(), 90)
        [key] = await client.keys("kbbot:t:conversation:*")
        assert 0 < await client.ttl(key) <= 90
    finally:
        await client.aclose()


async def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    first = SqliteConversations(path)
    await first.put("k", Conversation(questions=("vpn?",)), 3600)
    await first.aclose()
    again = SqliteConversations(path)
    assert await again.get("k") == Conversation(questions=("vpn?",))
    await again.aclose()


async def test_redis_keys_are_under_the_knowledgebase_prefix(redis_server: RedisServer) -> None:
    client = await connect_redis(redis_server.url)
    try:
        await RedisConversations(client, prefix="kbbot:kb-a:").put("slack:C1:1.1", Conversation(), 60)
        keys = [k.decode() for k in await client.keys("*")]
        assert keys and all(k.startswith("kbbot:kb-a:conversation:") and "C1" not in k for k in keys)
        assert await RedisConversations(client, prefix="kbbot:kb-b:").get("slack:C1:1.1") is None
    finally:
        await client.aclose()


async def test_while_redis_is_down_no_thread_is_known_and_nothing_raises(redis_server: RedisServer) -> None:
    from kbbot.store.failover import FailoverConversations, RedisHealth

    client = await connect_redis(redis_server.url)
    store = FailoverConversations(RedisConversations(client, prefix="kbbot:t:"), RedisHealth())
    try:
        await store.put("k", Conversation(questions=("vpn?",)), 60)
        assert await store.get("k") == Conversation(questions=("vpn?",))
        redis_server.kill()
        assert await store.get("k") is None  # a reply there is left alone
        await store.put("k", Conversation(), 60)
        await store.link("m", "k", 60)
        assert await store.thread_of("m") is None
    finally:
        redis_server.restart()
        await client.aclose()
