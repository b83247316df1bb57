"""ThreadSaver with the real MatHub client (httpx) against the fake MatHub bot API: Markdown pages, versions."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from kbbot.adapters.markup import discord_to_markdown
from kbbot.backends.http import RetryPolicy
from kbbot.backends.mathub import MatHubBackend, build_write_limiter
from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.page_render import find_marker, thread_digest
from kbbot.core.threads import SaveRetryPolicy
from tests.fakes.mathub import DEFAULT_KEY, FakeMatHub
from tests.fakes.memory_kb import SimulatedCrash
from tests.integration.saver_support import CrashingMap, SaverWiring

KEY = "1180000000000000001"
MAP_KEY = f"discord:{KEY}"
RETRY = SaveRetryPolicy(first_delay=1, max_delay=5, lease_seconds=30)
Wiring = SaverWiring[FakeMatHub, MatHubBackend]


def thread(*texts: str) -> Thread:
    messages = tuple(
        ThreadMessage(
            f"member{i % 2}", str(100 + i % 2), f"2026-02-01T12:{i % 60:02d}:00+00:00", discord_to_markdown(text)
        )
        for i, text in enumerate(texts)
    )
    return Thread("discord", KEY, messages, "https://discord.com/channels/1/2/3", "homotopy")


@pytest.fixture
def roomy_mathub() -> Iterator[FakeMatHub]:
    with FakeMatHub(writes_per_window=1000) as server:
        yield server


@pytest.fixture
async def wiring(roomy_mathub: FakeMatHub, tmp_path: Path) -> AsyncIterator[Wiring]:
    path = tmp_path / "data" / "threads.sqlite3"
    async with httpx.AsyncClient(timeout=5) as http:
        kb = MatHubBackend(
            http,
            api_key=DEFAULT_KEY,
            base_url=roomy_mathub.url,
            project=roomy_mathub.project,
            write_limiter=build_write_limiter(DEFAULT_KEY, 1000),
            page_url_template="https://mathub.example/wiki/{slug}",
            retry_policy=RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(2)),
        )
        w = Wiring(roomy_mathub, path, kb, RETRY)
        yield w
        await w.aclose()


async def test_create_and_resave_keep_latex_and_bump_version(wiring: Wiring) -> None:
    first = await wiring.saver.save(
        thread("Why is $\\pi_1(S^1) \\cong \\mathbb{Z}$?", "Use $$p: \\mathbb{R} \\to S^1$$")
    )
    assert first.created and first.url is not None and first.url.startswith("https://mathub.example/wiki/why-is")
    [page] = wiring.fake.pages()
    assert "$\\pi_1(S^1) \\cong \\mathbb{Z}$" in page.content
    assert "$$p: \\mathbb{R} \\to S^1$$" in page.content
    assert page.content.startswith("kbbot-thread-begin: ") and "\n\n# Why is" in page.content
    second = await wiring.saver.save(thread("Why is $\\pi_1(S^1) \\cong \\mathbb{Z}$?", "covering spaces", "thanks"))
    assert second.id == first.id and not second.created
    [page] = wiring.fake.pages()
    assert page.version == 2 and "thanks" in page.content


async def test_lost_create_response_is_retried_without_duplicate(wiring: Wiring) -> None:
    wiring.fake.lose_next_response("POST", 500)  # the page is created, the client hears a 500
    page = await wiring.saver.save(thread("lost reply"))
    assert page.pending
    assert len(wiring.fake.pages()) == 1
    wiring.now[0] += 5
    await wiring.saver.retry_due()
    assert len(wiring.fake.pages()) == 1
    assert await wiring.thread_map.get(MAP_KEY) == (wiring.fake.pages()[0].id,)
    assert len(wiring.saved) == 1


async def test_429_write_limit_is_queued_and_retried(wiring: Wiring) -> None:
    # Retry-After 120 s is beyond what the client waits in-line, so the save goes to the outbox, scheduled
    # after the server's hint (capped by the policy's max_delay of 5 s in this test).
    wiring.fake.fail_next(2, status=429, retry_after="120", method="POST")
    page = await wiring.saver.save(thread("busy"))
    assert page.pending
    [item] = await wiring.outbox.pending()
    assert item.next_attempt_at == wiring.now[0] + 5
    wiring.now[0] += 5
    await wiring.saver.retry_due()  # second 429
    assert wiring.fake.pages() == []
    wiring.now[0] += 5
    await wiring.saver.retry_due()
    assert len(wiring.fake.pages()) == 1 and len(wiring.saved) == 1
    assert await wiring.outbox.pending() == []


async def test_crash_between_create_and_map_update(wiring: Wiring) -> None:
    wiring.saver = wiring.build_saver(CrashingMap(wiring.thread_map))
    with pytest.raises(SimulatedCrash):
        await wiring.saver.save(thread("crash me"))
    await wiring.restart()
    wiring.now[0] += 31
    await wiring.saver.retry_due()
    [page] = wiring.fake.pages()
    assert await wiring.thread_map.get(MAP_KEY) == (page.id,)
    assert find_marker(page.content, thread_digest("discord", KEY), 1)


async def test_hostile_markdown_is_inert(wiring: Wiring) -> None:
    await wiring.saver.save(
        thread(
            "<script>alert(1)</script> <img src=x onerror=alert(1)>",
            "[x](javascript:alert(1)) @everyone @here <@&1>",
            "||spoiler|| <t:1700000000:R>",
        )
    )
    [page] = wiring.fake.pages()
    assert "<script" not in page.content and "<img" not in page.content
    assert "](javascript:" not in page.content
    assert not re.search(r"@(everyone|here)", page.content)
    assert "(spoiler: spoiler)" in page.content and "2023-11-14 22:13 UTC" in page.content


async def test_shrinking_thread_retires_parts_mathub_cannot_delete(wiring: Wiring) -> None:
    saver = wiring.build_saver(page_max_chars=20_000)
    texts = [f"part message {i} " + "homotopy " * 200 for i in range(30)]
    await saver.save(thread(*texts), title="Long")
    ids = await wiring.thread_map.get(MAP_KEY)
    assert ids is not None and len(ids) > 1
    page = await saver.save(thread("short now"), title="Long")
    assert page.id == ids[0] and not page.pending
    assert await wiring.thread_map.get(MAP_KEY) == (ids[0],)
    retired = wiring.fake.page(ids[1])
    assert "now fits on fewer pages" in retired.content and "part message" not in retired.content


def long_thread(count: int) -> Thread:
    # Each message fills most of a 20,000-character part, so the thread needs one part per message.
    return thread(*(f"part message {i} " + "homotopy " * 1_500 for i in range(count)))


async def test_five_parts_shrinking_to_three_keeps_the_save_and_marks_the_rest(wiring: Wiring) -> None:
    saver = wiring.build_saver(page_max_chars=20_000)
    first = await saver.save(long_thread(5), title="Long")
    ids = await wiring.thread_map.get(MAP_KEY)
    assert ids is not None and len(ids) == 5 and first.extra["parts"]
    wiring.fake.reset_log()
    second = await saver.save(long_thread(3), title="Long")  # MatHub cannot delete parts 4 and 5
    assert not second.pending and second.id == ids[0]
    assert await wiring.thread_map.get(MAP_KEY) == ids[:3]
    assert await wiring.outbox.pending() == []
    assert wiring.fake.count("DELETE") == 0 and len(wiring.fake.pages()) == 5
    for number, page_id in enumerate(ids[3:], start=4):
        content = wiring.fake.page(page_id).content
        assert f"part {number} of the saved conversation" in content and "part message" not in content
        assert find_marker(content, thread_digest("discord", KEY), number)  # a retry replaces, never stacks
    assert "part message 2" in wiring.fake.page(ids[2]).content


async def test_busy_wiki_while_retiring_parts_keeps_the_save_queued(wiring: Wiring) -> None:
    saver = wiring.build_saver(page_max_chars=20_000)
    await saver.save(long_thread(5), title="Long")
    ids = await wiring.thread_map.get(MAP_KEY)
    assert ids is not None and len(ids) == 5
    # Someone edits part 5 just before each of kbbot's PATCHes: every in-line attempt loses the race.
    wiring.fake.inject_concurrent_edit(ids[4], "\n\nA reader's note.", times=4)
    pending = await saver.save(long_thread(3), title="Long")
    assert pending.pending  # a VersionConflict is transient: queued, not a SaveError, nothing dropped
    [item] = await wiring.outbox.pending()
    assert len(item.parts) == 3
    wiring.now[0] += 10
    await saver.retry_due()
    assert await wiring.outbox.pending() == [] and await wiring.thread_map.get(MAP_KEY) == ids[:3]
    part4, part5 = wiring.fake.page(ids[3]).content, wiring.fake.page(ids[4]).content
    for content in (part4, part5):
        assert content.count("now fits on fewer pages") == 1 and "part message" not in content
    assert part5.count("A reader's note.") == 4  # the other editor's text is kept

