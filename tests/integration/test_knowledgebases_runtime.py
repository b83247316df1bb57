"""Several knowledgebases in one runtime (KBBOT_CONFIG): on one real redis-server each keeps its own namespace,
so caches, 402 state and outboxes stay apart, and people's `/kb use` choices are shared by every replica; each
one's 402 state reaches its own metrics series."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from kbbot.config import Settings
from kbbot.core.models import Asker, Question, Source
from kbbot.runtime import open_runtime
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.scenarios.knowledgebases_support import knowledgebases, three_wikis


@pytest.mark.redis
async def test_each_knowledgebase_has_its_own_namespace_and_choices_are_shared(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with three_wikis() as wikis:
        base = Settings(redis_url=redis_server.url, kbbot_data_dir=tmp_path / "a", index_refresh_seconds=0)
        replica = Settings(redis_url=redis_server.url, kbbot_data_dir=tmp_path / "b", index_refresh_seconds=0)
        async with (
            open_runtime(base, knowledgebases=knowledgebases(wikis, base, tmp_path)) as one,
            open_runtime(replica, knowledgebases=knowledgebases(wikis, replica, tmp_path)) as two,
        ):
            assert one.router is not two.router
            spaces = {name: stack.stores.namespace for name, stack in one.stacks.items() if stack.stores}
            assert len(set(spaces.values())) == 3 and all(spaces.values())
            # Replicas of the bot (same file) use the same namespaces.
            assert spaces == {name: s.stores.namespace for name, s in two.stacks.items() if s.stores}

            q = Question("how do I set up the VPN?", asker=Asker("U1"), platform="slack", places=("C0ENG0001",))
            assert (await one.router.ask(q)).source is Source.AI
            assert (await two.router.ask(q)).source is Source.CACHE  # the other replica shares engineering's cache
            general = Question(q.text, asker=Asker("U1"), platform="slack", places=("C0GENERAL",))
            assert (await two.router.ask(general)).source is Source.AI  # handbook's cache is another one
            assert wikis.eng.stats().billed_queries == 1 and wikis.hr.stats().billed_queries == 1

            wikis.hr.set_ai_quota(0)
            assert (await one.router.ask(Question("holiday days?", platform="slack"))).source is Source.SEARCH
            assert (await two.stacks["handbook"].stores.quota.state()).paused
            assert not (await two.stacks["engineering"].stores.quota.state()).paused

            assert "now ask `maths`" in await one.router.use("slack", "U1", "maths")
            assert await two.router.chosen("slack", "U1") == "maths"  # every replica knows the choice

        client = aioredis.Redis.from_url(redis_server.url)
        try:
            keys = [key.decode() async for key in client.scan_iter(count=1000)]
        finally:
            await client.aclose()
        owners = {key: [ns for ns in spaces.values() if ns and key.startswith(ns)] for key in keys}
        assert all(len(found) == 1 for key, found in owners.items() if ":choices" not in key), owners
        assert all(token not in key for key in keys for token in wikis.environ().values())


async def test_every_knowledgebases_402_state_reaches_its_metrics_series(tmp_path: Path) -> None:
    from kbbot.commands.run import _other_quota_refreshers

    with three_wikis() as wikis:
        base = Settings(kbbot_data_dir=tmp_path / "data")
        async with open_runtime(base, knowledgebases=knowledgebases(wikis, base, tmp_path)) as rt:
            assert rt.stack.name == "handbook"  # the default route
            # Each wiki its own connection pool: a slow wiki cannot take the connections the others need.
            pools = {id(stack.kb._client) for stack in rt.stacks.values() if stack.kb.kind == "perfectwiki"}  # type: ignore[attr-defined]
            assert len(pools) == 2
            await rt.stacks["engineering"].stores.quota.trip()
            for refresh in _other_quota_refreshers(rt):
                await refresh(rt.metrics)
            text = rt.metrics.render()[0].decode()
    assert 'kbbot_quota_paused{kb="engineering"} 1.0' in text
    assert 'kbbot_quota_paused{kb="maths"} 0.0' in text
