"""The per-person AI budget with REDIS_URL: two replicas of one bot count one person's AI answers together."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from kbbot.config import load_settings
from kbbot.core.models import Asker, Question, Source
from kbbot.runtime import open_runtime
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

pytestmark = pytest.mark.redis


async def test_replicas_share_one_persons_budget(
    fake_pw: FakePerfectWiki, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake_pw.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard.</p>"}])

    def settings(name: str):  # type: ignore[no-untyped-def]
        return load_settings(
            _env_file=None, perfectwiki_api_token=fake_pw.token, perfectwiki_base_url=fake_pw.url,
            redis_url=redis_server.url, kbbot_data_dir=tmp_path / name, index_refresh_seconds=0,
            ai_user_limit="4/minute",
        )

    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_runtime(settings("a")))
        b = await stack.enter_async_context(open_runtime(settings("b")))
        sources = []
        for n in range(8):
            replica = (a, b)[n % 2]
            question = Question(f"question {n}", asker=Asker("U1"), conversation_key="D1:1", platform="slack")
            sources.append((await replica.ask.ask(question)).source)
        assert sources.count(Source.AI) == 4 and sources[4:] == [Source.SEARCH] * 4
        assert fake_pw.stats().billed_queries == 4
        other = Question("how do I set up the VPN?", asker=Asker("U2"), conversation_key="D2:1", platform="slack")
        assert (await b.ask.ask(other)).source is Source.AI  # someone else still gets AI answers
