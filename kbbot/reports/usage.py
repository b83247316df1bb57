"""The numbers on the admin dashboard, from the outcome log: questions per day, answers by source, cache hit
rate, billed AI calls per day, the quota forecast, feedback and the top gaps. Pure: the caller reads the stores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kbbot.core.outcomes import Kind, Outcome
from kbbot.core.quota_forecast import QuotaForecast
from kbbot.reports.gaps import Gap, find_gaps

SOURCES = ("ai", "cache", "search")


@dataclass
class Usage:
    days: list[str]
    #: Per day: answered questions by source, plus "empty" and "error".
    per_day: dict[str, Counter[str]]
    by_source: Counter[str]
    by_kind: Counter[str]
    ai_calls: dict[str, int]
    gaps: list[Gap]
    quota: QuotaForecast | None = None
    helpful: int = 0
    not_helpful: int = 0
    saves: dict[str, int] = field(default_factory=dict)

    @property
    def questions(self) -> int:
        return sum(n for kind, n in self.by_kind.items() if kind != Kind.DOWNVOTED)

    @property
    def cache_hit_rate(self) -> float:
        """Share of answered questions that came from the cache (no AI call, no search)."""
        answered = sum(self.by_source.values())
        return self.by_source["cache"] / answered if answered else 0.0


def day_range(now: float, days: int) -> list[str]:
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def summarize(
    outcomes: list[Outcome], ai_calls: dict[str, int], *, now: float, days: int, top_gaps: int = 10
) -> Usage:
    """``outcomes`` and ``ai_calls`` of the last ``days`` days (older entries are ignored)."""
    span = day_range(now, days)
    first = span[0]
    per_day: dict[str, Counter[str]] = {day: Counter() for day in span}
    by_source: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    kept = []
    for outcome in outcomes:
        day = datetime.fromtimestamp(outcome.at, UTC).date().isoformat()
        if day < first or day not in per_day:
            continue
        kept.append(outcome)
        by_kind[outcome.kind.value] += 1
        if outcome.kind is Kind.ANSWERED and outcome.source in SOURCES:
            by_source[outcome.source] += 1
            per_day[day][outcome.source] += 1
        elif outcome.kind in (Kind.EMPTY, Kind.ERROR):
            per_day[day][outcome.kind.value] += 1
    return Usage(
        days=span,
        per_day=per_day,
        by_source=by_source,
        by_kind=by_kind,
        ai_calls={day: ai_calls.get(day, 0) for day in span},
        gaps=find_gaps(kept, limit=top_gaps),
    )
