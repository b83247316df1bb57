from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import kbbot.search.sync as sync_module
from kbbot.core.ports import Priority
from kbbot.errors import Unauthorized, Unavailable
from kbbot.search.index import SearchIndex
from kbbot.search.sync import MAX_CONSECUTIVE_FAILURES, IndexRefresher, IndexSyncer, SyncReport
from tests.fakes.sync_kb import SyncKnowledgeBase


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SearchIndex]:
    async with SearchIndex(tmp_path / "index.sqlite3", clock=Clock()) as idx:
        yield idx


def seed(kb: Any, n: int = 5) -> None:
    for i in range(n):
        kb.put(f"p{i}", f"Page {i}", f"Body of page {i} about topic{i}.", tags=(f"tag{i}",))


async def ids(index: SearchIndex, q: str) -> list[str]:
    return [h.id for h in await index.search(q)]


async def test_versioned_full_then_incremental(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase(versioned=True)
    seed(kb)
    syncer = IndexSyncer(kb, index)
    report = await syncer.sync()
    assert (report.listed, report.fetched, report.changed, report.deleted) == (5, 5, 5, 0)
    assert await ids(index, "topic3") == ["p3"]

    kb.calls.clear()
    report = await syncer.sync()
    assert report.fetched == 0 and kb.gets() == []  # nothing changed: only the listing was read

    kb.put("p1", "Page 1", "Rewritten: now about quantum.", tags=("tag1",))  # version bump
    kb.put("p2", "Page two renamed", "Body of page 2 about topic2.", tags=("tag2",))
    kb.put("p9", "Brand new", "Fresh page about bananas.")
    del kb.pages["p4"]
    kb.calls.clear()
    report = await syncer.sync()
    assert sorted(kb.gets()) == ["p1", "p2", "p9"]
    assert (report.fetched, report.changed, report.deleted) == (3, 3, 1)
    assert await ids(index, "quantum") == ["p1"]
    assert await ids(index, "topic1") == []
    assert await ids(index, "renamed") == ["p2"]
    assert await ids(index, "bananas") == ["p9"]
    assert await ids(index, "topic4") == []
    assert await index.count() == 5


async def test_full_sync_refetches_everything(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 3)
    syncer = IndexSyncer(kb, index)
    await syncer.sync()
    kb.calls.clear()
    report = await syncer.sync(full=True)
    assert sorted(kb.gets()) == ["p0", "p1", "p2"]
    assert report.changed == 0  # same content: FTS rows untouched


async def test_a_full_sync_extracts_only_pages_whose_content_changed(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 4)
    syncer = IndexSyncer(kb, index)
    await syncer.sync()
    extracted: list[str] = []
    real = sync_module.to_text

    def counting(content: str, *args: Any, **kwargs: Any) -> str:
        extracted.append(content)
        return real(content, *args, **kwargs)

    monkeypatch.setattr(sync_module, "to_text", counting)
    kb.put("p2", "Page 2", "Rewritten: now about quantum.", tags=("tag2",))
    kb.put("p3", "Page 3 renamed", "Body of page 3 about topic3.", tags=("tag3",))
    report = await syncer.sync(full=True)
    assert report.fetched == 4 and report.changed == 2
    assert sorted(extracted) == ["Body of page 3 about topic3.", "Rewritten: now about quantum."]
    # The unchanged pages kept their text: found by body words, quotable.
    assert await ids(index, "topic0") == ["p0"] and await ids(index, "quantum") == ["p2"]
    [text] = await index.texts(["p1"])
    assert text.text == "Body of page 1 about topic1."


async def test_unversioned_listing_refreshes_oldest_first(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase(versioned=False, content_format="html")
    for i in range(6):
        kb.put(f"p{i}", f"Page {i}", f"<p>Body of page {i} about <b>topic{i}</b>.</p>")
    syncer = IndexSyncer(kb, index, refresh_batch=2)
    await syncer.sync()
    assert all(call.kwargs == {"priority": Priority.BACKGROUND} for call in kb.calls)

    # Perfect Wiki does not list content changes: an edit of p5's body is invisible to the listing...
    kb.put("p5", "Page 5", "<p>Edited body about <i>zebras</i>.</p>")
    # ...but a title change, a tag change and a new page are.
    kb.put("p0", "Page zero", "<p>Body of page 0 about topic0.</p>")
    kb.put("p1", "Page 1", "<p>Body of page 1 about topic1.</p>", tags=("new-tag",))
    kb.put("p7", "Page 7", "<p>Seventh <script>evil()</script>page.</p>")

    fetched_per_run = []
    for _ in range(3):
        kb.calls.clear()
        await syncer.sync()
        fetched_per_run.append(kb.gets())
    first = fetched_per_run[0]
    assert set(first[:3]) == {"p0", "p1", "p7"}  # changed and new first
    assert len(first) == 3 + 2  # plus the refresh batch
    # Over the runs every unchanged-looking page is refreshed, least recently fetched first.
    refreshed = [pid for run in fetched_per_run for pid in run if pid not in {"p0", "p1", "p7"}]
    assert set(refreshed[:4]) == {"p2", "p3", "p4", "p5"}
    assert await ids(index, "zebras") == ["p5"]
    assert await ids(index, "evil") == []
    assert await ids(index, "seventh") == ["p7"]
    assert all(call.kwargs == {"priority": Priority.BACKGROUND} for call in kb.calls)


async def test_page_vanishing_between_list_and_get_is_dropped(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 3)
    syncer = IndexSyncer(kb, index)
    await syncer.sync()
    kb.put("p1", "Page 1", "changed")
    original_list = kb._list

    async def list_then_delete(**kwargs: Any) -> Any:
        listed = await original_list(**kwargs)
        kb.pages.pop("p1")
        return listed

    kb._list = list_then_delete  # type: ignore[method-assign]
    report = await syncer.sync()
    assert report.deleted == 1 and report.failed == 0
    assert "p1" not in await index.states()


async def test_failures_are_counted_and_a_failing_wiki_stops_the_run(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 8)
    kb.failures["p2"] = [Unavailable("Perfect Wiki is unavailable (HTTP 503).", status=503)]
    syncer = IndexSyncer(kb, index)
    report = await syncer.sync()
    assert (report.fetched, report.failed, report.aborted) == (7, 1, False)
    assert "p2" in report.errors[0] and "p2" not in await index.states()
    assert (await syncer.sync()).fetched == 1  # picked up next time

    for i in range(8):
        kb.put(f"p{i}", f"Page {i}", "edited")
        kb.failures[f"p{i}"] = [Unavailable("down", status=503)]
    kb.calls.clear()
    report = await syncer.sync()
    assert report.aborted and report.failed == MAX_CONSECUTIVE_FAILURES
    assert len(kb.gets()) == MAX_CONSECUTIVE_FAILURES
    assert "stopped early" in report.summary()


async def test_unauthorized_stops_the_sync(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 2)
    kb.failures["p0"] = [Unauthorized("The token was rejected.", status=401)]
    with pytest.raises(Unauthorized):
        await IndexSyncer(kb, index).sync()


async def test_progress_reports_total_then_each_page(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 4)
    seen: list[tuple[int, int]] = []
    await IndexSyncer(kb, index, write_batch=2).sync(progress=lambda total, done: seen.append((total, done)))
    assert seen == [(4, 0), (4, 1), (4, 2), (4, 3), (4, 4)]
    seen.clear()
    await IndexSyncer(kb, index).sync(progress=lambda total, done: seen.append((total, done)))
    assert seen == [(0, 0)]


async def test_url_template_change_updates_links_without_fetching(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase(url_template=None)
    seed(kb, 2)
    syncer = IndexSyncer(kb, index)
    await syncer.sync()
    assert (await index.search("topic1"))[0].url is None
    kb.url_template = "https://wiki.example/page/{id}"
    kb.calls.clear()
    await syncer.sync()
    assert kb.gets() == []
    assert (await index.search("topic1"))[0].url == "https://wiki.example/page/p1"


async def test_wiki_links_resolve_to_listed_titles(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    kb.put("a", "Serre Spectral Sequence", "A tool.", slug="serre-spectral-sequence")
    kb.put("b", "Homotopy", "See [[serre-spectral-sequence]] for more.", slug="homotopy")
    await IndexSyncer(kb, index).sync()
    [text] = await index.texts(["b"])
    assert text.text == "See Serre Spectral Sequence for more."


async def test_index_page_now(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    syncer = IndexSyncer(kb, index)
    ref = await kb.create_page("Saved thread", "We fixed the flux capacitor.")
    assert await syncer.index_page(ref.id) is True
    assert await ids(index, "capacitor") == [ref.id]
    await kb.delete_page(ref.id)
    assert await syncer.index_page(ref.id) is False
    assert await ids(index, "capacitor") == []


async def test_concurrent_syncs_do_not_overlap(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 3)
    syncer = IndexSyncer(kb, index)
    reports = await asyncio.gather(syncer.sync(), syncer.sync())
    assert sorted(r.fetched for r in reports) == [0, 3]


async def test_refresher_runs_periodically_survives_errors_and_stops(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 2)
    syncer = IndexSyncer(kb, index)
    errors: list[BaseException] = []
    calls = itertools.count()
    original = kb._list

    async def flaky_list(**kwargs: Any) -> Any:
        if next(calls) == 1:
            raise Unavailable("down", status=503)
        return await original(**kwargs)

    kb._list = flaky_list  # type: ignore[method-assign]
    refresher = IndexRefresher(syncer, 0.01, on_error=errors.append)
    async with refresher, asyncio.timeout(30):  # a hang guard: it runs every 10 ms
        assert refresher.running
        while refresher.runs < 3:
            await asyncio.sleep(0.01)
    assert not refresher.running
    assert refresher.runs >= 3
    assert len(errors) == 1 and isinstance(errors[0], Unavailable)
    assert await index.count() == 2


async def test_refresher_off_when_interval_is_zero(index: SearchIndex) -> None:
    refresher = IndexRefresher(IndexSyncer(SyncKnowledgeBase(), index), 0)
    refresher.start()
    assert not refresher.running
    await refresher.stop()


async def test_refresher_stop_mid_sync(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 3)
    started = asyncio.Event()
    original = kb._get

    async def slow_get(page_id: str, **kwargs: Any) -> Any:
        started.set()
        await asyncio.sleep(10)
        return await original(page_id, **kwargs)

    kb._get = slow_get  # type: ignore[method-assign]
    refresher = IndexRefresher(IndexSyncer(kb, index), 60)
    refresher.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(refresher.stop(), 2)
    assert not refresher.running


async def test_refresher_stop_ends_a_sync_whose_cancel_was_lost(
    index: SearchIndex, caplog: pytest.LogCaptureFixture
) -> None:
    """The CI hang of a replica at SIGTERM: the stop's cancel landed as one of the sync's Redis commands (the
    shared rate windows) completed, Python 3.11's ``asyncio.wait_for`` in redis-py's send lost it (see
    tests/unit/core/test_tasks.py), and the sync fetched every remaining page, then slept until its next run
    while stop() waited for it. Now the sync ends before the next page and stop() returns."""
    caplog.set_level(logging.INFO, logger="kbbot.search.sync")
    kb = SyncKnowledgeBase(versioned=False)
    seed(kb, 5)
    inside = asyncio.Event()
    sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    original = kb._get

    async def get_after_a_redis_command(page_id: str, **kwargs: Any) -> Any:
        if not sent.done():
            inside.set()
            await asyncio.wait_for(sent, timeout=60)  # how redis-py sends a command (socket_timeout set)
        return await original(page_id, **kwargs)

    kb._get = get_after_a_redis_command  # type: ignore[method-assign]
    refresher = IndexRefresher(IndexSyncer(kb, index), 900)
    refresher.start()
    await inside.wait()
    sent.set_result(None)  # the command completes, and the stop's cancel lands in the same step
    stopper = asyncio.create_task(refresher.stop())
    done, _ = await asyncio.wait({stopper}, timeout=30)  # a hang guard: only turns the bug into a failure
    assert done, "stop() hung: the sync ran on after its cancel was lost"
    await stopper
    assert not refresher.running
    assert len(kb.gets()) == 1  # the page in flight; none after it
    assert "index sync:" not in caplog.text  # the run did not go on to the end ...
    assert "background index sync stopped mid-run" in caplog.text  # ... it was stopped
    await refresher.stop()  # a second stop (serve's shutdown step, then its exit stack) is a no-op


async def test_an_empty_listing_does_not_wipe_the_index_unless_full(index: SearchIndex) -> None:
    kb = SyncKnowledgeBase()
    seed(kb, 3)
    syncer = IndexSyncer(kb, index)
    await syncer.sync()
    kb.pages.clear()
    assert (await syncer.sync()).deleted == 0
    assert await index.count() == 3
    assert (await syncer.sync(full=True)).deleted == 3
    assert await index.count() == 0


async def test_extraction_and_sql_run_off_the_event_loop(index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = sync_module.to_text

    def spy(*args: Any, **kwargs: Any) -> str:
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(sync_module, "to_text", spy)
    kb = SyncKnowledgeBase()
    # A page worth moving off the loop (~40 KB); which thread does the work is the check, not how long it takes.
    kb.put("big", "Big page", "# Big\n\n" + "Lots of *markdown* text about zebras. " * 1_000)
    syncer = IndexSyncer(kb, index)
    await syncer.sync()
    assert await syncer.index_page("big")
    main = threading.current_thread().name
    assert len(threads) == 2 and main not in threads
    assert await ids(index, "zebras") == ["big"]


def test_summary_counts_one_page_in_the_singular() -> None:
    assert SyncReport(listed=1).summary() == "1 page listed, 0 fetched, 0 changed, 0 removed"
    assert SyncReport(listed=2, fetched=2).summary().startswith("2 pages listed, 2 fetched")
