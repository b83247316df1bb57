"""Two bots for two wikis on one real redis-server share nothing: no cached answer, no queued save, no quota
state, no rate window. Each keeps every key under its own knowledgebase namespace (issue 15, item 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kbbot.config import Settings, load_settings
from kbbot.core.models import Question, Source, Thread, ThreadMessage
from kbbot.runtime import Runtime, open_runtime
from kbbot.store.namespace import namespace_from_settings
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

pytestmark = pytest.mark.redis

QUESTION = "how do I set up the VPN?"


@pytest.fixture
def wikis() -> Iterator[tuple[FakePerfectWiki, FakePerfectWiki]]:
    with (
        FakePerfectWiki(token="pw-token-alpha-1111", kb_name="Alpha") as one,
        FakePerfectWiki(token="pw-token-bravo-2222", kb_name="Bravo") as two,
    ):
        for wiki in (one, two):
            wiki.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard.</p>"}])
        yield one, two


def _settings(wiki: FakePerfectWiki, redis_url: str, data: Path) -> Settings:
    return load_settings(
        _env_file=None,
        perfectwiki_api_token=wiki.token,
        perfectwiki_base_url=wiki.url,
        redis_url=redis_url,
        kbbot_data_dir=data,
        index_refresh_seconds=0,
    )


@pytest.fixture
async def bots(
    wikis: tuple[FakePerfectWiki, FakePerfectWiki], redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    async with AsyncExitStack() as stack:
        alpha = await stack.enter_async_context(
            open_runtime(_settings(wikis[0], redis_server.url, tmp_path / "alpha"))
        )
        bravo = await stack.enter_async_context(
            open_runtime(_settings(wikis[1], redis_server.url, tmp_path / "bravo"))
        )
        yield alpha, bravo


def _thread(key: str) -> Thread:
    message = ThreadMessage("Ann", "U1", "2026-11-22T10:00:00+00:00", "How do we rotate keys?")
    return Thread(platform="slack", key=key, messages=(message,), channel_name="ops")


async def test_two_bots_for_two_wikis_share_nothing(
    bots: tuple[Runtime, Runtime], wikis: tuple[FakePerfectWiki, FakePerfectWiki], redis_server: RedisServer
) -> None:
    alpha, bravo = bots
    wiki_a, wiki_b = wikis
    assert alpha.stores.namespace and bravo.stores.namespace
    assert alpha.stores.namespace != bravo.stores.namespace

    # Cache: the same question on the other wiki is asked there, not answered from the first wiki's cache.
    assert (await alpha.ask.ask(Question(QUESTION))).source is Source.AI
    assert (await alpha.ask.ask(Question(QUESTION))).source is Source.CACHE
    assert (await bravo.ask.ask(Question(QUESTION))).source is Source.AI
    assert wiki_a.stats().queries == 1 and wiki_b.stats().queries == 1

    # Quota: Alpha's 402 pauses Alpha only.
    wiki_a.set_ai_quota(0)
    assert (await alpha.ask.ask(Question("a new question about laptops"))).source is Source.SEARCH
    assert (await alpha.stores.quota.state()).paused
    assert not (await bravo.stores.quota.state()).paused
    assert (await bravo.ask.ask(Question("a new question about laptops"))).source is Source.AI

    # Queued saves: Alpha's wiki is down, its save waits in Alpha's outbox; Bravo's outbox stays empty and
    # Bravo's worker never sends Alpha's save to Bravo's wiki.
    wiki_a.fail_next(1000, status=503, endpoint="create")
    assert (await alpha.saver.save(_thread("C1:1700000000.000100"))).pending
    assert len(await alpha.stores.outbox.pending()) == 1
    assert await bravo.stores.outbox.pending() == []
    await bravo.saver.retry_due()
    assert wiki_b.stats().per_endpoint.get("create", 0) == 0
    # The saved-thread map too: the same thread key saved by Bravo is a new page on Bravo's wiki.
    assert (await bravo.saver.save(_thread("C1:1700000000.000100"))).created

    # Every key in Redis belongs to exactly one of the two bots; no key or value carries a token.
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = [key.decode() async for key in client.scan_iter(count=1000)]
        values = b"".join([await client.dump(key) or b"" for key in keys])
    finally:
        await client.aclose()
    assert keys
    namespaces = (alpha.stores.namespace, bravo.stores.namespace)
    owners = {key: [ns for ns in namespaces if key.startswith(ns)] for key in keys}
    assert all(len(found) == 1 for found in owners.values()), owners
    assert any(key.startswith(alpha.stores.namespace) and "limits" in key for key in keys)  # rate windows too
    for token in (wiki_a.token, wiki_b.token):
        assert all(token not in key for key in keys) and token.encode() not in values


def test_namespace_is_the_knowledgebase_identity(tmp_path: Path) -> None:
    def ns(**values: object) -> str:
        return namespace_from_settings(load_settings(_env_file=None, **values))  # type: ignore[arg-type]

    pw = {"perfectwiki_api_token": "pw-token-1", "perfectwiki_base_url": "https://api.example.test/api"}
    mathub = {"mathub_api_key": "bot_k", "mathub_base_url": "https://m.example.test/api/bot/v1"}
    # Replicas of one bot (same settings) share one namespace, whatever their data folder.
    assert ns(**pw) == ns(**pw, kbbot_data_dir=tmp_path)
    # Another token, another base URL, another MatHub project: another knowledgebase.
    assert ns(**pw) != ns(**{**pw, "perfectwiki_api_token": "pw-token-2"})
    assert ns(**pw) != ns(**{**pw, "perfectwiki_base_url": "https://eu.example.test/api"})
    assert ns(**mathub, mathub_project="a") != ns(**mathub, mathub_project="b")
    # The token is never in it; REDIS_PREFIX names it outright.
    assert "pw-token-1" not in ns(**pw) and ns(**pw).startswith("kbbot:perfectwiki-")
    assert ns(**pw, redis_prefix="team-a") == "kbbot:team-a:"


@pytest.mark.parametrize("prefix", ["has space", "{tag}", "a:b", "x" * 65])
def test_redis_prefix_must_be_a_plain_name(prefix: str) -> None:
    from kbbot.errors import ConfigError

    with pytest.raises(ConfigError, match="REDIS_PREFIX"):
        load_settings(_env_file=None, redis_prefix=prefix)


async def test_upgrade_keeps_the_queued_saves_and_saved_threads_of_an_older_kbbot(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from kbbot.core.ports import OutboxItem, OutboxPart
    from kbbot.store.factory import build_stores
    from kbbot.store.redis_store import RedisOutbox, RedisSavedThreadMap, connect_redis

    # What an older kbbot left in Redis: everything right under "kbbot:".
    old = await connect_redis(redis_server.url)
    try:
        item = OutboxItem(key="slack:C1:1.2", platform="slack", conversation_key="C1:1.2", digest="d",
                          title="Queued before the upgrade", tags=(), parts=(OutboxPart("t", "body"),))  # fmt: skip
        await RedisOutbox(old, prefix="kbbot:").add(item, now=1.0)
        await RedisSavedThreadMap(old, prefix="kbbot:").put("slack:C1:0.1", ["page-1"])
    finally:
        await old.aclose()

    settings = _settings_for_redis(redis_server.url, tmp_path)
    stores = await build_stores(settings, namespace=namespace_from_settings(settings))
    try:
        assert [queued.title for queued in await stores.outbox.pending()] == ["Queued before the upgrade"]
        assert await stores.thread_map.get("slack:C1:0.1") == ("page-1",)
    finally:
        await stores.aclose()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        leftovers = [key async for key in client.scan_iter(match="kbbot:{outbox}:*")]
        leftovers += [key async for key in client.scan_iter(match="kbbot:thread:*")]
    finally:
        await client.aclose()
    assert leftovers == []


def _settings_for_redis(redis_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        _env_file=None, perfectwiki_api_token="pw-token-upgrade", redis_url=redis_url, kbbot_data_dir=tmp_path
    )
