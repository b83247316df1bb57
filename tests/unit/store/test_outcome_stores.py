"""The outcome log: SQLite and Redis behave the same (one contract, two stores), and keep no user id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbbot.core.outcomes import Kind, Outcome, OutcomeLog
from kbbot.store.redis_outcomes import RedisOutcomeLog
from kbbot.store.redis_store import connect_redis
from kbbot.store.sqlite_outcomes import MAX_QUESTION_CHARS, SqliteOutcomeLog
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

DAY = 86400.0
T0 = 1_764_547_200.0  # 2025-12-01T00:00:00Z


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OutcomeLog]:
    if request.param == "sqlite":
        log = SqliteOutcomeLog(tmp_path / "outcomes.sqlite3")
        yield log
        await log.aclose()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = await connect_redis(server.url)
    yield RedisOutcomeLog(client, prefix="kbbot:test-kb:")
    await client.aclose()


def outcome(at: float, kind: Kind = Kind.EMPTY, question: str | None = "where is the office?") -> Outcome:
    return Outcome(at, "slack", "C0123ABCD", "test-kb", kind, "search", question)


async def test_round_trip_in_time_order_duplicates_kept(store: OutcomeLog) -> None:
    await store.record(outcome(T0 + 5))
    await store.record(outcome(T0 + 1, Kind.ANSWERED, None))
    await store.record(outcome(T0 + 5))  # the same question twice at once is two outcomes
    got = await store.since(T0)
    assert [o.at for o in got] == [T0 + 1, T0 + 5, T0 + 5]
    assert got[0] == outcome(T0 + 1, Kind.ANSWERED, None)
    assert await store.since(T0 + 2) == [outcome(T0 + 5), outcome(T0 + 5)]


async def test_hostile_text_survives_and_is_bounded(store: OutcomeLog) -> None:
    texts = ["", "<script>alert(1)</script>", "emoji 🤖 \x00\x1b[31m ünïcödé", "x" * 100_000]
    for n, text in enumerate(texts):
        await store.record(outcome(T0 + n, question=text))
    got = [o.question for o in await store.since(T0)]
    assert got[:3] == ["", "<script>alert(1)</script>", "emoji 🤖 \x00\x1b[31m ünïcödé"]
    assert got[3] == "x" * MAX_QUESTION_CHARS


async def test_ai_calls_per_day_and_retention(store: OutcomeLog) -> None:
    for day, calls in (("2025-11-30", 2), ("2025-12-01", 3)):
        for _ in range(calls):
            await store.count_ai_call(day)
    assert await store.ai_calls("2025-12-01") == {"2025-12-01": 3}
    assert await store.ai_calls("2025-01-01") == {"2025-11-30": 2, "2025-12-01": 3}

    await store.record(outcome(T0 - 2 * DAY))
    await store.record(outcome(T0 + 10))
    assert await store.prune(T0) == 1
    assert [o.at for o in await store.since(0)] == [T0 + 10]
    assert await store.ai_calls("2025-01-01") == {"2025-12-01": 3}  # days before the cut-off went too


async def test_redis_keys_are_namespaced(redis_server: RedisServer) -> None:
    client = await connect_redis(redis_server.url)
    try:
        log = RedisOutcomeLog(client, prefix="kbbot:kb-a:")
        await log.record(outcome(T0))
        await log.count_ai_call("2025-12-01")
        assert sorted(await client.keys("*")) == [b"kbbot:kb-a:ai-calls", b"kbbot:kb-a:outcomes"]
        assert await RedisOutcomeLog(client, prefix="kbbot:kb-b:").since(0) == []
        await client.zadd("kbbot:kb-a:outcomes", {"not json": T0})  # a foreign member never breaks a report
        assert len(await log.since(0)) == 1
    finally:
        await client.aclose()


async def test_redis_outage_drops_statistics_quietly(tmp_path: Path) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from kbbot.store.failover import FailoverOutcomeLog, RedisHealth

    class Down(SqliteOutcomeLog):
        down = True

        async def record(self, outcome: Outcome) -> None:
            if self.down:
                raise RedisConnectionError("Error 111 connecting to redis://:pw@10.0.0.1")
            await super().record(outcome)

        async def since(self, at: float) -> list[Outcome]:
            if self.down:
                raise RedisConnectionError("down")
            return await super().since(at)

    primary = Down(tmp_path / "o.sqlite3")
    clock = [100.0]
    log = FailoverOutcomeLog(primary, RedisHealth(retry_seconds=5, clock=lambda: clock[0]))
    await log.record(outcome(T0))  # lost: statistics are not worth an error per question
    assert await log.since(0) == []
    primary.down = False
    clock[0] += 5
    await log.record(outcome(T0 + 1))
    assert [o.at for o in await log.since(0)] == [T0 + 1]
    await log.aclose()
