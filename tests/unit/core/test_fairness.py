"""AskerQueue: turns round robin by asker, places in line, and refusing what cannot be answered at shutdown."""

from __future__ import annotations

import asyncio

import pytest

from kbbot.core.fairness import AskerQueue, BucketPacer, pacer
from kbbot.errors import ShuttingDown


class Gate:
    """Questions that hold their turn until released, recording the order in which turns were given."""

    def __init__(self, queue: AskerQueue) -> None:
        self.queue = queue
        self.order: list[str] = []
        self.release = asyncio.Event()

    async def ask(self, asker: str | None, label: str, ticket: int | None = None) -> str:
        async with self.queue.turn(asker, ticket):
            self.order.append(label)
            await self.release.wait()
        return label


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_flood_does_not_hold_another_asker_up() -> None:
    queue = AskerQueue(concurrency=1)
    gate = Gate(queue)
    flood = [asyncio.create_task(gate.ask("slack:U1", f"flood-{n}")) for n in range(50)]
    await settle()
    other = asyncio.create_task(gate.ask("slack:U2", "other"))
    await settle()
    assert queue.position("slack:U3") == 4  # a newcomer: after U1's two booked questions and U2's
    assert queue.position("slack:U2") == 4  # U2's second is booked too
    gate.release.set()
    await asyncio.gather(*flood, other)
    # U1's first question was running; U2 went after U1's two booked ones, not after the 49.
    assert gate.order[:4] == ["flood-0", "flood-1", "flood-2", "other"]


async def test_booked_questions_by_arrival_then_floods_round_robin_and_fifo_within_one() -> None:
    queue = AskerQueue(concurrency=1)
    gate = Gate(queue)
    tasks = [asyncio.create_task(gate.ask("a", "a0"))]
    await settle()
    tasks += [asyncio.create_task(gate.ask(asker, f"{asker}{n}")) for asker in "abc" for n in range(1, 5)]
    await settle()
    assert queue.position("d") == 7  # a newcomer: after the two booked of each, before any flood's third
    late = asyncio.create_task(gate.ask("d", "d1"))
    await settle()
    gate.release.set()
    await asyncio.gather(*tasks, late)
    booked = ["a1", "a2", "b1", "b2", "c1", "c2", "d1"]
    assert gate.order == ["a0", *booked, "a3", "b3", "c3", "a4", "b4", "c4"]


async def test_a_ticket_keeps_the_place_taken_when_the_wait_was_told() -> None:
    queue = AskerQueue(concurrency=1)
    gate = Gate(queue)
    tasks = [asyncio.create_task(gate.ask("a", "a0"))]
    await settle()
    ticket = queue.ticket()  # b is told its wait, and is still on its way to the line (posting the notice)
    assert queue.position("c") == 2  # c is told after b: b's place counts
    tasks.append(asyncio.create_task(gate.ask("c", "c1")))
    await settle()
    tasks.append(asyncio.create_task(gate.ask("b", "b1", ticket)))
    await settle()
    unused = queue.ticket()
    queue.discard(unused)  # a question that never came to the line (answered from the cache meanwhile)
    assert queue.position("d") == 3
    gate.release.set()
    await asyncio.gather(*tasks)
    assert gate.order == ["a0", "b1", "c1"]


async def test_a_cancelled_waiter_gives_its_place_up_and_a_cancelled_grant_hands_the_turn_on() -> None:
    queue = AskerQueue(concurrency=1)
    gate = Gate(queue)
    first = asyncio.create_task(gate.ask("a", "a0"))
    await settle()
    gone = asyncio.create_task(gate.ask("b", "b0"))
    later = asyncio.create_task(gate.ask("c", "c0"))
    await settle()
    gone.cancel()
    await settle()
    assert queue.waiting() == 1
    gate.release.set()
    await asyncio.gather(first, later)
    assert gate.order == ["a0", "c0"] and queue.waiting() == 0 and not queue.busy()


async def test_close_refuses_what_cannot_be_answered_in_time_and_new_questions() -> None:
    queue = AskerQueue(concurrency=1)
    gate = Gate(queue)
    running = asyncio.create_task(gate.ask("a", "a0"))
    await settle()
    waiting = [asyncio.create_task(gate.ask(f"u{n}", f"u{n}")) for n in range(10)]
    await settle()
    # One turn a second: within 3.5 s the next three can be answered; the seven after them cannot.
    assert queue.close(answer_within=3.5, estimate=float) == 7
    with pytest.raises(ShuttingDown):
        await gate.ask("new", "new")
    await settle()
    refused = [t for t in waiting if t.done()]
    assert len(refused) == 7 and all(isinstance(t.exception(), ShuttingDown) for t in refused)
    assert queue.refuse_waiting() == 3  # the time is up for the rest
    gate.release.set()
    assert await running == "a0"  # what had its turn finishes
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ShuttingDown) for r in results)


async def test_anonymous_questions_each_take_their_own_turn() -> None:
    queue = AskerQueue(concurrency=1)
    gate = Gate(queue)
    tasks = [asyncio.create_task(gate.ask(None, f"q{n}")) for n in range(3)]
    await settle()
    assert queue.waiting() == 2
    gate.release.set()
    assert await asyncio.gather(*tasks) == ["q0", "q1", "q2"]
    with pytest.raises(ValueError):
        AskerQueue(concurrency=0)


def test_pacer_never_exceeds_the_minute_and_spreads_the_rest() -> None:
    bucket = pacer(59, 9)
    assert isinstance(bucket, BucketPacer)
    # A burst of 9, then 50 more over the minute: 59 in any minute, one every 1.2 s once the burst is spent.
    assert bucket.burst == 9 and bucket.per_second == pytest.approx(50 / 60)
    assert pacer(5, 5) is None and pacer(60, 0) is None
