"""The search fallback, honest about what the index can know: the answers for MatHub and local folders (no AI),
and for Perfect Wiki once its AI quota is gone.

"I couldn't find anything" is only true when the index holds the wiki. When it does not — the first sync has not
run yet (a fresh ``kbbot ask``), or the wiki could not be reached — the answer says so in its ``notice`` and the
log gets a warning, instead of a person concluding the wiki has nothing on the subject. A never-synced index
first gets every page's title and tags from one listing (cheap, and never billed), so even a fresh install
after a 402 still finds pages by title.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from kbbot.core.models import Answer, Source
from kbbot.core.ports import Answerer
from kbbot.core.text import how_long
from kbbot.errors import KnowledgeBaseError
from kbbot.search.index import SearchIndex
from kbbot.search.sync import IndexSyncer

log = logging.getLogger(__name__)

_NAMES = {"perfectwiki": "Perfect Wiki", "mathub": "MatHub", "local": "The knowledgebase folder"}

CANNOT_SEARCH = "I can't search the wiki right now."


def kb_name(kind: str) -> str:
    return _NAMES.get(kind, "The knowledgebase")


def unreachable_notice(kind: str) -> str:
    return (
        f"{kb_name(kind)} isn't reachable right now and none of its pages have been indexed yet, so there is "
        "nothing to search. Please try again in a few minutes."
    )


TITLES_ONLY_NOTICE = (
    "The wiki's pages haven't been indexed yet (the first sync hasn't run), so I could only look at page titles "
    "and tags."
)


def stale_notice(kind: str, age_seconds: float | None, synced_at: float | None = None) -> str:
    when = f", as indexed {how_long(age_seconds)} ago" if age_seconds is not None else ""
    if when and synced_at is not None:
        when += datetime.fromtimestamp(synced_at, UTC).strftime(" (%Y-%m-%d %H:%M UTC)")
    return f"{kb_name(kind)} isn't reachable right now: this answer comes from its pages{when}."


class IndexFallback:
    """An :class:`~kbbot.core.ports.Answerer` that wraps the search answerer with the index's state."""

    def __init__(
        self,
        answerer: Answerer,
        index: SearchIndex,
        syncer: IndexSyncer,
        *,
        kind: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._answerer = answerer
        self._index = index
        self._syncer = syncer
        self._kind = kind
        self._clock = clock
        self._warned = False

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        last_sync = await self._index.get_meta("last_sync")
        notice: str | None = None
        if last_sync is None:
            notice = await self._titles_or_unreachable()
            if notice is not None and notice != TITLES_ONLY_NOTICE:
                return Answer(text=CANNOT_SEARCH, source=Source.SEARCH, empty=True, notice=notice)
        elif (failure := await self._syncer.unreachable()) is not None:
            self._warn(failure)
            notice = stale_notice(self._kind, self._clock() - float(last_sync), float(last_sync))
        else:
            self._warned = False
        answer = await self._answerer.answer(question, limit=limit)
        return replace(answer, notice=notice) if notice else answer

    async def not_found(self, question: str) -> Answer:
        # The AI looked at the whole wiki and found nothing: that is true whatever our index holds.
        return await self._answerer.not_found(question)

    async def _titles_or_unreachable(self) -> str | None:
        """Never synced: make sure the index at least has the titles (one listing), and say what it lacks."""
        if await self._index.count() == 0:
            try:
                added = await self._syncer.index_titles()
            except KnowledgeBaseError as exc:
                self._warn(exc)
                return unreachable_notice(self._kind)
            log.info("indexed %d page titles for the search fallback (no full sync has run yet)", added)
            self._warned = False
        return TITLES_ONLY_NOTICE

    def _warn(self, exc: KnowledgeBaseError) -> None:
        if not self._warned:  # once per outage, not once per question
            self._warned = True
            log.warning("%s is unreachable; search answers say so: %s", kb_name(self._kind), exc)
