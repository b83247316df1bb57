"""Fault drill: the real stack as `kbbot run` composes it (``open_runtime``: AskService → PerfectWikiBackend →
limiter → httpx) against the fake Perfect Wiki with 20 % injected 500s, 1.5 s stalls and a 429 storm. Every
question gets an answer or a clear message, nothing raises out of the pipeline, retries stay bounded, and a 402
afterwards costs at most one AI call per interval.

The token's rate limits are raised on both sides (the drill is about faults; the limiter has its own tests), so
200 questions finish in seconds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benchmarks.workload import zipf_stream
from kbbot.backends.http import RetryPolicy
from kbbot.config import load_settings
from kbbot.core.ask import QUOTA_NOTICE
from kbbot.core.models import Answer, Question, Source
from kbbot.core.replies import error_reply
from kbbot.core.text import normalize_question
from kbbot.errors import KbbotError
from kbbot.runtime import open_runtime
from tests.fakes.perfectwiki import FakePerfectWiki

POLICY = RetryPolicy(backoff_base=0.05, backoff_max=0.3, retry_after_max=5)
MAX_ATTEMPTS = POLICY.rate_limit_attempts + POLICY.error_attempts


@pytest.fixture
def fake() -> AsyncIterator[FakePerfectWiki]:
    with FakePerfectWiki(per_second=200, per_minute=20_000, retry_after=0.3) as server:
        server.seed_pages(
            [
                {"title": f"How to {topic}", "content": f"<p>To {topic}, follow the steps on this page.</p>"}
                for topic in ("reset my password", "set up the VPN", "deploy to production", "file an expense")
            ]
        )
        yield server


async def test_drill_every_question_answered_or_told(fake: FakePerfectWiki, tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        perfectwiki_api_token=fake.token,
        perfectwiki_base_url=fake.url + "/",
        kbbot_data_dir=tmp_path / "data",
        request_timeout_seconds=1.0,
        perfectwiki_rate_per_second=150,
        perfectwiki_rate_per_minute=15_000,
    )

    async def attempts() -> Counter[str]:
        """Every AI query the wiki received, by question (500s, 429s and stalled ones included)."""
        await fake.idle()
        return Counter(entry.q for entry in fake.stats().log if entry.q is not None)

    async with open_runtime(settings, http_retry=POLICY) as rt:
        ask = rt.ask
        await rt.syncer.sync()
        fake.set_failure_rate(0.2, seed=11)
        questions = zipf_stream(200, 120, seed=3)
        stall_at = set(random.Random(5).sample(range(200), 6))

        async def one(i: int, text: str) -> Answer | KbbotError:
            await asyncio.sleep(i * 0.005)
            if i in stall_at:
                fake.stall(1.5, count=1, endpoint="query")  # the next query hangs past the 1 s timeout
            if i == 80:
                fake.consume(400)  # a 429 storm: another integration burns the token's budget
            try:
                return await ask.ask(Question(text))
            except KbbotError as exc:
                return exc

        results = await asyncio.wait_for(
            asyncio.gather(*(one(i, q) for i, q in enumerate(questions))), timeout=120
        )

        answered = [r for r in results if isinstance(r, Answer)]
        told = [r for r in results if isinstance(r, KbbotError)]
        assert len(answered) + len(told) == 200
        # Retries absorb most faults; a stalled query is not retried (it is billed and may have run), and
        # everyone waiting on that same question shares the outcome, so some askers are told to retry.
        assert len(answered) >= 120, Counter(str(e) for e in told)
        for error in told:
            message = error_reply(error)
            assert message and "Traceback" not in message and fake.token not in message
        stats = fake.stats()
        assert stats.server_errors > 0 and stats.rate_limited > 0  # the faults really happened
        tried = await attempts()
        assert max(tried.values()) <= MAX_ATTEMPTS
        # Each distinct question reached upstream in one flight at a time: never more than one flight's
        # attempts for questions that succeeded on the first flight.
        distinct = {normalize_question(q) for q in questions}
        assert sum(tried.values()) <= len(distinct) * MAX_ATTEMPTS

        # Then the monthly quota runs out: one 402, and no further AI call within the probe interval.
        fake.clear_faults()
        fake.set_ai_quota(0)
        before = (await attempts()).total()
        first = await ask.ask(Question("the question that meets the 402"))
        assert first.source is Source.SEARCH and (await attempts()).total() - before == 1
        after = await asyncio.gather(*(ask.ask(Question(f"brand new question {n}")) for n in range(100)))
        assert (await attempts()).total() - before == 1  # nothing more within the probe interval
        assert all(a.source is Source.SEARCH and a.notice == QUOTA_NOTICE for a in after)
        assert (await ask.status()).quota.paused
