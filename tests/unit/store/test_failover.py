"""RedisHealth and the failover wrappers with stand-in stores (the real outage is tests/integration/
test_redis_outage.py): who gets the call, how often Redis is retried while down, what is logged."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from kbbot.errors import SaveError
from kbbot.store.failover import FailoverDeduper, RedisHealth, RequiredOutbox
from kbbot.store.memory import MemoryDeduper


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FlakyDeduper:
    """A Redis deduper stand-in that is down while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def first_seen(self, key: str, ttl_seconds: int = 3600) -> bool:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("Error 111 connecting to redis://:pw@10.0.0.1:6379")
        return True


async def test_outage_is_logged_once_and_redis_retried_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    health = RedisHealth(retry_seconds=5, clock=clock)
    redis = FlakyDeduper()
    deduper = FailoverDeduper(redis, MemoryDeduper(), health)
    redis.down = True
    with caplog.at_level(logging.WARNING, logger="kbbot.store.failover"):
        assert await deduper.first_seen("Ev1")  # answered from this process's memory
        assert not await deduper.first_seen("Ev1")  # and a redelivery is still caught
        assert [await deduper.first_seen(f"Ev{n}") for n in range(2, 10)] == [True] * 8
        assert redis.calls == 1 and not health.up  # no connect attempt per call while down
        clock.now += 5
        assert await deduper.first_seen("Ev10")
        assert redis.calls == 2  # one retry per interval
        redis.down = False
        clock.now += 5
        assert await deduper.first_seen("Ev11")
        assert health.up and redis.calls == 3
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2 and "cannot be reached" in messages[0] and "reachable again" in messages[1]
    assert "pw@" not in " ".join(messages)  # the URL (and its password) never reaches the log


async def test_redis_answering_with_an_error_is_not_an_outage() -> None:
    class Broken(FlakyDeduper):
        async def first_seen(self, key: str, ttl_seconds: int = 3600) -> bool:
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    health = RedisHealth()
    with pytest.raises(ResponseError):
        await FailoverDeduper(Broken(), MemoryDeduper(), health).first_seen("Ev1")
    assert health.up


async def test_saves_fail_clearly_while_down_and_the_worker_sees_nothing_due() -> None:
    class DownOutbox:
        async def add(self, *args: object, **kwargs: object) -> int:
            raise RedisConnectionError("down")

        async def pending(self) -> list[object]:
            raise RedisConnectionError("down")

    health = RedisHealth(clock=Clock())
    outbox = RequiredOutbox(DownOutbox(), health)  # type: ignore[arg-type]
    with pytest.raises(SaveError, match="Saving is paused"):
        await outbox.add(object(), now=0)  # type: ignore[arg-type]
    assert await outbox.pending() == []
    with pytest.raises(SaveError, match="Saving is paused"):  # still down: refused without trying Redis
        await outbox.add(object(), now=0)  # type: ignore[arg-type]


async def test_probe_reports_degraded_and_recovers() -> None:
    health = RedisHealth(clock=Clock())
    state = {"down": True}

    async def ping() -> bool:
        if state["down"]:
            raise RedisConnectionError("down")
        return True

    probe = health.probe(ping)
    assert (await probe()).startswith("degraded: Redis is unreachable (ConnectionError)")
    state["down"] = False
    assert await probe() == "ok" and health.up
