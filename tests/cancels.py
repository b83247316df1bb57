"""A cancellation lost the way Python 3.11 loses it, for the tests of whatever stops a background task.

The lost cancellation is the real one, not a stand-in: redis-py sends every command through
``asyncio.wait_for(self._send_packed_command(command), self.socket_timeout)`` (redis/asyncio/connection.py,
``Connection.send_packed_command``), and Python 3.11's ``wait_for`` returns the result instead of raising when
the cancel lands after the awaited call completed but before ``wait_for`` resumed (cpython gh-86296, fixed in
3.12 by rebuilding ``wait_for`` on ``asyncio.timeout``). :class:`LostSend` reproduces that moment exactly: the
send completes and the cancel arrives in the same step of the loop.
"""

from __future__ import annotations

import asyncio
import sys

#: Only turns a hang (the bug) into a failure; it bounds nothing that works.
HANG_GUARD_SECONDS = 30

#: Whether this Python loses such a cancellation (then the code under test must deliver it again).
LOSES_CANCELS = sys.version_info < (3, 12)


class LostSend:
    """A call awaited through ``wait_for`` as redis-py awaits a send. ``inside`` is set once a worker waits in
    it; ``complete()`` finishes the send without giving the worker a chance to resume, so a cancel issued right
    after it, in the same step, is the one 3.11 loses. Called again once complete, it returns at once."""

    def __init__(self) -> None:
        self.inside = asyncio.Event()
        self.calls = 0
        self._sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __call__(self, *_: object) -> None:
        self.calls += 1
        self.inside.set()
        await asyncio.wait_for(self._sent, timeout=60)

    def complete(self) -> None:
        self._sent.set_result(None)
