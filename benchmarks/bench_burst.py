"""Burst: 300 questions from 50 users within 5 s against the fake Perfect Wiki server with the real limits
(10/s, 60/min per token) and 200 ms of AI latency, through the real stack as `kbbot run` composes it
(``open_runtime``: AskService → PerfectWikiBackend → TokenRateLimiter → httpx).

Reports upstream 429s (goal 0), the upstream rate while the backlog lasts (goal ≥ 95 % of 60/min, measured over
the first full minute), and what queued users are told (their place in line and expected wait): for every asker
who was told a wait, whether the answer came within the seconds the notice said (goal: ≥ 90 % of them), and the
median promise next to the median real wait.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import zipf_stream
from kbbot.config import load_settings
from kbbot.core.ask import QueuePosition
from kbbot.core.models import Asker, Question
from kbbot.core.text import normalize_question
from kbbot.runtime import open_runtime
from tests.fakes.perfectwiki import FakePerfectWiki

USERS = 50
QUESTIONS = 300
SPREAD_SECONDS = 5.0
DISTINCT = 110


async def _run() -> dict[str, Any]:
    rng = random.Random(17)
    stream = zipf_stream(QUESTIONS, DISTINCT, seed=19)
    with FakePerfectWiki(per_second=10, per_minute=60) as fake, tempfile.TemporaryDirectory() as data:
        fake.seed_pages([{"title": f"Page {i}", "content": f"<p>Team {i} handbook</p>"} for i in range(20)])
        fake.set_latency(0.2, endpoint="query")
        settings = load_settings(
            _env_file=None,
            perfectwiki_api_token=fake.token,
            perfectwiki_base_url=fake.url + "/",
            kbbot_data_dir=Path(data),
            perfectwiki_rate_per_second=10,
            perfectwiki_rate_per_minute=60,
        )
        async with open_runtime(settings) as rt:
            ask = rt.ask
            told: list[QueuePosition] = []
            latencies: list[float] = []
            # Per asker who was told a wait: (the seconds the notice said, the seconds the answer then took).
            promises: list[tuple[int, float]] = []

            async def user_question(text: str, at: float, user: int) -> None:
                await asyncio.sleep(at)
                notice: list[tuple[QueuePosition, float]] = []

                async def listener(position: QueuePosition) -> None:
                    told.append(position)
                    notice.append((position, time.perf_counter()))

                started = time.perf_counter()
                await ask.ask(Question(text, asker=Asker(f"U{user}"), platform="bench"), on_queued=listener)
                done = time.perf_counter()
                latencies.append(done - started)
                for position, at_notice in notice:
                    promises.append((position.told_seconds(), done - at_notice))

            started = time.monotonic()
            # Each from one of the users: the AskerQueue takes turns by asker, as it does for real people.
            await asyncio.gather(
                *(user_question(q, rng.uniform(0, SPREAD_SECONDS), rng.randrange(USERS)) for q in stream)
            )
            elapsed = time.monotonic() - started
            stats = fake.stats()

    query_times = sorted(e.arrived for e in stats.log if e.endpoint == "query" and e.status == 200)
    first = query_times[0]
    in_first_minute = sum(1 for t in query_times if t < first + 60)
    sample = max(told, key=lambda p: p.position) if told else None
    return {
        "questions": QUESTIONS,
        "distinct": len({normalize_question(q) for q in stream}),
        "upstream_queries": stats.queries,
        "upstream_429s": stats.rate_limited,
        "first_minute_queries": in_first_minute,
        "utilization_first_minute": in_first_minute / 60,
        "seconds_to_last_answer": elapsed,
        "answer_p50_s": statistics.median(latencies),
        "answer_max_s": max(latencies),
        "users_told_queue_position": len(told),
        "longest_queue_message": sample.message() if sample else None,
        # The goal: at least 90 % of the askers who were told a wait had their answer within it.
        "told_answered_within_promise": (
            sum(actual <= promised for promised, actual in promises) / len(promises) if promises else 1.0
        ),
        "told_waited_over_twice_the_promise": sum(actual > 2 * promised for promised, actual in promises),
        "promised_median_s": statistics.median(p for p, _ in promises) if promises else 0.0,
        "actual_median_s": statistics.median(a for _, a in promises) if promises else 0.0,
        # How far over the real wait the promises are (1.0 = exact): an estimate, not a worst case.
        "promise_to_actual_median_ratio": (
            statistics.median(p / max(a, 0.001) for p, a in promises) if promises else 0.0
        ),
    }


def run() -> dict[str, Any]:
    return asyncio.run(_run())


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
