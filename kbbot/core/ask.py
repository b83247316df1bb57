"""AskService: the question pipeline every adapter calls.

    clean + normalize → answer cache → a look at the AI budget (per asker, per channel) → single-flight
    [answer cache again → 402 breaker → the flight's asker's AI budget spent → the asker's turn (fair, by
    asker) → knowledgebase AI (rate-limited in the backend) → cache the answer]; on 402, over budget, or for
    backends without AI, the search answerer.

Every AI query is billed, so the pipeline's job is to ask upstream as rarely as possible: once per distinct
normalized question per TTL, once per concurrent burst, and after a 402 at most once per probe interval. The
flight is the only way to the AI and looks in the cache again first, so an asker who missed the cache while
an earlier flight was still running (held up posting its queue notice, say) gets that flight's answer from the
cache instead of paying for another call, with every store.

Fairness: a person's AI budget is spent only by the AI calls made on their behalf, just before each is sent:
never by a cached answer, a search answer (also while a 402 pauses AI), a knowledgebase without AI, or a
question someone else is already asking (one call, paid by the asker whose flight makes it; those who join it
share the answer for free). An asker over their AI budget gets the search answer and a notice to slow down
(free, at once); when a flight's asker turns out to be over budget, those who joined it ask again on their
own budgets. The questions that do go to the AI take turns by asker (:mod:`kbbot.core.fairness`), so one
person's flood never puts everyone else at the back of the line. At shutdown :meth:`AskService.close` refuses
what cannot be answered in time (``ShuttingDown``, which every adapter turns into "restarting, ask again in a
minute").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from kbbot.core.fairness import AskerQueue
from kbbot.core.followups import standalone_question
from kbbot.core.models import Answer, Question, Source
from kbbot.core.outcomes import OutcomeRecorder
from kbbot.core.page_block import strip_markers
from kbbot.core.ports import (
    AiBudget,
    AnswerCache,
    Answerer,
    BudgetRefusal,
    CacheStats,
    KnowledgeBase,
    MetricsSink,
    NullMetrics,
    QuotaGate,
    QuotaState,
    RateLimiter,
    SingleFlight,
)
from kbbot.core.quota_forecast import QuotaForecast
from kbbot.core.text import DEFAULT_MAX_CHARS, clean_question, normalize_question
from kbbot.errors import InvalidQuestion, KbbotError, OverAiBudget, QuotaExceeded, ShuttingDown

log = logging.getLogger(__name__)

QUOTA_NOTICE = (
    "AI answers are paused: the knowledgebase's monthly AI quota is used up. "
    "Here is what the wiki's own pages say."
)


def _in_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"


def slow_down_notice(refusal: BudgetRefusal) -> str:
    """What an asker over budget is told, above the search answer they get instead."""
    again = _in_words(refusal.retry_after)
    if refusal.scope == "channel":
        return (
            f"This channel has used today's AI answers ({refusal.limit}), so here is what the wiki's own pages "
            f"say. AI answers again in about {again}."
        )
    return (
        f"Please slow down: AI answers are limited to {refusal.limit} per person, so here is what the wiki's "
        f"own pages say. AI answers again in about {again}."
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


@dataclass(slots=True)
class _Payer:
    """Whose budget a flight's AI call is spent from; ``refusal`` is set when that budget said no."""

    platform: str
    asker: str | None
    channel: str | None
    refusal: BudgetRefusal | None = None


@dataclass(frozen=True, slots=True)
class AskStatus:
    """What `/kb status` and `kbbot check` show."""

    kb_kind: str
    kb_name: str | None
    cache: CacheStats
    quota: QuotaState
    queued: int
    #: This month's billed AI calls and when the quota runs out (None without PERFECTWIKI_AI_QUOTA_MONTHLY).
    ai_quota: QuotaForecast | None = None
    #: The configured name of the knowledgebase, when several are configured.
    knowledgebase: str | None = None


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
        budget: AiBudget | None = None,
        turns: AskerQueue | None = None,
        outcomes: OutcomeRecorder | None = None,
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
        self._budget = budget
        self._turns = turns or AskerQueue()
        self._outcomes = outcomes
        self._closed = False
        self._last_call: asyncio.TimerHandle | None = None
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
            if question.earlier and (standalone := self._standalone(question)) != clean_question(
                question.text, max_chars=self._max_chars
            ):
                answer = replace(answer, asked=standalone)
            source = answer.source.value
            self._count_lookup(hit=answer.source is Source.CACHE)
            # One structured line per answer (never the question text: it may be personal).
            log.info("answered", extra={"platform": question.platform, "source": source})
            await self._record(question, answer)
            return answer
        except (InvalidQuestion, ShuttingDown):
            raise  # nothing was asked
        except Exception:
            await self._record(question, None)
            raise
        finally:
            self._metrics.question(question.platform, source, time.perf_counter() - started)

    async def _record(self, question: Question, answer: Answer | None) -> None:
        """The question's outcome for ``kbbot gaps`` and the dashboard (``answer`` None: it failed)."""
        if self._outcomes is None:
            return
        text = self._standalone(question)
        channel = question.conversation_key.partition(":")[0]
        if answer is None:
            await self._outcomes.failed(platform=question.platform, channel=channel, question=text)
        else:
            await self._outcomes.answered(platform=question.platform, channel=channel, question=text, answer=answer)

    def _standalone(self, question: Question) -> str:
        """The question as it goes upstream: cleaned, and a follow-up carrying its thread's topic. The cache
        key, the flight, the AI and the search fallback all see this form, so the same follow-up in another
        thread on the same topic costs no second billed call."""
        text = clean_question(question.text, max_chars=self._max_chars)
        earlier = [e for e in question.earlier if e.strip()]
        return standalone_question(text, earlier)[: self._max_chars] if earlier else text

    async def _answer(self, question: Question, on_queued: QueueListener | None) -> Answer:
        text = self._standalone(question)
        key = normalize_question(text)
        if (cached := await self._cached(key)) is not None:
            return cached
        if self._closed:
            raise ShuttingDown()
        if not self._kb.supports_ai:
            return await self._fallback.answer(text)
        asker = f"{question.platform}:{question.asker.id}" if question.asker and question.asker.id else None
        payer = _Payer(question.platform, asker, question.conversation_key.partition(":")[0] or None)
        # Looked at (not spent) before the flight: an asker over budget neither waits nor leads a flight
        # that others would join only to find it refused.
        if self._budget is not None and (refusal := await self._budget.check(payer.asker, payer.channel)):
            return await self._over_budget(text, payer.platform, refusal)
        self._asking[key] = self._asking.get(key, 0) + 1
        position = self._queue_position(key, asker) if on_queued is not None else None
        # The first here to ask it holds its place in line from the moment its wait is worked out.
        ticket = self._turns.ticket() if self._asking[key] == 1 else None
        try:
            if on_queued is not None and position is not None:
                await on_queued(position)
            while True:
                try:
                    return await self._flights.run(key, functools.partial(self._ask_ai, key, text, payer, ticket))
                except OverAiBudget:
                    if payer.refusal is not None:  # the flight was ours: our own budget is used up
                        return await self._over_budget(text, payer.platform, payer.refusal)
                    # We joined another asker's flight and their budget was used up: ask again, on ours (a
                    # ticket we hold was never used: that flight was not ours, so it keeps our place).
        finally:
            self._turns.discard(ticket)
            self._asking[key] -= 1
            if not self._asking[key]:
                del self._asking[key]
                self._promised.pop(key, None)

    def _queue_position(self, key: str, asker: str | None) -> QueuePosition | None:
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
        at_limiter = self._limiter.queued()
        turn = self._turns.ahead(asker) + 1
        if at_limiter + turn <= 1:
            return None
        if not (at_limiter or self._turns.busy() or self._turns.pace_waits(turn)[-1] > 0):
            return None  # those ahead are on their way and nobody waits: it goes straight through too
        wait = self._wait_for(at_limiter, turn)
        self._promised[key] = (at_limiter + turn, now + wait)
        return QueuePosition(at_limiter + turn, wait)

    def _wait_for(self, at_limiter: int, turn: int) -> float:
        """Seconds until the question whose turn is the ``turn``-th from now (fair turns by asker) has its
        answer: every wait it will have, played forward. The ``at_limiter`` callers already at the rate
        limiter go first; then each turn passes the pace when the pacer's bucket has room, and reaches the
        limiter, whose windows (and answer time) the limiter plays forward from those moments."""
        if self._limiter is None:
            return 0.0
        ready = [0.0] * at_limiter + self._turns.pace_waits(turn)
        return self._limiter.estimate_wait(len(ready), ready)

    async def _cached(self, key: str) -> Answer | None:
        cached = await self._cache.get(key)
        return None if cached is None else replace(cached, source=Source.CACHE)

    def _count_lookup(self, *, hit: bool) -> None:
        if hit:
            self._hits += 1
        else:
            self._misses += 1
        self._metrics.cache(hit)

    async def _over_budget(self, text: str, platform: str, refusal: BudgetRefusal) -> Answer:
        log.info("AI budget used up", extra={"platform": platform, "scope": refusal.scope})
        answer = await self._fallback.answer(text)
        notice = slow_down_notice(refusal) + (f" {answer.notice}" if answer.notice else "")
        return replace(answer, source=Source.SEARCH, notice=notice)

    async def _ask_ai(self, key: str, text: str, payer: _Payer, ticket: int | None) -> Answer:
        # Looked up again inside the flight: a flight for this key that finished after our first look has
        # filled the cache by now (memory and Redis alike), and its answer must not be bought twice.
        if (cached := await self._cached(key)) is not None:
            return cached
        if not await self._quota.allow():
            return await self._paused(text)
        # Spent here, after every way to answer without a call and before the call: the flight's asker pays
        # for it, those who joined the flight share its answer for free. After allow(), because while AI is
        # paused nothing else spends, so a probe that passed the look before the flight is never refused
        # here (and so never wasted); a 402 to the call itself still counts (limits cannot take a hit back).
        if self._budget is not None and (refusal := await self._budget.spend(payer.asker, payer.channel)):
            payer.refusal = refusal
            raise OverAiBudget()
        started = time.perf_counter()
        try:
            await self._turns.admit(payer.asker, ticket)
            ai = await self._kb.query(text)
            if self._outcomes is not None:
                await self._outcomes.ai_call()  # billed: counted per day for the quota forecast
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
        # The wiki's AI reads saved-thread pages too and may quote kbbot's marker lines: never show them.
        answer = Answer(text=strip_markers(ai.text), related_pages=ai.related_pages, source=Source.AI, empty=ai.empty)
        # Only useful answers are cached: an empty result may be fixed by a page written a minute later.
        if not answer.empty and answer.text.strip():
            await self._cache.set(key, answer)
        return answer

    async def _paused(self, text: str) -> Answer:
        answer = await self._fallback.answer(text)
        # The search's own notice (e.g. only titles are indexed yet) stays: both are true.
        notice = f"{QUOTA_NOTICE} {answer.notice}" if answer.notice else QUOTA_NOTICE
        return replace(answer, source=Source.SEARCH, notice=notice)

    def close(self, *, answer_within: float) -> int:
        """Stop taking questions (a cached answer is still given): questions waiting for their turn that are
        not expected to be answered within ``answer_within`` seconds are refused now, the rest when that time
        is up (both with ``ShuttingDown``). Returns how many were refused now."""
        self._closed = True
        at_limiter = self._limiter.queued() if self._limiter is not None else 0
        holding = self._turns.holding()
        refused = self._turns.close(
            answer_within=answer_within, estimate=lambda place: self._wait_for(at_limiter, holding + place)
        )
        if self._last_call is None:
            self._last_call = asyncio.get_running_loop().call_later(answer_within, self._turns.refuse_waiting)
        if refused:
            log.info("stopping: told %d waiting question(s) to ask again later", refused)
        return refused

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
            queued=self._turns.waiting() + (self._limiter.queued() if self._limiter is not None else 0),
            ai_quota=await self._ai_quota(),
        )

    async def _ai_quota(self) -> QuotaForecast | None:
        if self._outcomes is None:
            return None
        try:
            return await self._outcomes.quota()
        except Exception:  # the shared store is down: status still shows the rest
            log.warning("AI quota forecast unavailable", exc_info=True)
            return None
