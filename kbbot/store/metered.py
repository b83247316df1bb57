"""Wrappers that count what a store does through a :class:`~kbbot.core.ports.MetricsSink`.

Composition instead of hooks in every implementation: the memory and Redis stores stay unaware of metrics,
and the core gets the same protocols back.
"""

from __future__ import annotations

from kbbot.core.models import Answer
from kbbot.core.ports import AnswerCache, CacheStats, MetricsSink, QuotaGate, QuotaState


class MeteredAnswerCache:
    """Counts hits and misses of any :class:`AnswerCache`."""

    def __init__(self, inner: AnswerCache, metrics: MetricsSink) -> None:
        self.inner = inner
        self._metrics = metrics

    async def get(self, key: str) -> Answer | None:
        answer = await self.inner.get(key)
        self._metrics.cache(hit=answer is not None)
        return answer

    async def set(self, key: str, answer: Answer) -> None:
        await self.inner.set(key, answer)

    def stats(self) -> CacheStats:
        return self.inner.stats()

    async def aclose(self) -> None:
        await self.inner.aclose()


class MeteredQuotaGate:
    """Reports the 402 breaker opening and closing of any :class:`QuotaGate`."""

    def __init__(self, inner: QuotaGate, metrics: MetricsSink) -> None:
        self.inner = inner
        self._metrics = metrics

    async def allow(self) -> bool:
        return await self.inner.allow()

    async def trip(self) -> None:
        await self.inner.trip()
        self._metrics.quota_paused(True)

    async def reset(self) -> None:
        await self.inner.reset()
        self._metrics.quota_paused(False)

    async def state(self) -> QuotaState:
        return await self.inner.state()
