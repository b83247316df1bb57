"""AskService: per-asker AI budget (search answer + slow-down notice), channel budget, fair turns, and close."""

from __future__ import annotations

import asyncio

import pytest

from kbbot.core.ask import AskService, slow_down_notice
from kbbot.core.fairness import AskerQueue
from kbbot.core.models import Answer, Asker, PageRef, Question, Source
from kbbot.core.ports import BudgetRefusal
from kbbot.errors import ShuttingDown
from kbbot.store.ai_budget import LimitsAiBudget, parse_limit
from kbbot.store.memory import LocalSingleFlight, MemoryQuotaGate, TTLAnswerCache
from tests.fakes.ai_kb import AiKnowledgeBase


class Search:
    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        return Answer(text="From the wiki: …", related_pages=(PageRef("p9", "VPN"),), source=Source.SEARCH)


class ManualPacer:
    """The pace, opened by the test one turn at a time (production: an aiolimiter bucket)."""

    def __init__(self) -> None:
        self.permits = asyncio.Semaphore(0)

    async def acquire(self, amount: float = 1) -> None:
        await self.permits.acquire()

    def open(self, turns: int = 1) -> None:
        for _ in range(turns):
            self.permits.release()


def service(
    kb: AiKnowledgeBase, *, limit: str = "off", channel: int | None = None, pace: ManualPacer | None = None
) -> AskService:
    return AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=100),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=3600),
        fallback=Search(),
        budget=LimitsAiBudget(user_limits=parse_limit(limit), channel_per_day=channel),
        turns=AskerQueue(pace=pace),
    )


def q(text: str, user: str = "U1", channel: str = "C1") -> Question:
    return Question(text, asker=Asker(user), conversation_key=f"{channel}:1700000000.0001", platform="slack")


async def test_over_the_user_limit_the_asker_gets_search_and_is_told_to_slow_down() -> None:
    kb = AiKnowledgeBase()
    ask = service(kb, limit="3/minute")
    answers = [await ask.ask(q(f"question {n}")) for n in range(5)]
    assert [a.source for a in answers] == [Source.AI] * 3 + [Source.SEARCH] * 2
    assert len(kb.queries) == 3  # nothing billed past the limit
    assert answers[3].notice is not None and "Please slow down" in answers[3].notice
    assert "3 a minute per person" in answers[3].notice
    # Someone else is not affected, and cached answers stay free for everyone.
    assert (await ask.ask(q("another", user="U2"))).source is Source.AI
    assert (await ask.ask(q("question 0"))).source is Source.CACHE


async def test_channel_daily_budget() -> None:
    kb = AiKnowledgeBase()
    ask = service(kb, channel=2)
    sources = [(await ask.ask(q(f"q{n}", user=f"U{n}"))).source for n in range(3)]
    assert sources == [Source.AI, Source.AI, Source.SEARCH]
    refused = await ask.ask(q("q9", user="U9"))
    assert refused.notice and "This channel has used today's AI answers (2 a day)" in refused.notice
    assert (await ask.ask(q("q8", user="U8", channel="C2"))).source is Source.AI


def test_notice_wording_for_waits() -> None:
    assert slow_down_notice(BudgetRefusal("user", "5 a minute", 42.4)).endswith("again in about 42 s.")
    assert slow_down_notice(BudgetRefusal("user", "40 a day", 3 * 3600)).endswith("again in about 3 h.")


async def test_another_askers_question_goes_before_the_rest_of_a_flood() -> None:
    kb, pace = AiKnowledgeBase(), ManualPacer()
    ask = service(kb, pace=pace)
    flood = [asyncio.create_task(ask.ask(q(f"flood {n}"))) for n in range(20)]
    await settle()
    other = asyncio.create_task(ask.ask(q("other question", user="U2")))
    await settle()
    pace.open(21)
    await asyncio.gather(*flood, other)
    # flood 0 was already waiting for the pace; the other question went after the flood's two booked ones,
    # not after the 20.
    assert kb.queries[:4] == ["flood 0", "flood 1", "flood 2", "other question"]


async def test_close_refuses_waiting_questions_but_still_serves_cached_ones() -> None:
    kb, pace = AiKnowledgeBase(), ManualPacer()
    ask = service(kb, pace=pace)
    pace.open()
    await ask.ask(q("cached one"))
    waiting = [asyncio.create_task(ask.ask(q(f"waiting {n}", user=f"U{n}"))) for n in range(5)]
    await settle()
    # One is at the pace (it has its turn), four wait for theirs; none is expected in no time.
    assert ask.close(answer_within=0) == 4
    with pytest.raises(ShuttingDown):
        await ask.ask(q("new question"))
    assert (await ask.ask(q("cached one"))).source is Source.CACHE
    pace.open()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    refused = [r for r in results if isinstance(r, ShuttingDown)]
    assert len(refused) == 4 and "ask again in a minute" in str(refused[0])
    assert [r.source for r in results if isinstance(r, Answer)] == [Source.AI]  # the one with its turn


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)
