"""AskService against an in-memory KnowledgeBase double (the fake server tests are in tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kbbot.core.ask import QUOTA_NOTICE, AskService, QueuePosition, queue_notice
from kbbot.core.models import Answer, PageRef, Question, Source
from kbbot.errors import InvalidQuestion, QuotaExceeded, Unavailable
from kbbot.store.memory import LocalSingleFlight, MemoryQuotaGate, TTLAnswerCache
from tests.fakes.ai_kb import AiKnowledgeBase
from tests.fakes.redis_server import _redis_server, _redis_server_session  # noqa: F401
from tests.limiting import FakeLimiter


class FakeSearch:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        self.calls.append(question)
        return Answer(text="From the wiki: …", related_pages=(PageRef("p9", "VPN"),), source=Source.SEARCH)

    async def not_found(self, question: str) -> Answer:
        self.calls.append(question)
        return Answer(text="I couldn't find this in the wiki.", related_pages=(PageRef("p9", "VPN"),), empty=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_service(
    kb: AiKnowledgeBase, clock: Clock | None = None, ttl: float = 60, probe: float = 3600
) -> tuple[AskService, FakeSearch]:
    clock = clock or Clock()
    search = FakeSearch()
    service = AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=ttl, max_entries=100, timer=clock),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=probe, clock=clock),
        fallback=search,
        max_chars=2000,
    )
    return service, search


async def test_variants_share_one_cached_answer() -> None:
    kb = AiKnowledgeBase()
    service, _ = make_service(kb)
    first = await service.ask(Question("How do I reset my password?"))
    second = await service.ask(Question("  how do i RESET my password "))
    assert first.source is Source.AI and second.source is Source.CACHE
    assert second.text == first.text and second.related_pages == first.related_pages
    assert len(kb.queries) == 1


async def test_single_flight_50_concurrent_identical_questions_one_upstream_call() -> None:
    kb = AiKnowledgeBase(delay=0.05)
    service, _ = make_service(kb)
    answers = await asyncio.gather(*(service.ask(Question(f"What is the VPN{'?' * (i % 3)}")) for i in range(50)))
    assert len(kb.queries) == 1
    assert {a.text for a in answers} == {"Answer to What is the VPN"}


async def test_single_flight_shares_failure_and_caches_nothing() -> None:
    kb = AiKnowledgeBase(delay=0.02, fail_with=Unavailable("down"))
    service, _ = make_service(kb)
    results = await asyncio.gather(*(service.ask(Question("q?")) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    assert len(kb.queries) == 1
    kb.fail_with = None
    assert (await service.ask(Question("q?"))).source is Source.AI  # the failure was not cached


async def test_cache_expires_after_ttl() -> None:
    kb, clock = AiKnowledgeBase(), Clock()
    service, _ = make_service(kb, clock, ttl=60)
    await service.ask(Question("ttl?"))
    clock.now += 59
    assert (await service.ask(Question("ttl?"))).source is Source.CACHE
    clock.now += 2
    assert (await service.ask(Question("ttl?"))).source is Source.AI
    assert len(kb.queries) == 2


async def test_empty_answers_are_not_cached() -> None:
    kb = AiKnowledgeBase(empty=True)
    service, _ = make_service(kb)
    first = await service.ask(Question("unknown thing"))
    await service.ask(Question("unknown thing"))
    assert first.empty and first.source is Source.AI
    assert len(kb.queries) == 2


async def test_empty_ai_result_gets_the_honest_reply_with_the_index_pages() -> None:
    # Perfect Wiki's isEmptyResult: not its own wording, but the same reply as a search that finds nothing,
    # with the index's closest pages.
    service, search = make_service(AiKnowledgeBase(empty=True))
    answer = await service.ask(Question("wifi password?"))
    assert answer.empty and answer.source is Source.AI
    assert answer.text == "I couldn't find this in the wiki." and [p.id for p in answer.related_pages] == ["p9"]
    assert search.calls == ["wifi password?"]


async def test_quota_breaker_one_probe_per_interval() -> None:
    kb, clock = AiKnowledgeBase(fail_with=QuotaExceeded("quota", status=402)), Clock()
    service, search = make_service(kb, clock, probe=3600)
    first = await service.ask(Question("q0"))
    assert first.source is Source.SEARCH and first.notice == QUOTA_NOTICE
    answers = [await service.ask(Question(f"question number {i}")) for i in range(100)]
    assert len(kb.queries) == 1  # the 402 itself; nothing more within the interval
    assert all(a.source is Source.SEARCH and a.notice == QUOTA_NOTICE for a in answers)
    assert len(search.calls) == 101
    status = await service.status()
    assert status.quota.paused

    clock.now += 3601  # one probe, still 402 → paused again
    await asyncio.gather(*(service.ask(Question(f"again {i}")) for i in range(20)))
    assert len(kb.queries) == 2

    clock.now += 3601
    kb.fail_with = None  # quota renewed: the probe succeeds and AI answers resume
    assert (await service.ask(Question("renewed?"))).source is Source.AI
    assert (await service.ask(Question("another?"))).source is Source.AI
    assert not (await service.status()).quota.paused


async def test_cached_answers_still_served_while_paused() -> None:
    kb = AiKnowledgeBase()
    service, _ = make_service(kb)
    await service.ask(Question("cached one"))
    kb.fail_with = QuotaExceeded("quota", status=402)
    await service.ask(Question("new one"))
    assert (await service.ask(Question("Cached one?"))).source is Source.CACHE


async def test_backend_without_ai_answers_from_search() -> None:
    kb = AiKnowledgeBase(supports_ai=False)
    service, search = make_service(kb)
    answer = await service.ask(Question("vpn"))
    assert answer.source is Source.SEARCH and answer.notice is None
    assert kb.queries == [] and search.calls == ["vpn"]


@pytest.mark.parametrize("text", ["", "   ", "?", "\x00\x07", "x" * 100_000])
async def test_hostile_questions_rejected_without_upstream_call(text: str) -> None:
    kb = AiKnowledgeBase()
    service, _ = make_service(kb)
    with pytest.raises(InvalidQuestion):
        await service.ask(Question(text))
    assert kb.queries == []


async def test_control_characters_are_stripped_before_upstream() -> None:
    kb = AiKnowledgeBase()
    service, _ = make_service(kb)
    await service.ask(Question("how\x00 do\x1b[31m I\u202e deploy?"))
    assert kb.queries == ["how do I deploy?"]  # the whole colour sequence goes, not only its ESC


async def test_status_reports_cache_and_name() -> None:
    service, _ = make_service(AiKnowledgeBase())
    await service.ask(Question("a"))
    await service.ask(Question("a"))
    status = await service.status()
    assert status.kb_name == "Engineering Docs"
    assert status.cache.size == 1 and status.cache.hits == 1 and status.cache.hit_rate == 0.5


async def test_queued_askers_hear_their_place_in_line() -> None:
    kb = AiKnowledgeBase()
    service = AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=60),
        fallback=FakeSearch(),
        limiter=FakeLimiter(waiting=4, seconds_per_position=60 / 59),
    )
    heard: list[str] = []

    async def listener(position: QueuePosition) -> None:
        heard.append(position.message())

    await service.ask(Question("deploys?"), on_queued=listener)
    assert heard == ["Lots of questions right now: you're #5 in line, about 6 s."]  # 5.08 s, rounded up
    await service.ask(Question("deploys"), on_queued=listener)  # cached: no wait, no message
    assert len(heard) == 1
    assert (await service.status()).queued == 4


class GatedKnowledgeBase(AiKnowledgeBase):
    """Answers only once ``gate`` is set, so a flight stays open while others ask the same question."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()

    async def query(self, question: str) -> Any:
        self.asked.set()
        await self.gate.wait()
        return await super().query(question)


class CountingFlights(LocalSingleFlight):
    """Tells when ``n`` askers have reached the flight (past the queue notice)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = 0
        self.changed = asyncio.Event()

    async def run(self, key: str, fn: Any) -> Any:
        self.entered += 1
        self.changed.set()
        return await super().run(key, fn)

    async def reached(self, n: int) -> None:
        while self.entered < n:
            self.changed.clear()
            await self.changed.wait()


def gated_service(limiter: FakeLimiter) -> tuple[AskService, GatedKnowledgeBase, CountingFlights]:
    kb, flights = GatedKnowledgeBase(), CountingFlights()
    service = AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
        flights=flights,
        quota=MemoryQuotaGate(probe_seconds=60),
        fallback=FakeSearch(),
        limiter=limiter,
    )
    return service, kb, flights


async def test_askers_joining_a_queued_flight_hear_its_wait_not_the_end_of_the_line() -> None:
    limiter = FakeLimiter(waiting=4, seconds_per_position=2.0)
    service, kb, flights = gated_service(limiter)
    heard: dict[str, list[QueuePosition]] = {"first": [], "joiner": [], "other": []}

    def listener(name: str) -> Any:
        async def hear(position: QueuePosition) -> None:
            heard[name].append(position)

        return hear

    first = asyncio.create_task(service.ask(Question("deploys?"), on_queued=listener("first")))
    await kb.asked.wait()
    limiter.waiting = 9  # more questions queued since
    joiner = asyncio.create_task(service.ask(Question("Deploys"), on_queued=listener("joiner")))
    other = asyncio.create_task(service.ask(Question("vpn?"), on_queued=listener("other")))
    await flights.reached(3)
    kb.gate.set()
    await asyncio.gather(first, joiner, other)
    [told_first], [told_joiner], [told_other] = heard["first"], heard["joiner"], heard["other"]
    assert (told_first.position, told_first.wait_seconds) == (5, 10.0)
    # Same flight: same place, and no more than what is left of its promise.
    assert told_joiner.position == 5 and 0 < told_joiner.wait_seconds <= 10.0
    assert (told_other.position, told_other.wait_seconds) == (10, 20.0)  # a different question: end of the line
    assert len(kb.queries) == 2


async def test_no_notice_for_an_asker_joining_a_flight_that_is_already_being_answered() -> None:
    limiter = FakeLimiter(waiting=0)
    service, kb, flights = gated_service(limiter)
    heard: list[QueuePosition] = []

    async def listener(position: QueuePosition) -> None:
        heard.append(position)

    first = asyncio.create_task(service.ask(Question("deploys?"), on_queued=listener))
    await kb.asked.wait()  # sent at once: nobody was waiting
    limiter.waiting = 3  # others queue up behind it
    joiner = asyncio.create_task(service.ask(Question("deploys"), on_queued=listener))
    await flights.reached(2)  # the joiner is past its notice and waits for the first flight
    kb.gate.set()
    await asyncio.gather(first, joiner)
    assert heard == []  # the joiner's answer is the one on its way, not the end of the line
    assert len(kb.queries) == 1


async def test_queue_notice_is_sent_once_and_never_fails_the_answer() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)
        raise RuntimeError("platform refused the message")

    notify = queue_notice(send)
    await notify(QueuePosition(3, 2.4))  # the failure is swallowed (logged)
    await notify(QueuePosition(2, 1.0))  # a second report for the same question is not shown
    assert sent == ["Lots of questions right now: you're #3 in line, about 3 s."]  # 2.4 s, rounded up


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def two_services(
    request: pytest.FixtureRequest, kb: AiKnowledgeBase
) -> AsyncIterator[tuple[AskService, AskService]]:
    """Two AskServices over one knowledgebase: the same process (memory stores), or two replicas sharing a real
    redis-server (each with its own client, as two pods would)."""
    if request.param == "memory":
        cache, flights = TTLAnswerCache(ttl_seconds=60, max_entries=10), LocalSingleFlight()
        parts = [(cache, flights), (cache, flights)]
        clients = []
    else:
        from kbbot.store.redis_store import RedisAnswerCache, RedisSingleFlight, connect_redis

        server = request.getfixturevalue("redis_server")
        clients = [await connect_redis(server.url), await connect_redis(server.url)]
        parts = [
            (RedisAnswerCache(c, ttl_seconds=60, max_entries=10), RedisSingleFlight(c, poll_seconds=0.01))
            for c in clients
        ]
    services = tuple(
        AskService(
            kb=kb,  # type: ignore[arg-type]
            cache=cache,
            flights=flights,
            quota=MemoryQuotaGate(probe_seconds=60),
            fallback=FakeSearch(),
            limiter=FakeLimiter(waiting=4, seconds_per_position=60 / 59),
        )
        for cache, flights in parts
    )
    yield services[0], services[1]
    for client in clients:
        await client.aclose()


@pytest.fixture
def kb() -> AiKnowledgeBase:
    return AiKnowledgeBase()


async def test_asker_held_in_queue_notice_past_the_first_flight_is_not_billed_again(
    kb: AiKnowledgeBase, two_services: tuple[AskService, AskService]
) -> None:
    """B misses the cache, then is held while its queue notice is posted; meanwhile A's flight for the same
    question runs to the end. B must get A's answer from the cache, not start a second billed call."""
    first, second = two_services
    in_notice, first_done = asyncio.Event(), asyncio.Event()

    async def slow_notice(position: QueuePosition) -> None:
        in_notice.set()
        await first_done.wait()

    held = asyncio.create_task(second.ask(Question("How do I deploy?"), on_queued=slow_notice))
    await in_notice.wait()  # B has looked in the cache (a miss) and is posting its notice
    answer_a = await first.ask(Question("how do I deploy"))
    first_done.set()
    answer_b = await held
    assert len(kb.queries) == 1
    assert answer_a.source is Source.AI and answer_b.source is Source.CACHE
    assert answer_b.text == answer_a.text


async def test_follow_up_goes_upstream_standalone_and_is_cached_by_that_form() -> None:
    kb = AiKnowledgeBase()
    service, _ = make_service(kb)
    vpn = ("How do I set up the VPN?",)
    first = await service.ask(Question("and on a Mac?", conversation_key="C1:1", earlier=vpn))
    again = await service.ask(Question("And on a Mac", conversation_key="C1:2", earlier=vpn))
    assert kb.queries == ["and on a Mac (set up VPN)?"]
    assert first.source is Source.AI and again.source is Source.CACHE
    # Another topic is another standalone question.
    await service.ask(Question("and on a Mac?", earlier=("Where is the printer?",)))
    assert kb.queries[-1] == "and on a Mac (printer)?"


async def test_follow_up_search_fallback_uses_the_standalone_form() -> None:
    kb = AiKnowledgeBase(supports_ai=False)
    service, search = make_service(kb)
    await service.ask(Question("and on a Mac?", earlier=("How do I set up the VPN?",)))
    assert search.calls == ["and on a Mac (set up VPN)?"]


async def test_a_follow_up_answer_says_what_the_wiki_was_asked() -> None:
    kb = AiKnowledgeBase()
    service, _ = make_service(kb)
    follow_up = await service.ask(Question("and on a Mac?", earlier=("How do I set up the VPN?",)))
    standalone = await service.ask(Question("How do I submit expenses?", earlier=("How do I set up the VPN?",)))
    assert follow_up.asked == "and on a Mac (set up VPN)?" and standalone.asked is None
    assert (await service.ask(Question("vpn?"))).asked is None
