from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from kbbot.core.models import PageChange, PageRef, SavedPage, Thread, ThreadMessage
from kbbot.core.page_render import find_marker, thread_digest
from kbbot.core.slugs import slugify
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.errors import (
    BadRequest,
    BadResponse,
    NotFound,
    RateLimited,
    SaveError,
    Unauthorized,
    Unavailable,
    Unsupported,
)
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.cancels import HANG_GUARD_SECONDS, LOSES_CANCELS, LostSend
from tests.fakes.memory_kb import MemoryKnowledgeBase, SimulatedCrash


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_thread(*texts: str, key: str = "C1:1700000000.000100", channel: str | None = "Dev Ops") -> Thread:
    messages = tuple(
        ThreadMessage(f"user{i % 2}", f"U{i % 2}", f"2026-01-05T09:{i % 60:02d}:00+00:00", text)
        for i, text in enumerate(texts)
    )
    return Thread("slack", key, messages, "https://team.slack.com/archives/C1/p1", channel)


@dataclass
class Env:
    kb: MemoryKnowledgeBase
    clock: Clock
    path: Path
    saver: ThreadSaver
    thread_map: SqliteSavedThreadMap
    outbox: SqliteOutbox
    saved: list[tuple[str, str, SavedPage]]

    async def restart(self) -> None:
        """A new process: fresh store connections and a fresh saver over the same file and wiki."""
        await self.thread_map.aclose()
        await self.outbox.aclose()
        self.thread_map = SqliteSavedThreadMap(self.path)
        self.outbox = SqliteOutbox(self.path)
        self.saver = new_saver(self.kb, self.thread_map, self.outbox, self.clock, self.saved)


POLICY = SaveRetryPolicy(first_delay=10, max_delay=100, jitter=0.0, poll_interval=0.05, lease_seconds=60)


def new_saver(kb, thread_map, outbox, clock, saved, **kw) -> ThreadSaver:  # type: ignore[no-untyped-def]
    async def on_saved(key: str, page: SavedPage) -> None:
        saved.append((key, page))

    saver = ThreadSaver(kb, thread_map, outbox, retry=POLICY, clock=clock, default_tags=("Saved", "chat"), **kw)
    saver.listen("slack", on_saved)
    return saver


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    kb = MemoryKnowledgeBase()
    clock = Clock()
    path = tmp_path / "data" / "threads.sqlite3"
    thread_map, outbox = SqliteSavedThreadMap(path), SqliteOutbox(path)
    saved: list[tuple[str, str, SavedPage]] = []
    e = Env(kb, clock, path, new_saver(kb, thread_map, outbox, clock, saved), thread_map, outbox, saved)
    yield e
    await e.saver.stop()
    await e.thread_map.aclose()
    await e.outbox.aclose()


async def test_first_save_creates_with_defaults(env: Env) -> None:
    page = await env.saver.save(make_thread("How do I *rotate* the VPN keys?\nmore", "Use the script"))
    assert page.created and not page.pending
    assert page.id == "p1" and page.url == "https://wiki.example.com/page/p1"
    stored = env.kb.pages["p1"]
    assert stored.title == "How do I rotate the VPN keys?"
    assert stored.tags == ("dev-ops", "saved", "chat")
    assert await env.thread_map.get("slack:C1:1700000000.000100") == ("p1",)
    assert await env.outbox.pending() == []
    assert page.to_json() == {"id": "p1", "url": "https://wiki.example.com/page/p1", "created": True}


async def test_explicit_title_and_tags(env: Env) -> None:
    await env.saver.save(
        make_thread("hi"), title="  VPN **keys**\nignored", tags=["Ops Team", "ops team", ""]
    )
    stored = env.kb.pages["p1"]
    assert stored.title == "VPN keys"
    assert stored.tags == ("ops-team",)


async def test_resave_keeps_the_pages_tags_unless_tags_are_given(env: Env) -> None:
    await env.saver.save(make_thread("question"))
    page = env.kb.pages["p1"]
    assert page.tags == ("dev-ops", "saved", "chat")  # defaults on a new page
    env.kb.pages["p1"] = replace(page, tags=("dev-ops", "runbook"))  # someone tags it in the wiki
    await env.saver.save(make_thread("question", "answer"))
    assert env.kb.pages["p1"].tags == ("dev-ops", "runbook")  # a re-save without tags keeps theirs
    await env.saver.save(make_thread("question", "answer"), tags=["Incident"])
    assert env.kb.pages["p1"].tags == ("incident",)  # explicit tags replace them


async def test_title_hint_and_fallbacks(env: Env) -> None:
    thread = make_thread("```\ncode only\n```")
    assert env.saver.title_for(thread) == "code only"
    assert env.saver.title_for(make_thread("")) == "Conversation in #Dev Ops 2026-01-05"
    hinted = Thread("slack", "k", thread.messages, title_hint="From the hint")
    assert env.saver.title_for(hinted) == "From the hint"
    assert env.saver.title_for(make_thread("<!channel> ping @everyone")) == "@\u200bchannel ping @\u200beveryone"


async def test_resave_updates_same_page(env: Env) -> None:
    first = await env.saver.save(make_thread("question", "answer"))
    second = await env.saver.save(make_thread("question", "answer", "a later reply"))
    assert first.id == second.id == "p1"
    assert not second.created
    assert len(env.kb.pages) == 1
    assert "a later reply" in env.kb.pages["p1"].content
    assert env.kb.count("create_page") == 1 and env.kb.count("update_page") == 1


async def test_deleted_page_is_recreated_and_remapped(env: Env) -> None:
    await env.saver.save(make_thread("question"))
    del env.kb.pages["p1"]
    page = await env.saver.save(make_thread("question", "again"))
    assert page.id == "p2" and page.created
    assert await env.thread_map.get("slack:C1:1700000000.000100") == ("p2",)


async def test_empty_thread_is_refused(env: Env) -> None:
    with pytest.raises(SaveError, match="nothing to save"):
        await env.saver.save(Thread("slack", "k", ()))


async def test_a_stopped_worker_whose_cancel_a_save_lost_ends_its_pass(env: Env) -> None:
    """The stop lands just as a save's API call completes, and Python 3.11 loses it (tests/cancels.py): the
    save in hand lands, but the worker stops there instead of sending every other due save first."""
    env.kb.fail_next("create_page", Unavailable("The wiki is unavailable (HTTP 503).", status=503), times=2)
    for key in ("C1:1", "C1:2"):
        assert (await env.saver.save(make_thread("question", key=key))).pending
    send, real_create = LostSend(), env.kb.create_page

    async def create_page(title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        await send()  # the HTTP request, awaited through wait_for
        return await real_create(title, content, tags)

    env.kb.create_page = create_page  # type: ignore[method-assign]
    env.clock.now += 10
    env.saver.start()
    await send.inside.wait()
    send.complete()  # the first due save's call completes ...
    stopper = asyncio.create_task(env.saver.stop())  # ... and the stop's cancel lands in the same step
    done, _ = await asyncio.wait({stopper}, timeout=HANG_GUARD_SECONDS)
    assert done and send.calls == 1  # the second save was not attempted
    landed = 1 if LOSES_CANCELS else 0  # 3.12+ delivers the cancel: the save is released, as "interrupted"
    assert len(env.kb.pages) == landed and await env.saver.queued() == 2 - landed


async def test_outage_queues_then_worker_retries_once(env: Env) -> None:
    env.kb.fail_next("create_page", Unavailable("The wiki is unavailable (HTTP 503).", status=503))
    page = await env.saver.save(make_thread("question"))
    assert page.pending and page.id is None and not page.created
    [item] = await env.outbox.pending()
    assert await env.saver.queued() == 1
    assert item.attempts == 1 and item.next_attempt_at == env.clock.now + 10
    assert item.last_error and "503" in item.last_error
    assert await env.saver.retry_due() == env.clock.now + 10  # not due yet
    assert env.kb.count("create_page") == 1
    env.clock.now += 10
    assert await env.saver.retry_due() is None
    assert list(env.kb.pages) == ["p1"]
    assert await env.outbox.pending() == [] and await env.saver.queued() == 0
    assert [(k, s.id) for k, s in env.saved] == [("C1:1700000000.000100", "p1")]
    # The retry may have written before: it looked for an orphan first (nothing found), then created once.
    assert env.kb.calls == ["create_page", "list_pages", "create_page"]


async def test_rate_limited_uses_retry_after(env: Env) -> None:
    env.kb.fail_next("create_page", RateLimited("Too many requests.", retry_after=42))
    page = await env.saver.save(make_thread("q"))
    assert page.pending
    [item] = await env.outbox.pending()
    assert item.next_attempt_at == env.clock.now + 42


async def test_backoff_grows_and_is_capped() -> None:
    policy = SaveRetryPolicy(first_delay=5, multiplier=2, max_delay=60, jitter=0.5, rng=random.Random(1))
    delays = [policy.delay(n) for n in range(1, 8)]
    for n, d in enumerate(delays, start=1):
        full = min(60.0, 5 * 2 ** (n - 1))
        assert full * 0.5 <= d <= full
    assert policy.delay(30) <= 60


async def test_many_failures_then_success_saves_exactly_once(env: Env) -> None:
    env.kb.fail_next("create_page", Unavailable("down"), times=4)
    env.kb.fail_next("list_pages", BadResponse("garbled"), times=1)
    assert (await env.saver.save(make_thread("q"))).pending
    for _ in range(6):
        env.clock.now += 1000
        await env.saver.retry_due()
    assert len(env.kb.pages) == 1
    assert await env.outbox.pending() == []
    assert len(env.saved) == 1


async def test_crash_after_create_then_restart_adopts_the_page(env: Env) -> None:
    env.kb.crash_after_next_create()
    with pytest.raises(SimulatedCrash):
        await env.saver.save(make_thread("question", "answer"))
    assert len(env.kb.pages) == 1  # the wiki has it; the map does not
    assert await env.thread_map.get("slack:C1:1700000000.000100") is None
    await env.restart()
    await env.saver.retry_due()  # lease still held by the "dead" process
    assert env.kb.count("create_page") == 1
    env.clock.now += 61
    await env.saver.retry_due()
    assert list(env.kb.pages) == ["p1"]
    assert await env.thread_map.get("slack:C1:1700000000.000100") == ("p1",)
    assert await env.outbox.pending() == []
    assert env.saved[0][1].id == "p1" and env.saved[0][1].created


async def test_crash_then_resave_before_retry_still_no_duplicate(env: Env) -> None:
    env.kb.crash_after_next_create()
    with pytest.raises(SimulatedCrash):
        await env.saver.save(make_thread("question"))
    await env.restart()
    env.clock.now += 61
    page = await env.saver.save(make_thread("question", "new reply"))
    assert page.id == "p1" and len(env.kb.pages) == 1
    assert "new reply" in env.kb.pages["p1"].content


async def test_orphan_with_same_title_but_other_thread_is_not_adopted(env: Env) -> None:
    await env.saver.save(make_thread("same title", key="OTHER"))
    env.kb.crash_after_next_create()
    with pytest.raises(SimulatedCrash):
        await env.saver.save(make_thread("same title"))
    await env.restart()
    env.clock.now += 61
    await env.saver.retry_due()
    assert len(env.kb.pages) == 2
    assert await env.thread_map.get("slack:C1:1700000000.000100") == ("p2",)


async def test_bad_request_is_not_retried(env: Env) -> None:
    env.kb.fail_next("create_page", BadRequest("Missing title.", status=400))
    with pytest.raises(SaveError, match="refused"):
        await env.saver.save(make_thread("q"))
    assert await env.outbox.pending() == []


async def test_unauthorized_raises_but_keeps_the_save(env: Env) -> None:
    env.kb.fail_next("create_page", Unauthorized("The wiki token is wrong or was regenerated.", status=401))
    with pytest.raises(SaveError, match="token is wrong"):
        await env.saver.save(make_thread("q"))
    [item] = await env.outbox.pending()
    assert item.next_attempt_at == env.clock.now + 100
    env.clock.now += 100
    await env.saver.retry_due()
    assert len(env.kb.pages) == 1


async def test_update_404_then_other_failure_keeps_queue_consistent(env: Env) -> None:
    await env.saver.save(make_thread("q"))
    env.kb.fail_next("update_page", NotFound("gone", status=404))
    env.kb.fail_next("create_page", Unavailable("down"))
    page = await env.saver.save(make_thread("q", "more"))
    assert page.pending and page.id == "p1"  # still mapped to the old id until the retry succeeds
    env.clock.now += 1000
    await env.saver.retry_due()
    # The 404 was a blip: the retry finds p1 again and updates it; nothing is duplicated.
    assert await env.thread_map.get("slack:C1:1700000000.000100") == ("p1",)
    assert list(env.kb.pages) == ["p1"] and "more" in env.kb.pages["p1"].content


async def test_parts_saved_updated_and_shrunk(tmp_path: Path, env: Env) -> None:
    saver = new_saver(env.kb, env.thread_map, env.outbox, env.clock, env.saved, page_max_chars=20_000)
    long_texts = [f"message {i} " + "lorem ipsum " * 150 for i in range(40)]
    page = await saver.save(make_thread(*long_texts), title="Long")
    ids = await env.thread_map.get("slack:C1:1700000000.000100")
    assert ids is not None and len(ids) > 1
    assert page.id == ids[0] and len(page.extra["parts"]) == len(ids)
    assert env.kb.pages[ids[1]].title == f"Long (part 2/{len(ids)})"
    digest = thread_digest("slack", "C1:1700000000.000100")
    assert all(find_marker(env.kb.pages[pid].content, digest, n) for n, pid in enumerate(ids, 1))
    # Shorter thread now: one page; the surplus parts are deleted, the first is updated in place.
    page2 = await saver.save(make_thread("short now"), title="Long")
    assert page2.id == ids[0] and not page2.extra
    assert list(env.kb.pages) == [ids[0]]
    assert env.kb.pages[ids[0]].title == "Long"


async def test_markdown_backend_gets_markdown(tmp_path: Path, env: Env) -> None:
    kb = MemoryKnowledgeBase(content_format="markdown")
    saver = new_saver(kb, env.thread_map, env.outbox, env.clock, env.saved)
    await saver.save(make_thread("Energy $E=mc^2$ **now**"))
    content = kb.pages["p1"].content
    assert content.startswith("kbbot-thread-begin: ") and "\n\n# Energy " in content
    assert "$E=mc^2$ **now**" in content and "<p>" not in content


async def test_concurrent_saves_of_same_thread_make_one_page(env: Env) -> None:
    thread = make_thread("q")
    pages = await asyncio.gather(*(env.saver.save(thread) for _ in range(5)))
    assert {p.id for p in pages} == {"p1"}
    assert len(env.kb.pages) == 1


async def test_background_worker_retries_after_restart(tmp_path: Path, env: Env) -> None:
    env.kb.fail_next("create_page", Unavailable("down"))
    assert (await env.saver.save(make_thread("q"))).pending
    await env.restart()
    env.clock.now += 10
    async with env.saver, asyncio.timeout(30):  # a hang guard: the worker polls every few milliseconds
        while not env.saved:
            await asyncio.sleep(0.01)
    assert len(env.kb.pages) == 1 and len(env.saved) == 1


async def test_worker_survives_callback_errors(env: Env) -> None:
    async def boom(key: str, page: SavedPage) -> None:
        raise RuntimeError("adapter bug")

    env.saver.listen("slack", boom)
    env.kb.fail_next("create_page", Unavailable("down"))
    await env.saver.save(make_thread("q"))
    env.clock.now += 10
    await env.saver.retry_due()
    assert len(env.kb.pages) == 1 and await env.outbox.pending() == []


@pytest.mark.parametrize(
    ("raw", "slug"),
    [
        ("Dev Ops", "dev-ops"),
        ("#general", "general"),
        ("ÉQUIPE_été", "équipe-été"),
        ("---", ""),
        ("a" * 80, "a" * 50),
    ],
)
def test_tags_are_unicode_slugs(raw: str, slug: str) -> None:
    assert slugify(raw, max_length=50, fallback="", keep_unicode=True) == slug


async def test_listeners_by_platform(env: Env) -> None:
    heard: list[str] = []

    async def slack(key: str, page: SavedPage) -> None:
        heard.append(f"slack:{key}:{page.id}")

    async def discord(key: str, page: SavedPage) -> None:
        heard.append("discord")

    env.saver.listen("slack", slack)
    env.saver.listen("discord", discord)
    env.kb.fail_next("create_page", Unavailable("down"))
    await env.saver.save(make_thread("q"))
    env.clock.now += 10
    await env.saver.retry_due()
    assert heard == ["slack:C1:1700000000.000100:p1"]
    assert env.saved == []  # one listener per platform: the later one replaced the rig's


@pytest.mark.parametrize("edit_error", [None, Unsupported("read-only page"), NotFound("gone", status=404)])
async def test_surplus_parts_a_wiki_cannot_delete_never_fail_the_save(
    env: Env, edit_error: Exception | None
) -> None:
    saver = new_saver(env.kb, env.thread_map, env.outbox, env.clock, env.saved, page_max_chars=20_000)
    long_texts = [f"message {i} " + "lorem ipsum " * 1_200 for i in range(5)]  # one part each
    await saver.save(make_thread(*long_texts), title="Long")
    ids = await env.thread_map.get("slack:C1:1700000000.000100")
    assert ids is not None and len(ids) == 5
    env.kb.fail_next("delete_page", Unsupported("this wiki cannot delete pages"), times=2)
    if edit_error is not None:
        # The three remaining parts update fine; the first retired part cannot be edited either.
        real_update = env.kb.update_page

        async def update(page_id: str, change: PageChange) -> None:
            if page_id == ids[3]:
                raise edit_error
            await real_update(page_id, change)

        env.kb.update_page = update  # type: ignore[method-assign]
    page = await saver.save(make_thread(*long_texts[:3]), title="Long")
    assert not page.pending and page.id == ids[0]
    assert await env.thread_map.get("slack:C1:1700000000.000100") == ids[:3]
    assert await env.outbox.pending() == []
    assert set(env.kb.pages) == set(ids)  # nothing deleted
    assert "now fits on fewer pages" in env.kb.pages[ids[4]].content
    if edit_error is None:
        assert "now fits on fewer pages" in env.kb.pages[ids[3]].content
