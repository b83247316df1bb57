"""ThreadSaver with the real Perfect Wiki client (httpx) against the fake Perfect Wiki server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kbbot.adapters.markup import slack_to_markdown
from kbbot.backends.http import RetryPolicy
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.page_render import find_marker, thread_digest
from kbbot.core.threads import SaveRetryPolicy
from kbbot.store.limiter import TokenRateLimiter
from tests.fakes.memory_kb import SimulatedCrash
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.saver_support import CrashingMap, SaverWiring

KEY = "C1:1736067600.000100"
MAP_KEY = f"slack:{KEY}"
RETRY = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, poll_interval=0.05, lease_seconds=30)
Wiring = SaverWiring[FakePerfectWiki, PerfectWikiBackend]


def thread(*texts: str) -> Thread:
    messages = tuple(
        ThreadMessage(f"person{i % 3}", f"U{i % 3}", f"2026-01-05T09:{i % 60:02d}:00+00:00", slack_to_markdown(text))
        for i, text in enumerate(texts)
    )
    return Thread("slack", KEY, messages, "https://team.slack.com/archives/C1/p1736067600000100", "ops")


@pytest.fixture
async def wiring(fake_pw: FakePerfectWiki, tmp_path: Path) -> AsyncIterator[Wiring]:
    path = tmp_path / "data" / "threads.sqlite3"
    async with httpx.AsyncClient(timeout=5) as http:
        kb = PerfectWikiBackend(
            http,
            fake_pw.token,
            limiter=TokenRateLimiter(fake_pw.token, per_second=100, per_minute=1000),
            base_url=fake_pw.url,
            page_url_template="https://wiki.example.com/page/{id}",
            retry=RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(1)),
        )
        w = Wiring(fake_pw, path, kb, RETRY)
        yield w
        await w.aclose()


async def test_create_then_resave_updates_without_duplicate(wiring: Wiring) -> None:
    first = await wiring.saver.save(thread("How do I rotate the *VPN* keys?", "Run `rotate.sh`"))
    assert first.created and first.url == f"https://wiki.example.com/page/{first.id}"
    [page] = wiring.fake.pages()
    assert page["title"] == "How do I rotate the VPN keys?" and page["tags"] == ["ops"]
    assert "<strong>VPN</strong>" in page["content"] and "<code>rotate.sh</code>" in page["content"]
    second = await wiring.saver.save(thread("How do I rotate the *VPN* keys?", "Run `rotate.sh`", "Done!"))
    assert second.id == first.id and not second.created
    [page] = wiring.fake.pages()
    assert "Done!" in page["content"]
    per = wiring.fake.stats().per_endpoint
    assert per.get("create") == 1 and per.get("update") == 1


async def test_deleted_page_is_recreated(wiring: Wiring) -> None:
    first = await wiring.saver.save(thread("question"))
    assert first.id is not None
    await wiring.kb.delete_page(first.id)
    second = await wiring.saver.save(thread("question", "answer"))
    assert second.created and second.id != first.id
    assert [p["id"] for p in wiring.fake.pages()] == [second.id]
    assert await wiring.thread_map.get(MAP_KEY) == (second.id,)


async def test_500s_queue_then_worker_saves_exactly_once(wiring: Wiring) -> None:
    wiring.fake.fail_next(3, status=500, endpoint="create")
    page = await wiring.saver.save(thread("question during an outage"))
    assert page.pending and page.id is None
    assert wiring.fake.pages() == []
    assert len(await wiring.outbox.pending()) == 1
    wiring.now[0] += 1
    wiring.saver.start()
    for _ in range(300):
        if wiring.saved:
            break
        wiring.now[0] += 1
        await asyncio.sleep(0.02)
    assert len(wiring.saved) == 1 and wiring.saved[0].created
    assert len(wiring.fake.pages()) == 1
    assert await wiring.outbox.pending() == []
    assert wiring.fake.stats().statuses("create") == [500, 500, 500, 200]


async def test_429_without_client_retries_left_queues(wiring: Wiring) -> None:
    wiring.fake.fail_next(10, status=429, endpoint="create")
    page = await wiring.saver.save(thread("busy"))
    assert page.pending
    wiring.fake.clear_faults()
    wiring.now[0] += 10
    await wiring.saver.retry_due()
    assert len(wiring.fake.pages()) == 1


async def test_crash_between_create_and_map_update_then_restart(wiring: Wiring) -> None:
    crashing = CrashingMap(wiring.thread_map)
    wiring.saver = wiring.build_saver(crashing)
    with pytest.raises(SimulatedCrash):
        await wiring.saver.save(thread("crashy question", "answer"))
    assert len(wiring.fake.pages()) == 1  # created in the wiki …
    assert await wiring.thread_map.get(MAP_KEY) is None  # … but never recorded
    await wiring.restart()
    wiring.now[0] += 31  # the dead process's lease expires
    await wiring.saver.retry_due()
    pages = wiring.fake.pages()
    assert len(pages) == 1
    assert await wiring.thread_map.get(MAP_KEY) == (pages[0]["id"],)
    assert await wiring.outbox.pending() == []
    assert wiring.fake.stats().per_endpoint.get("create") == 1
    assert find_marker(pages[0]["content"], thread_digest("slack", KEY), 1)
    # and a later re-save still updates that page
    again = await wiring.saver.save(thread("crashy question", "answer", "follow-up"))
    assert again.id == pages[0]["id"] and len(wiring.fake.pages()) == 1


HOSTILE = [
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "<https://e.com|ok> [click](javascript:alert(1)) <javascript:alert(1)|tricky>",
    "<!channel> <!here> <!everyone> @everyone",
    "&lt;script&gt;alert(2)&lt;/script&gt;",
    '"><svg/onload=alert(3)>',
]


async def test_hostile_content_is_inert_in_stored_html(wiring: Wiring) -> None:
    big = "<b>x</b>" * 131_072  # 1 MB message
    await wiring.saver.save(thread(*HOSTILE, big), title="<script>alert(4)</script> @everyone")
    pages = wiring.fake.pages()
    assert pages
    for page in pages:
        html = page["content"]
        lowered = html.lower()
        assert "<script" not in lowered and "<img" not in lowered and "<svg" not in lowered and "<b>" not in lowered
        assert not re.search(r"<[^>]*\son\w+\s*=", lowered)
        for href in re.findall(r'href="([^"]*)"', lowered):
            assert href.startswith(("https://", "http://", "mailto:")), href
        assert "@everyone" not in html and "@here" not in html and "<!channel>" not in html
        assert len(html) <= 400_000
    assert "@\u200beveryone" in pages[0]["title"] or "everyone" in pages[0]["title"]


async def test_thread_of_10000_messages_is_saved(wiring: Wiring) -> None:
    texts = [f"message {i}: deploy step {i % 7} looks *fine* <https://e.com/{i}|log>" for i in range(10_000)]
    page = await wiring.saver.save(thread(*texts), title="Long incident")
    ids = await wiring.thread_map.get(MAP_KEY)
    assert ids is not None and page.id == ids[0]
    stored = wiring.fake.pages()
    assert len(stored) == len(ids)
    joined = "".join(p["content"] for p in sorted(stored, key=lambda p: ids.index(p["id"])))
    assert "message 0:" in joined and "message 9999:" in joined


async def test_garbled_create_reply_after_the_page_was_made_is_adopted_not_duplicated(wiring: Wiring) -> None:
    # The server creates the page, then answers with an HTML error body: the client cannot know the id.
    wiring.fake.set_malformed("non_json", count=1, endpoint="create")
    page = await wiring.saver.save(thread("did it land?"))
    assert page.pending
    assert len(wiring.fake.pages()) == 1
    wiring.now[0] += 1
    await wiring.saver.retry_due()
    [stored] = wiring.fake.pages()
    assert await wiring.thread_map.get(MAP_KEY) == (stored["id"],)
    assert wiring.fake.stats().per_endpoint.get("create") == 1
    assert wiring.saved and wiring.saved[0].id == stored["id"] and wiring.saved[0].created
