"""Keeping the index in step with the wiki, from any :class:`~kbbot.core.ports.KnowledgeBase`.

Backends whose listing carries ``version``/``updated_at`` (MatHub, local folders) get exact incremental syncs:
only pages whose version changed are fetched. Perfect Wiki lists only id/title/tags, so a sync fetches new
pages and pages whose title or tags changed, and refreshes a bounded number of the others per run, least
recently fetched first: over a few runs every page is re-read without ever spending the whole rate budget at
once. Pages gone from the listing are dropped.

Sync reads with ``Priority.BACKGROUND``, so on a rate-limited backend its requests take at most half of the
budget and live questions always go first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kbbot.core.models import Page, PageSummary
from kbbot.core.ports import KnowledgeBase, Priority
from kbbot.core.tasks import cancel_and_wait, raise_if_cancelled
from kbbot.errors import Forbidden, KnowledgeBaseError, NotFound, Unauthorized
from kbbot.search.extract import to_text
from kbbot.search.index import IndexedPage, PageState, SearchIndex, content_hash
from kbbot.search.saved_chats import is_saved_chat

log = logging.getLogger(__name__)

#: ``progress(total, done)``: called once with ``done=0`` when the work is known, then after every page.
Progress = Callable[[int, int], None]

#: Perfect Wiki pages re-read per incremental run when their listing looks unchanged.
DEFAULT_REFRESH_BATCH = 25
#: Give up a run after this many failures in a row (the wiki is down; the next run starts over).
MAX_CONSECUTIVE_FAILURES = 5
#: The fingerprint of a page indexed from the listing only (title and tags, no body yet): always fetched next.
LISTED_ONLY = "listed-only"
#: Optimize the FTS5 b-trees after a run that changed at least this many pages.
_OPTIMIZE_AFTER = 200


@dataclass(slots=True)
class SyncReport:
    """What a sync run did, for the CLI summary and the logs."""

    listed: int = 0
    fetched: int = 0
    changed: int = 0
    deleted: int = 0
    failed: int = 0
    aborted: bool = False
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        pages = "page" if self.listed == 1 else "pages"  # a one-page folder said "1 pages listed"
        text = f"{self.listed} {pages} listed, {self.fetched} fetched, {self.changed} changed, {self.deleted} removed"
        if self.failed:
            text += f", {self.failed} failed"
        if self.aborted:
            text += " (stopped early: the wiki kept failing; the next sync resumes)"
        return text


def _versioned(summary: PageSummary) -> bool:
    return summary.version is not None or summary.updated_at is not None


class IndexSyncer:
    """Syncs one knowledgebase into one index. ``refresh_batch`` bounds the unchanged-looking Perfect Wiki
    pages re-read per incremental run; ``clock`` is injectable for tests."""

    def __init__(
        self,
        kb: KnowledgeBase,
        index: SearchIndex,
        *,
        refresh_batch: int = DEFAULT_REFRESH_BATCH,
        write_batch: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kb = kb
        self.index = index
        self.refresh_batch = max(0, refresh_batch)
        self.write_batch = max(1, write_batch)
        self._clock = clock
        self._lock = asyncio.Lock()
        #: Why the last sync run could not read the wiki (None: it could, or none ran yet in this process).
        self.last_failure: KnowledgeBaseError | None = None
        #: Sync runs finished in this process (also failed ones).
        self.runs = 0
        self._probed = False

    async def sync(self, *, full: bool = False, progress: Progress | None = None) -> SyncReport:
        """One sync run (``full`` re-fetches every page). Runs never overlap: a second caller waits."""
        async with self._lock:
            try:
                report = await self._sync(full=full, progress=progress)
            except KnowledgeBaseError as exc:
                self.last_failure = exc
                raise
            finally:
                self.runs += 1
            self.last_failure = None if not report.aborted else KnowledgeBaseError(report.errors[-1])
            return report

    async def unreachable(self) -> KnowledgeBaseError | None:
        """Why the wiki could not be read when last tried (None: it could). Before any sync ran in this process
        (a one-shot ``kbbot ask`` over an index synced earlier) that is found out once, with one cheap ``info``
        call, so an answer from the index can say the wiki is down instead of passing for current."""
        if self.runs == 0 and not self._probed:
            self._probed = True
            try:
                await self.kb.info()
            except KnowledgeBaseError as exc:
                self.last_failure = exc
        return self.last_failure

    @property
    def current(self) -> bool:
        """Whether a sync in this process already read the whole wiki (the last run did, without failing)."""
        return self.runs > 0 and self.last_failure is None

    async def index_titles(self) -> int:
        """Index every listed page's title and tags now, from one listing and without page bodies, so a search
        can find pages before the first full sync (e.g. the fallback after a 402 on a fresh install). The next
        sync fetches those pages in full. Returns how many were added (0 while a sync is running: that one is
        filling the index already, and a question must not wait for a whole sync)."""
        if self._lock.locked():
            return 0
        async with self._lock:
            summaries = await self.kb.list_pages(priority=Priority.LIVE)
            states = await self.index.states()
            pages = [
                IndexedPage(
                    id=s.id,
                    title=s.title,
                    text="",
                    tags=tuple(s.tags),
                    url=self.kb.page_url(s.id, s.title, s.slug),
                    slug=s.slug,
                    content_hash=LISTED_ONLY,
                )
                for s in summaries
                if s.id not in states
            ]
            return await self.index.upsert_many(pages)

    async def _sync(self, *, full: bool, progress: Progress | None) -> SyncReport:
        report = SyncReport()
        summaries = await self.kb.list_pages(priority=Priority.BACKGROUND)
        listed = {s.id: s for s in summaries}
        report.listed = len(listed)
        states = await self.index.states()

        if listed or full:
            report.deleted = await self.index.delete(pid for pid in states if pid not in listed)
        elif states:
            # An empty listing is far more often a glitch (or a token for another, empty knowledgebase) than a
            # wiki whose every page was deleted; keep answering from what we have. `index sync --full` clears.
            log.warning("the knowledgebase listed no pages; keeping the %d indexed ones", len(states))
        to_fetch = self._plan(listed, states, full=full)
        await self._refresh_urls(listed, states, set(to_fetch))

        titles_by_slug = {s.slug: s.title for s in summaries if s.slug}
        total = len(to_fetch)
        if progress:
            progress(total, 0)
        batch: list[tuple[Page, PageSummary | None]] = []
        failures_in_a_row = 0
        for done, page_id in enumerate(to_fetch, start=1):
            raise_if_cancelled()  # a stop whose cancel a library lost ends the run here, not after every page
            try:
                page = await self.kb.get_page(page_id, priority=Priority.BACKGROUND)
            except NotFound:
                report.deleted += await self.index.delete([page_id])  # vanished between list and get
            except (Unauthorized, Forbidden):
                raise  # a configuration problem: every further request would fail the same way
            except KnowledgeBaseError as exc:
                report.failed += 1
                report.errors.append(f"{page_id}: {exc}")
                failures_in_a_row += 1
                if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                    report.aborted = True
                    log.warning("index sync stopped after %d failures in a row: %s", failures_in_a_row, exc)
                    break
            else:
                failures_in_a_row = 0
                report.fetched += 1
                batch.append((page, listed.get(page_id)))
                if len(batch) >= self.write_batch:
                    report.changed += await self._write(batch, titles_by_slug, states)
                    batch = []
            if progress:
                progress(total, done)
        report.changed += await self._write(batch, titles_by_slug, states)

        if report.changed + report.deleted >= _OPTIMIZE_AFTER:
            await self.index.optimize()
        await self.index.flush()
        await self.index.set_meta("last_sync", str(self._clock()))
        log.info("index sync: %s", report.summary())
        return report

    def _plan(self, listed: dict[str, PageSummary], states: dict[str, PageState], *, full: bool) -> list[str]:
        """Which listed pages to fetch: new, changed, and (unversioned listings) the stalest few."""
        if full:
            return list(listed)
        fetch: list[str] = []
        stale: list[tuple[float, str]] = []
        for pid, summary in listed.items():
            state = states.get(pid)
            if (
                state is None
                or state.content_hash == LISTED_ONLY
                or state.title != summary.title
                or state.tags != tuple(summary.tags)
            ):
                fetch.append(pid)
            elif _versioned(summary):
                if (summary.version, summary.updated_at) != (state.version, state.updated_at):
                    fetch.append(pid)
            else:
                stale.append((state.last_fetched, pid))
        stale.sort()
        fetch.extend(pid for _, pid in stale[: self.refresh_batch])
        return fetch

    async def _refresh_urls(
        self, listed: dict[str, PageSummary], states: dict[str, PageState], fetching: set[str]
    ) -> None:
        """Keep stored links current when the URL template changes, without fetching pages again. Computed in
        a thread: for 10,000 pages (and a local folder's page_url, which stats files) it is not nothing."""

        def compute() -> dict[str, str | None]:
            changed: dict[str, str | None] = {}
            for pid, state in states.items():
                summary = listed.get(pid)
                if summary is None or pid in fetching:
                    continue
                url = self.kb.page_url(pid, summary.title, summary.slug)
                if url != state.url:
                    changed[pid] = url
            return changed

        await self.index.set_urls(await asyncio.to_thread(compute))

    async def _write(
        self,
        batch: list[tuple[Page, PageSummary | None]],
        titles_by_slug: dict[str, str],
        states: dict[str, PageState],
    ) -> int:
        """Extract and store one batch; returns how many pages changed. HTML/Markdown parsing of a big page
        takes milliseconds of CPU: off the event loop like the SQL, in one trip per batch."""
        if not batch:
            return 0

        def extract() -> list[IndexedPage]:
            return [self._to_indexed(page, summary, titles_by_slug, states.get(page.id)) for page, summary in batch]

        return await self.index.upsert_many(await asyncio.to_thread(extract))

    def _to_indexed(
        self,
        page: Page,
        summary: PageSummary | None,
        titles_by_slug: dict[str, str],
        state: PageState | None = None,
    ) -> IndexedPage:
        fingerprint = content_hash(page.title, "\x1f".join(page.tags), page.content)
        # The same content as indexed (a full sync, a periodic re-read): the index keeps the text it has and only
        # refreshes the bookkeeping, so extracting it again would be wasted (most of a full sync's CPU).
        unchanged = (
            state is not None
            and (state.content_hash, state.title, state.tags) == (fingerprint, page.title, tuple(page.tags))
        )
        text = "" if unchanged else to_text(page.content, self.kb.content_format, resolve_link=titles_by_slug.get)
        return IndexedPage(
            id=page.id,
            title=page.title,
            text=text,
            tags=tuple(page.tags),
            url=self.kb.page_url(page.id, page.title, page.slug),
            slug=page.slug,
            # The listing's version is what the next incremental run compares against.
            version=summary.version if summary and summary.version is not None else page.version,
            updated_at=summary.updated_at if summary and summary.updated_at is not None else page.updated_at,
            content_hash=fingerprint,
            saved_chat=is_saved_chat(page.content),
        )

    async def index_page(self, page_id: str) -> bool:
        """Fetch and index one page now (e.g. right after the bot saved it), so it is answerable at once.
        Returns False when the page no longer exists (it is dropped from the index)."""
        try:
            page = await self.kb.get_page(page_id, priority=Priority.BACKGROUND)
        except NotFound:
            await self.index.delete([page_id])
            return False
        await self.index.upsert(await asyncio.to_thread(self._to_indexed, page, None, {}))
        return True


class IndexRefresher:
    """Runs incremental syncs in the background every ``interval_seconds`` (0 = never) while the bot runs.

    ``start()`` schedules the loop (first sync at once when ``sync_at_start``, unless the syncer has synced in
    this process already: the runtime syncs a local folder when it opens, and one start must not read it twice);
    ``stop()`` cancels it and waits, so shutdown is clean even in the middle of a sync (each page write is its
    own transaction; a cancellation a library lost is delivered again, see :func:`cancel_and_wait`). A second
    ``stop()`` is a no-op. A failing sync is logged and retried at the next interval; it never kills the loop.
    """

    def __init__(
        self,
        syncer: IndexSyncer,
        interval_seconds: float,
        *,
        sync_at_start: bool = True,
        on_error: Callable[[BaseException], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.syncer = syncer
        self._sleep = sleep
        self.interval = interval_seconds
        self.sync_at_start = sync_at_start
        self._on_error = on_error
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.interval <= 0 or self.running:
            return
        self._task = asyncio.create_task(self._loop(), name="kbbot-index-refresher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def __aenter__(self) -> IndexRefresher:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        if not self.sync_at_start or self.syncer.current:
            await self._sleep(self.interval)
        while True:
            try:
                await self.syncer.sync()
            except asyncio.CancelledError:
                log.info("background index sync stopped mid-run; the next sync picks up where it left off")
                raise
            except Exception as exc:
                log.warning("background index sync failed: %s", exc)
                if self._on_error is not None:
                    self._on_error(exc)
            self.runs += 1
            await self._sleep(self.interval)
