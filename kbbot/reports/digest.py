"""The top gaps for chat: ``/kb gaps`` (Slack), ``/gaps`` (Discord) and the optional weekly digest.

:class:`GapsReport` reads the outcome log; the adapters render its :class:`GapsSummary` in their own markup.
:class:`WeeklyDigest` posts the last week's top gaps once a week (Mondays from 09:00 UTC) to the configured
channels; with several replicas only one posts to each platform, because the platform's week is claimed through
the shared deduper first (per platform: Slack replicas and a separate Discord process share one store).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kbbot.core.outcomes import Outcome, OutcomeRecorder
from kbbot.core.ports import Deduper
from kbbot.core.tasks import cancel_and_wait
from kbbot.reports.gaps import Gap, find_gaps

log = logging.getLogger(__name__)

DEFAULT_DAYS = 7
DEFAULT_LIMIT = 10
#: The digest goes out on this weekday (0 = Monday) from this hour, UTC.
DIGEST_WEEKDAY = 0
DIGEST_HOUR = 9


@dataclass(frozen=True, slots=True)
class GapsSummary:
    days: int
    since: float
    gaps: list[Gap]


class GapsReport:
    """The gaps of every knowledgebase the bot serves (each keeps its own outcome log)."""

    def __init__(self, *outcomes: OutcomeRecorder) -> None:
        self._outcomes = outcomes

    async def top(self, *, days: int = DEFAULT_DAYS, limit: int = DEFAULT_LIMIT) -> GapsSummary:
        since = self._outcomes[0].now() - days * 86400
        seen: list[Outcome] = []
        for store in {id(o.store): o.store for o in self._outcomes}.values():
            seen += await store.since(since)
        gaps = find_gaps(sorted(seen, key=lambda o: o.at), limit=limit)
        return GapsSummary(days=days, since=since, gaps=gaps)


#: Posts one summary to one platform's channel (the adapter renders it).
Poster = Callable[[GapsSummary], Awaitable[None]]


def digest_week(at: float) -> str | None:
    """The ISO week whose digest is due at ``at`` (``2025-W51``), or None before Monday 09:00 UTC of it."""
    moment = datetime.fromtimestamp(at, UTC)
    monday = (moment - timedelta(days=moment.weekday() - DIGEST_WEEKDAY)).replace(
        hour=DIGEST_HOUR, minute=0, second=0, microsecond=0
    )
    if moment < monday:
        return None
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


class WeeklyDigest:
    """Checks every ``check_seconds`` whether this week's digest is due and not yet posted by anyone, for each
    platform of ``posters`` (platform name → poster)."""

    def __init__(
        self,
        report: GapsReport,
        posters: Mapping[str, Poster],
        deduper: Deduper,
        *,
        clock: Callable[[], float],
        check_seconds: float = 600,
    ) -> None:
        self._report = report
        self._posters = dict(posters)
        self._deduper = deduper
        self._clock = clock
        self._check = check_seconds
        self._task: asyncio.Task[None] | None = None

    async def post_if_due(self) -> bool:
        """Post this week's digest to each platform where it is due and no replica has claimed it. True when
        this replica claimed one (a claimed platform that refuses is not retried until next week)."""
        week = digest_week(self._clock())
        if week is None:
            return False
        claimed = [
            (platform, post)
            for platform, post in self._posters.items()
            if await self._deduper.first_seen(f"gaps-digest:{week}:{platform}", ttl_seconds=8 * 86400)
        ]
        if not claimed:
            return False
        summary = await self._report.top(days=7)
        for platform, post in claimed:
            try:
                await post(summary)
            except Exception:  # one platform refusing must not stop the other's digest
                log.warning("could not post the weekly gaps digest to %s", platform, exc_info=True)
            else:
                log.info("weekly gaps digest posted to %s (%s, %d gap(s))", platform, week, len(summary.gaps))
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.post_if_due()
            except Exception:
                log.warning("weekly gaps digest check failed", exc_info=True)
            await asyncio.sleep(self._check)

    async def __aenter__(self) -> WeeklyDigest:
        if self._posters:
            self._task = asyncio.create_task(self._run(), name="kbbot-gaps-digest")
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
