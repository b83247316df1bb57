"""A dashboard with a month of made-up (seeded, deterministic) traffic, served by the real aiohttp app on
127.0.0.1: shared by the dashboard's HTTP tests, the headless-browser test and the README screenshot."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kbbot.core.models import Answer, Source
from kbbot.core.outcomes import OutcomeRecorder
from kbbot.ops.dashboard import Dashboard, mount_admin
from kbbot.ops.http import HttpServer
from kbbot.ops.metrics import Metrics
from kbbot.store.memory import MemoryFeedbackStore
from kbbot.store.sqlite_outcomes import SqliteOutcomeLog

NOW = 1_765_843_200.0 + 15 * 3600  # 2025-12-16T15:00:00Z
TOKEN = "admin-token-for-tests-0123456789"
XSS = "<script>alert(1)</script> where is the \"office\" & 'lobby'?"
GAP_QUESTIONS = [
    ("how do I book a meeting room", 5), ("How can I book a meeting room?", 4), ("booking a meeting room", 3),
    ("what is the parental leave policy", 4), ("who approves travel over 2000 EUR", 3),
    ("how do I get a parking permit", 2), (XSS, 1),
]


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def seed(recorder: OutcomeRecorder, clock: Clock, *, days: int = 30) -> None:
    """Questions over ``days`` days ending at ``clock.now``: answers by source, billed AI calls, gaps."""
    rng = random.Random(20)
    end = clock.now
    for back in range(days - 1, -1, -1):
        clock.now = end - back * 86400
        weekday = (days - back) % 7 < 5
        for _ in range(rng.randint(18, 30) if weekday else rng.randint(3, 8)):
            source = rng.choice([Source.AI, Source.AI, Source.CACHE, Source.SEARCH])
            await recorder.answered(platform=rng.choice(["slack", "discord"]), channel="C0123ABCD",
                                    question="(answered)", answer=Answer("An answer.", source=source))
            if source is Source.AI:
                await recorder.ai_call()
    for question, times in GAP_QUESTIONS:
        for n in range(times):
            clock.now = end - (n * 2 + 1) * 3600 * 5
            await recorder.answered(platform="slack", channel="C0123ABCD", question=question,
                                    answer=Answer("I couldn't find this in the wiki.", source=Source.SEARCH,
                                                  empty=True))
    await recorder.downvoted(platform="discord", channel="771", question="what is the parental leave policy")
    await recorder.failed(platform="slack", channel="C0123ABCD", question="who approves travel over 2000 EUR")
    clock.now = end


@dataclass
class Served:
    url: str
    recorder: OutcomeRecorder
    feedback: MemoryFeedbackStore
    clock: Clock


@asynccontextmanager
async def serve_dashboard(
    tmp_path: Path, *, seeded: bool = True, quota: int | None = 180, second: bool = False
) -> AsyncIterator[Served]:
    clock = Clock()
    store = SqliteOutcomeLog(tmp_path / "outcomes.sqlite3")
    recorder = OutcomeRecorder(store, knowledgebase="acme", quota_monthly=quota, clock=clock)
    if seeded:
        await seed(recorder, clock)
    feedback = MemoryFeedbackStore()
    for n in range(12):
        await feedback.record(platform="slack", question=f"q{n}", user_id=f"U{n}", helpful=n % 4 != 0)
    metrics = Metrics()
    for outcome in ("created", "created", "updated", "queued"):
        metrics.save(outcome, 0.2)
    app = web.Application()
    dashboards = {"acme": Dashboard(recorder, feedback, metrics.save_counts, title="Acme wiki")}
    if second:
        other = OutcomeRecorder(SqliteOutcomeLog(tmp_path / "hr.sqlite3"), knowledgebase="hr", clock=clock)
        await other.failed(platform="slack", channel="C1", question="where is the HR wiki?")
        dashboards["hr"] = Dashboard(other, MemoryFeedbackStore(), metrics.save_counts, title="HR wiki")
    mount_admin(app, dashboards, token=TOKEN)
    server = await HttpServer(app, "127.0.0.1", 0).start()
    try:
        yield Served(server.url, recorder, feedback, clock)
    finally:
        await server.stop()
        await store.aclose()
        if second:
            await dashboards["hr"].outcomes.store.aclose()
