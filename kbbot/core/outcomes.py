"""What became of each question, kept so the wiki's editors can see what it fails to answer (``kbbot gaps``,
the admin dashboard) and the people who pay can see where the month's billed AI quota is going.

One :class:`Outcome` per question (answered from ai/cache/search, empty, error) and one per 👎; never a user
id. The question's text is kept only for the outcomes that are gaps (empty, downvoted, error): an answered
question needs no text to be counted. :class:`OutcomeRecorder` is what the core and the adapters call; it
stamps the time and the knowledgebase and never lets a failing store break an answer. Stores (SQLite in the
data folder, Redis) live in :mod:`kbbot.store`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from kbbot.core.models import Answer
from kbbot.core.ports import Deduper, FeedbackCounts, FeedbackStore
from kbbot.core.quota_forecast import QuotaForecast, forecast, month_start

log = logging.getLogger(__name__)

#: At this share of the monthly AI quota the bot warns (log line; the gauge shows the share all the time).
WARN_RATIO = 0.8


class Kind(StrEnum):
    ANSWERED = "answered"
    EMPTY = "empty"
    DOWNVOTED = "downvoted"
    ERROR = "error"


#: The kinds that are gaps in the wiki: ``kbbot gaps`` lists their questions.
GAP_KINDS = frozenset({Kind.EMPTY, Kind.DOWNVOTED, Kind.ERROR})


@dataclass(frozen=True, slots=True)
class Outcome:
    """``at`` is Unix time; ``source`` is ``ai``/``cache``/``search`` for answers (None otherwise); ``question``
    is the cleaned question text for gap kinds only."""

    at: float
    platform: str
    channel: str
    knowledgebase: str
    kind: Kind
    source: str | None = None
    question: str | None = None


class OutcomeLog(Protocol):
    """Durable outcomes and billed AI calls per day, shared by replicas when in Redis. Times are Unix seconds
    passed in by the caller (tests control the clock); entries older than the store's retention are dropped."""

    async def record(self, outcome: Outcome) -> None: ...

    async def since(self, at: float) -> list[Outcome]:
        """Every kept outcome at or after ``at``, oldest first."""
        ...

    async def count_ai_call(self, day: str) -> None:
        """One billed AI call on ``day`` (``YYYY-MM-DD``, UTC)."""
        ...

    async def ai_calls(self, since_day: str) -> dict[str, int]:
        """Billed AI calls per day from ``since_day`` on (days without calls are absent)."""
        ...

    async def prune(self, before: float) -> int:
        """Drop outcomes (and day counts) older than ``before``; returns how many outcomes went."""
        ...

    async def aclose(self) -> None: ...


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


class OutcomeRecorder:
    """Records outcomes and billed AI calls for one knowledgebase, and watches the monthly AI quota.

    ``quota_monthly`` (``PERFECTWIKI_AI_QUOTA_MONTHLY``) enables the forecast and the 80 % warning, which is
    logged once per month per process. Store failures are logged and swallowed: statistics must never cost
    anyone an answer.
    """

    def __init__(
        self,
        log_store: OutcomeLog,
        *,
        knowledgebase: str,
        retention_days: int = 90,
        quota_monthly: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = log_store
        self.knowledgebase = knowledgebase
        self.retention_seconds = retention_days * 86400.0
        self.quota_monthly = quota_monthly
        self._clock = clock
        self._pruned_at = float("-inf")
        self._warned_month: str | None = None
        #: Whose billed calls count against this quota: this knowledgebase's, and those on the same token.
        self._quota_logs: tuple[OutcomeLog, ...] = (log_store,)

    def share_quota(self, *recorders: OutcomeRecorder) -> None:
        """Knowledgebases on one token draw on its one monthly quota: the forecast counts their billed calls
        too (each keeps recording its own, so gaps and the dashboard's calls per day stay per knowledgebase)."""
        self._quota_logs = (self.store, *(r.store for r in recorders if r is not self and r.store is not self.store))

    def now(self) -> float:
        return self._clock()

    async def answered(self, *, platform: str, channel: str, question: str, answer: Answer) -> None:
        """An answer was given: ``empty`` ones are gaps (the wiki had nothing), with the question's text."""
        if answer.empty or not answer.text.strip():
            await self._record(platform, channel, Kind.EMPTY, source=answer.source.value, question=question)
        else:
            await self._record(platform, channel, Kind.ANSWERED, source=answer.source.value)

    async def failed(self, *, platform: str, channel: str, question: str) -> None:
        await self._record(platform, channel, Kind.ERROR, question=question)

    async def downvoted(self, *, platform: str, channel: str, question: str) -> None:
        await self._record(platform, channel, Kind.DOWNVOTED, question=question)

    async def ai_call(self) -> None:
        """One billed AI call; warns once a month when the month's calls pass 80 % of the quota."""
        now = self._clock()
        try:
            await self.store.count_ai_call(day_of(now))
            if self.quota_monthly is None:
                return
            month = day_of(now)[:7]
            if self._warned_month == month:
                return
            state = await self.quota(now)
            if state is not None and state.used_ratio >= WARN_RATIO:
                self._warned_month = month
                log.warning(
                    "AI quota of %s: %d of %d billed AI calls used this month (%.0f%%); at this rate it runs out %s",
                    self.knowledgebase, state.used, state.quota, state.used_ratio * 100, state.runs_out_text(),
                )
        except Exception:
            log.warning("could not count a billed AI call", exc_info=True)

    async def quota(self, now: float | None = None) -> QuotaForecast | None:
        """This month's use and the run-out forecast (None without ``quota_monthly``)."""
        if self.quota_monthly is None:
            return None
        at = self._clock() if now is None else now
        today = datetime.fromtimestamp(at, UTC).date()
        calls: dict[str, int] = {}
        for store in self._quota_logs:
            for day, count in (await store.ai_calls(month_start(today).isoformat())).items():
                calls[day] = calls.get(day, 0) + count
        return forecast(calls, quota=self.quota_monthly, today=today)

    async def _record(
        self, platform: str, channel: str, kind: Kind, *, source: str | None = None, question: str | None = None
    ) -> None:
        now = self._clock()
        outcome = Outcome(now, platform, channel, self.knowledgebase, kind, source, question)
        try:
            await self.store.record(outcome)
            if now - self._pruned_at >= 3600:  # retention is in days: pruning once an hour is plenty
                self._pruned_at = now
                await self.store.prune(now - self.retention_seconds)
        except Exception:
            log.warning("could not record a question's outcome", exc_info=True)


class RecordingFeedback:
    """A :class:`FeedbackStore` that also records each 👎 as a ``downvoted`` outcome (the vote itself, with its
    user id for one-vote-per-user, stays in the feedback store). With a ``deduper`` one person clicking 👎
    twice on one answer is one downvote (the deduper sees a hash, never the user id, and forgets it after the
    retention period)."""

    def __init__(self, inner: FeedbackStore, recorder: OutcomeRecorder, deduper: Deduper | None = None) -> None:
        self._inner = inner
        self._recorder = recorder
        self._deduper = deduper

    async def record(self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = "") -> None:
        await self._inner.record(platform=platform, question=question, user_id=user_id, helpful=helpful)
        if helpful:
            return
        if self._deduper is not None:
            voter = hashlib.sha256(json.dumps([platform, question, user_id]).encode("utf-8", "replace")).hexdigest()
            ttl = int(self._recorder.retention_seconds)
            if not await self._deduper.first_seen(f"downvote:{voter[:32]}", ttl):
                return
        await self._recorder.downvoted(platform=platform, channel=channel, question=question)

    async def counts(self) -> FeedbackCounts:
        return await self._inner.counts()
