"""Fair turns at the wiki's AI: askers take turns, so one person's flood never holds everyone else up.

The token's rate limiter (60 requests a minute) serves callers first come, first served: a user who sends 2,000
questions would put everyone else behind all of them. :class:`AskerQueue` sits in front of it and decides who is
sent next: each asker's first two waiting questions in the order they came, and the rest of any flood after
those, round robin *by asker*. Another user's question therefore waits for at most two questions of each other
asker, not for the whole flood, and a question once in line is never pushed back by later ones (until it is
a flood's third), so the wait its asker was told holds.

**Pacing.** Turns are also paced (``pace``, an ``aiolimiter`` leaky bucket: a burst, then the sustained rate).
Without it a flood spends the token's whole minute in its first seconds (59 requests in ~7 s at 10/s) and then
*nobody* gets an answer until the window moves on, ~50 s later, however fair the order. The composition root
paces at the token's live budget: a second's worth at once (9), then the rest of the minute evenly (50 a
minute, a turn every 1.2 s), so the limiter's 59 a minute are used and never exceeded by the pace alone
(benchmarks/bench_burst.py measured the choices: a burst of half the minute and 24 a minute after it left the
token a third idle and answered 300 questions in 95 s instead of 70). Only the wait for the pace is a turn
(``concurrency`` of them, 1 by default); the AI call itself runs after it, so slow answers never hold up the line.
:meth:`BucketPacer.estimate` reads the bucket, so the wait a queued asker is told includes the pace.

At shutdown :meth:`AskerQueue.close` refuses what cannot be answered in time with :class:`ShuttingDown`, so the
adapter tells those askers at once instead of leaving them waiting for a bot that is gone.

In-process: with several replicas each has its own queue (the limiter's budget is still shared through Redis).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from aiolimiter import AsyncLimiter

from kbbot.errors import ShuttingDown

#: Waiting questions per asker whose place is kept: a newcomer goes after them (and before the rest of a flood).
BOOKED = 2

#: Questions waiting for the pace at once (more would only wait there, first come first served).
DEFAULT_CONCURRENCY = 1


class Pacer(Protocol):
    """Spaces the turns out: a burst, then a steady rate (:class:`BucketPacer` in production)."""

    async def acquire(self) -> None:
        """Wait until one more turn may pass."""
        ...

    def estimate(self, position: int) -> float:
        """Seconds from now until the ``position``-th turn from now (1 = the next) passes, each turn asking as
        soon as the one before it passed."""
        ...


class BucketPacer:
    """:class:`Pacer` over an ``aiolimiter`` leaky bucket of ``burst`` turns that drains ``per_second``.

    The estimate reads the bucket's own level (``aiolimiter`` has no public accessor for it) on the bucket's
    clock, its event loop's time: a turn passes once the level leaves room for it, and every turn ahead adds
    one to the level, so the ``n``-th waits until ``level + n - burst`` has drained (nothing while that is
    not positive): aiolimiter's own rule (a turn passes when ``level + 1 <= burst``), played forward.
    """

    def __init__(self, burst: int, per_second: float) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError("a pacer needs a burst of at least 1 and a positive rate")
        self.burst = burst
        self.per_second = per_second
        self._bucket = AsyncLimiter(burst, burst / per_second)

    async def acquire(self) -> None:
        await self._bucket.acquire()

    def estimate(self, position: int) -> float:
        bucket = self._bucket
        level = bucket._level
        if level:
            # Drained since the bucket last looked (never negative: a clock that steps back drains nothing).
            elapsed = max(asyncio.get_running_loop().time() - bucket._last_check, 0.0)
            level = max(level - elapsed * self.per_second, 0.0)
        return max(level + max(position, 1) - self.burst, 0.0) / self.per_second


def pacer(per_minute: int, burst: int) -> BucketPacer | None:
    """At most ``burst`` turns at once, then (per_minute - burst) a minute: never more than ``per_minute`` in
    any minute, evenly spread. None when there is nothing to pace."""
    if burst < 1 or per_minute <= burst:
        return None
    return BucketPacer(burst, (per_minute - burst) / 60)


#: ``estimate(position)`` → seconds until the question at ``position`` (1 = next) is sent upstream.
Estimate = Callable[[int], float]


@dataclass(order=True, slots=True)
class _Waiting:
    """A question waiting for its turn, in the order of the turns: booked ones first, by arrival; then the
    rest of the floods, round robin (by ``round``, then arrival)."""

    tail: bool
    round: int
    arrival: int
    asker: str = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class AskerQueue:
    """Fair turns by asker key. ``await queue.admit(asker)``, then ask upstream.

    Each asker's first :data:`BOOKED` waiting questions are *booked*: they take turns in the order they came,
    and nobody who comes later goes ahead of them, so the wait told to their askers holds. An asker's
    questions past those (a flood) wait behind every booked question and take turns round robin among
    themselves: the n-th waiting question of each flood in the n-th round. A newcomer therefore waits for
    at most two questions of a flooder, never for the flood. (A plain round robin let every later newcomer
    overtake an asker's second question: the waits told to those came true for one in four in
    benchmarks/bench_burst.py.)
    """

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, pace: Pacer | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self._pace = pace
        self._running = 0
        self._line: list[_Waiting] = []  # sorted: the order of the turns
        # asker → (how many it has waiting, the round of its latest waiting flood question or 0)
        self._askers: dict[str, tuple[int, int]] = {}
        self._arrivals = itertools.count()
        self._issued: set[int | None] = set()  # tickets of questions on their way to the line
        self._closed = False
        self._anonymous = itertools.count()

    def waiting(self) -> int:
        return len(self._line)

    def _place_for(self, asker: str | None) -> tuple[bool, int]:
        """(flood, round) of a new question from ``asker``: booked while it has fewer than BOOKED waiting
        and none in the flood; else the round after its own latest, and at least its place in its line."""
        count, latest = self._askers.get(asker, (0, 0)) if asker is not None else (0, 0)
        if count < BOOKED and not latest:
            return False, 0
        return True, max(count + 1, latest + 1)

    def position(self, asker: str | None) -> int:
        """The place in line a new question from ``asker`` would get (1 = next), counting those told their
        wait before it that are still on their way to the line (they come in ahead of it)."""
        place = self._place_for(asker)
        return sum(1 for waiting in self._line if (waiting.tail, waiting.round) <= place) + len(self._issued) + 1

    def ticket(self) -> int:
        """A place in the order of arrival, taken now: pass it to :meth:`admit`, or to :meth:`discard` when
        the question does not come to the line after all. Questions told their wait go in the order they
        were told it, however long each takes to reach the line (posting the notice, the flight)."""
        ticket = next(self._arrivals)
        self._issued.add(ticket)
        return ticket

    def discard(self, ticket: int | None) -> None:
        self._issued.discard(ticket)

    def holding(self) -> int:
        """Questions holding a turn: waiting for the pace now, so each passes it before any waiting one."""
        return self._running

    def ahead(self, asker: str | None) -> int:
        """Questions that pass the pace before a new one from ``asker``: those holding a turn, and those
        before its place in the round robin."""
        return self._running + self.position(asker) - 1

    def pace_waits(self, turns: int) -> list[float]:
        """Seconds from now until each of the next ``turns`` turns has passed the pace (in order)."""
        if self._pace is None:
            return [0.0] * turns
        return [self._pace.estimate(n) for n in range(1, turns + 1)]

    def busy(self) -> bool:
        """True when a new question would have to wait for its turn."""
        return self._running >= self._concurrency or bool(self._line)

    @asynccontextmanager
    async def turn(self, asker: str | None, ticket: int | None = None) -> AsyncIterator[None]:
        """Wait for this asker's turn (raises :class:`ShuttingDown` once closed), hold it for the block.
        ``ticket`` (from :meth:`ticket`): the place in the order of arrival taken when the wait was told."""
        self._issued.discard(ticket)
        if self._closed:
            raise ShuttingDown()
        if self._running < self._concurrency and not self._line:
            self._running += 1
        else:
            key = asker if asker is not None else f"\x00anonymous-{next(self._anonymous)}"
            await self._wait(key, next(self._arrivals) if ticket is None else ticket)
        try:
            yield
        finally:
            self._running -= 1
            self._grant()

    async def admit(self, asker: str | None, ticket: int | None = None) -> None:
        """Wait for this asker's turn and the pace; then the question may go upstream (raises
        :class:`ShuttingDown` once closed)."""
        async with self.turn(asker, ticket):
            if self._pace is not None:
                await self._pace.acquire()

    async def _wait(self, asker: str, arrival: int) -> None:
        tail, due = self._place_for(asker)
        waiting = _Waiting(tail, due, arrival, asker, asyncio.get_running_loop().create_future())
        bisect.insort(self._line, waiting)
        count, latest = self._askers.get(asker, (0, 0))
        self._askers[asker] = (count + 1, due if tail else latest)
        try:
            await waiting.future
        except asyncio.CancelledError:
            future = waiting.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # Granted just as the asker gave up: hand the turn on instead of losing it.
                self._running -= 1
                self._grant()
            else:
                self._forget(waiting)
            raise

    def _forget(self, waiting: _Waiting) -> None:
        try:
            self._line.remove(waiting)
        except ValueError:  # already taken off by _grant or _refuse
            return
        self._left(waiting.asker)

    def _left(self, asker: str) -> None:
        count, latest = self._askers[asker]
        if count > 1:
            self._askers[asker] = (count - 1, latest)
        else:
            del self._askers[asker]

    def _grant(self) -> None:
        while self._running < self._concurrency and self._line:
            waiting = self._line.pop(0)
            self._left(waiting.asker)
            if waiting.future.done():  # cancelled while waiting
                continue
            self._running += 1
            waiting.future.set_result(None)

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
        """Refuse the waiting questions after the first ``skip`` in the order of their turns."""
        refused = self._line[skip:]
        for waiting in refused:
            self._forget(waiting)
            if not waiting.future.done():
                waiting.future.set_exception(ShuttingDown())
        return len(refused)
