from __future__ import annotations

import asyncio
from pathlib import Path

from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryFeedbackStore
from kbbot.store.sqlite_feedback import SqliteFeedbackStore


async def test_single_flight_cancelling_one_waiter_does_not_cancel_others() -> None:
    flights = LocalSingleFlight()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    second = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    second.cancel()
    assert await first == "done"
    assert calls == 1


async def test_deduper() -> None:
    dedupe = MemoryDeduper()
    assert await dedupe.first_seen("Ev1")
    assert not await dedupe.first_seen("Ev1")
    assert await dedupe.first_seen("Ev2")


async def test_feedback_one_vote_per_user(tmp_path: Path) -> None:
    for store in (MemoryFeedbackStore(), SqliteFeedbackStore(tmp_path / "fb.sqlite3")):
        await store.record(platform="slack", question="q", user_id="U1", helpful=True)
        await store.record(platform="slack", question="q", user_id="U1", helpful=False)
        await store.record(platform="slack", question="q", user_id="U2", helpful=True)
        counts = await store.counts()
        assert (counts.helpful, counts.not_helpful) == (1, 1)


async def test_sqlite_feedback_survives_restart(tmp_path: Path) -> None:
    store = SqliteFeedbackStore(tmp_path / "fb.sqlite3")
    await store.record(platform="discord", question="q", user_id="1", helpful=True)
    await store.aclose()
    again = SqliteFeedbackStore(tmp_path / "fb.sqlite3")
    assert (await again.counts()).helpful == 1


async def test_single_flight_cancelling_the_first_caller_does_not_cancel_the_others() -> None:
    # The first caller runs the flight; when it gives up (its Slack/Discord task is cancelled), everybody who
    # joined it must still get the answer, as with RedisSingleFlight.
    flights = LocalSingleFlight()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    second = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "done"
    assert calls == 1
    # The finished flight is forgotten: a later call runs again.
    assert await flights.run("k", work) == "done"
    assert calls == 2
