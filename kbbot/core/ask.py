"""AskService: the question pipeline every adapter calls.

    clean + normalize → answer cache → single-flight [answer cache again → 402 breaker → knowledgebase AI
    (rate-limited in the backend) → cache the answer]; on 402 or for backends without AI, the search answerer.

Every AI query is billed, so the pipeline's job is to ask upstream as rarely as possible: once per distinct
normalized question per TTL, once per concurrent burst, and after a 402 at most once per probe interval. The
flight is the only way to the AI and looks in the cache again first, so an asker who missed the cache while
an earlier flight was still running (held up posting its queue notice, say) gets that flight's answer from the
cache instead of paying for another call, with every store.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from kbbot.core.models import Answer, Question, Source
from kbbot.core.ports import (
    AnswerCache,
    Answerer,
    CacheStats,
    KnowledgeBase,
    MetricsSink,
    NullMetrics,
    QuotaGate,
    QuotaState,
    RateLimiter,
    SingleFlight,
)
from kbbot.core.text import DEFAULT_MAX_CHARS, clean_question, normalize_question
from kbbot.errors import KbbotError, QuotaExceeded

log = logging.getLogger(__name__)

QUOTA_NOTICE = (
    "AI answers are paused: the knowledgebase's monthly AI quota is used up. "
    "Here is what the wiki's own pages say."
)


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Where a question stands while the token's rate budget is used up: shown so nobody thinks the bot hung."""

    position: int
    wait_seconds: float

    def told_seconds(self) -> int:
        """The wait as the notice says it: whole seconds, rounded up (an answer in 2.2 s is "about 3 s")."""
        return max(1, math.ceil(self.wait_seconds))

    def message(self) -> str:
        return f"Lots of questions right now: you're #{self.position} in line, about {self.told_seconds()} s."


QueueListener = Callable[[QueuePosition], Awaitable[None]]


def queue_notice(send: Callable[[str], Awaitable[object]]) -> QueueListener:
    """An ``on_queued`` listener for adapters: sends ``position.message()`` through ``send`` at most once per
    question. The notice is a courtesy: failing to post it is logged and never stops the answer."""
    sent = False

    async def notify(position: QueuePosition) -> None:
        nonlocal sent
        if sent:
            return
        sent = True
        try:
            await send(position.message())
        except Exception as exc:  # the platform refused the notice; the answer still comes
            log.info("could not show the queue position: %s", type(exc).__name__)

    return notify


@dataclass(frozen=True, slots=True)
class AskStatus:
    """What `/kb status` and `kbbot check` show."""

    kb_kind: str
    kb_name: str | None
    cache: CacheStats
    quota: QuotaState
    queued: int


class AskService:
    """Answers questions; composed of small injected parts so each can be swapped (memory/Redis) or faked."""

    def __init__(
        self,
        *,
        kb: KnowledgeBase,
        cache: AnswerCache,
        flights: SingleFlight,
        quota: QuotaGate,
        fallback: Answerer,
        limiter: RateLimiter | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._kb = kb
        self._cache = cache
        self._flights = flights
        self._quota = quota
        self._fallback = fallback
        self._limiter = limiter
        self._max_chars = max_chars
        self._metrics: MetricsSink = metrics or NullMetrics()
        self._kb_name: str | None = None
        # Counted per question here (not per lookup in each cache): the flight's second look must not count
        # a question's miss twice.
        self._hits = 0
        self._misses = 0
        # Questions being asked in this process (askers per key), and the wait promised to each one's queued
        # flight (position, due on the monotonic clock), so that those joining a flight hear its wait.
        self._asking: dict[str, int] = {}
        self._promised: dict[str, tuple[int, float]] = {}

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        """Answer one question. Raises ``InvalidQuestion`` for empty/oversized text and ``KnowledgeBaseError``
        when the wiki cannot be asked (after the backend's bounded retries). A 402 never raises: it pauses AI
        answers and returns the search fallback. ``on_queued`` hears the asker's place in line when the
        token's rate budget is used up and the question has to wait."""
        started = time.perf_counter()
        source = "error"
        try:
            answer = await self._answer(question, on_queued)
            source = answer.source.value
            self._count_lookup(hit=answer.source is Source.CACHE)
            # One structured line per answer (never the question text: it may be personal).
            log.info("answered", extra={"platform": question.platform, "source": source})
            return answer
        finally:
            self._metrics.question(question.platform, source, time.perf_counter() - started)

    async def _answer(self, question: Question, on_queued: QueueListener | None) -> Answer:
        text = clean_question(question.text, max_chars=self._max_chars)
        key = normalize_question(text)
        if (cached := await self._cached(key)) is not None:
            return cached
        if not self._kb.supports_ai:
            return await self._fallback.answer(text)
        self._asking[key] = self._asking.get(key, 0) + 1
        try:
            if on_queued is not None and (position := self._queue_position(key)) is not None:
                await on_queued(position)
            return await self._flights.run(key, lambda: self._ask_ai(key, text))
        finally:
            self._asking[key] -= 1
            if not self._asking[key]:
                del self._asking[key]
                self._promised.pop(key, None)

    def _queue_position(self, key: str) -> QueuePosition | None:
        """Where a new asker of ``key`` stands, or None when they will not wait. Someone here already asking the
        same question shares its flight: they are told what is left of that flight's wait (nothing, when it
        was not queued), not the end of the line."""
        if self._limiter is None:
            return None
        now = time.monotonic()
        if (promised := self._promised.get(key)) is not None:
            position, due = promised
            return QueuePosition(position, due - now) if due > now else None
        if self._asking[key] > 1:
            return None
        ahead = self._limiter.queued()
        if ahead <= 0:
            return None
        wait = self._limiter.estimate_wait(ahead + 1)
        self._promised[key] = (ahead + 1, now + wait)
        return QueuePosition(ahead + 1, wait)

    async def _cached(self, key: str) -> Answer | None:
        cached = await self._cache.get(key)
        return None if cached is None else replace(cached, source=Source.CACHE)

    def _count_lookup(self, *, hit: bool) -> None:
        if hit:
            self._hits += 1
        else:
            self._misses += 1
        self._metrics.cache(hit)

    async def _ask_ai(self, key: str, text: str) -> Answer:
        # Looked up again inside the flight: a flight for this key that finished after our first look has
        # filled the cache by now (memory and Redis alike), and its answer must not be bought twice.
        if (cached := await self._cached(key)) is not None:
            return cached
        if not await self._quota.allow():
            return await self._paused(text)
        started = time.perf_counter()
        try:
            ai = await self._kb.query(text)
        except QuotaExceeded:
            log.warning("AI quota exhausted (402); pausing AI answers and answering from the wiki's pages")
            await self._quota.trip()
            self._metrics.quota_paused(True)
            return await self._paused(text)
        await self._quota.reset()
        self._metrics.quota_paused(False)
        log.debug("AI answer in %.0f ms", (time.perf_counter() - started) * 1000)
        if ai.empty:
            # The AI found nothing: the same honest reply as a search that finds nothing, with the closest
            # pages of the index (never cached: a page written a minute later may answer it).
            return replace(await self._fallback.not_found(text), source=Source.AI)
        answer = Answer(text=ai.text, related_pages=ai.related_pages, source=Source.AI, empty=ai.empty)
        # Only useful answers are cached: an empty result may be fixed by a page written a minute later.
        if not answer.empty and answer.text.strip():
            await self._cache.set(key, answer)
        return answer

    async def _paused(self, text: str) -> Answer:
        answer = await self._fallback.answer(text)
        return replace(answer, source=Source.SEARCH, notice=QUOTA_NOTICE)

    async def status(self) -> AskStatus:
        if self._kb_name is None:
            try:
                self._kb_name = (await self._kb.info()).name
            except KbbotError as exc:
                log.info("knowledgebase name unavailable for status: %s", exc)
        return AskStatus(
            kb_kind=self._kb.kind,
            kb_name=self._kb_name,
            cache=CacheStats(size=await self._cache.size(), hits=self._hits, misses=self._misses),
            quota=await self._quota.state(),
            queued=self._limiter.queued() if self._limiter is not None else 0,
        )
