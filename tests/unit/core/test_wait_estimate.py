"""The wait a queued asker is told: their place among the fair turns, the pacer's bucket, the limiter's windows.

The pacer's clock is its event loop's (``aiolimiter`` reads ``loop.time()``): the tests replace the running loop's
``time`` with a clock they step by hand. Nothing here sleeps or waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kbbot.core.ask import AskService, QueuePosition
from kbbot.core.fairness import AskerQueue, BucketPacer
from kbbot.core.models import Asker, Question
from kbbot.store.limiter import TokenRateLimiter
from kbbot.store.memory import LocalSingleFlight, MemoryQuotaGate, TTLAnswerCache
from tests.fakes.ai_kb import AiKnowledgeBase
from tests.limiting import SimClock, take
from tests.unit.core.test_ask import FakeSearch
from tests.unit.core.test_fairness import Gate, settle

TURN = 1.2  # the production pace on a 60/min token: a burst of 9, then 50 a minute


class LoopClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def loop_clock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LoopClock]:
    clock = LoopClock()
    monkeypatch.setattr(asyncio.get_running_loop(), "time", clock)
    yield clock


async def spend_burst(pacer: BucketPacer) -> None:
    for _ in range(pacer.burst):
        await pacer.acquire()  # room in the bucket: passes at once, no timer


async def test_a_fresh_pacer_lets_the_burst_through_then_one_turn_per_interval(loop_clock: LoopClock) -> None:
    pacer = BucketPacer(9, 50 / 60)
    assert [pacer.estimate(n) for n in (1, 9, 10, 11, 20)] == pytest.approx([0, 0, TURN, 2 * TURN, 11 * TURN])


async def test_after_a_burst_each_turn_waits_for_the_bucket_to_drain(loop_clock: LoopClock) -> None:
    pacer = BucketPacer(9, 50 / 60)
    await spend_burst(pacer)
    assert [pacer.estimate(n) for n in (1, 2, 5)] == pytest.approx([TURN, 2 * TURN, 5 * TURN])
    loop_clock.advance(TURN / 2)
    assert [pacer.estimate(n) for n in (1, 2)] == pytest.approx([TURN / 2, 1.5 * TURN])
    loop_clock.advance(TURN / 2)
    assert pacer.estimate(1) == pytest.approx(0)
    await pacer.acquire()  # the estimate said "now", and the bucket agrees: no wait
    assert pacer.estimate(1) == pytest.approx(TURN)
    loop_clock.advance(9 * TURN)  # drained: the whole burst again
    assert [pacer.estimate(n) for n in (9, 10)] == pytest.approx([0, TURN])


async def test_a_clock_stepping_back_never_makes_the_wait_shorter_or_negative(loop_clock: LoopClock) -> None:
    pacer = BucketPacer(9, 50 / 60)
    await spend_burst(pacer)
    loop_clock.advance(-30)
    assert pacer.estimate(1) == pytest.approx(TURN)
    assert BucketPacer(3, 1).estimate(1) == 0  # never used: no clock needed


def make_service(turns: AskerQueue, limiter: TokenRateLimiter) -> AskService:
    return AskService(
        kb=AiKnowledgeBase(),  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=60),
        fallback=FakeSearch(),
        limiter=limiter,
        turns=turns,
    )


async def told(service: AskService, asking: list[asyncio.Task[object]], asker: str, text: str) -> QueuePosition:
    """What ``asker`` is told when asking ``text`` now (the question stays in line, in ``asking``)."""
    heard: list[QueuePosition] = []

    async def listener(position: QueuePosition) -> None:
        heard.append(position)

    asking.append(
        asyncio.create_task(service.ask(Question(text, asker=Asker(asker), platform="t"), on_queued=listener))
    )
    await settle()
    assert len(heard) == 1
    return heard[0]


async def finish(service: AskService, gate: Gate, tasks: list[asyncio.Task[object]]) -> None:
    """Refuse what still waits (no pace is ever waited for here) and let the held turns go."""
    service.close(answer_within=0)
    gate.release.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_told_wait_counts_the_fair_turns_ahead_and_the_pace(loop_clock: LoopClock) -> None:
    sim = SimClock()
    pacer = BucketPacer(9, 50 / 60)
    turns = AskerQueue(pace=pacer)
    service = make_service(turns, TokenRateLimiter("token", clock=sim, sleep=sim.sleep))
    await spend_burst(pacer)
    gate = Gate(turns)
    tasks: list[asyncio.Task[object]] = [asyncio.create_task(gate.ask("t:F", "flood-0"))]  # passes the pace next
    await settle()
    tasks += [asyncio.create_task(gate.ask("t:F", f"flood-{n}")) for n in range(1, 6)]
    tasks += [asyncio.create_task(gate.ask("t:B", "b-1"))]
    await settle()
    # A newcomer goes after the holder, the flood's two booked questions and B's: the 5th turn through the pace.
    newcomer = await told(service, tasks, "N", "how do I deploy?")
    assert (newcomer.position, newcomer.wait_seconds) == (5, pytest.approx(5 * TURN))
    # The flooder's next question waits for everything in line: the booked ones, then its own flood's.
    flood = await told(service, tasks, "F", "and the VPN?")
    assert (flood.position, flood.wait_seconds) == (9, pytest.approx(9 * TURN))
    # N's second question is booked too: right after its first, before the flood's third.
    loop_clock.advance(TURN)  # and the bucket drained one turn's worth since: one turn less to wait
    second = await told(service, tasks, "N", "and the wiki?")
    assert (second.position, second.wait_seconds) == (6, pytest.approx(5 * TURN))
    await finish(service, gate, tasks)


async def test_the_told_wait_includes_the_limiters_windows_when_they_are_the_later_wait(
    loop_clock: LoopClock,
) -> None:
    sim = SimClock()
    limiter = TokenRateLimiter("token", clock=sim, sleep=sim.sleep)
    turns = AskerQueue(pace=BucketPacer(9, 50 / 60))
    service = make_service(turns, limiter)
    started = sim.now
    for _ in range(59):  # the token's live minute, used up (9 a second)
        await take(limiter)
    gate = Gate(turns)
    tasks: list[asyncio.Task[object]] = [asyncio.create_task(gate.ask("t:A", "a-0"))]
    await settle()
    # The pace would let the holder and this one through at once; the minute frees its first slots later.
    position = await told(service, tasks, "N", "how do I deploy?")
    assert position.position == 2
    # The first 9 of the 59 were sent together: the holder and this one take two of their slots as they free.
    assert position.wait_seconds == pytest.approx(started + 60 - sim.now)
    assert position.wait_seconds > 50
    await finish(service, gate, tasks)
