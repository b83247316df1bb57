"""In-process implementations of the core's ports: the embedded default for a single bot process."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from cachetools import TTLCache

from kbbot.core.models import Answer
from kbbot.core.ports import FeedbackCounts, QuotaState

T = TypeVar("T")


class TTLAnswerCache:
    """Answers by normalized question in a ``cachetools.TTLCache`` (TTL + LRU size bound)."""

    def __init__(self, *, ttl_seconds: float, max_entries: int, timer: Callable[[], float] = time.monotonic):
        # ttl 0 disables caching; TTLCache needs a positive ttl, so keep a 1-entry cache that is never written.
        self._enabled = ttl_seconds > 0
        self._cache: TTLCache[str, Answer] = TTLCache(maxsize=max_entries, ttl=max(ttl_seconds, 1), timer=timer)

    async def get(self, key: str) -> Answer | None:
        return self._cache.get(key)

    async def set(self, key: str, answer: Answer) -> None:
        if self._enabled:
            self._cache[key] = answer

    async def size(self) -> int:
        return len(self._cache)

    async def aclose(self) -> None:
        self._cache.clear()


class LocalSingleFlight:
    """Concurrent calls with the same key share one execution (and its result or exception)."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[object]] = {}

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        flight = self._inflight.get(key)
        if flight is None:
            # The flight runs in its own task, so the first caller giving up (its listener cancelled) does not
            # cancel the answer everybody who joined it is waiting for.
            flight = cast("asyncio.Future[object]", asyncio.ensure_future(fn()))
            self._inflight[key] = flight
            flight.add_done_callback(functools.partial(self._forget, key))
        # shield: one waiter being cancelled (a user gave up) must not cancel everybody else's answer.
        return cast(T, await asyncio.shield(flight))

    def _forget(self, key: str, flight: asyncio.Future[object]) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        if not flight.cancelled():
            # Retrieved so a flight whose callers all gave up does not log "exception was never retrieved".
            flight.exception()


class MemoryQuotaGate:
    """The 402 breaker for one process: after a trip, one probe per ``probe_seconds``."""

    def __init__(self, *, probe_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._probe_seconds = probe_seconds
        self._clock = clock
        self._next_probe_at: float | None = None

    async def allow(self) -> bool:
        if self._next_probe_at is None:
            return True
        now = self._clock()
        if now < self._next_probe_at:
            return False
        # This caller is the probe; everybody else waits for the next interval (no await in between: atomic).
        self._next_probe_at = now + self._probe_seconds
        return True

    async def trip(self) -> None:
        self._next_probe_at = self._clock() + self._probe_seconds

    async def reset(self) -> None:
        self._next_probe_at = None

    async def state(self) -> QuotaState:
        return QuotaState(paused=self._next_probe_at is not None, next_probe_at=self._next_probe_at)


class MemoryDeduper:
    """Seen keys with a TTL (Slack redeliveries come within minutes)."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._seen: dict[int, TTLCache[str, bool]] = {}

    async def first_seen(self, key: str, ttl_seconds: int = 3600) -> bool:
        cache = self._seen.setdefault(ttl_seconds, TTLCache(maxsize=self._max_entries, ttl=ttl_seconds))
        if key in cache:
            return False
        cache[key] = True
        return True


class MemoryFeedbackStore:
    """Votes kept in memory (tests, one-off runs); the bot uses the SQLite or Redis store."""

    def __init__(self) -> None:
        self._votes: dict[tuple[str, str, str], bool] = {}

    async def record(
        self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = ""
    ) -> None:
        self._votes[(platform, question, user_id)] = helpful

    async def counts(self) -> FeedbackCounts:
        helpful = sum(self._votes.values())
        return FeedbackCounts(helpful=helpful, not_helpful=len(self._votes) - helpful)
