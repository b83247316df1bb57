from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryFeedbackStore
from kbbot.store.sqlite_feedback import SqliteFeedbackStore


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


@pytest.mark.parametrize("gives_up", ["first", "second"])
async def test_single_flight_a_caller_giving_up_does_not_cancel_the_others(gives_up: str) -> None:
    # The first caller runs the flight; when either caller gives up (its Slack/Discord task is cancelled),
    # the other must still get the answer, as with RedisSingleFlight.
    flights = LocalSingleFlight()
    calls = 0
    release = asyncio.Event()  # the flight finishes when the test says so, not after some wall-clock time

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "done"

    first = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    second = asyncio.create_task(flights.run("k", work))
    for _ in range(5):  # both callers reach the flight and wait in it
        await asyncio.sleep(0)
    assert calls == 1 and not first.done() and not second.done()
    cancelled, other = (first, second) if gives_up == "first" else (second, first)
    cancelled.cancel()
    release.set()
    assert await other == "done"
    assert calls == 1
    # The finished flight is forgotten: a later call runs again.
    assert await flights.run("k", work) == "done"
    assert calls == 2
