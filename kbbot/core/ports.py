"""The small protocols the core depends on. Implementations live in ``kbbot.store`` (memory/SQLite/Redis) and
``kbbot.search``; the startup function picks one per protocol and hands it in, so the core never branches on
which one it got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from kbbot.core.models import Answer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CacheStats:
    size: int
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class AnswerCache(Protocol):
    """Answers by normalized question, with a TTL and a size bound."""

    async def get(self, key: str) -> Answer | None: ...

    async def set(self, key: str, answer: Answer) -> None: ...

    def stats(self) -> CacheStats: ...

    async def aclose(self) -> None: ...


class SingleFlight(Protocol):
    """Runs ``fn`` once per key at a time; concurrent callers with the same key share its result."""

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T: ...


@dataclass(frozen=True, slots=True)
class QuotaState:
    paused: bool
    #: Unix time of the next allowed probe while paused.
    next_probe_at: float | None = None


class QuotaGate(Protocol):
    """The 402 breaker. After :meth:`trip`, :meth:`allow` is True for at most one probe per interval."""

    async def allow(self) -> bool: ...

    async def trip(self) -> None: ...

    async def reset(self) -> None: ...

    async def state(self) -> QuotaState: ...


class RateLimiter(Protocol):
    """The per-token request budget, shared by every caller (and, with Redis, every replica).

    ``background`` callers (index sync) get at most half the budget so live questions are never starved.
    """

    async def acquire(self, *, background: bool = False) -> None: ...

    def observe(self, left_second: int | None, left_minute: int | None) -> None:
        """Server hint from a response's ``rateLimit``: slow down when the budget is nearly gone."""
        ...

    def queued(self) -> int:
        """How many callers are waiting for a slot right now."""
        ...


class Answerer(Protocol):
    """Answers without the AI (full-text search, title match). Used for no-AI backends and the 402 fallback."""

    async def answer(self, question: str, *, limit: int = 3) -> Answer: ...


class Deduper(Protocol):
    """Remembers keys (e.g. Slack ``event_id``) for a while; shared across replicas with Redis."""

    async def first_seen(self, key: str, ttl_seconds: int = 3600) -> bool:
        """True the first time ``key`` is seen within ``ttl_seconds``; False for every repeat."""
        ...


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    helpful: int
    not_helpful: int


class FeedbackStore(Protocol):
    """👍/👎 on answers, kept durably and counted (shown in status, exported as metrics)."""

    async def record(self, *, platform: str, question: str, user_id: str, helpful: bool) -> None:
        """One vote per user per question: voting again replaces the earlier vote."""
        ...

    async def counts(self) -> FeedbackCounts: ...


class MetricsSink(Protocol):
    """Hooks the core, backends and adapters call to count what happens; ``kbbot.ops.metrics`` exports them.

    Plain synchronous calls with plain values, so that nothing outside ``kbbot.ops`` imports prometheus.
    Label values must come from small fixed sets (platform names, endpoint names, status codes), never from
    user text.
    """

    def question(self, platform: str, source: str, seconds: float) -> None:
        """One answered question: ``source`` is ``ai`` | ``cache`` | ``search`` | ``error``."""
        ...

    def cache(self, hit: bool) -> None:
        """One answer-cache lookup."""
        ...

    def upstream(self, endpoint: str, status: int | str, seconds: float) -> None:
        """One knowledgebase API call: ``status`` is the HTTP status, or ``error``/``timeout`` without one."""
        ...

    def save(self, outcome: str, seconds: float | None = None) -> None:
        """One thread save: ``created`` | ``updated`` | ``queued`` | ``failed``."""
        ...

    def quota_paused(self, paused: bool) -> None:
        """The 402 breaker opened (True) or closed again (False)."""
        ...


class NullMetrics:
    """The default :class:`MetricsSink`: counts nothing, so metrics stay optional everywhere."""

    def question(self, platform: str, source: str, seconds: float) -> None:
        return None

    def cache(self, hit: bool) -> None:
        return None

    def upstream(self, endpoint: str, status: int | str, seconds: float) -> None:
        return None

    def save(self, outcome: str, seconds: float | None = None) -> None:
        return None

    def quota_paused(self, paused: bool) -> None:
        return None
