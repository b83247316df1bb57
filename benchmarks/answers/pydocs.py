"""The real-corpus evaluation: the Python standard library reference from Debian's python3-doc package (HTML
nobody here wrote), converted at benchmark time through kbbot's HTML extraction (the Perfect Wiki path),
indexed, and asked ``pydocs.yaml`` — next to a plain BM25 peer (bm25s, Snowball stemming, English stopwords)
ranking the same pages for the same questions, so page@3 is compared in one run.

Without the package the benchmark is skipped with a message (``apt-get install python3-doc``); without bm25s
(``pip install 'kbbot[bench]'``) the peer is skipped. ``--engine tantivy`` ranks with ``SEARCH_ENGINE=tantivy``'s
ranking instead of SQLite's (the default).

    python -m benchmarks.answers.pydocs [-v] [--engine sqlite|tantivy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from benchmarks.answers.scoring import Case, Outcome, evaluate, figures, load, page_at
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.extract import html_to_text
from kbbot.search.index import ENGINES, IndexedPage, SearchIndex

EVAL_SET = Path(__file__).resolve().parent / "pydocs.yaml"
#: Debian's python3-doc links its HTML here (python3-doc → python3.X-doc).
DOC_DIRS = (Path("/usr/share/doc/python3-doc/html/library"),)
INSTALL_HINT = "apt-get install python3-doc"


def corpus_dir() -> Path | None:
    candidates = [*DOC_DIRS, *sorted(Path("/usr/share/doc").glob("python3.*-doc/html/library"), reverse=True)]
    return next((d for d in candidates if d.is_dir() and any(d.glob("*.html"))), None)


def convert(directory: Path) -> list[IndexedPage]:
    """Each reference page as the index stores it: the Sphinx page's main part through html_to_text, its
    title without the " — Python 3.x documentation" suffix, the file name as id."""
    pages = []
    for path in sorted(directory.glob("*.html")):
        tree = LexborHTMLParser(path.read_text(encoding="utf-8", errors="replace"))
        title_node = tree.css_first("title")
        title = title_node.text().split(" — Python ")[0].strip() if title_node else path.stem
        body = tree.css_first("div[role=main]") or tree.css_first("div.body") or tree.body
        if body is None:
            continue
        for anchor in body.css("a.headerlink"):  # the ¶ after every heading
            anchor.decompose()
        text = html_to_text(body.html or "")
        if text:
            pages.append(IndexedPage(id=path.stem, title=title, text=text))
    return pages


def bm25_rankings(pages: list[IndexedPage], cases: list[Case], k: int = 3) -> list[list[str]] | None:
    """The peer: plain BM25 over title + text of the same pages, or None when bm25s is not installed."""
    try:
        import bm25s
        import Stemmer
    except ImportError:
        return None
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([f"{p.title}\n{p.text}" for p in pages], stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    tokens = bm25s.tokenize([c.question for c in cases], stopwords="en", stemmer=stemmer, show_progress=False)
    results, _ = retriever.retrieve(tokens, k=k, show_progress=False)
    return [[pages[int(i)].id for i in row] for row in results]


async def outcomes(
    directory: Path, pages: list[IndexedPage], cases: list[Case], engine: str = "sqlite"
) -> list[Outcome]:
    async with SearchIndex(directory / "index.sqlite3", engine=engine) as index:
        for start in range(0, len(pages), 50):
            await index.upsert_many(pages[start : start + 50])
        return await evaluate(cases, SearchAnswerer(index))


@dataclass(frozen=True, slots=True)
class Corpus:
    """The converted reference, its questions and the peer's figures: the same for every engine, so `make
    bench` makes them once."""

    directory: Path
    pages: list[IndexedPage]
    cases: list[Case]
    convert_seconds: float
    peer: dict[str, Any]


def prepare() -> Corpus | None:
    """The corpus, or None when python3-doc is not installed."""
    directory = corpus_dir()
    if directory is None:
        return None
    started = time.perf_counter()
    pages = convert(directory)
    convert_seconds = time.perf_counter() - started
    cases = load(EVAL_SET)
    rankings = bm25_rankings(pages, cases)
    if rankings is None:
        peer: dict[str, Any] = {"skipped": "bm25s is not installed (pip install 'kbbot[bench]')"}
    else:
        peer = {"page_at_1_pct": page_at(cases, rankings, 1), "page_at_3_pct": page_at(cases, rankings, 3)}
    return Corpus(directory, pages, cases, convert_seconds, peer)


def run(engine: str = "sqlite", corpus: Corpus | None = None) -> dict[str, Any]:
    """The figures with ``engine`` ranking, next to the peer's; ``corpus`` from :func:`prepare` (else made here)."""
    corpus = corpus or prepare()
    if corpus is None:
        return {"skipped": f"no Python library reference under /usr/share/doc ({INSTALL_HINT})"}
    with tempfile.TemporaryDirectory(prefix="kbbot-pydocs-") as tmp:
        results = asyncio.run(outcomes(Path(tmp), corpus.pages, corpus.cases, engine))
    result: dict[str, Any] = {
        "corpus": str(corpus.directory),
        "pages": len(corpus.pages),
        "convert_seconds": round(corpus.convert_seconds, 1),
    }
    result.update(figures(results))
    result["bm25"] = dict(corpus.peer)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    parser.add_argument("--engine", choices=ENGINES, default="sqlite", help="who ranks (SEARCH_ENGINE)")
    args = parser.parse_args(argv)
    result = run(args.engine)
    misses = result.pop("misses", [])
    print(json.dumps(result, indent=2))
    if args.verbose:
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
