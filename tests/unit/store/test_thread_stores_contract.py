"""SavedThreadMap and Outbox: the SQLite and Redis implementations behave the same (one contract, two stores),
and with Redis two replicas' ThreadSavers save a thread once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from kbbot.core.models import PageRef, SavedPage, Thread, ThreadMessage
from kbbot.core.ports import Outbox, OutboxItem, OutboxPart, SavedThreadMap
from kbbot.core.threads import QueuedSaves, SaveRetryPolicy, ThreadSaver
from kbbot.errors import BadRequest, SaveError, Unauthorized, Unavailable
from kbbot.store.redis_store import RedisOutbox, RedisSavedThreadMap, connect_redis
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.memory_kb import MemoryKnowledgeBase
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

Factory = Callable[[], Awaitable[tuple[SavedThreadMap, Outbox]]]


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Makes (map, outbox) pairs over ONE shared backing store: each call is another process/replica."""
    opened: list[Any] = []
    if request.param == "sqlite":

        async def make() -> tuple[SavedThreadMap, Outbox]:
            path = tmp_path / "threads.sqlite3"
            pair = (SqliteSavedThreadMap(path), SqliteOutbox(path))
            opened.extend(pair)
            return pair

        yield make
        for store in opened:
            await store.aclose()
        return
    server: RedisServer = request.getfixturevalue("redis_server")

    async def make_redis() -> tuple[SavedThreadMap, Outbox]:
        client = await connect_redis(server.url)
        opened.append(client)
        return RedisSavedThreadMap(client), RedisOutbox(client)

    yield make_redis
    for client in opened:
        await client.aclose()


def item(key: str = "slack:C1:1.2", title: str = "Deploy notes", n_parts: int = 1) -> OutboxItem:
    return OutboxItem(
        key=key,
        platform="slack",
        conversation_key=key.split(":", 1)[1],
        digest="d" * 16,
        title=title,
        tags=("saved", "ünï"),
        parts=tuple(OutboxPart(f"{title} ({i})", f"<p>part {i} — <b>x</b> 🚀</p>") for i in range(n_parts)),
    )


async def test_map_roundtrip_shared(stores: Factory) -> None:
    (m1, _), (m2, _) = await stores(), await stores()
    assert await m1.get("slack:C1:1.2") is None
    await m1.put("slack:C1:1.2", ["p1", "p2"])
    assert await m2.get("slack:C1:1.2") == ("p1", "p2")
    await m2.put("slack:C1:1.2", ["p9"])
    assert await m1.get("slack:C1:1.2") == ("p9",)
    await m1.delete("slack:C1:1.2")
    assert await m2.get("slack:C1:1.2") is None
    await m1.delete("never-there")  # deleting nothing is fine
    long_key = "discord:" + "9" * 5000
    await m1.put(long_key, [])
    assert await m2.get(long_key) == ()


async def test_outbox_add_claim_remove(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    assert await o1.pending() == []
    assert await o1.add(item(n_parts=2), now=100.0) == 1
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert claimed is not None
    assert claimed.attempts == 1 and claimed.revision == 1 and claimed.title == "Deploy notes"
    assert claimed.parts == item(n_parts=2).parts and claimed.tags == ("saved", "ünï") and claimed.retag
    # Leased: nobody else may send it until the lease runs out.
    assert await o1.claim("slack:C1:1.2", now=110.0, lease_seconds=30) is None
    assert await o2.remove("slack:C1:1.2", 1) is True
    assert await o1.pending() == []
    assert await o1.claim("slack:C1:1.2", now=200.0, lease_seconds=30) is None
    assert await o1.claim("unknown", now=200.0, lease_seconds=30) is None


async def test_outbox_keeps_whether_tags_replace_the_pages(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(replace(item(), retag=False), now=100.0)
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert claimed is not None and claimed.retag is False


async def test_outbox_expired_lease_can_be_claimed_again(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item(), now=100.0)
    assert await o1.claim("slack:C1:1.2", now=100.0, lease_seconds=30) is not None  # then the replica dies
    again = await o2.claim("slack:C1:1.2", now=131.0, lease_seconds=30)
    assert again is not None and again.attempts == 2


async def test_outbox_release_reschedules_and_orders_pending(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item("slack:C1:a", "A"), now=100.0)
    await o1.add(item("slack:C1:b", "B"), now=50.0)
    await o2.claim("slack:C1:b", now=100.0, lease_seconds=30)
    await o2.release("slack:C1:b", next_attempt_at=500.0, error="the wiki is down (503)")
    pending = await o1.pending()
    assert [p.key for p in pending] == ["slack:C1:a", "slack:C1:b"]
    assert pending[1].next_attempt_at == 500.0 and pending[1].last_error == "the wiki is down (503)"
    assert pending[1].attempts == 1
    # Released: claimable again right away by anyone.
    assert await o1.claim("slack:C1:b", now=101.0, lease_seconds=30) is not None
    await o1.release("slack:C1:b", next_attempt_at=600.0, error=None)
    assert (await o2.pending())[1].last_error is None


async def test_outbox_newer_save_replaces_and_keeps_attempts(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item(title="v1"), now=100.0)
    first = await o1.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert first is not None and first.revision == 1
    # While replica 1 sends v1, replica 2 queues v2 of the same thread.
    assert await o2.add(item(title="v2"), now=105.0) == 2
    assert await o1.remove("slack:C1:1.2", first.revision) is False  # v2 must not be lost
    (pending,) = await o2.pending()
    assert pending.title == "v2" and pending.revision == 2 and pending.attempts == 1
    await o1.release("slack:C1:1.2", next_attempt_at=105.0, error=None)
    second = await o2.claim("slack:C1:1.2", now=106.0, lease_seconds=30)
    assert second is not None and second.title == "v2" and second.attempts == 2
    assert await o2.remove("slack:C1:1.2", 2) is True


async def test_outbox_concurrent_claims_exactly_one_wins(stores: Factory) -> None:
    pairs = [await stores() for _ in range(2)]
    await pairs[0][1].add(item(), now=100.0)
    results = await asyncio.gather(*(o.claim("slack:C1:1.2", now=100.0, lease_seconds=30) for _, o in pairs * 10))
    assert sum(r is not None for r in results) == 1


# --- two replicas' ThreadSavers over Redis ------------------------------------------------------------------


def thread(key: str = "C1:1700000000.000100") -> Thread:
    messages = tuple(
        ThreadMessage(f"user{i}", f"U{i}", f"2026-01-05T09:0{i}:00+00:00", f"message {i} <!channel>") for i in range(3)
    )
    return Thread("slack", key, messages, "https://team.slack.com/archives/C1/p1", "ops")


@pytest.mark.redis
async def test_two_replicas_save_one_thread_once(redis_server: RedisServer) -> None:
    kb = MemoryKnowledgeBase()
    policy = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, poll_interval=0.05, lease_seconds=5)
    clients = [await connect_redis(redis_server.url) for _ in range(2)]
    savers = [ThreadSaver(kb, RedisSavedThreadMap(c), RedisOutbox(c), retry=policy) for c in clients]
    try:
        results = await asyncio.gather(*(s.save(thread()) for s in savers for _ in range(3)))
        assert len(kb.pages) == 1
        ids = {r.id for r in results if r.id}
        assert len(ids) == 1
        # A later re-save from the other replica updates the same page.
        again = await savers[1].save(thread())
        assert again.id in ids and not again.created and len(kb.pages) == 1
    finally:
        for c in clients:
            await c.aclose()


# --- processes of different platforms over one outbox ---------------------------------------------------------
# The deploy docs run Slack (HTTP mode, several replicas) and Discord (one gateway pod) as separate pods on one
# Redis: each pod retries only the queued saves it can confirm, i.e. those of the platforms it runs.

RETRY = SaveRetryPolicy(first_delay=10, max_delay=100, jitter=0.0, lease_seconds=60)
DOWN = Unavailable("the wiki is down (503)", status=503)
Heard = list[tuple[str, str, SavedPage | SaveError]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def process(
    stores: Factory, kb: MemoryKnowledgeBase, clock: Clock, *platforms: str, retry: SaveRetryPolicy = RETRY
) -> tuple[ThreadSaver, Heard]:
    """One kbbot process over the shared stores, running the adapters of ``platforms``; ``heard`` is what
    those adapters were told (platform, conversation key, outcome)."""
    thread_map, outbox = await stores()
    saver = ThreadSaver(kb, thread_map, outbox, retry=retry, clock=clock)
    heard: Heard = []
    for platform in platforms:

        async def on_saved(key: str, outcome: SavedPage | SaveError, platform: str = platform) -> None:
            heard.append((platform, key, outcome))

        saver.listen(platform, on_saved)
    return saver, heard


def chat(platform: str, key: str, title: str) -> Thread:
    return Thread(platform, key, (ThreadMessage("ann", "U1", "2026-01-05T09:00:00+00:00", title),), channel_name="ops")


SLACK = chat("slack", "C1:1700000000.000100", "Slack thread")
DISCORD = chat("discord", "1122334455", "Discord thread")


async def test_each_platforms_process_retries_and_confirms_its_own_saves(stores: Factory) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    slack_pod, slack_heard = await process(stores, kb, clock, "slack")
    discord_pod, discord_heard = await process(stores, kb, clock, "discord")
    _, outbox = await stores()  # what an operator sees
    kb.fail_next("create_page", DOWN, times=2)
    assert (await slack_pod.save(SLACK)).pending
    assert (await discord_pod.save(DISCORD)).pending
    clock.now += 10

    # The Discord pod's pass sends the Discord save and leaves the Slack one alone: not claimed, not counted.
    assert await discord_pod.retry_due() is None
    assert [page.title for page in kb.pages.values()] == ["Discord thread"]
    [(platform, key, outcome)] = discord_heard
    assert (platform, key) == ("discord", "1122334455") and isinstance(outcome, SavedPage) and outcome.created
    [waiting] = await outbox.pending()
    assert waiting.platform == "slack" and waiting.attempts == 1 and waiting.next_attempt_at == clock.now
    assert await discord_pod.retry_due() is None  # later passes do not take it either
    assert (await outbox.pending())[0].attempts == 1

    # The Slack pod sends it and its adapter posts the link.
    assert await slack_pod.retry_due() is None
    assert sorted(page.title for page in kb.pages.values()) == ["Discord thread", "Slack thread"]
    [(platform, key, outcome)] = slack_heard
    assert (platform, key) == ("slack", "C1:1700000000.000100") and isinstance(outcome, SavedPage)
    assert outcome.url == kb.page_url(outcome.id or "", "Slack thread")
    assert await slack_pod.queued() == 0 and len(discord_heard) == 1


async def test_one_process_running_both_platforms_retries_both(stores: Factory) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    pod, heard = await process(stores, kb, clock, "slack", "discord")
    kb.fail_next("create_page", DOWN, times=2)
    assert (await pod.save(SLACK)).pending and (await pod.save(DISCORD)).pending
    clock.now += 10
    assert await pod.retry_due() is None
    assert await pod.queued() == 0 and len(kb.pages) == 2
    assert sorted((platform, key) for platform, key, _ in heard) == [
        ("discord", "1122334455"), ("slack", "C1:1700000000.000100"),
    ]


async def test_a_save_queued_by_a_replica_that_died_is_sent_by_another_of_its_platform(stores: Factory) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    dying, _ = await process(stores, kb, clock, "slack")
    kb.fail_next("create_page", DOWN)
    assert (await dying.save(SLACK)).pending and not kb.pages
    survivor, heard = await process(stores, kb, clock, "slack")
    clock.now += 10
    await survivor.retry_due()
    assert len(kb.pages) == 1 and await survivor.queued() == 0
    assert [(platform, key) for platform, key, _ in heard] == [("slack", "C1:1700000000.000100")]


async def test_a_save_no_running_process_can_confirm_stays_queued_and_is_logged_once(
    stores: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    slack_pod, _ = await process(stores, kb, clock, "slack")
    kb.fail_next("create_page", DOWN)
    assert (await slack_pod.save(SLACK)).pending
    discord_pod, _ = await process(stores, kb, clock, "discord")  # the Slack pods are scaled to zero
    _, outbox = await stores()
    clock.now += 10
    with caplog.at_level(logging.WARNING, logger="kbbot.core.threads"):
        for _ in range(3):
            clock.now += 100
            # None: the worker sleeps its poll interval instead of spinning on a save it never takes.
            assert await discord_pod.retry_due() is None
    [warning] = [r.getMessage() for r in caplog.records if "waits for a process" in r.getMessage()]
    assert "slack" in warning and "this one runs: discord" in warning
    [waiting] = await outbox.pending()
    assert waiting.attempts == 1 and not kb.pages  # kept, untouched
    # A Slack pod comes back: it sends the save and confirms it.
    back, heard = await process(stores, kb, clock, "slack")
    await back.retry_due()
    assert len(kb.pages) == 1 and [p for p, _, _ in heard] == ["slack"]


async def test_a_save_nobody_waits_for_is_sent_by_any_process(stores: Factory) -> None:
    """Imports and ``kbbot save`` (``announce=False``): no conversation to confirm in, so any worker sends them."""
    kb, clock = MemoryKnowledgeBase(), Clock()
    importer, _ = await process(stores, kb, clock)
    kb.fail_next("create_page", DOWN)
    assert (await importer.save(SLACK, announce=False)).pending
    discord_pod, heard = await process(stores, kb, clock, "discord")
    clock.now += 10
    await discord_pod.retry_due()
    assert len(kb.pages) == 1 and await discord_pod.queued() == 0 and heard == []


async def test_a_queued_save_the_wiki_refuses_tells_its_asker_on_its_platform_only(stores: Factory) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    slack_pod, slack_heard = await process(stores, kb, clock, "slack")
    discord_pod, discord_heard = await process(stores, kb, clock, "discord")
    kb.fail_next("create_page", DOWN)
    assert (await slack_pod.save(SLACK)).pending
    clock.now += 10
    kb.fail_next("create_page", BadRequest("Page content is too large.", status=400))
    await discord_pod.retry_due()
    await slack_pod.retry_due()
    assert discord_heard == [] and not kb.pages and await slack_pod.queued() == 0
    [(platform, key, outcome)] = slack_heard
    assert (platform, key) == ("slack", "C1:1700000000.000100") and isinstance(outcome, SaveError)
    assert str(outcome) == (
        "The queued save of “Slack thread” failed. The wiki refused the page: Page content is too large."
    )


async def test_a_queued_save_stopped_by_an_auth_error_is_kept_and_confirmed_once_it_lands(stores: Factory) -> None:
    """401/403: an operator must act; the save waits (the asker is not told a failure that may still heal)."""
    kb, clock = MemoryKnowledgeBase(), Clock()
    pod, heard = await process(stores, kb, clock, "slack")
    kb.fail_next("create_page", DOWN)
    assert (await pod.save(SLACK)).pending
    clock.now += 10
    kb.fail_next("create_page", Unauthorized("The wiki token is wrong.", status=401))
    await pod.retry_due()
    assert heard == [] and await pod.queued() == 1
    clock.now += 100
    await pod.retry_due()
    assert len(kb.pages) == 1 and [type(outcome) for _, _, outcome in heard] == [SavedPage]


async def test_outbox_keeps_whether_a_landed_save_is_announced(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(replace(item(), announce=False), now=100.0)
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert claimed is not None and claimed.announce is False
    [pending] = await o1.pending()
    assert pending.announce is False


# --- a save that fails unexpectedly fails alone ---------------------------------------------------------------


@dataclass
class BuggyWiki(MemoryKnowledgeBase):
    """Stands for a bug that hits one thread's content only (a renderer or backend bug): once ``broken``,
    sending the page titled "Poison" raises something no handler classifies."""

    broken: bool = False
    poison_sends: int = 0

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        if self.broken and title == "Poison":
            self.poison_sends += 1
            raise RuntimeError("bug: cannot send this one")
        return await super().create_page(title, content, tags)


POISON, GOOD_ONE, GOOD_TWO = (chat("slack", f"C1:{n}", title) for n, title in enumerate(("Poison", "One", "Two")))


async def queue_three(pod: ThreadSaver, kb: MemoryKnowledgeBase) -> None:
    """The wiki is down: the poison and two good saves are queued, the poison first in line."""
    kb.fail_next("create_page", DOWN, times=3)
    for chat_thread in (POISON, GOOD_ONE, GOOD_TWO):
        assert (await pod.save(chat_thread)).pending


async def test_a_save_that_fails_unexpectedly_does_not_hold_up_the_saves_behind_it(
    stores: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    kb, clock = BuggyWiki(), Clock()
    pod, heard = await process(stores, kb, clock, "slack")
    _, outbox = await stores()
    await queue_three(pod, kb)
    assert [item.key for item in await outbox.pending()] == ["slack:C1:0", "slack:C1:1", "slack:C1:2"]
    kb.broken = True
    clock.now += 10
    with caplog.at_level(logging.ERROR, logger="kbbot.core.threads"):
        await pod.retry_due()

    # The two behind it are saved and confirmed in this same pass.
    assert sorted(page.title for page in kb.pages.values()) == ["One", "Two"]
    assert [(key, type(outcome)) for _, key, outcome in heard] == [("C1:1", SavedPage), ("C1:2", SavedPage)]
    # The poison is backed off like a busy wiki (attempt 2: 10 s x 2), not retried in a hot loop.
    [waiting] = await outbox.pending()
    assert waiting.key == "slack:C1:0" and waiting.attempts == 2 and waiting.failures == 1
    assert waiting.next_attempt_at == clock.now + RETRY.delay(2) == clock.now + 20
    assert waiting.last_error == "internal error: RuntimeError: bug: cannot send this one"
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError  # the traceback, once
    assert "failure 1 of 10, attempt 2" in record.getMessage() and "will be retried" in record.getMessage()
    assert await pod.retry_due() == waiting.next_attempt_at  # the next pass leaves it alone until then
    assert kb.poison_sends == 1 and await pod.queued() == 1


async def test_a_save_that_keeps_failing_unexpectedly_is_given_up_and_its_asker_told(
    stores: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    kb, clock = BuggyWiki(), Clock()
    pod, heard = await process(stores, kb, clock, "slack", retry=replace(RETRY, max_attempts=3))
    _, outbox = await stores()
    kb.fail_next("create_page", DOWN)
    assert (await pod.save(POISON)).pending  # attempt 1: the wiki was down (not a failure of the save)
    kb.broken = True
    for _ in range(2):  # failures 1 and 2 of 3
        clock.now = (await outbox.pending())[0].next_attempt_at
        await pod.retry_due()
    assert heard == [] and [(w.attempts, w.failures) for w in await outbox.pending()] == [(3, 2)]
    clock.now = (await outbox.pending())[0].next_attempt_at
    with caplog.at_level(logging.ERROR, logger="kbbot.core.threads"):
        await pod.retry_due()  # failure 3 of 3: given up like a page the wiki refused
    assert await outbox.pending() == [] and kb.poison_sends == 3 and not kb.pages
    [(platform, key, outcome)] = heard
    assert (platform, key) == ("slack", "C1:0") and isinstance(outcome, SaveError)
    assert str(outcome) == (
        "The queued save of “Poison” failed: kbbot ran into an internal error 3 times (the operator has it in "
        "the log). Please save the thread again."
    )
    assert "giving up" in caplog.records[-1].getMessage() and caplog.records[-1].exc_info is not None


async def test_outage_retries_do_not_use_up_the_tries_of_a_save_that_then_fails_unexpectedly(
    stores: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Only unexpected failures give up on a save (``max_attempts`` = 10 of them): a save that already waited
    through 12 retries of a wiki outage is not dropped on its first unexpected error."""
    kb, clock = BuggyWiki(), Clock()
    pod, heard = await process(stores, kb, clock, "slack", retry=replace(RETRY, max_attempts=10))
    _, outbox = await stores()
    kb.fail_next("create_page", DOWN, times=13)  # the save itself, then 12 retries: the wiki is down
    assert (await pod.save(POISON)).pending

    async def next_pass() -> OutboxItem | None:
        [due] = await outbox.pending()
        clock.now = due.next_attempt_at
        await pod.retry_due()
        left = await outbox.pending()
        return left[0] if left else None

    for _ in range(12):
        waiting = await next_pass()
    assert waiting is not None and (waiting.attempts, waiting.failures) == (13, 0)
    kb.broken = True  # the wiki is back, and sending this thread now hits a bug
    with caplog.at_level(logging.ERROR, logger="kbbot.core.threads"):
        waiting = await next_pass()
    assert waiting is not None and (waiting.attempts, waiting.failures) == (14, 1)  # still queued ...
    assert waiting.next_attempt_at == clock.now + RETRY.delay(14) > clock.now  # ... and backed off
    assert heard == [] and "failure 1 of 10, attempt 14" in caplog.records[-1].getMessage()
    for failures in range(2, 10):
        waiting = await next_pass()
        assert waiting is not None and waiting.failures == failures and heard == []
    assert await next_pass() is None  # the 10th unexpected failure gives up on it
    assert kb.poison_sends == 10 and not kb.pages
    [(platform, key, outcome)] = heard
    assert (platform, key) == ("slack", "C1:0") and isinstance(outcome, SaveError)
    assert str(outcome) == (
        "The queued save of “Poison” failed: kbbot ran into an internal error 10 times (the operator has it in "
        "the log). Please save the thread again."
    )


async def test_outbox_counts_unexpected_failures_apart_and_keeps_them(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(item(title="v1"), now=100.0)
    for now, failed in ((100.0, False), (200.0, True), (300.0, True), (400.0, False)):
        assert await o2.claim("slack:C1:1.2", now=now, lease_seconds=30) is not None
        await o2.release("slack:C1:1.2", next_attempt_at=now + 50, error="x", failed=failed)
    [listed] = await o1.pending()
    assert (listed.attempts, listed.failures) == (4, 2)
    await o1.add(item(title="v2"), now=500.0)  # a newer save of the thread keeps them, like the attempts
    claimed = await o2.claim("slack:C1:1.2", now=500.0, lease_seconds=30)
    assert claimed is not None and claimed.title == "v2" and (claimed.attempts, claimed.failures) == (5, 2)


async def forget_failures(outbox: Outbox, key: str) -> None:
    """Make the store look as an older kbbot left it, before failures were counted apart: no such column in
    SQLite (the next process to open the file adds it), no such field in a Redis entry."""
    if isinstance(outbox, SqliteOutbox):
        await outbox._db.run(lambda conn: conn.execute("ALTER TABLE outbox DROP COLUMN failures"))
    else:
        assert isinstance(outbox, RedisOutbox)
        assert await outbox._redis.hdel(outbox._entry(key), "failures") == 1


async def test_an_entry_queued_before_failures_were_counted_reads_back_with_none(stores: Factory) -> None:
    _, old = await stores()
    await old.add(item(), now=100.0)
    assert await old.claim("slack:C1:1.2", now=100.0, lease_seconds=30) is not None
    await old.release("slack:C1:1.2", next_attempt_at=150.0, error="internal error", failed=True)
    await forget_failures(old, "slack:C1:1.2")
    _, new = await stores()  # the upgraded version starts
    [listed] = await new.pending()
    assert listed.unreadable is None and listed.title == "Deploy notes"
    assert (listed.attempts, listed.failures, listed.next_attempt_at) == (1, 0, 150.0)
    claimed = await new.claim("slack:C1:1.2", now=150.0, lease_seconds=30)
    assert claimed is not None and (claimed.attempts, claimed.failures) == (2, 0)
    await new.release("slack:C1:1.2", next_attempt_at=200.0, error="internal error", failed=True)
    assert [(p.attempts, p.failures) for p in await new.pending()] == [(2, 1)]


async def corrupt(outbox: Outbox, key: str, payload: bytes) -> None:
    """Overwrite an entry's stored payload, as a damaged disk, a hand edit or a future format would."""
    if isinstance(outbox, SqliteOutbox):
        sql = "UPDATE outbox SET payload = ? WHERE key = ?"
        await outbox._db.run(lambda conn: conn.execute(sql, (payload, key)))
    else:
        assert isinstance(outbox, RedisOutbox)
        await outbox._redis.hset(outbox._entry(key), "payload", payload)


@pytest.mark.parametrize(
    "payload",
    [b'{"key": "slack:C1:0", "title": "Poi', b'{"key": 7, "parts": {}}', b"[]", b"\xff\xfe not UTF-8", b""],
    ids=["truncated", "wrong-types", "not-an-object", "not-utf8", "empty"],
)
async def test_an_unreadable_entry_does_not_stop_the_worker(stores: Factory, payload: bytes) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    pod, heard = await process(stores, kb, clock, "slack", retry=replace(RETRY, max_attempts=3))
    _, outbox = await stores()
    await queue_three(pod, kb)
    await corrupt(outbox, "slack:C1:0", payload)
    listed = await outbox.pending()  # the listing still works, and says which entry is damaged
    assert [(item.key, item.unreadable is not None) for item in listed] == [
        ("slack:C1:0", True), ("slack:C1:1", False), ("slack:C1:2", False),
    ]
    assert listed[0].platform == "slack" and listed[0].attempts == 1 and await pod.queued() == 3
    clock.now += 10
    await pod.retry_due()
    assert sorted(page.title for page in kb.pages.values()) == ["One", "Two"]
    assert [key for _, key, _ in heard] == ["C1:1", "C1:2"]
    [waiting] = await outbox.pending()
    assert waiting.unreadable and waiting.attempts == 2 and waiting.next_attempt_at == clock.now + 20
    assert waiting.failures == 1  # counted on an entry whose payload cannot be read, too
    assert waiting.last_error and waiting.last_error.startswith("internal error: _UnreadableEntry")
    for failures in (2, 3):  # the third of 3 drops it; whose conversation it was is in the unreadable part
        clock.now = (await outbox.pending())[0].next_attempt_at
        await pod.retry_due()
        assert len(await outbox.pending()) == (1 if failures < 3 else 0) and len(heard) == 2


@pytest.mark.redis
async def test_a_redis_entry_the_outbox_cannot_even_claim_fails_alone(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-edited ``attempts`` field makes the claim script's HINCRBY fail: logged, and the others go out."""
    client = await connect_redis(redis_server.url)
    try:

        async def make() -> tuple[SavedThreadMap, Outbox]:
            return RedisSavedThreadMap(client), RedisOutbox(client)

        kb, clock = MemoryKnowledgeBase(), Clock()
        pod, heard = await process(make, kb, clock, "slack")
        _, outbox = await make()
        await queue_three(pod, kb)
        assert isinstance(outbox, RedisOutbox)
        await client.hset(outbox._entry("slack:C1:0"), "attempts", "many")
        assert (await outbox.pending())[0].unreadable  # listed, not raised
        clock.now += 10
        with caplog.at_level(logging.ERROR, logger="kbbot.core.threads"):
            await pod.retry_due()
        assert sorted(page.title for page in kb.pages.values()) == ["One", "Two"]
        assert [key for _, key, _ in heard] == ["C1:1", "C1:2"]
        [record] = caplog.records
        assert "could not take a queued save" in record.getMessage() and record.exc_info is not None
    finally:
        await client.aclose()


async def test_outbox_keeps_when_a_save_was_queued(stores: Factory) -> None:
    (_, o1), (_, o2) = await stores(), await stores()
    await o1.add(replace(item(), queued_at=99.5), now=100.0)
    [listed] = await o2.pending()
    claimed = await o2.claim("slack:C1:1.2", now=100.0, lease_seconds=30)
    assert listed.queued_at == 99.5 and claimed is not None and claimed.queued_at == 99.5


async def test_queued_saves_counts_them_and_says_since_when_the_oldest_waits(stores: Factory) -> None:
    kb, clock = MemoryKnowledgeBase(), Clock()
    pod, _ = await process(stores, kb, clock, "slack")
    assert await pod.queued_saves() == QueuedSaves(0, None)
    kb.fail_next("create_page", DOWN, times=2)
    first = clock.now
    assert (await pod.save(GOOD_ONE)).pending
    clock.now += 30
    assert (await pod.save(GOOD_TWO)).pending
    assert await pod.queued_saves() == QueuedSaves(2, first)
