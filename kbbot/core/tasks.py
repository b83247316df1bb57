"""Small helpers for the background tasks the core, the index and the weekly digest own."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background worker and wait until it has really stopped, so its ``finally`` blocks have run
    before the caller closes what the worker uses. ``None`` (never started, or already stopped) is a no-op."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
