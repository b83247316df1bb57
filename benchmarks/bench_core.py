"""Core overhead and cost: AskService versus calling the backend directly.

- cache-hit time: median of single ``ask`` calls answered from the cache (goal ≤ 50 µs);
- miss-path overhead: ``ask`` on a miss versus ``kb.query`` directly, at 0 ms and 200 ms backend latency
  (goal ≤ 1.02× at 200 ms);
- cost: upstream AI calls for a 10,000-question Zipf stream versus its distinct normalized questions (≤ 1.02×).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from benchmarks.workload import distinct_questions, zipf_stream
from kbbot.core.ask import AskService
from kbbot.core.models import Answer, Question, Source
from kbbot.core.text import normalize_question
from kbbot.store.memory import LocalSingleFlight, MemoryQuotaGate, TTLAnswerCache
from tests.fakes.ai_kb import AiKnowledgeBase


class NoSearch:
    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        return Answer(text="", source=Source.SEARCH, empty=True)


def service(kb: AiKnowledgeBase) -> AskService:
    return AskService(
        kb=kb,  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=3600, max_entries=10_000),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=3600),
        fallback=NoSearch(),
    )


async def _stream_cost(latency: float, stream: list[str], concurrency: int = 50) -> dict[str, Any]:
    kb = AiKnowledgeBase(delay=latency)
    svc = service(kb)
    queue = iter(stream)

    async def worker() -> None:
        for text in queue:
            await svc.ask(Question(text))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    distinct = len({normalize_question(q) for q in stream})
    calls = len(kb.queries)
    return {"upstream_calls": calls, "distinct": distinct, "ratio": calls / distinct, "seconds": elapsed}


async def _hit_median_us(samples: int = 10_000) -> float:
    svc = service(AiKnowledgeBase())
    await svc.ask(Question("How do I set up the VPN?"))
    variants = ["how do i set up the vpn", "How do I set up the VPN??", "  HOW DO I SET UP THE VPN "]
    timings = []
    for i in range(samples):
        started = time.perf_counter_ns()
        await svc.ask(Question(variants[i % 3]))
        timings.append(time.perf_counter_ns() - started)
    return statistics.median(timings) / 1000


async def _miss_overhead(latency: float, n: int) -> dict[str, float]:
    """Sequential misses through AskService vs the same number of direct backend calls (interleaved)."""
    questions = distinct_questions(n * 2)
    direct_kb, svc_kb = AiKnowledgeBase(delay=latency), AiKnowledgeBase(delay=latency)
    svc = service(svc_kb)
    direct: list[float] = []
    through: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await direct_kb.query(questions[i])
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        await svc.ask(Question(questions[n + i]))
        through.append(time.perf_counter() - started)
    d, t = statistics.mean(direct), statistics.mean(through)
    return {
        "direct_ms": d * 1000,
        "ask_ms": t * 1000,
        "ratio": t / d if d else float("nan"),
        "overhead_us": (t - d) * 1e6,
    }


async def _run() -> dict[str, Any]:
    stream = zipf_stream(10_000, 500)
    return {
        "cache_hit_median_us": await _hit_median_us(),
        "miss_0ms": await _miss_overhead(0.0, 2000),
        "miss_200ms": await _miss_overhead(0.2, 20),
        "cost_0ms": await _stream_cost(0.0, stream),
        "cost_200ms": await _stream_cost(0.2, stream),
    }


def run() -> dict[str, Any]:
    return asyncio.run(_run())


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
