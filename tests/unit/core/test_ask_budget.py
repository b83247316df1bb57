"""AskService spends a person's AI budget only on the AI calls made on their behalf (AI_USER_LIMIT).

Never on a cached answer (the first look or the flight's second one), a search answer while a 402 pauses AI, a
knowledgebase without AI, or a question someone else is already asking (one call: its flight's asker pays,
those who join share the answer). When a flight's asker turns out to be over budget at the moment of the call,
those who joined it ask again on their own budget, on every replica. Real budgets (``LimitsAiBudget``) and
stores (memory; Redis for the replicas); the knowledgebase is the in-memory AI double, held at a gate where a
test needs a flight to stay open.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from kbbot.core.ask import QUOTA_NOTICE, AskService
from kbbot.core.models import AiAnswer, Answer, Asker, PageRef, Question, Source
from kbbot.core.ports import BudgetRefusal
from kbbot.errors import QuotaExceeded
from kbbot.store.ai_budget import LimitsAiBudget, parse_limit
from kbbot.store.memory import LocalSingleFlight, MemoryQuotaGate, TTLAnswerCache
from kbbot.store.redis_store import (
    RedisAnswerCache,
    RedisQuotaGate,
    RedisSingleFlight,
    connect_redis,
    limits_storage_uri,
)
from tests.fakes.ai_kb import AiKnowledgeBase
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

if TYPE_CHECKING:
    from redis.asyncio import Redis


class Search:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        self.asked.append(question)
        return Answer(text="From the wiki: …", related_pages=(PageRef("p9", "VPN"),), source=Source.SEARCH)


class GatedKb(AiKnowledgeBase):
    """The AI double whose answers wait for ``gate``: a flight stays open until the test lets it finish."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def query(self, question: str) -> AiAnswer:
        await self.gate.wait()
        return await super().query(question)


class GatedBudget:
    """A real budget whose :meth:`spend` waits for ``gate`` (``at_gate`` tells when one does): the test can
    let others join the flight, or spend the asker's last answer elsewhere, between the look and the spend."""

    def __init__(self, budget: LimitsAiBudget) -> None:
        self.budget = budget
        self.gate = asyncio.Event()
        self.at_gate = asyncio.Event()

    async def check(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
        return await self.budget.check(asker, channel)

    async def spend(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
        self.at_gate.set()
        await self.gate.wait()
        return await self.budget.spend(asker, channel)

    async def aclose(self) -> None:
        await self.budget.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def budget(limit: str = "1/day", channel: int | None = None) -> LimitsAiBudget:
    return LimitsAiBudget(user_limits=parse_limit(limit), channel_per_day=channel)


def service(
    kb: AiKnowledgeBase,
    spend: LimitsAiBudget | GatedBudget,
    *,
    cache: TTLAnswerCache | None = None,
    quota: MemoryQuotaGate | None = None,
    search: Search | None = None,
) -> AskService:
    return AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=cache or TTLAnswerCache(ttl_seconds=60, max_entries=100),
        flights=LocalSingleFlight(),
        quota=quota or MemoryQuotaGate(probe_seconds=3600),
        fallback=search or Search(),  # type: ignore[arg-type]
        budget=spend,
    )


def q(text: str, user: str = "U1", channel: str = "C1") -> Question:
    return Question(text, asker=Asker(user), conversation_key=f"{channel}:1700000000.0001", platform="slack")


def slowed(answer: Answer) -> bool:
    return answer.source is Source.SEARCH and "Please slow down" in (answer.notice or "")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_search_answers_while_ai_is_paused_spend_no_budget() -> None:
    kb, clock = AiKnowledgeBase(fail_with=QuotaExceeded("quota", status=402)), Clock()
    ask = service(kb, budget("1/day"), quota=MemoryQuotaGate(probe_seconds=3600, clock=clock))
    assert (await ask.ask(q("first question", user="U0"))).source is Source.SEARCH  # meets the 402
    paused = [await ask.ask(q(f"paused question {n}")) for n in range(10)]
    assert all(a.source is Source.SEARCH and (a.notice or "").startswith(QUOTA_NOTICE) for a in paused)
    assert len(kb.queries) == 1  # no billed call while paused
    # The quota is back and the probe is due: U1's one AI answer a day is still there.
    kb.fail_with, clock.now = None, clock.now + 3601
    assert (await ask.ask(q("after the pause"))).source is Source.AI
    assert slowed(await ask.ask(q("one more")))  # exactly that call was counted


async def test_cache_hits_spend_no_budget_at_either_look() -> None:
    kb, cache = AiKnowledgeBase(), TTLAnswerCache(ttl_seconds=60, max_entries=100)
    ask = service(kb, budget("1/day"), cache=cache)
    assert (await ask.ask(q("vpn?"))).source is Source.AI
    assert [(await ask.ask(q("vpn?", user=u))).source for u in ("U1", "U1", "U2")] == [Source.CACHE] * 3

    # U3 misses the first look (the answer lands just after it) and finds it at the flight's second look.
    class LateCache(TTLAnswerCache):
        misses = 1

        async def get(self, key: str) -> Answer | None:
            if self.misses:
                self.misses -= 1
                return None
            return await super().get(key)

    late = LateCache(ttl_seconds=60, max_entries=100)
    await late.set("vpn", Answer(text="Use WireGuard.", source=Source.AI))
    ask = service(kb, spend := budget("1/day"), cache=late)
    assert (await ask.ask(q("vpn", user="U3"))).source is Source.CACHE
    assert late.misses == 0 and len(kb.queries) == 1
    assert await spend.check("slack:U3", None) is None  # U3's one AI answer is still there
    for user in ("U2", "U3"):
        assert (await ask.ask(q(f"new question from {user}", user=user))).source is Source.AI


async def test_single_flight_joiners_spend_no_budget_the_flights_asker_pays() -> None:
    kb = GatedKb()
    kb.gate.clear()
    ask = service(kb, budget("1/day"))
    first = asyncio.create_task(ask.ask(q("how do I reset my password?", user="U1")))
    await settle()
    joiners = [asyncio.create_task(ask.ask(q("How do I reset my password", user=u))) for u in ("U2", "U3")]
    await settle()
    kb.gate.set()
    answers = await asyncio.gather(first, *joiners)
    assert [a.source for a in answers] == [Source.AI] * 3 and len(kb.queries) == 1
    # U1 paid for the one call; U2 and U3 still have theirs.
    assert slowed(await ask.ask(q("U1 again", user="U1")))
    assert [(await ask.ask(q(f"{u} again", user=u))).source for u in ("U2", "U3")] == [Source.AI] * 2


async def test_a_flight_whose_asker_is_over_budget_at_the_call_is_asked_again_for_its_joiners() -> None:
    # U1 passes the look, then their last AI answer goes elsewhere (another question of theirs, on another
    # replica, say) before their flight spends; U2 joined that flight meanwhile.
    kb, gated = AiKnowledgeBase(), GatedBudget(budget("1/day"))
    ask = service(kb, gated)
    leader = asyncio.create_task(ask.ask(q("vpn on linux?", user="U1")))
    await gated.at_gate.wait()
    joiner = asyncio.create_task(ask.ask(q("VPN on Linux", user="U2")))
    await settle()
    assert await gated.budget.spend("slack:U1", None) is None  # U1's last one, spent elsewhere
    gated.gate.set()
    refused, answered = await asyncio.gather(leader, joiner)
    assert slowed(refused)
    assert answered.source is Source.AI and kb.queries == ["VPN on Linux"]  # asked again: U2's words, U2 pays
    assert await gated.budget.check("slack:U2", None) is not None


async def test_an_asker_over_budget_neither_leads_nor_joins_a_flight() -> None:
    kb = GatedKb()
    ask = service(kb, spend := budget("1/day"))
    assert (await ask.ask(q("first", user="U1"))).source is Source.AI
    kb.gate.clear()
    other = asyncio.create_task(ask.ask(q("second", user="U2")))
    await settle()
    # U1 is over budget: the search answer at once, even for a question whose flight is open.
    assert slowed(await ask.ask(q("second", user="U1")))
    kb.gate.set()
    assert (await other).source is Source.AI and kb.queries == ["first", "second"]
    assert await spend.check("slack:U2", None) is not None  # U2 paid for their own call


async def test_a_knowledgebase_without_ai_never_looks_at_the_budget() -> None:
    class Counted(LimitsAiBudget):
        looks = 0

        async def check(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
            self.looks += 1
            return await super().check(asker, channel)

        async def spend(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
            self.looks += 1
            return await super().spend(asker, channel)

    kb, search = AiKnowledgeBase(supports_ai=False), Search()
    spend = Counted(user_limits=parse_limit("1/day"), channel_per_day=1)
    ask = service(kb, spend, search=search)
    answers = [await ask.ask(q(f"question {n}")) for n in range(5)]
    assert all(a.source is Source.SEARCH and not slowed(a) for a in answers)
    assert spend.looks == 0 and kb.queries == [] and len(search.asked) == 5


async def test_the_channel_budget_is_spent_only_by_billed_calls_too() -> None:
    kb, clock = AiKnowledgeBase(fail_with=QuotaExceeded("quota", status=402)), Clock()
    ask = service(kb, budget("off", channel=2), quota=MemoryQuotaGate(probe_seconds=3600, clock=clock))
    await ask.ask(q("meets the 402", user="U0"))  # that call was sent: one of the channel's two
    assert all([(await ask.ask(q(f"paused {n}", user=f"U{n}"))).source is Source.SEARCH for n in range(5)])
    kb.fail_with, clock.now = None, clock.now + 3601
    assert (await ask.ask(q("back", user="U7"))).source is Source.AI
    refused = await ask.ask(q("and again", user="U8"))
    assert refused.source is Source.SEARCH and "This channel has used today's AI answers" in (refused.notice or "")


class FollowedFlight(RedisSingleFlight):
    """The real Redis single flight, telling the test when this replica has started following another's."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, poll_seconds=0.01)
        self.following = asyncio.Event()

    async def _follow(self, lock: str, holder: str, deadline: float) -> Any:
        self.following.set()
        return await super()._follow(lock, holder, deadline)


@pytest.mark.redis
async def test_joiners_on_another_replica_ask_again_when_the_flights_asker_is_over_budget(
    redis_server: RedisServer,
) -> None:
    a_redis, b_redis = await connect_redis(redis_server.url), await connect_redis(redis_server.url)
    uri = limits_storage_uri(redis_server.url)
    gated = GatedBudget(LimitsAiBudget(user_limits=parse_limit("1/day"), storage=uri))
    b_budget = LimitsAiBudget(user_limits=parse_limit("1/day"), storage=uri)
    kb, b_flights = AiKnowledgeBase(), FollowedFlight(b_redis)

    def replica(redis: Redis, flights: RedisSingleFlight, spend: GatedBudget | LimitsAiBudget) -> AskService:
        return AskService(
            kb=kb,  # type: ignore[arg-type]
            cache=RedisAnswerCache(redis, ttl_seconds=60, max_entries=100),
            flights=flights,
            quota=RedisQuotaGate(redis, probe_seconds=3600),
            fallback=Search(),  # type: ignore[arg-type]
            budget=spend,
        )

    a, b = replica(a_redis, RedisSingleFlight(a_redis, poll_seconds=0.01), gated), replica(b_redis, b_flights, b_budget)
    try:
        leader = asyncio.create_task(a.ask(q("vpn on linux?", user="U1")))
        await gated.at_gate.wait()  # replica A leads U1's flight (it holds the lease) and is about to spend
        joiner = asyncio.create_task(b.ask(q("VPN on Linux", user="U2")))
        await b_flights.following.wait()  # replica B waits for A's flight instead of asking
        assert await b_budget.spend("slack:U1", None) is None  # U1's last one goes to another question of theirs
        gated.gate.set()
        refused, answered = await asyncio.gather(leader, joiner)
        assert slowed(refused)
        # A's refusal reached B through Redis; B asked again, as U2, and paid for it.
        assert answered.source is Source.AI and kb.queries == ["VPN on Linux"]
        assert await b_budget.check("slack:U2", None) is not None
    finally:
        await gated.aclose()
        await b_budget.aclose()
        await a_redis.aclose()
        await b_redis.aclose()
