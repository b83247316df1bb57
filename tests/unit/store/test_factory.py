"""build_stores: memory/SQLite without REDIS_URL, Redis with it; same protocols, closable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kbbot.config import Settings
from kbbot.core.models import Answer
from kbbot.errors import ConfigError, Unavailable
from kbbot.store.factory import Stores, build_stores
from kbbot.store.failover import FailoverLimiterStorage
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session, free_port  # noqa: F401


async def _exercise(stores: Stores) -> None:
    """The same calls on either kind: the caller cannot tell which it got."""
    assert await stores.cache.get("q") is None
    await stores.cache.set("q", Answer(text="a"))
    assert await stores.cache.get("q") == Answer(text="a")

    async def fn() -> Answer:
        return Answer(text="flown")

    assert (await stores.flights.run("k", fn)).text == "flown"
    assert await stores.quota.allow()
    await stores.quota.trip()
    assert not await stores.quota.allow() and (await stores.quota.state()).paused
    await stores.quota.reset()
    assert await stores.deduper.first_seen("Ev1") and not await stores.deduper.first_seen("Ev1")
    await stores.feedback.record(platform="slack", question="q", user_id="U1", helpful=True)
    assert (await stores.feedback.counts()).helpful == 1
    await stores.thread_map.put("slack:C1:1", ["p1"])
    assert await stores.thread_map.get("slack:C1:1") == ("p1",)
    assert await stores.outbox.pending() == []


async def test_without_redis_url_embedded_stores(tmp_path: Path) -> None:
    settings = Settings(kbbot_data_dir=tmp_path / "data")
    async with await build_stores(settings) as stores:
        assert stores.kind == "memory" and stores.limiter_storage is None and stores.ping is None
        await _exercise(stores)
    assert (tmp_path / "data" / "feedback.sqlite3").exists()
    assert (tmp_path / "data" / "threads.sqlite3").exists()


async def test_base_install_without_redis_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`pip install kbbot` (no extra): everything works without REDIS_URL, and REDIS_URL says what to install."""
    for name in [m for m in sys.modules if m == "redis" or m.startswith(("redis.", "kbbot.store.redis_store"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis → ImportError
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    async with await build_stores(Settings(kbbot_data_dir=tmp_path)) as stores:
        assert stores.kind == "memory"
    with pytest.raises(ConfigError, match=r"pip install 'kbbot\[redis\]'"):
        await build_stores(Settings(redis_url="redis://127.0.0.1:1/0", kbbot_data_dir=tmp_path))


async def test_redis_url_unreachable_fails_loudly_without_leaking() -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    with pytest.raises(Unavailable) as info:
        await build_stores(Settings(redis_url=url))
    assert "s3cret-pass" not in str(info.value)


async def test_redis_url_bad_scheme() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        await build_stores(Settings(redis_url="http://127.0.0.1:6379"))


@pytest.mark.redis
async def test_with_redis_url_shared_stores(redis_server: RedisServer, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_server.url, kbbot_data_dir=tmp_path / "data")
    async with await build_stores(settings) as one, await build_stores(settings) as two:
        assert one.kind == "redis" and one.ping is not None and await one.ping()
        assert isinstance(one.limiter_storage, FailoverLimiterStorage)  # Redis windows, local during an outage
        await _exercise(one)
        # The second replica sees the first one's state.
        assert await two.cache.get("q") == Answer(text="a")
        assert not await two.deduper.first_seen("Ev1")
        assert await two.thread_map.get("slack:C1:1") == ("p1",)
        assert (await two.feedback.counts()).helpful == 1
    assert not (tmp_path / "data").exists()  # nothing written locally in Redis mode
