"""Outcomes recorded by the ask path and by 👎, the billed-call count, and the monthly quota forecast."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from kbbot.core.ask import AskService
from kbbot.core.models import Answer, Asker, Question, Source
from kbbot.core.outcomes import Kind, Outcome, OutcomeRecorder, RecordingFeedback
from kbbot.core.quota_forecast import forecast, month_end
from kbbot.errors import InvalidQuestion, Unavailable
from kbbot.store.memory import LocalSingleFlight, MemoryFeedbackStore, MemoryQuotaGate, TTLAnswerCache
from kbbot.store.sqlite_outcomes import SqliteOutcomeLog
from tests.fakes.ai_kb import AiKnowledgeBase

T0 = 1_765_584_000.0  # 2025-12-13T00:00:00Z


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Search:
    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        return await self.not_found(question)

    async def not_found(self, question: str) -> Answer:
        return Answer(text="I couldn't find this in the wiki.", source=Source.SEARCH, empty=True)


class BrokenLog(SqliteOutcomeLog):
    async def record(self, outcome: Outcome) -> None:
        raise OSError("disk full")

    async def count_ai_call(self, day: str) -> None:
        raise OSError("disk full")


@pytest.fixture
async def log_store(tmp_path: Path) -> SqliteOutcomeLog:
    store = SqliteOutcomeLog(tmp_path / "outcomes.sqlite3")
    yield store  # type: ignore[misc]
    await store.aclose()


def service(kb: AiKnowledgeBase, recorder: OutcomeRecorder) -> AskService:
    return AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=100),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=3600),
        fallback=Search(),
        outcomes=recorder,
    )


async def test_each_question_leaves_one_outcome_without_user_id(log_store: SqliteOutcomeLog) -> None:
    clock = Clock()
    recorder = OutcomeRecorder(log_store, knowledgebase="kb1", clock=clock)
    kb = AiKnowledgeBase()
    ask = service(kb, recorder)
    asker = Asker(id="U0SECRET1", name="Ada")
    await ask.ask(Question("How do I reset my password?", asker, "C0123ABCD:1.2", "slack"))
    await ask.ask(Question("how do i reset my password", asker, "C0123ABCD:1.3", "slack"))  # cached
    kb.empty = True
    await ask.ask(Question("  where is the   zeppelin hangar? ", asker, "", "cli"))
    kb.fail_with = Unavailable("the wiki is down")
    with pytest.raises(Unavailable):
        await ask.ask(Question("why is the sky blue", asker, "D042:9", "discord"))
    with pytest.raises(InvalidQuestion):
        await ask.ask(Question("   ", asker, "C0123ABCD:1", "slack"))  # nothing asked, nothing recorded

    got = await log_store.since(0)
    assert [(o.platform, o.channel, o.kind, o.source, o.question) for o in got] == [
        ("slack", "C0123ABCD", Kind.ANSWERED, "ai", None),  # answered: no text kept
        ("slack", "C0123ABCD", Kind.ANSWERED, "cache", None),
        ("cli", "", Kind.EMPTY, "ai", "where is the zeppelin hangar?"),
        ("discord", "D042", Kind.ERROR, None, "why is the sky blue"),
    ]
    assert {o.knowledgebase for o in got} == {"kb1"} and {o.at for o in got} == {T0}
    assert not any("U0SECRET1" in repr(o) or "Ada" in repr(o) for o in got)
    # Billed calls: the AI was asked twice successfully (the cache answer and the failure are not billed).
    assert await log_store.ai_calls("2025-12-01") == {"2025-12-13": 2}


async def test_a_thumbs_down_is_a_downvoted_outcome(log_store: SqliteOutcomeLog) -> None:
    recorder = OutcomeRecorder(log_store, knowledgebase="kb1", clock=Clock())
    votes = MemoryFeedbackStore()
    feedback = RecordingFeedback(votes, recorder)
    await feedback.record(platform="slack", question="vpn?", user_id="U1", helpful=True, channel="C1")
    await feedback.record(platform="discord", question="parking?", user_id="9", helpful=False, channel="77")
    assert (await feedback.counts()).not_helpful == 1
    [down] = await log_store.since(0)
    assert (down.platform, down.channel, down.kind, down.question) == ("discord", "77", Kind.DOWNVOTED, "parking?")


async def test_one_person_clicking_thumbs_down_twice_is_one_downvote(log_store: SqliteOutcomeLog) -> None:
    from kbbot.store.memory import MemoryDeduper

    recorder = OutcomeRecorder(log_store, knowledgebase="kb1", clock=Clock())
    feedback = RecordingFeedback(MemoryFeedbackStore(), recorder, MemoryDeduper())
    for user in ("U1", "U1", "U2"):
        await feedback.record(platform="slack", question="parking?", user_id=user, helpful=False, channel="C1")
    assert [o.kind for o in await log_store.since(0)] == [Kind.DOWNVOTED, Kind.DOWNVOTED]


async def test_a_broken_store_never_costs_an_answer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = BrokenLog(tmp_path / "o.sqlite3")
    ask = service(AiKnowledgeBase(), OutcomeRecorder(broken, knowledgebase="kb", quota_monthly=10))
    answer = await ask.ask(Question("vpn?"))
    assert answer.source is Source.AI
    assert "could not record" in caplog.text and "could not count a billed AI call" in caplog.text
    await broken.aclose()


async def test_retention_prunes_old_outcomes(log_store: SqliteOutcomeLog) -> None:
    clock = Clock()
    recorder = OutcomeRecorder(log_store, knowledgebase="kb", retention_days=90, clock=clock)
    await recorder.failed(platform="cli", channel="", question="old")
    clock.now += 91 * 86400
    await recorder.failed(platform="cli", channel="", question="new")
    assert [o.question for o in await log_store.since(0)] == ["new"]


async def test_warns_once_at_80_percent_and_forecasts(
    log_store: SqliteOutcomeLog, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(T0 + 3600)  # 13 December: 13 days elapsed
    recorder = OutcomeRecorder(log_store, knowledgebase="kb", quota_monthly=100, clock=clock)
    caplog.set_level(logging.WARNING)
    for _ in range(79):
        await recorder.ai_call()
    assert "AI quota" not in caplog.text
    state = await recorder.quota()
    assert state is not None and state.used == 79 and state.used_ratio == pytest.approx(0.79)
    for _ in range(5):
        await recorder.ai_call()
    assert caplog.text.count("AI quota of kb: 80 of 100") == 1  # once, at the crossing, naming the knowledgebase
    state = await recorder.quota()
    assert state is not None and state.runs_out == date(2025, 12, 16)  # 16 left at 84/13 ≈ 6.5 a day → 3 days
    assert await OutcomeRecorder(log_store, knowledgebase="kb").quota() is None  # no quota set: no forecast


@pytest.mark.parametrize(
    ("calls", "today", "runs_out"),
    [
        ({}, date(2025, 12, 1), None),  # nothing used: lasts
        ({"2025-12-01": 10}, date(2025, 12, 1), date(2025, 12, 10)),  # 10 a day, 90 left → day 10
        ({"2025-12-01": 100}, date(2025, 12, 1), date(2025, 12, 1)),  # used up today
        ({"2025-12-01": 150}, date(2025, 12, 1), date(2025, 12, 1)),  # over (402s) is still "today"
        ({"2025-12-01": 1}, date(2025, 12, 1), None),  # 1 a day: renews first
        ({"2025-11-30": 99, "2025-12-31": 3}, date(2025, 12, 31), None),  # last month's calls do not count
        ({"2026-02-01": 50}, date(2026, 2, 10), date(2026, 2, 20)),  # 5 a day, 50 left: 10 more days
    ],
)
def test_forecast(calls: dict[str, int], today: date, runs_out: date | None) -> None:
    state = forecast(calls, quota=100, today=today)
    assert state.runs_out == runs_out
    assert state.to_json()["runs_out"] == (runs_out.isoformat() if runs_out else None)


def test_month_end() -> None:
    assert [month_end(date(2024, m, 15)).day for m in (1, 2, 4, 12)] == [31, 29, 30, 31]
