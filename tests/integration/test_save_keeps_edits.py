"""Re-saving a thread replaces only kbbot's block: what people wrote on the page stays (Perfect Wiki, MatHub)."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kbbot.backends.http import RetryPolicy
from kbbot.backends.mathub import MatHubBackend, build_write_limiter
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.page_render import begin_marker_text, find_marker, marker_text, thread_digest
from kbbot.core.ports import KnowledgeBase
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.store.limiter import TokenRateLimiter
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.mathub import FakeMatHub
from tests.fakes.memory_kb import SimulatedCrash
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.test_save_perfectwiki import CrashingMap

KEY = "C9:1736067600.000100"
MAP_KEY = f"slack:{KEY}"
DIGEST = thread_digest("slack", KEY)
POLICY = SaveRetryPolicy(first_delay=1, max_delay=5, jitter=0.0, poll_interval=0.05, lease_seconds=30)


def thread(*texts: str) -> Thread:
    messages = tuple(
        ThreadMessage(f"person{i % 2}", f"U{i % 2}", f"2026-01-05T09:{i:02d}:00+00:00", text)
        for i, text in enumerate(texts)
    )
    return Thread("slack", KEY, messages, "https://team.slack.com/archives/C9/p1736067600000100", "it")


class Wiki:
    """One backend (``html`` Perfect Wiki or ``markdown`` MatHub) with the person-side operations a test needs."""

    def __init__(self, kb: KnowledgeBase, read: object, edit: object, fmt: str) -> None:
        self.kb, self._read, self._edit, self.fmt = kb, read, edit, fmt

    def content(self, page_id: str) -> str:
        return self._read(page_id)  # type: ignore[operator, no-any-return]

    def person_edits(self, page_id: str, content: str) -> None:
        self._edit(page_id, content)  # type: ignore[operator]

    def paragraph(self, text: str) -> str:
        return f"<p>{text}</p>" if self.fmt == "html" else f"\n{text}\n"


@pytest.fixture(params=["perfectwiki", "mathub"])
async def wiki(
    request: pytest.FixtureRequest, fake_pw: FakePerfectWiki, fake_mathub: FakeMatHub
) -> AsyncIterator[Wiki]:
    async with httpx.AsyncClient(timeout=5) as http:
        if request.param == "perfectwiki":
            pw = PerfectWikiBackend(
                http,
                fake_pw.token,
                limiter=TokenRateLimiter(fake_pw.token, per_second=100, per_minute=1000),
                base_url=fake_pw.url,
                retry=RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(1)),
            )

            def pw_read(page_id: str) -> str:
                page = fake_pw.page(page_id)
                assert page is not None
                return str(page["content"])

            def pw_edit(page_id: str, content: str) -> None:
                page = fake_pw.page(page_id)
                assert page is not None
                fake_pw.seed_pages([{**page, "content": content}])  # an edit in the wiki's own editor

            yield Wiki(pw, pw_read, pw_edit, "html")
        else:
            # The fake_mathub server allows 5 writes a minute; every test here stays within that.
            mathub = MatHubBackend(
                http,
                api_key=fake_mathub.api_key,
                base_url=fake_mathub.url,
                project=fake_mathub.project,
                write_limiter=build_write_limiter(fake_mathub.api_key, 1000),
                retry_policy=RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(2)),
            )

            def mh_edit(page_id: str, content: str) -> None:
                fake_mathub.edit_as_someone_else(page_id, content)

            yield Wiki(mathub, lambda page_id: fake_mathub.page(page_id).content, mh_edit, "markdown")


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteSavedThreadMap, SqliteOutbox]]:
    path = tmp_path / "threads.sqlite3"
    thread_map, outbox = SqliteSavedThreadMap(path), SqliteOutbox(path)
    yield thread_map, outbox
    await thread_map.aclose()
    await outbox.aclose()


def saver_for(wiki: Wiki, stores: tuple[SqliteSavedThreadMap, SqliteOutbox], **kw: object) -> ThreadSaver:
    thread_map, outbox = stores
    saver = ThreadSaver(wiki.kb, kw.pop("thread_map", thread_map), outbox, retry=POLICY, **kw)  # type: ignore[arg-type]
    saver.listen("slack", _slack_adapter)  # a process running Slack: its worker retries the queued Slack saves
    return saver


async def _slack_adapter(key: str, outcome: object) -> None:
    return None


async def test_text_a_person_adds_around_the_thread_survives_a_resave(
    wiki: Wiki, stores: tuple[SqliteSavedThreadMap, SqliteOutbox]
) -> None:
    saver = saver_for(wiki, stores)
    first = await saver.save(thread("The printer is on fire", "Unplug it"))
    page_id = first.id or ""
    notes = wiki.paragraph("Owner: facilities team.")
    resolution = wiki.paragraph("Resolution: the fuser was replaced on Monday.")
    wiki.person_edits(page_id, notes + wiki.content(page_id) + resolution)
    second = await saver.save(thread("The printer is on fire", "Unplug it", "Fixed, thanks!"))
    assert second.id == page_id and not second.created and not second.pending
    content = wiki.content(page_id)
    assert content.startswith(notes) and content.endswith(resolution)
    assert "Fixed, thanks!" in content and content.count("Unplug it") == 1
    assert content.count(begin_marker_text(DIGEST, 1)) == 1 and content.count(marker_text(DIGEST, 1)) == 1


async def test_removed_markers_keep_everything_then_heal(
    wiki: Wiki, stores: tuple[SqliteSavedThreadMap, SqliteOutbox]
) -> None:
    saver = saver_for(wiki, stores)
    first = await saver.save(thread("VPN drops every hour", "Use the TCP profile"))
    page_id = first.id or ""
    edited = wiki.content(page_id).replace(begin_marker_text(DIGEST, 1), "") + wiki.paragraph("My notes.")
    wiki.person_edits(page_id, edited)
    await saver.save(thread("VPN drops every hour", "Use the TCP profile", "Works now"))
    content = wiki.content(page_id)
    assert content.index("Works now") < content.index("Kept from this page")  # new block on top
    assert content.endswith(edited.lstrip("\n")) and "My notes." in content  # nothing removed
    await saver.save(thread("VPN drops every hour", "Use the TCP profile", "Works now", "Closing"))
    healed = wiki.content(page_id)
    assert healed.count("Closing") == 1 and healed.count("Kept from this page") == 1
    assert healed.endswith(edited.lstrip("\n"))


async def test_crash_recovery_adopts_the_page_even_after_a_person_edited_it(
    wiki: Wiki, stores: tuple[SqliteSavedThreadMap, SqliteOutbox]
) -> None:
    thread_map, outbox = stores
    crashing = saver_for(wiki, stores, thread_map=CrashingMap(thread_map))
    with pytest.raises(SimulatedCrash):
        await crashing.save(thread("Disk full on build host"))
    [summary] = await wiki.kb.list_pages()  # created, never recorded in the map
    appendix = wiki.paragraph("Resolution: " + "cleaned the cache. " * 200)  # longer than the tail scan
    wiki.person_edits(summary.id, wiki.content(summary.id) + appendix)
    assert find_marker(wiki.content(summary.id), DIGEST, 1)
    later = time.time() + 400  # past the crashed attempt's lease (it claimed on the real clock)
    saver = saver_for(wiki, stores, clock=lambda: later)
    await saver.retry_due()
    assert [p.id for p in await wiki.kb.list_pages()] == [summary.id]  # adopted, no duplicate
    assert await thread_map.get(MAP_KEY) == (summary.id,) and await outbox.pending() == []
    assert wiki.content(summary.id).endswith(appendix)


async def test_mathub_concurrent_edit_during_resave_keeps_both(
    fake_mathub: FakeMatHub, stores: tuple[SqliteSavedThreadMap, SqliteOutbox]
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        kb = MatHubBackend(
            http,
            api_key=fake_mathub.api_key,
            base_url=fake_mathub.url,
            project=fake_mathub.project,
            write_limiter=build_write_limiter(fake_mathub.api_key, 1000),
        )
        saver = ThreadSaver(kb, *stores, retry=POLICY)
        first = await saver.save(thread("Grading script crashes", "Missing numpy"))
        page_id = first.id or ""
        fake_mathub.edit_as_someone_else(page_id, "Course: MA101\n\n" + fake_mathub.page(page_id).content)
        fake_mathub.inject_concurrent_edit(page_id, "\n\nTA: fixed in the image too.")
        second = await saver.save(thread("Grading script crashes", "Missing numpy", "pip install numpy"))
        assert not second.pending
        content = fake_mathub.page(page_id).content
        assert content.startswith("Course: MA101\n\n") and content.endswith("TA: fixed in the image too.")
        assert "pip install numpy" in content
        assert [r.status for r in fake_mathub.requests if r.method == "PATCH"] == [409, 200]


async def test_perfectwiki_rewrite_reads_then_writes(
    fake_pw: FakePerfectWiki, stores: tuple[SqliteSavedThreadMap, SqliteOutbox]
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        kb = PerfectWikiBackend(
            http,
            fake_pw.token,
            limiter=TokenRateLimiter(fake_pw.token, per_second=100, per_minute=1000),
            base_url=fake_pw.url,
        )
        saver = ThreadSaver(kb, *stores, retry=POLICY)
        first = await saver.save(thread("Laptop won't boot"))
        fake_pw.reset_stats()
        await saver.save(thread("Laptop won't boot", "Hold power for 30 s"))
        per = fake_pw.stats().per_endpoint
        assert per.get("get") == 1 and per.get("update") == 1 and not per.get("create")
        page = fake_pw.page(first.id or "")
        assert page is not None and "Hold power for 30 s" in page["content"]
