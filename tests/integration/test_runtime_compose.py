"""The composition root: Settings → backend, its token's one limiter, stores, index, AskService, ThreadSaver;
everything opened is closed exactly once, last opened first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.config import load_settings
from kbbot.core.models import Question
from kbbot.runtime import open_runtime
from kbbot.search.index import SearchIndex
from kbbot.search.sync import IndexRefresher
from kbbot.store.factory import Stores
from kbbot.store.limiter import TokenRateLimiter, token_key
from tests.fakes.mathub import DEFAULT_KEY, FakeMatHub, mathub_settings
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.limiting import take


def _pw_settings(fake: FakePerfectWiki, tmp_path: Path, **overrides: Any) -> Any:
    return load_settings(
        _env_file=None,
        perfectwiki_api_token=fake.token,
        perfectwiki_base_url=fake.url + "/",
        kbbot_data_dir=tmp_path / "data",
        **overrides,
    )


async def test_perfectwiki_stack_from_settings(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    settings = _pw_settings(
        fake_pw,
        tmp_path,
        perfectwiki_page_url_template="https://wiki.example.com/{id}",
        perfectwiki_rate_per_second=20,
        perfectwiki_rate_per_minute=600,
    )
    async with open_runtime(settings) as rt:
        limiter = rt.stack.limiter
        assert isinstance(limiter, TokenRateLimiter) and limiter.limits == (19, 599)
        assert (await rt.kb.info()).name == "Engineering Docs"
        ref = await rt.kb.create_page("From settings", "<p>x</p>")
        assert ref.url == f"https://wiki.example.com/{ref.id}"
        assert (await rt.ask.status()).kb_kind == "perfectwiki"


async def test_mathub_stack_from_settings(fake_mathub: FakeMatHub, tmp_path: Path) -> None:
    settings = mathub_settings(
        fake_mathub,
        _env_file=None,
        mathub_base_url=fake_mathub.url + "/",
        mathub_page_url_template="https://m.example/{slug}",
        kbbot_data_dir=tmp_path / "data",
    )
    async with open_runtime(settings) as rt:
        ref = await rt.kb.create_page("From settings", "x")
        assert ref.url == "https://m.example/from-settings"
        assert DEFAULT_KEY not in repr(rt.kb.__dict__)
        assert rt.stack.limiter is not None  # the key's 5 writes/min budget


async def test_everything_opened_is_closed_once_last_opened_first(
    fake_pw: FakePerfectWiki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    def recording(cls: type, name: str, method: str = "aclose") -> None:
        original = getattr(cls, method)

        async def close(self: Any, *args: Any) -> Any:
            closed.append(name)
            return await original(self, *args)

        monkeypatch.setattr(cls, method, close)

    recording(httpx.AsyncClient, "http", "__aexit__")  # entered with `async with`
    for cls, name in [
        (Stores, "stores"),
        (TokenRateLimiter, "limiter"),
        (PerfectWikiBackend, "kb"),
        (SearchIndex, "index"),
    ]:
        recording(cls, name)
    fake_pw.seed_pages([{"title": "VPN setup", "content": "<p>Install the VPN client.</p>"}])
    async with open_runtime(_pw_settings(fake_pw, tmp_path)) as rt:
        await rt.ask.ask(Question(text="vpn setup", platform="cli"))
        assert closed == []
    assert closed == ["index", "kb", "limiter", "stores", "http"]


@pytest.mark.redis
async def test_replicas_share_the_tokens_budget_through_redis(
    fake_pw: FakePerfectWiki, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = _pw_settings(fake_pw, tmp_path, redis_url=redis_server.url)
    async with open_runtime(settings) as first, open_runtime(settings) as second:
        one, two = first.stack.limiter, second.stack.limiter
        assert isinstance(one, TokenRateLimiter) and isinstance(two, TokenRateLimiter) and one is not two
        await take(one)
        # The second replica's limiter sees the first one's request in Redis.
        counted, _ = await two._windows_now().count(two._live.windows[1], token_key(fake_pw.token))
        assert counted == 1


async def test_a_local_folder_is_synced_once_per_start(tmp_path: Path) -> None:
    """The runtime syncs a local folder when it opens; `kbbot run`'s background refresher (as serve() builds
    it) then waits an interval before its first run instead of reading the folder a second time."""
    settings = load_settings(_env_file=None, kbbot_data_dir=tmp_path / "data")  # the embedded default
    async with open_runtime(settings) as rt:
        assert rt.syncer.runs == 1 and await rt.index.count() > 0
        waited: list[float] = []
        slept = asyncio.Event()

        async def sleep(seconds: float) -> None:
            waited.append(seconds)
            slept.set()
            await asyncio.Event().wait()  # the interval never ends in this test

        async with IndexRefresher(rt.syncer, settings.index_refresh_seconds, sleep=sleep):
            await asyncio.wait_for(slept.wait(), 10)
        assert rt.syncer.runs == 1 and waited == [settings.index_refresh_seconds]
