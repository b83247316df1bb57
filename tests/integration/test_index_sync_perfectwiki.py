"""Index sync through the real PerfectWikiBackend (httpx, TokenRateLimiter, retries) against the fake Perfect
Wiki server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from limits.aio.storage import MemoryStorage
from pydantic import SecretStr

from kbbot.backends.http import RetryPolicy
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.core.models import PageChange
from kbbot.core.ports import Priority
from kbbot.errors import BadResponse, Unauthorized
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.index import SearchIndex
from kbbot.search.sync import MAX_CONSECUTIVE_FAILURES, IndexSyncer
from kbbot.store.limiter import TokenRateLimiter
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.limiting import FakeLimiter

FAST = RetryPolicy(backoff_base=0.005, backoff_max=0.02, rng=random.Random(3))
TEMPLATE = "https://wiki.example.com/page/{id}"


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SearchIndex]:
    async with SearchIndex(tmp_path / "index-perfectwiki.sqlite3") as idx:
        yield idx


def roomy(fake: FakePerfectWiki) -> FakeLimiter:
    """A generous budget on both sides, for tests that are not about rate limits."""
    fake.set_rate_limits(1000, 100_000)
    return FakeLimiter(TokenRateLimiter(fake.token, per_second=1000, per_minute=100_000, storage=MemoryStorage()))


def backend(fake: FakePerfectWiki, http: httpx.AsyncClient, limiter: FakeLimiter) -> PerfectWikiBackend:
    return PerfectWikiBackend(
        http,
        SecretStr(fake.token),
        limiter=limiter,
        base_url=fake.url,
        page_url_template=TEMPLATE,
        retry=FAST,
    )


HANDBOOK = [
    {
        "id": "vpn",
        "title": "VPN setup",
        "tags": ["it", "network"],
        "content": "<h1>VPN</h1><p>Install <b>WireGuard</b> and import <code>acme-wg0.conf</code>.</p>",
    },
    {
        "id": "pto",
        "title": "Leave and PTO",
        "tags": ["people"],
        "content": "<p>You get 28 days of vacation.</p><ul><li>Request in HRbox</li></ul>",
    },
    {
        "id": "deploy",
        "title": "Deploying services",
        "tags": ["engineering"],
        "content": "<p>Promote with <code>./scripts/promote</code>. Rollback by reverting.</p>",
    },
    {
        "id": "oncall",
        "title": "On-call",
        "tags": ["engineering"],
        "content": "<p>Acknowledge pages within 5 minutes.</p><script>steal()</script>",
    },
    {
        "id": "expenses",
        "title": "Expenses",
        "tags": ["finance"],
        "content": "<p>File receipts in Spendly.</p>",
    },
    {
        "id": "travel",
        "title": "Travel",
        "tags": ["finance"],
        "content": "<p>Book trains through TripDesk.</p>",
    },
]


async def hits(index: SearchIndex, q: str) -> list[str]:
    return [h.id for h in await index.search(q)]


async def test_full_then_incremental_sync(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    fake_pw.seed_pages(HANDBOOK)
    limiter = roomy(fake_pw)
    kb = backend(fake_pw, http, limiter)
    syncer = IndexSyncer(kb, index, refresh_batch=2)

    report = await syncer.sync()
    assert (report.listed, report.fetched, report.changed, report.deleted) == (6, 6, 6, 0)
    assert fake_pw.stats().per_endpoint == {"list": 1, "get": 6}
    # Every sync request took the background budget.
    assert limiter.priorities and set(limiter.priorities) == {Priority.BACKGROUND}
    assert await hits(index, "wireguard") == ["vpn"]
    assert await hits(index, "steal") == []  # scripts are not text
    [hit] = await index.search("spendly receipts")
    assert hit.url == "https://wiki.example.com/page/expenses"

    # Changes through the real API: a rename, a tag change, a new page, a deletion, and a content-only edit
    # that Perfect Wiki's listing cannot show.
    await kb.update_page("pto", PageChange(title="Vacation and leave"))
    await kb.update_page("oncall", PageChange(tags=("engineering", "pagerduty")))
    new = await kb.create_page("Security policy", "<p>Use your YubiKey everywhere.</p>", ("security",))
    await kb.delete_page("travel")
    await kb.update_page("expenses", PageChange(content="<p>File receipts in Concur now.</p>"))
    fake_pw.reset_stats()
    limiter.priorities.clear()

    report = await syncer.sync()
    gets = [e.path.rsplit("/", 1)[1] for e in fake_pw.stats().log if e.endpoint == "get"]
    assert set(gets[:3]) == {"pto", "oncall", new.id}  # changed and new pages first
    assert len(gets) == 3 + 2  # plus the two least recently fetched of the rest
    assert report.deleted == 1
    assert set(limiter.priorities) == {Priority.BACKGROUND}
    assert (await hits(index, "vacation leave"))[:1] == ["pto"]
    assert await hits(index, "yubikey") == [new.id]
    assert await hits(index, "tripdesk") == []
    assert "oncall" in await hits(index, "pagerduty")

    # Later runs refresh the rest, so the content-only edit arrives without a full sync.
    for _ in range(3):
        await syncer.sync()
    assert await hits(index, "concur") == ["expenses"]
    assert await index.count() == 6

    answer = await SearchAnswerer(index).answer("how do I file receipts?")
    assert answer.related_pages[0].url == "https://wiki.example.com/page/expenses"
    assert "> File receipts in Concur now." in answer.text


async def test_full_sync_flag_refetches_all(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    fake_pw.seed_pages(HANDBOOK)
    syncer = IndexSyncer(backend(fake_pw, http, roomy(fake_pw)), index, refresh_batch=0)
    await syncer.sync()
    fake_pw.seed_pages([{**HANDBOOK[0], "content": "<p>Now OpenVPN.</p>"}])  # content-only change
    fake_pw.reset_stats()
    assert (await syncer.sync()).fetched == 0  # invisible to an incremental run with no refresh budget
    assert (await syncer.sync(full=True)).fetched == 6
    assert await hits(index, "openvpn") == ["vpn"]


async def test_page_gone_between_list_and_get(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    fake_pw.seed_pages(HANDBOOK[:3])
    fake_pw.fail_next(1, status=404, endpoint="get")
    report = await IndexSyncer(backend(fake_pw, http, roomy(fake_pw)), index).sync()
    assert (report.fetched, report.deleted, report.failed) == (2, 0, 0)
    assert await index.count() == 2


async def test_server_errors_stop_the_run_and_the_next_run_recovers(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    fake_pw.seed_pages(HANDBOOK)
    syncer = IndexSyncer(backend(fake_pw, http, roomy(fake_pw)), index)
    fake_pw.fail_next(1000, status=503, endpoint="get")
    report = await syncer.sync()
    assert report.aborted and report.failed == MAX_CONSECUTIVE_FAILURES and report.fetched == 0
    assert report.errors and all(fake_pw.token not in error for error in report.errors)
    fake_pw.clear_faults()
    report = await syncer.sync()
    assert report.fetched == 6 and await index.count() == 6


async def test_revoked_token_raises_unauthorized(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    fake_pw.seed_pages(HANDBOOK)
    kb = backend(fake_pw, http, roomy(fake_pw))
    old_token = fake_pw.token
    fake_pw.regenerate()
    with pytest.raises(Unauthorized) as caught:
        await IndexSyncer(kb, index).sync()
    assert old_token not in str(caught.value)


async def test_malformed_listing_is_an_error_not_a_wipe(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    fake_pw.seed_pages(HANDBOOK)
    syncer = IndexSyncer(backend(fake_pw, http, roomy(fake_pw)), index)
    await syncer.sync()
    fake_pw.set_malformed("wrong_shape", endpoint="list")
    with pytest.raises(BadResponse):
        await syncer.sync()
    assert await index.count() == 6  # a broken listing never deletes the index


async def test_sync_takes_half_the_budget_and_live_calls_go_first(
    fake_pw: FakePerfectWiki, http: httpx.AsyncClient, index: SearchIndex
) -> None:
    # 7/window with headroom 1 → live 6, background 3 per 0.3 s window.
    fake_pw.set_rate_limits(7, 100_000, second_window=0.3)
    limiter = FakeLimiter(
        TokenRateLimiter(
            fake_pw.token,
            per_second=7,
            per_minute=100_000,
            second_window=0.3,
            storage=MemoryStorage(),
        )
    )
    kb = backend(fake_pw, http, limiter)
    fake_pw.seed_pages([{"title": f"Page {n}", "content": f"<p>word{n}</p>"} for n in range(11)])
    start = time.monotonic()
    sync = asyncio.create_task(IndexSyncer(kb, index).sync())
    while Priority.BACKGROUND not in limiter.priorities:  # the sync has started drawing on its budget
        await asyncio.sleep(0.005)
    info = await kb.info()  # a live call while the sync holds its half of the budget
    assert not sync.done()  # the live call did not wait for the sync (9+ background requests still to go)
    report = await sync
    elapsed = time.monotonic() - start
    assert info.name == "Engineering Docs"
    assert report.fetched == 11
    assert elapsed >= 0.8  # 12 background requests at 3 per 0.3 s window
    assert fake_pw.stats().rate_limited == 0
    assert limiter.priorities.count(Priority.LIVE) == 1
