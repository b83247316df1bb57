"""While a 402 pauses AI answers, questions answered from search spend nobody's AI budget (AI_USER_LIMIT).

The whole bot (the real composition root) over the fake Perfect Wiki, with its default per-person budget (5 a
minute, 40 a day), embedded stores or one real redis-server: a person who keeps asking while the monthly AI
quota is gone gets search answers, and has all their AI answers when the quota comes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kbbot.config import load_settings
from kbbot.core.ask import QUOTA_NOTICE
from kbbot.core.models import Asker, Question, Source
from kbbot.runtime import open_runtime
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.integration.quota_support import Clock, probe_due


def question(text: str, user: str) -> Question:
    return Question(text, asker=Asker(user), conversation_key=f"D{user}:1", platform="slack")


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_search_answers_while_paused_leave_the_askers_ai_budget_whole(
    fake_pw: FakePerfectWiki, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    fake_pw.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard and import the VPN profile.</p>"}])
    env: dict[str, Any] = {}
    if store == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["redis_url"] = server.url
    settings = load_settings(
        _env_file=None, perfectwiki_api_token=fake_pw.token, perfectwiki_base_url=fake_pw.url,
        kbbot_data_dir=tmp_path, index_refresh_seconds=0, **env,
    )
    assert settings.ai_user_limit == "5/minute;40/day"  # the default this test is about
    clock = Clock()
    async with open_runtime(settings, quota_clock=clock) as rt:
        await rt.stack.syncer.sync()
        fake_pw.set_ai_quota(0)  # the monthly AI quota is gone
        first = await rt.ask.ask(question("how do I set up the VPN?", "U0"))
        assert first.source is Source.SEARCH and fake_pw.stats().quota_exceeded == 1

        # U1 asks ten different questions, twice their per-minute budget: all answered from the wiki's pages,
        # none of them billed, and none told to slow down.
        answers = [await rt.ask.ask(question(f"VPN question number {n}?", "U1")) for n in range(10)]
        assert [a.source for a in answers] == [Source.SEARCH] * 10
        assert all((a.notice or "").startswith(QUOTA_NOTICE) and "slow down" not in (a.notice or "") for a in answers)
        assert fake_pw.stats().queries == 1

        # A new month: the quota is back, and the breaker's probe is due. It is U1's question, answered by
        # the AI, and so are U1's next four: their five a minute were all still there.
        fake_pw.set_ai_quota(None)
        await probe_due(clock, env.get("redis_url"))
        back = [await rt.ask.ask(question(f"VPN on laptop model {n}?", "U1")) for n in range(5)]
        assert [a.source for a in back] == [Source.AI] * 5
        assert fake_pw.stats().billed_queries == 5
        # (That exactly the billed calls count, so a sixth would be refused, is shown on a per-day budget in
        # tests/unit/core/test_ask_budget.py: a minute's window here would make this test depend on its speed.)
