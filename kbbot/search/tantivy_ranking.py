"""The optional tantivy ranking of an index's pages: ``SEARCH_ENGINE=tantivy`` (``pip install 'kbbot[tantivy]'``).

Why: FTS5's ``bm25()`` scores every page that holds any word of the question, one by one, so its search time
grows with the wiki: on the benchmark corpus it passes 5 ms at about 20,000 pages. tantivy (Rust, official
Python bindings) skips the blocks of pages that cannot reach the top (block-max WAND): a fraction of a
millisecond at 50,000 pages in ``make bench``.

What it holds: the ranking only. Pages, their text, the bookkeeping, the vocabulary (page frequencies, typo
correction) and excerpts stay in SQLite, so :class:`~kbbot.search.index.SearchIndex` keeps its contract and
every answer path is the same; a page's SQLite rowid is its tantivy document's key. Text goes in already
stemmed by kbbot's own Porter stemmer (the one FTS5 and the query plan use) on a whitespace tokenizer, so
both engines see the same words.

Every method runs on the index's own thread, like the SQL. tantivy allows one writer per index, so the writer
is taken for a batch of writes and given back at the commit: the bot and a `kbbot index sync` can take turns;
a process that finds it taken gets :class:`RankingBusy`. Readers look for other processes' commits when the
SQLite file changed (the writer clears a flag there after each commit).
"""

from __future__ import annotations

import ctypes
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kbbot.search.query import stem

#: Field weights, as FTS5's bm25 column weights: a word in the title counts most, then tags, then the body.
FIELDS = (("title", 10.0), ("tags", 4.0), ("body", 1.0))
#: A word still being typed ("kube") stands for at most this many of the index's words that start with it (those
#: on the most pages).
MAX_PREFIX_TERMS = 8
#: The writer's memory budget (tantivy's minimum is 15 MB).
_WRITER_HEAP = 20_000_000
#: glibc's mallopt option for the most malloc arenas (M_ARENA_MAX), and the number kbbot allows; see
#: _limit_malloc_arenas.
_M_ARENA_MAX, _ARENAS = -8, 2
# FTS5's unicode61 tokenizer: letters and digits; everything else (the underscore too) separates words.
_WORDS = re.compile(r"[^\W_]+")


class RankingBusy(RuntimeError):
    """Another process holds the tantivy index's writer lock."""


def available() -> bool:
    try:
        import tantivy  # noqa: F401
    except ImportError:
        return False
    return True


def _limit_malloc_arenas() -> None:
    """At most :data:`_ARENAS` glibc malloc arenas for the threads started from now on. tantivy indexes and
    merges on threads of its own, and glibc gives each new thread its own arena (up to 8 per core), which keeps
    the memory a finished writer freed: in ``make bench`` at 50,000 pages the process peaked at 214 MB with the
    default and at 117 MB with two arenas (searches the same). Elsewhere than glibc this does nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _ARENAS)  # the C library the interpreter runs on
    except (OSError, AttributeError):  # musl and friends: no mallopt, and no per-thread arenas to limit
        return


def _stems(text: str) -> str:
    return " ".join(stem(word) for word in _WORDS.findall(text.casefold()))


class TantivyRanking:
    """The tantivy index in ``folder``: documents keyed by rowid, searched by stems."""

    def __init__(self, folder: Path) -> None:
        import tantivy

        _limit_malloc_arenas()  # before tantivy starts a thread
        self._t = tantivy
        folder.mkdir(parents=True, exist_ok=True)
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("rowid", stored=True, indexed=True)
        for name, _weight in FIELDS:
            builder.add_text_field(name, stored=False, tokenizer_name="whitespace")
        self._schema = builder.build()
        self._index = tantivy.Index(self._schema, path=str(folder), reuse=True)
        self._writer: Any = None
        self._searcher: Any = self._index.searcher()
        #: Documents added or deleted since the last commit (searches see them only after it).
        self.pending = 0

    def count(self) -> int:
        return int(self._fresh_searcher().num_docs)

    def refresh(self) -> None:
        """Search what was last committed, by this process or another (call it when the index changed)."""
        self._fresh_searcher()

    def _fresh_searcher(self) -> Any:
        self._index.reload()
        self._searcher = self._index.searcher()
        return self._searcher

    def hold(self) -> None:
        """Take the writer now (before the SQLite write it follows), or raise :class:`RankingBusy`."""
        self._writing()

    def _writing(self) -> Any:
        if self._writer is None:
            try:
                self._writer = self._index.writer(heap_size=_WRITER_HEAP, num_threads=1)
            except ValueError as exc:
                if "LockBusy" in str(exc):
                    raise RankingBusy(str(exc)) from None
                raise
        return self._writer

    def put(self, rows: Iterable[tuple[int, str, str, str]]) -> None:
        """Add or replace the documents of (rowid, title, tags, body) rows; seen by searches after
        :meth:`commit`."""
        writer = self._writing()
        for rowid, title, tags, body in rows:
            self.pending += 1
            writer.delete_documents_by_term("rowid", rowid)
            writer.add_document(
                self._t.Document(rowid=rowid, title=_stems(title), tags=_stems(tags), body=_stems(body))
            )

    def delete(self, rowids: Iterable[int]) -> None:
        writer = self._writing()
        for rowid in rowids:
            self.pending += 1
            writer.delete_documents_by_term("rowid", rowid)

    def clear(self) -> None:
        self.pending += 1
        self._writing().delete_all_documents()

    def commit(self) -> None:
        """Make the writes so far searchable, and give the writer back (merges finished)."""
        writer, self._writer = self._writer, None
        self.pending = 0
        if writer is not None:
            writer.commit()
            writer.wait_merging_threads()
        self._fresh_searcher()

    def release_if_idle(self) -> None:
        """Give the writer back when nothing was written with it."""
        if self._writer is not None and not self.pending:
            writer, self._writer = self._writer, None
            writer.rollback()
            writer.wait_merging_threads()

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:  # uncommitted writes: SQLite's flag has the ranking rebuilt at the next open
            writer.rollback()
            writer.wait_merging_threads()

    def rank(self, words: list[tuple[str, bool]], limit: int) -> list[tuple[int, float]]:
        """(rowid, score) of the best ``limit`` pages for ``words``: (stem, also as a prefix) pairs, any of
        which may match (OR), each weighted by field like FTS5's columns."""
        t, searcher = self._t, self._searcher
        stems: list[str] = []
        for word, prefix in words:
            stems.append(word)
            if prefix:
                stems.extend(self._starting_with(word))
        clauses = [
            (t.Occur.Should, t.Query.boost_query(t.Query.term_query(self._schema, name, word), weight))
            for word in dict.fromkeys(stems)
            for name, weight in FIELDS
        ]
        if not clauses:
            return []
        hits = searcher.search(t.Query.boolean_query(clauses), limit).hits
        return [(int(searcher.doc(address)["rowid"][0]), float(score)) for score, address in hits]

    def _starting_with(self, prefix: str) -> list[str]:
        """The index's words that start with ``prefix``, those on the most pages first."""
        found: dict[str, int] = {}
        for name, _weight in FIELDS:
            for term, pages in self._searcher.terms_with_prefix(name, prefix, limit=MAX_PREFIX_TERMS):
                found[str(term)] = found.get(str(term), 0) + int(pages)
        found.pop(prefix, None)
        return sorted(found, key=lambda term: -found[term])[:MAX_PREFIX_TERMS]
