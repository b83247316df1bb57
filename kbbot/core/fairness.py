"""Fair turns at the wiki's AI: askers take turns, so one person's flood never holds everyone else up.

The token's rate limiter (60 requests a minute) serves callers first come, first served: a user who sends 2,000
questions would put everyone else behind all of them. :class:`AskerQueue` sits in front of it and decides who is
sent next, round robin *by asker*: each asker with questions waiting gets one turn before anyone gets a second.
Another user's question therefore waits for at most one question of each other asker, not for the whole flood.

**Pacing.** Turns are also paced (``pace``, an ``aiolimiter`` leaky bucket: a burst, then the sustained rate).
Without it a flood spends the token's whole minute in its first seconds (59 requests in ~7 s at 10/s) and then
*nobody* gets an answer until the window moves on, ~50 s later, however fair the order. Paced, a turn comes up
every second or so for as long as the flood lasts, and the next one goes to someone else. Only the wait for the
pace is a turn (``concurrency`` of them, 1 by default); the AI call itself runs after it, so slow answers never
hold up the line.

At shutdown :meth:`AskerQueue.close` refuses what cannot be answered in time with :class:`ShuttingDown`, so the
adapter tells those askers at once instead of leaving them waiting for a bot that is gone.

In-process: with several replicas each has its own queue (the limiter's budget is still shared through Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from aiolimiter import AsyncLimiter

from kbbot.errors import ShuttingDown

#: Questions waiting for the pace at once (more would only wait there, first come first served).
DEFAULT_CONCURRENCY = 1


class Pacer(Protocol):
    """Spaces the turns out (``aiolimiter.AsyncLimiter`` in production)."""

    async def acquire(self, amount: float = 1) -> None: ...


def pacer(per_minute: int, burst: int) -> Pacer | None:
    """At most ``burst`` turns at once, then (per_minute - burst) a minute: never more than ``per_minute`` in
    any minute, evenly spread. None when there is nothing to pace."""
    if burst < 1 or per_minute <= burst:
        return None
    return AsyncLimiter(burst, 60 * burst / (per_minute - burst))

#: ``estimate(position)`` → seconds until the question at ``position`` (1 = next) is sent upstream.
Estimate = Callable[[int], float]


class AskerQueue:
    """Round-robin turns by asker key. ``async with queue.turn(asker): ask upstream``."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, pace: Pacer | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self._pace = pace
        self._running = 0
        # asker → its waiting questions (oldest first); the dict's order is the round robin.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._closed = False
        self._anonymous = itertools.count()

    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def position(self, asker: str | None) -> int:
        """The place in line a new question from ``asker`` would get (1 = next): one turn for each other
        asker with questions waiting, up to as many as this asker already has waiting, plus those."""
        mine = len(self._waiting.get(asker, ())) if asker is not None else 0
        others = sum(min(len(q), mine + 1) for key, q in self._waiting.items() if key != asker)
        return others + mine + 1

    def busy(self) -> bool:
        """True when a new question would have to wait for its turn."""
        return self._running >= self._concurrency or bool(self._waiting)

    @asynccontextmanager
    async def turn(self, asker: str | None) -> AsyncIterator[None]:
        """Wait for this asker's turn (raises :class:`ShuttingDown` once closed), hold it for the block."""
        if self._closed:
            raise ShuttingDown()
        if self._running < self._concurrency and not self._waiting:
            self._running += 1
        else:
            await self._wait(asker if asker is not None else f"\x00anonymous-{next(self._anonymous)}")
        try:
            yield
        finally:
            self._running -= 1
            self._grant()

    async def admit(self, asker: str | None) -> None:
        """Wait for this asker's turn and the pace; then the question may go upstream (raises
        :class:`ShuttingDown` once closed)."""
        async with self.turn(asker):
            if self._pace is not None:
                await self._pace.acquire()

    async def _wait(self, asker: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(asker, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                # Granted just as the asker gave up: hand the turn on instead of losing it.
                self._running -= 1
                self._grant()
            else:
                self._forget(asker, future)
            raise

    def _forget(self, asker: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(asker)
        if queue is None:
            return
        with contextlib.suppress(ValueError):  # already taken off by _grant or _refuse
            queue.remove(future)
        if not queue:
            del self._waiting[asker]

    def _grant(self) -> None:
        while self._running < self._concurrency and self._waiting:
            asker, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            # This asker goes to the back of the round robin (or leaves it when it has nothing else waiting).
            del self._waiting[asker]
            if queue:
                self._waiting[asker] = queue
            if future.done():  # cancelled while waiting
                continue
            self._running += 1
            future.set_result(None)

    def close(self, *, answer_within: float, estimate: Estimate) -> int:
        """Stop taking questions: refuse new ones, and every waiting one whose turn is not expected within
        ``answer_within`` seconds (``estimate`` turns a place in line into seconds). Returns how many were
        refused now; call :meth:`refuse_waiting` when the time is up for the rest."""
        self._closed = True
        keep = 0
        while keep < self.waiting() and estimate(keep + 1) < answer_within:
            keep += 1
        return self._refuse(skip=keep)

    def refuse_waiting(self) -> int:
        """Refuse every question still waiting for its turn (the shutdown's time for answers is up)."""
        self._closed = True
        return self._refuse(skip=0)

    def _refuse(self, *, skip: int) -> int:
        """Refuse the waiting questions after the first ``skip`` of the round-robin order."""
        order = self._round_robin()
        for asker, future in order[skip:]:
            self._forget(asker, future)
            if not future.done():
                future.set_exception(ShuttingDown())
        return len(order) - min(skip, len(order))

    def _round_robin(self) -> list[tuple[str, asyncio.Future[None]]]:
        """Waiting questions in the order they would be granted."""
        queues = [(asker, list(queue)) for asker, queue in self._waiting.items()]
        order: list[tuple[str, asyncio.Future[None]]] = []
        for rank in itertools.count():
            row = [(asker, queue[rank]) for asker, queue in queues if rank < len(queue)]
            if not row:
                return order
            order.extend(row)
        return order  # pragma: no cover - itertools.count never ends
