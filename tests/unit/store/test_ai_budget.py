"""LimitsAiBudget: a look counts nothing; spends never pass a limit, also when two replicas spend at once.

In process memory and in one real redis-server (two budgets on it stand for two replicas, each with its own
connection and its own lock, so only Redis keeps them from both taking the last answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kbbot.store.ai_budget import LimitsAiBudget, parse_limit
from kbbot.store.redis_store import limits_storage_uri
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

STORES = [pytest.param("memory", id="memory"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]


@pytest.fixture(params=STORES)
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LimitsAiBudget, LimitsAiBudget]]:
    """Two budgets of one bot: one shared memory storage, or two connections to one Redis."""
    if request.param == "memory":
        from limits.aio.storage import MemoryStorage

        shared = MemoryStorage()
        budgets = tuple(LimitsAiBudget(user_limits=parse_limit("3/day"), channel_per_day=4, storage=shared)
                        for _ in range(2))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        uri = limits_storage_uri(server.url)
        budgets = tuple(LimitsAiBudget(user_limits=parse_limit("3/day"), channel_per_day=4, storage=uri)
                        for _ in range(2))
    a, b = budgets
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_a_look_counts_nothing(replicas: tuple[LimitsAiBudget, LimitsAiBudget]) -> None:
    a, b = replicas
    for _ in range(10):
        assert await a.check("slack:U1", "C1") is None
    assert [await b.spend("slack:U1", "C1") for _ in range(3)] == [None] * 3
    refusal = await a.check("slack:U1", "C1")
    assert refusal is not None and (refusal.scope, refusal.limit) == ("user", "3 a day")
    assert refusal.retry_after > 0
    # A look that refuses counts nothing either: another asker still gets the channel's fourth.
    assert await a.spend("slack:U2", "C1") is None
    channel = await b.check("slack:U3", "C1")
    assert channel is not None and (channel.scope, channel.limit) == ("channel", "4 a day")


async def test_concurrent_spends_on_two_replicas_never_pass_the_limit(
    replicas: tuple[LimitsAiBudget, LimitsAiBudget],
) -> None:
    a, b = replicas
    results = await asyncio.gather(*(budget.spend("slack:U1", None) for _ in range(10) for budget in (a, b)))
    assert sum(r is None for r in results) == 3
    refused = [r for r in results if r is not None]
    assert len(refused) == 17 and {r.scope for r in refused} == {"user"}
