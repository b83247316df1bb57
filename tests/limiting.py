"""Rate limiters in tests: using up budget, a recording double, simulated time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from kbbot.core.ports import Priority, RateLimiter


async def take(limiter: RateLimiter, priority: Priority = Priority.LIVE) -> None:
    """Take one slot for a request that is answered at once."""
    async with limiter.slot(priority):
        pass


class FakeLimiter:
    """A :class:`RateLimiter` double: records each slot's priority and every server hint, and either never
    makes anyone wait (reporting ``waiting`` callers ahead) or delegates to a real ``inner`` limiter."""

    def __init__(
        self, inner: RateLimiter | None = None, *, waiting: int = 0, seconds_per_position: float = 1.0
    ) -> None:
        self.inner = inner
        self.waiting = waiting
        self.seconds_per_position = seconds_per_position
        self.priorities: list[Priority] = []
        self.observed: list[tuple[int | None, int | None]] = []

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        self.priorities.append(priority)
        if self.inner is None:
            yield
            return
        async with self.inner.slot(priority):
            yield

    def observe(self, left_second: int | None, left_minute: int | None) -> None:
        self.observed.append((left_second, left_minute))
        if self.inner is not None:
            self.inner.observe(left_second, left_minute)

    def queued(self) -> int:
        return self.inner.queued() if self.inner is not None else self.waiting

    def estimate_wait(self, position: int, ready: Sequence[float] = ()) -> float:
        if self.inner is not None:
            return self.inner.estimate_wait(position, ready)
        return max([position * self.seconds_per_position, *(r + self.seconds_per_position for r in ready)])

    async def aclose(self) -> None:
        return None


class SimClock:
    """Simulated time for a limiter (``clock=sim, sleep=sim.sleep``): sleeping moves the clock to the sleeper's
    wake-up time (concurrent sleepers do not add up) after letting everything else that is ready run first.
    :meth:`hold` stops time: sleepers wait until :meth:`release`, so a caller stays in a limiter's queue for
    exactly as long as a test needs; ``sleeping`` counts the sleepers waiting for it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []
        self.sleeping = 0
        self._running = asyncio.Event()
        self._running.set()

    def hold(self) -> None:
        self._running.clear()

    def release(self) -> None:
        self._running.set()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)
        self.sleeping += 1
        try:
            await self._running.wait()
        finally:
            self.sleeping -= 1
        self.now = max(self.now, wake)


async def settle(condition: Callable[[], bool], *, turns: int = 1000) -> None:
    """Let the event loop run until ``condition()`` holds (no wall-clock wait: a bounded number of turns)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")
