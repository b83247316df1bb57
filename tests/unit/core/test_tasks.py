"""cancel_and_wait stops a worker even when its first cancellation is lost, and never hides its caller's own.

The lost cancellation is the real one (Python 3.11's ``wait_for`` as redis-py sends through it): see
:mod:`tests.cancels`.
"""

from __future__ import annotations

import asyncio

import pytest

from kbbot.core.tasks import cancel_and_wait
from tests.cancels import HANG_GUARD_SECONDS, LOSES_CANCELS, LostSend


async def test_a_worker_whose_cancel_was_lost_in_wait_for_is_cancelled_again() -> None:
    send = LostSend()
    ran_on: list[str] = []

    async def worker() -> None:
        await send()  # a Redis command's send
        ran_on.append("after the send")
        await asyncio.Event().wait()  # e.g. the index refresher's sleep until its next run

    task = asyncio.create_task(worker())
    await send.inside.wait()
    send.complete()  # the send completes ...
    stopper = asyncio.create_task(cancel_and_wait(task))  # ... and the cancel lands in the same step
    done, _ = await asyncio.wait({stopper}, timeout=HANG_GUARD_SECONDS)
    assert done, "the worker ran on after its cancel was lost, and nobody cancelled it again"
    await stopper
    assert task.cancelled()
    if LOSES_CANCELS:  # the bug this guards against: the first cancel was lost
        assert ran_on == ["after the send"]


async def test_cancelling_the_caller_stops_its_wait_and_is_not_hidden() -> None:
    """A shutdown step's timeout cancels the stopper: that must end the step, even with a worker that will not
    stop (the old helper suppressed every CancelledError, its caller's too)."""
    release = asyncio.Event()
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancels += 1

    worker = asyncio.create_task(stubborn())
    stopper = asyncio.create_task(cancel_and_wait(worker))
    try:
        while cancels == 0:  # the stopper has cancelled the worker once and waits
            await asyncio.sleep(0)
        stopper.cancel()
        done, _ = await asyncio.wait({stopper}, timeout=HANG_GUARD_SECONDS)
        assert done, "cancelling the stopper did not end its wait"
        assert stopper.cancelled()
        assert not worker.done()
    finally:
        release.set()
    await worker


async def test_an_error_the_worker_ended_with_is_raised() -> None:
    async def failing() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)  # let it start waiting
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)


async def test_none_and_finished_tasks_are_a_no_op() -> None:
    await cancel_and_wait(None)
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    await cancel_and_wait(task)
    assert not task.cancelled()
