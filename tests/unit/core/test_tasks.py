"""cancel_and_wait stops a worker even when its first cancellation is lost, and never hides its caller's own.

The lost cancellation is the real one, not a stand-in: redis-py sends every command through
``asyncio.wait_for(self._send_packed_command(command), self.socket_timeout)`` (redis/asyncio/connection.py,
``Connection.send_packed_command``), and Python 3.11's ``wait_for`` returns the result instead of raising when
the cancel lands after the awaited call completed but before ``wait_for`` resumed (cpython gh-86296, fixed in
3.12 by rebuilding ``wait_for`` on ``asyncio.timeout``). ``_send`` below reproduces that moment exactly: the
send completes and the cancel arrives in the same step of the loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest

from kbbot.core.tasks import cancel_and_wait

#: Only turns a hang (the bug) into a failure; it bounds nothing that works.
HANG_GUARD_SECONDS = 30


def _send() -> tuple[asyncio.Event, asyncio.Future[None], Callable[[], object]]:
    """A call awaited through ``wait_for`` as redis-py awaits a send: ``inside`` is set once the worker waits in
    it; ``complete()`` finishes the send without giving the worker a chance to resume."""
    inside = asyncio.Event()
    sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    return inside, sent, lambda: sent.set_result(None)


async def test_a_worker_whose_cancel_was_lost_in_wait_for_is_cancelled_again() -> None:
    inside, sent, complete = _send()
    ran_on: list[str] = []

    async def worker() -> None:
        inside.set()
        await asyncio.wait_for(sent, timeout=60)  # a Redis command's send
        ran_on.append("after the send")
        await asyncio.Event().wait()  # e.g. the index refresher's sleep until its next run

    task = asyncio.create_task(worker())
    await inside.wait()
    complete()  # the send completes ...
    stopper = asyncio.create_task(cancel_and_wait(task))  # ... and the cancel lands in the same step
    done, _ = await asyncio.wait({stopper}, timeout=HANG_GUARD_SECONDS)
    assert done, "the worker ran on after its cancel was lost, and nobody cancelled it again"
    await stopper
    assert task.cancelled()
    if sys.version_info < (3, 12):  # the bug this guards against: the first cancel was lost
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
