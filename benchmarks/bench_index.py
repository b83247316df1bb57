"""Search index benchmark: build an index of generated Markdown pages, time searches, check ranking, side by
side with a peer (tantivy, the Rust search library, used directly through its official Python bindings). kbbot
runs with each of its rankings: ``kbbot`` (SQLite FTS5, the default) and ``kbbot-tantivy``
(``SEARCH_ENGINE=tantivy``: the same SearchIndex, its ranking done by tantivy).

Every (engine, corpus size) pair runs in its own fresh child process, so each peak RSS is that engine's own
(interpreter + libraries + index), read from ``VmHWM`` in the child's ``/proc/self/status``. (``getrusage``'s
``ru_maxrss`` is no use here: Linux carries the parent's peak across fork and exec, so a parent holding
300 MB made every child report 328 MB.)

- build: Markdown → text extraction plus index writes through each engine's own API (kbbot: the async
  ``SearchIndex`` in batches of 100 pages, as a full sync writes them), plus the final optimize/merge; the
  time the benchmark spends making up the pages is left out;
- search: a few hundred Zipf-worded questions, some with FTS5/tantivy syntax in them, through the async API as
  the bot calls it; ``cpu`` is the CPU time per search, which does not grow when other processes load the
  machine (this machine is shared: compare engines by the ratios of one run, not across runs);
- quality: known-item questions (two title words and one body word of a page, the words people remember):
  the share whose page is in the top 5 (recall@5) and the mean reciprocal rank of that page.

    python -m benchmarks.bench_index [--pages 1000,10000,50000] [--queries 400] [--engines kbbot,kbbot-tantivy,tantivy]
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
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from kbbot.search.extract import markdown_to_text
from kbbot.search.query import query_terms

#: Goals from issue #21, per corpus size: search p95 (ms), and the most tantivy's p95 may be beaten by.
GOAL_P95_MS = {10_000: 2.0, 50_000: 5.0}
GOAL_PEER_RATIO = 3.0
GOAL_BUILD_10K_S = 3.5
GOAL_RSS_MB = 150.0
SIZES = (1_000, 10_000, 50_000)
#: kbbot with each of its rankings (``SEARCH_ENGINE``: sqlite, the default, and tantivy), and the peer.
OURS = {"kbbot": "sqlite", "kbbot-tantivy": "tantivy"}
ENGINES = (*OURS, "tantivy")
PEER = "tantivy"


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


def known_item_queries(
    pages: Iterable[tuple[str, str, tuple[str, ...], str]], count: int, seed: int = 13
) -> list[tuple[str, str]]:
    """(question, the page it is about): two words of a page's title and one of its body, the way people
    remember a page. Pages whose title has two distinct searchable words take part, from across the corpus
    (a reservoir sample: the corpus is never held in memory, so it does not count in the peak RSS)."""
    rng = random.Random(seed)
    sample: list[tuple[str, str, str]] = []
    for n, (page_id, title, _tags, markdown) in enumerate(pages):
        if len(sample) < count * 3:
            sample.append((page_id, title, markdown))
        elif (slot := rng.randrange(n + 1)) < count * 3:
            sample[slot] = (page_id, title, markdown)
    chosen: list[tuple[str, str]] = []
    for page_id, title, markdown in sample:
        title_words = list(dict.fromkeys(query_terms(title)))
        body_words = [w for w in query_terms(markdown[len(title) + 3 :]) if w not in title_words]
        if len(title_words) < 2 or not body_words:
            continue
        words = [*rng.sample(title_words, 2), rng.choice(body_words)]
        chosen.append((" ".join(words), page_id))
        if len(chosen) == count:
            break
    return chosen


def peak_rss_mb() -> float:
    """This process's own peak resident set: ``VmHWM`` (Linux), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


Search = Callable[[str], Awaitable[list[str]]]


class _Engine:
    """One engine under test: ``build`` indexes the pages, ``search`` returns ranked page ids."""

    async def __aenter__(self) -> _Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def build(self, pages: Iterable[tuple[str, str, tuple[str, ...], str]]) -> float:
        """Index ``pages``; returns the seconds spent in the final optimize/merge (part of the build)."""
        raise NotImplementedError

    async def search(self, question: str, limit: int) -> list[str]:
        raise NotImplementedError

    async def answer(self, question: str) -> None:
        """The whole extractive answer path, where the engine has one."""


class _Kbbot(_Engine):
    def __init__(self, directory: Path, engine: str) -> None:
        from kbbot.search.answerer import SearchAnswerer
        from kbbot.search.index import SearchIndex

        self.index = SearchIndex(directory / "bench.sqlite3", engine=engine)
        self.answerer = SearchAnswerer(self.index)

    async def __aenter__(self) -> _Kbbot:
        await self.index.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.index.aclose()

    async def build(self, pages: Iterable[tuple[str, str, tuple[str, ...], str]]) -> float:
        from kbbot.search.index import IndexedPage

        batch: list[IndexedPage] = []
        for page_id, title, tags, markdown in pages:
            batch.append(IndexedPage(id=page_id, title=title, tags=tags, text=markdown_to_text(markdown)))
            if len(batch) == 100:
                await self.index.upsert_many(batch)
                batch = []
        await self.index.upsert_many(batch)
        start = time.perf_counter()
        await self.index.optimize()
        return time.perf_counter() - start

    async def search(self, question: str, limit: int) -> list[str]:
        return [hit.id for hit in await self.index.search(question, limit=limit)]

    async def answer(self, question: str) -> None:
        await self.answerer.answer(question)


class _Tantivy(_Engine):
    """The peer: tantivy used directly, the way its docs show (English stemming, title/tags boosted like
    kbbot's column weights, OR of the question's words). Its query goes through kbbot's ``query_terms`` so
    both engines search for the same words and tantivy's query parser never sees FTS syntax."""

    def __init__(self, directory: Path) -> None:
        import tantivy

        self._t = tantivy
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("id", stored=True, tokenizer_name="raw")
        for name in ("title", "tags", "body"):
            builder.add_text_field(name, stored=False, tokenizer_name="en_stem")
        self._index = tantivy.Index(builder.build(), path=str(directory))
        self._searcher: Any = None

    async def build(self, pages: Iterable[tuple[str, str, tuple[str, ...], str]]) -> float:
        writer = self._index.writer(heap_size=50_000_000, num_threads=1)
        for page_id, title, tags, markdown in pages:
            body = markdown_to_text(markdown)
            writer.add_document(self._t.Document(id=page_id, title=title, tags=" ".join(tags), body=body))
        writer.commit()
        start = time.perf_counter()
        writer.wait_merging_threads()
        self._index.reload()
        self._searcher = self._index.searcher()
        return time.perf_counter() - start

    async def search(self, question: str, limit: int) -> list[str]:
        terms = query_terms(question)
        if not terms:
            return []
        query = self._index.parse_query(
            " ".join(terms), ["title", "tags", "body"], field_boosts={"title": 10.0, "tags": 4.0}
        )
        searcher = self._searcher
        # count=False, as kbbot's tantivy ranking asks: neither needs the number of matches, and counting them
        # makes tantivy visit every matching page instead of skipping blocks (p95 a third lower at 10,000).
        hits = searcher.search(query, limit, count=False).hits
        return [searcher.doc(address)["id"][0] for _score, address in hits]


def _engine(name: str, directory: Path) -> _Engine:
    if name in OURS:
        return _Kbbot(directory, OURS[name])
    if name == "tantivy":
        return _Tantivy(directory)
    raise ValueError(f"unknown engine {name!r}")


class _Generated:
    """The generated pages, one at a time, counting the time spent making them up (``wall``, ``cpu``)."""

    def __init__(self, pages: Iterator[tuple[str, str, tuple[str, ...], str]]) -> None:
        self._pages = pages
        self.wall = self.cpu = 0.0

    def __iter__(self) -> Iterator[tuple[str, str, tuple[str, ...], str]]:
        return self

    def __next__(self) -> tuple[str, str, tuple[str, ...], str]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return next(self._pages)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


async def _measure(engine_name: str, pages: int, queries: int, directory: Path) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    known = known_item_queries(generate_pages(pages), 200)
    questions = generate_queries(queries)
    rss_before = peak_rss_mb()
    async with _engine(engine_name, directory) as engine:
        corpus = _Generated(generate_pages(pages))
        start, cpu_start = time.perf_counter(), time.process_time()
        optimize_seconds = await engine.build(corpus)
        # The build is the engine's work: making up the corpus (it stands for the wiki) is left out.
        build_seconds = time.perf_counter() - start - corpus.wall
        build_cpu_seconds = time.process_time() - cpu_start - corpus.cpu

        for question in questions[:20]:  # warm the page cache, as a running bot would be
            await engine.search(question, 5)
        timings, cpu_timings, found = [], [], 0
        for question in questions:
            t0, c0 = time.perf_counter(), time.process_time()
            ids = await engine.search(question, 5)
            timings.append((time.perf_counter() - t0) * 1000)
            cpu_timings.append((time.process_time() - c0) * 1000)
            found += bool(ids)

        reciprocal_ranks = []
        for question, page_id in known:
            ids = await engine.search(question, 10)
            reciprocal_ranks.append(1 / (ids.index(page_id) + 1) if page_id in ids else 0.0)

        answer_timings = []
        for question in questions[:100]:
            t0 = time.perf_counter()
            await engine.answer(question)
            answer_timings.append((time.perf_counter() - t0) * 1000)
    size_mb = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 1e6  # noqa: ASYNC240
    return {
        "engine": engine_name,
        "pages": pages,
        "queries": len(questions),
        "queries_with_results": found,
        "build_seconds": round(build_seconds, 2),
        "build_cpu_seconds": round(build_cpu_seconds, 2),
        "optimize_seconds": round(optimize_seconds, 2),
        "index_file_mb": round(size_mb, 1),
        "search_p50_ms": round(statistics.median(timings), 3),
        "search_p95_ms": round(_percentile(timings, 95), 3),
        "search_max_ms": round(max(timings), 3),
        # CPU time of every thread per search: what the search costs, whatever else the machine is doing.
        "search_cpu_p50_ms": round(statistics.median(cpu_timings), 3),
        "search_cpu_p95_ms": round(_percentile(cpu_timings, 95), 3),
        "known_item_queries": len(known),
        "recall_at_5": round(sum(rr >= 1 / 5 for rr in reciprocal_ranks) / max(1, len(known)), 3),
        "mrr_at_10": round(statistics.fmean(reciprocal_ranks) if reciprocal_ranks else 0.0, 3),
        "answer_p50_ms": round(statistics.median(answer_timings), 3),
        "answer_p95_ms": round(_percentile(answer_timings, 95), 3),
        "rss_before_build_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "load_average_1m": round(load_before, 2),
        "cpus": os.cpu_count(),
    }


def measure(engine: str, pages: int, queries: int = 400) -> dict[str, Any]:
    """Measure in this process (``run`` calls this in a fresh child per engine and size)."""
    with tempfile.TemporaryDirectory(prefix="kbbot-bench-") as tmp:
        return asyncio.run(_measure(engine, pages, queries, Path(tmp)))


def _child(engine: str, pages: int, queries: int) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_index",
            "--child",
            engine,
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
    return result


def available(engine: str) -> bool:
    """tantivy (the peer and kbbot's optional ranking) is an optional dependency: the ``bench`` extra, which
    ``make bench`` installs."""
    if engine != PEER and OURS.get(engine) != "tantivy":
        return True
    from kbbot.search.tantivy_ranking import available as tantivy_available

    return tantivy_available()


def run(sizes: tuple[int, ...] = SIZES, queries: int = 400, engines: tuple[str, ...] = ENGINES) -> dict[str, Any]:
    """Every engine at every size, each in a fresh child; per size and kbbot ranking, its ratios to the peer
    and whether it meets the goals."""
    results: dict[str, Any] = {"sizes": {}, "missing": [e for e in engines if not available(e)]}
    for pages in sizes:
        by_engine = {engine: _child(engine, pages, queries) for engine in engines if available(engine)}
        row: dict[str, Any] = {"engines": by_engine, "vs_peer": {}, "ok": {}}
        peer = by_engine.get(PEER)
        for name in OURS:
            ours = by_engine.get(name)
            if ours is None:
                continue
            ratios = {}
            if peer:
                ratios = {
                    f"{figure}_ratio": round(ours[key] / max(peer[key], 1e-3), 2)
                    for figure, key in (
                        ("p95", "search_p95_ms"),
                        ("cpu_p95", "search_cpu_p95_ms"),
                        ("build", "build_seconds"),
                        ("rss", "peak_rss_mb"),
                    )
                }
                row["vs_peer"][name] = ratios
            goal = GOAL_P95_MS.get(pages)
            checks = [ours["peak_rss_mb"] <= GOAL_RSS_MB]
            if goal is not None:
                checks.append(ours["search_p95_ms"] <= goal)
            if ratios:
                checks.append(ratios["p95_ratio"] <= GOAL_PEER_RATIO)
            if pages == 10_000:
                checks.append(ours["build_seconds"] <= GOAL_BUILD_10K_S)
            row["ok"][name] = all(checks)
        results["sizes"][str(pages)] = row
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", default=",".join(map(str, SIZES)), help="comma-separated corpus sizes")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = tuple(int(size) for size in args.pages.split(","))
    if args.child:
        print(json.dumps(measure(args.child, sizes[0], args.queries)))
        return 0
    result = run(sizes, args.queries, tuple(args.engines.split(",")))
    print(json.dumps(result, indent=2))
    return 0 if all(all(row["ok"].values()) for row in result["sizes"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
