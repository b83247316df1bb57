"""Search index benchmark: index 10,000 generated Markdown pages, then time a few hundred searches.

``run()`` measures in a child process, so peak RSS is the index's own (interpreter + libraries + SQLite),
not whatever the caller had allocated. Indexing time includes Markdown → text extraction and FTS5 writes
through the async API (batches of 100 pages, as sync writes them), plus the final FTS5 ``optimize``. Search
latency is measured through the async API too (one hop to the index thread per search), as the bot calls it;
``search_cpu_*`` is the CPU time per search, which does not grow when other processes load the machine.

    python -m benchmarks.bench_index [--pages 10000] [--queries 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kbbot.search.answerer import SearchAnswerer
from kbbot.search.extract import markdown_to_text
from kbbot.search.index import IndexedPage, SearchIndex

GOAL_P95_MS = 5.0
GOAL_RSS_MB = 150.0


def _words(text: str) -> list[str]:
    """Word lists read best as words."""
    return text.split()


_SYLLABLES = _words("ka lo mi ne ro ta vi su de po ri an el or us ex ing ter com pro con sta tion ment ser ver")
_COMMON = _words(
    "the a to of and in is for on with how do i you we it this that be by from as are at our can your when "
    "what should after before please set up use new get all each"
)
_DOMAIN = _words(
    "vpn password deploy rollback incident oncall expense leave vacation laptop security review git branch "
    "release firmware robot fleet kubernetes staging production alert dashboard grafana token secret vault "
    "invoice travel hotel flight badge office remote benefits pension insurance interview candidate hiring "
    "onboarding slack channel thread backup database migration latency error timeout retry queue worker"
)
_HOSTILE = [
    '"',
    "*",
    "NEAR(",
    "-",
    ":",
    "^",
    "(((",
    ")",
    "AND",
    "OR NOT",
    "🤖🚀",
    "title:",
    "x" * 300,
    '"unbalanced',
]


def _vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    words = set(_DOMAIN)
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _zipf_words(rng: random.Random, vocab: list[str], count: int) -> list[str]:
    # Zipf-like: rank r chosen with weight 1/r, the shape of natural text.
    return [
        vocab[min(int(rng.paretovariate(1.0)) - 1, len(vocab) - 1)] if rng.random() < 0.7 else rng.choice(vocab)
        for _ in range(count)
    ]


def generate_pages(count: int, seed: int = 7) -> Iterator[tuple[str, str, tuple[str, ...], str]]:
    """``count`` pages of (id, title, tags, markdown): headings, paragraphs, a list and a code block; about
    350 words each."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    rng.shuffle(vocab)
    for n in range(count):
        title = " ".join(_zipf_words(rng, vocab, rng.randint(2, 5))).capitalize()
        tags = tuple(sorted(set(rng.sample(_DOMAIN, rng.randint(1, 4)))))
        parts = [f"# {title}\n"]
        for _ in range(rng.randint(3, 5)):
            parts.append("## " + " ".join(_zipf_words(rng, vocab, 3)).capitalize() + "\n")
            sentence_words = _zipf_words(rng, vocab, rng.randint(40, 80))
            for i in range(0, len(sentence_words), 12):
                sentence_words[i] = rng.choice(_COMMON)
            parts.append(" ".join(sentence_words).capitalize() + ".\n")
        parts.append("\n".join(f"- {' '.join(_zipf_words(rng, vocab, 6))}" for _ in range(4)) + "\n")
        parts.append("```bash\n" + f"acme {rng.choice(_DOMAIN)} --id {n} --verbose\n" + "```\n")
        yield f"page-{n}", title, tags, "\n".join(parts)


def generate_queries(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    vocab = _vocabulary(random.Random(7))
    queries = []
    for n in range(count):
        words = _zipf_words(rng, vocab, rng.randint(1, 4)) + rng.sample(_DOMAIN, 1)
        if n % 3 == 0:
            words = ["how", "do", "i", *words]
        if n % 10 == 0:
            words.insert(rng.randrange(len(words)), rng.choice(_HOSTILE))
        queries.append(" ".join(words) + ("?" if n % 2 else ""))
    return queries


def _rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def _measure(pages: int, queries: int, directory: Path) -> dict[str, Any]:
    rss_start = _rss_mb()
    load_before = os.getloadavg()[0]
    async with SearchIndex(directory / "bench.sqlite3") as index:
        start = time.perf_counter()
        batch: list[IndexedPage] = []
        for page_id, title, tags, markdown in generate_pages(pages):
            batch.append(IndexedPage(id=page_id, title=title, tags=tags, text=markdown_to_text(markdown)))
            if len(batch) == 100:
                await index.upsert_many(batch)
                batch = []
        await index.upsert_many(batch)
        index_seconds = time.perf_counter() - start
        start = time.perf_counter()
        await index.optimize()
        optimize_seconds = time.perf_counter() - start

        questions = generate_queries(queries)
        for question in questions[:20]:  # warm the page cache, as a running bot would be
            await index.search(question, limit=5)
        timings = []
        cpu_timings = []
        found = 0
        for question in questions:
            t0, c0 = time.perf_counter(), time.process_time()
            hits = await index.search(question, limit=5)
            timings.append((time.perf_counter() - t0) * 1000)
            cpu_timings.append((time.process_time() - c0) * 1000)
            found += bool(hits)

        answerer = SearchAnswerer(index)
        answer_timings = []
        for question in questions[:100]:
            t0 = time.perf_counter()
            await answerer.answer(question)
            answer_timings.append((time.perf_counter() - t0) * 1000)
    size_mb = sum(f.stat().st_size for f in directory.iterdir()) / 1e6  # noqa: ASYNC240 - after the timing
    return {
        "pages": pages,
        "queries": len(questions),
        "queries_with_results": found,
        "index_seconds": round(index_seconds, 2),
        "optimize_seconds": round(optimize_seconds, 2),
        "index_file_mb": round(size_mb, 1),
        "search_p50_ms": round(statistics.median(timings), 3),
        "search_p95_ms": round(_percentile(timings, 95), 3),
        "search_max_ms": round(max(timings), 3),
        # CPU time of both threads per search: what the search costs, whatever else the machine is doing.
        "search_cpu_p50_ms": round(statistics.median(cpu_timings), 3),
        "search_cpu_p95_ms": round(_percentile(cpu_timings, 95), 3),
        "answer_p50_ms": round(statistics.median(answer_timings), 3),
        "answer_p95_ms": round(_percentile(answer_timings, 95), 3),
        "rss_before_mb": round(rss_start, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "load_average_1m": round(load_before, 2),
        "cpus": os.cpu_count(),
        "goal_p95_ms": GOAL_P95_MS,
        "goal_rss_mb": GOAL_RSS_MB,
    }


def measure(pages: int = 10_000, queries: int = 400) -> dict[str, Any]:
    """Measure in this process (``run`` calls this in a child)."""
    with tempfile.TemporaryDirectory(prefix="kbbot-bench-") as tmp:
        return asyncio.run(_measure(pages, queries, Path(tmp)))


def run(pages: int = 10_000, queries: int = 400) -> dict[str, Any]:
    """Measure in a fresh child process so ``peak_rss_mb`` is the index's own; returns the numbers."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_index",
            "--child",
            "--pages",
            str(pages),
            "--queries",
            str(queries),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["ok"] = result["search_p95_ms"] <= GOAL_P95_MS and result["peak_rss_mb"] <= GOAL_RSS_MB
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.pages, args.queries)))
        return 0
    result = run(args.pages, args.queries)
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
