"""IndexFallback: the search answer plus what the index cannot know (never synced, wiki unreachable)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbbot.errors import Unavailable
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.fallback import CANNOT_SEARCH, TITLES_ONLY_NOTICE, IndexFallback
from kbbot.search.index import SearchIndex
from kbbot.search.sync import IndexSyncer
from tests.fakes.memory_kb import MemoryKnowledgeBase


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SearchIndex]:
    async with SearchIndex(tmp_path / "i.sqlite3") as idx:
        yield idx


def fallback(kb: MemoryKnowledgeBase, index: SearchIndex, now: float = 10_000.0) -> tuple[IndexFallback, IndexSyncer]:
    syncer = IndexSyncer(kb, index)  # type: ignore[arg-type]
    return IndexFallback(SearchAnswerer(index), index, syncer, kind="mathub", clock=lambda: now), syncer


async def test_never_synced_and_unreachable_is_said_once_in_the_log(
    index: SearchIndex, caplog: pytest.LogCaptureFixture
) -> None:
    kb = MemoryKnowledgeBase()
    kb.fail_next("list_pages", Unavailable("connection refused"), times=2)
    answerer, _ = fallback(kb, index)
    with caplog.at_level(logging.WARNING, logger="kbbot.search.fallback"):
        first = await answerer.answer("spectral sequences")
        second = await answerer.answer("homology")
    assert first.text == CANNOT_SEARCH and first.empty and first.notice
    assert "MatHub isn't reachable right now and none of its pages have been indexed yet" in first.notice
    assert second.notice == first.notice
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1  # once per outage


async def test_never_synced_gets_titles_then_a_full_sync_replaces_them(index: SearchIndex) -> None:
    kb = MemoryKnowledgeBase(content_format="markdown")
    page = await kb.create_page("Spectral sequences", "A tool for computing homology.", ("algebra",))
    answerer, syncer = fallback(kb, index)
    answer = await answerer.answer("spectral sequences")
    assert answer.notice == TITLES_ONLY_NOTICE and answer.related_pages[0].id == page.id
    assert (await index.texts([page.id]))[0].text == ""  # titles and tags only, so far
    report = await syncer.sync()
    assert report.fetched == 1  # the listed-only page is fetched in full by the next sync
    assert "computing homology" in (await index.texts([page.id]))[0].text
    synced = await answerer.answer("computing homology")
    assert synced.notice is None and synced.related_pages[0].id == page.id


async def test_synced_index_while_the_wiki_is_unreachable_names_its_age(index: SearchIndex) -> None:
    kb = MemoryKnowledgeBase(content_format="markdown")
    await kb.create_page("Spectral sequences", "A tool for computing homology.")
    answerer, syncer = fallback(kb, index, now=10_000.0 + 2 * 3600)
    syncer._clock = lambda: 10_000.0
    await syncer.sync()
    kb.fail_next("list_pages", Unavailable("connection refused"))
    with pytest.raises(Unavailable):
        await syncer.sync()
    answer = await answerer.answer("computing homology")
    assert answer.notice == (
        "MatHub isn't reachable right now: this answer comes from its pages, as indexed 2 h ago "
        "(1970-01-01 02:46 UTC)."
    )
    assert answer.related_pages  # the indexed copy still answers


async def test_an_index_synced_by_an_earlier_process_checks_the_wiki_once(index: SearchIndex) -> None:
    kb = MemoryKnowledgeBase(content_format="markdown")
    await kb.create_page("Spectral sequences", "A tool for computing homology.")
    await IndexSyncer(kb, index, clock=lambda: 10_000.0).sync()  # e.g. `kbbot index sync`, yesterday
    kb.fail_next("info", Unavailable("connection refused"), times=5)  # now the wiki is down
    answerer, syncer = fallback(kb, index, now=10_000.0 + 3 * 86400)  # a new `kbbot ask` process
    first = await answerer.answer("computing homology")
    assert first.notice is not None and first.notice.startswith("MatHub isn't reachable right now")
    assert "3 days ago (1970-01-01 02:46 UTC)" in first.notice and first.related_pages
    assert (await answerer.answer("homology")).notice == first.notice
    assert kb.count("info") == 1  # asked once per process, not per question
    await syncer.sync()  # the wiki is back (its listing answers): the notice goes
    assert (await answerer.answer("computing homology")).notice is None
    up, _ = fallback(MemoryKnowledgeBase(), index, now=10_000.0 + 3 * 86400)
    assert (await up.answer("computing homology")).notice is None  # reachable: the index is taken as current


async def test_a_question_never_waits_for_a_running_first_sync(index: SearchIndex) -> None:
    import asyncio

    class SlowListing(MemoryKnowledgeBase):
        gate = asyncio.Event()
        listing = asyncio.Event()

        async def list_pages(self, **kwargs):  # type: ignore[no-untyped-def]
            self.listing.set()
            await self.gate.wait()
            return await super().list_pages(**kwargs)

    kb = SlowListing(content_format="markdown")
    await kb.create_page("Spectral sequences", "A tool for computing homology.")
    answerer, syncer = fallback(kb, index)
    sync = asyncio.create_task(syncer.sync())
    await kb.listing.wait()
    answer = await answerer.answer("spectral sequences")  # answered now, from what the index has (nothing yet)
    assert answer.notice == TITLES_ONLY_NOTICE and not sync.done()
    kb.gate.set()
    await sync
