"""How kbbot stops its background tasks (core, index, digest, Slack checks, lease renewer): one helper."""

from __future__ import annotations

import asyncio
from typing import Any

#: How long a cancelled worker may go on running before it is cancelled again. A cancellation can be lost:
#: Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when the cancel lands just as the
#: awaited call completes (cpython gh-86296, fixed in 3.12), and redis-py wraps every command's send in it. A
#: worker cancelled mid-command (the index sync waiting for its share of the rate budget in Redis) would run
#: on, then sleep until its next run while its stopper waited forever.
RECANCEL_SECONDS = 0.5


def raise_if_cancelled() -> None:
    """Raise :class:`asyncio.CancelledError` when the running task was cancelled but runs on (a library lost the
    cancellation, see :data:`RECANCEL_SECONDS`; ``asyncio.timeout`` and task groups take back the cancels they
    handle). A loop of many steps calls it between them, so a lost cancel costs one step, not the rest."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, recancel_seconds: float = RECANCEL_SECONDS) -> None:
    """Cancel a background worker and wait until it has really stopped, so its ``finally`` blocks have run
    before the caller closes what the worker uses. ``None`` (never started, or already stopped) is a no-op.

    A worker still running ``recancel_seconds`` after a cancel is cancelled again (a library lost the first
    one, see :data:`RECANCEL_SECONDS`). Cancelling the caller stops its waiting (a shutdown step's timeout
    works); an error the worker ended with is raised."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recancel_seconds)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
