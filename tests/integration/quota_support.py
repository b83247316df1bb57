"""The 402 breaker in integration tests: the wall clock its in-process state reads, and its probe coming due
(shared by the tests of several knowledgebases' quotas and of the AI budget while paused)."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.fakes.redis_server import lapse


class Clock:
    """The in-process breaker's wall clock, moved by the test (Redis times its probe interval itself)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def probe_due(clock: Clock, redis_url: str | None) -> None:
    """The breaker's probe interval (QUOTA_PROBE_SECONDS, 3600) has passed."""
    clock.now += 3601
    if redis_url is not None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await lapse(client, "*{quota}:probe", ttl_seconds=3600)
        finally:
            await client.aclose()
