"""Closing the runtime closes every connection it opened, also the rate limiter's own Redis connection."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from kbbot.config import load_settings
from kbbot.core.models import Question
from kbbot.runtime import open_runtime
from tests.fakes.mathub import FakeMatHub
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

pytestmark = pytest.mark.redis


def _other_clients(url: str) -> list[str]:
    with redis.Redis.from_url(url) as probe:
        me = probe.client_id()
        return [str(client["cmd"]) for client in probe.client_list() if int(client["id"]) != me]


async def test_closing_the_runtime_closes_every_redis_connection(
    fake_pw: FakePerfectWiki, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake_pw.seed_pages([{"title": "VPN setup", "content": "<p>Install the VPN client.</p>"}])
    settings = load_settings(
        _env_file=None,
        perfectwiki_api_token=fake_pw.token,
        perfectwiki_base_url=fake_pw.url,
        redis_url=redis_server.url,
        kbbot_data_dir=tmp_path / "data",
    )
    async with open_runtime(settings) as rt:
        answer = await rt.ask.ask(Question(text="vpn setup", platform="cli"))  # the limiter talks to Redis too
        assert "VPN" in answer.text
        assert _other_clients(redis_server.url)
    assert _other_clients(redis_server.url) == []


async def test_closing_the_runtime_closes_the_mathub_write_limiters_redis_connection(
    fake_mathub: FakeMatHub, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = load_settings(
        _env_file=None,
        mathub_api_key=fake_mathub.api_key,
        mathub_base_url=fake_mathub.url,
        mathub_project=fake_mathub.project,
        redis_url=redis_server.url,
        kbbot_data_dir=tmp_path / "data",
    )
    async with open_runtime(settings) as rt:
        await rt.kb.create_page("Runbook", "Restart the service.")  # a write: the writes limiter uses Redis
        assert _other_clients(redis_server.url)
    assert _other_clients(redis_server.url) == []
