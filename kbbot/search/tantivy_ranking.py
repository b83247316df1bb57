"""The optional tantivy ranking of an index's pages: ``SEARCH_ENGINE=tantivy`` (``pip install 'kbbot[tantivy]'``).

Why: FTS5's ``bm25()`` scores every page that holds any word of the question, one by one, so its search time
grows with the wiki: on the benchmark corpus it passes 5 ms at about 20,000 pages. tantivy (Rust, official
Python bindings) skips the blocks of pages that cannot reach the top (block-max WAND): a fraction of a
millisecond at 50,000 pages in ``make bench``.

What it holds: the ranking, and with each page what the title boost needs of a candidate (its title's words,
stemmed as :func:`~kbbot.search.query.word_stems` stems them, and whether it is a saved chat) and a hit's row
(id, title, URL, tags), so a search reads nothing from SQLite (the rows it returned took a fifth of its time
there: one random page read each). A candidate's title words and row are one stored value: the boost reads
it, and a hit's row is then already read (a stored document costs 1-3 µs to read). Page texts, the
bookkeeping, the vocabulary (page frequencies, typo correction) and excerpts stay in SQLite, so
:class:`~kbbot.search.index.SearchIndex` keeps its contract and every answer path is the same; a page's
SQLite rowid is its tantivy document's key. Text goes in already stemmed by kbbot's own Porter stemmer (the
one FTS5 and the query plan use) on a whitespace tokenizer, so both engines see the same words; without
positions (bm25 needs only word counts, and no query is a phrase).

It scores as FTS5's ``bm25()`` does, so the answers are the same whichever engine ranks (the answer-quality
benchmark runs on both): FTS5 adds a word's column weights into one term frequency per page (a title hit is
ten body hits, saturated together) with one idf over the pages that hold it in any column, where tantivy
scores each field apart (a title hit then counted ten full bm25 scores of the title's own, rarer, idf: on the
handbook set page@1 fell from 90.9 to 84.3 %). So a page is one field, its title written ten times and its
tags four times before the body; and each word's clause is boosted from tantivy's idf to FTS5's, which is
about zero for a word on more than half of the pages (:func:`fts5_idf`).

Every method runs under the index's lock, on its own thread like the SQL (a search planned from memory on the
caller's, see :mod:`kbbot.search.index`). tantivy allows one writer per index, so the writer
is taken for a batch of writes and given back at the commit: the bot and a `kbbot index sync` can take turns;
a process that finds it taken gets :class:`RankingBusy`. Readers look for other processes' commits when the
SQLite file changed (the writer clears a flag there after each commit).
"""

from __future__ import annotations

import ctypes
import logging
import math
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import msgpack

from kbbot.search.query import stem, word_stems
from kbbot.search.word_forms import compounds

#: How many times a page's title and tags are written before its body: FTS5's bm25 column weights (a word in
#: the title counts most, then tags, then the body), as term frequency.
TITLE_REPEATS, TAGS_REPEATS = 10, 4
#: The one text field.
TEXT = "text"
#: A word still being typed ("kube") stands for at most this many of the index's words that start with it (those
#: on the most pages).
MAX_PREFIX_TERMS = 8
#: The writer's memory budget (tantivy's minimum is 15 MB).
_WRITER_HEAP = 20_000_000
#: glibc's mallopt option for the most malloc arenas (M_ARENA_MAX), and the number kbbot allows; see
#: _limit_malloc_arenas.
_M_ARENA_MAX, _ARENAS = -8, 2
#: Words' query clauses (with a prefix's expansion) kept until the index changes, at most this many.
_MAX_CACHED_WORDS = 4096
#: Candidates' stored pages, decoded, kept until the index changes, at most this many (about 3 MB).
_MAX_CACHED_PAGES = 4096
# FTS5's unicode61 tokenizer: letters and digits; everything else (the underscore too) separates words.
_WORDS = re.compile(r"[^\W_]+")


log = logging.getLogger(__name__)


class Candidate(NamedTuple):
    """A ranked page: its SQLite rowid, its score, whether it is a saved chat, and where the ranking keeps it
    (tantivy's document address: :meth:`TantivyRanking.page` reads its row and title words from there)."""

    rowid: int
    score: float
    saved_chat: bool
    address: Any = None


class RankedPage(NamedTuple):
    """What the ranking is given of a page (as :data:`~kbbot.search.index` selects it from SQLite)."""

    rowid: int
    id: str
    title: str
    url: str | None
    tags: str  # the JSON array SQLite stores
    body: str
    saved_chat: bool


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
    folded = text.casefold()  # the words, then the hyphenated ones as one (as SQLite's index holds them)
    return " ".join(stem(word) for word in _WORDS.findall(folded) + compounds(folded))


def _text(title: str, tags: str, body: str) -> str:
    """A page's one field: its title's and tags' stems repeated as FTS5 weights those columns, then the body's."""
    return " ".join([_stems(title)] * TITLE_REPEATS + [_stems(tags)] * TAGS_REPEATS + [_stems(body)])


def fts5_idf(pages: int, total: int) -> float:
    """FTS5's bm25 idf of a word on ``pages`` of ``total`` pages: ln((N - n + 0.5) / (n + 0.5)), and 1e-6
    where that is not above 0 (a word on half of the pages or more says nothing about which one is asked for)."""
    odds = (total - pages + 0.5) / (pages + 0.5)
    return max(math.log(odds), 1e-6) if odds > 0 else 1e-6


def tantivy_idf(pages: int, total: int) -> float:
    """tantivy's (Lucene's) bm25 idf: ln(1 + (N - n + 0.5) / (n + 0.5)), always above 0."""
    return math.log(1 + (total - pages + 0.5) / (pages + 0.5))


class TantivyRanking:
    """The tantivy index in ``folder``: documents keyed by rowid, searched by stems."""

    def __init__(self, folder: Path) -> None:
        import tantivy

        _limit_malloc_arenas()  # before tantivy starts a thread
        self._t = tantivy
        folder.mkdir(parents=True, exist_ok=True)
        builder = tantivy.SchemaBuilder()
        # rowid and saved_chat are fast (columnar) fields: read for all candidates at once in 2 µs, where
        # reading 15 stored documents takes 15 µs (only the pages the boost needs are read from there). The
        # rowid is indexed (a write finds the page's document by it), not stored: a stored document of one
        # field is read a sixth faster.
        builder.add_integer_field("rowid", indexed=True, fast=True)
        builder.add_text_field(TEXT, stored=False, tokenizer_name="whitespace", index_option="freq")
        # msgpack [id, title, url, tags, title's stems] (a tenth of JSON's time)
        builder.add_bytes_field("page", stored=True)
        builder.add_boolean_field("saved_chat", fast=True)
        self._schema = builder.build()
        try:
            self._index = tantivy.Index(self._schema, path=str(folder), reuse=True)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            # Written by an older kbbot: the ranking is a cache of SQLite, so it is started over (and filled
            # from SQLite, since it now holds fewer pages than SQLite).
            log.info("the tantivy ranking in %s is from an older kbbot; rebuilding it", folder)
            shutil.rmtree(folder)
            folder.mkdir(parents=True)
            self._index = tantivy.Index(self._schema, path=str(folder), reuse=True)
        self._writer: Any = None
        self._searcher: Any = self._index.searcher()
        #: (stem, as a prefix too) → its query clauses, for the searcher in use.
        self._clauses: dict[tuple[str, bool], list[tuple[Any, Any]]] = {}
        #: rowid → its page (see page), for the searcher in use.
        self._pages: dict[int, tuple[tuple[Any, ...], list[str]]] = {}
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
        self._clauses, self._pages = {}, {}
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

    def put(self, pages: Iterable[RankedPage | tuple[Any, ...]]) -> None:
        """Add or replace the documents of these pages; seen by searches after :meth:`commit`."""
        writer = self._writing()
        for page in pages:
            rowid, page_id, title, url, tags, body, saved_chat = page
            self.pending += 1
            writer.delete_documents_by_term("rowid", rowid)
            writer.add_document(
                self._t.Document(
                    rowid=rowid,
                    text=_text(title, tags, body),
                    page=msgpack.packb([page_id, title, url, tags, word_stems(title)]),
                    saved_chat=bool(saved_chat),
                )
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

    def rank(self, words: list[tuple[str, bool]], limit: int) -> list[Candidate]:
        """The best ``limit`` pages for ``words``: (stem, also as a prefix) pairs, any of which may match (OR),
        scored as FTS5's bm25 scores them (see the module's docstring)."""
        searcher = self._searcher
        clauses = [clause for pair in dict.fromkeys(words) for clause in self._clauses_of(*pair)]
        if not clauses:
            return []
        # count=False: nothing needs the number of matching pages, and counting them all would visit every
        # one instead of skipping the blocks that cannot reach the top.
        hits = searcher.search(self._t.Query.boolean_query(clauses), limit, count=False).hits
        addresses = [address for _score, address in hits]
        rowids = searcher.fast_field_values("rowid", addresses)  # ints and bools: every segment has both
        saved = searcher.fast_field_values("saved_chat", addresses)
        scores = [score for score, _address in hits]
        # (_make takes each zipped tuple as is: cheaper than NamedTuple's __new__ and its arguments)
        return list(map(Candidate._make, zip(rowids, scores, saved, addresses, strict=True)))

    def page(self, candidate: Candidate) -> tuple[tuple[Any, ...], list[str]]:
        """A ranked page's row (id, title, url, tags as JSON, saved chat, as SQLite holds them) and the stemmed
        words of its title (:func:`~kbbot.search.query.word_stems`). Kept until the index changes: the same
        pages are candidates again and again, and reading and decoding one costs 1-3 µs, a tenth of a search's
        time at 1,000 pages."""
        found = self._pages.get(candidate.rowid)
        if found is None:
            if len(self._pages) >= _MAX_CACHED_PAGES:
                self._pages.clear()
            page_id, title, url, tags, title_words = msgpack.unpackb(
                self._searcher.doc(candidate.address).get_first("page")
            )
            found = self._pages[candidate.rowid] = (page_id, title, url, tags, candidate.saved_chat), title_words
        return found

    def _clauses_of(self, word: str, prefix: bool) -> list[tuple[Any, Any]]:
        """The query clause of ``word`` (and, as a ``prefix``, of the index's words that start with it), boosted
        from tantivy's idf to FTS5's (:func:`fts5_idf`); none when no page holds any. FTS5 matches a prefix as
        one word: one idf, of the pages that hold any of its words, and one score per page, here the best of its
        words' (their sum counted a page with "trip" and "tripdesk" twice, and put Travel above Expenses for
        "meals per day on a trip")."""
        key = (word, prefix)
        clauses = self._clauses.get(key)
        if clauses is None:
            t, searcher = self._t, self._searcher
            if len(self._clauses) >= _MAX_CACHED_WORDS:
                self._clauses.clear()
            total = int(searcher.num_docs)
            pages = {word: int(searcher.doc_freq(TEXT, word))}
            if prefix:
                pages.update(self._starting_with(word))
            terms = {term: t.Query.term_query(self._schema, TEXT, term) for term, n in pages.items() if n}
            if len(terms) > 1:  # the pages that hold any of them, each counted once
                any_of = t.Query.boolean_query([(t.Occur.Should, query) for query in terms.values()])
                idf = fts5_idf(int(searcher.search(any_of, 1, count=True).count), total)
            else:
                idf = fts5_idf(sum(pages.values()), total)
            queries = [
                t.Query.boost_query(query, idf / tantivy_idf(pages[term], total)) for term, query in terms.items()
            ]
            if len(queries) > 1:
                queries = [t.Query.disjunction_max_query(queries)]
            clauses = self._clauses[key] = [(t.Occur.Should, query) for query in queries]
        return clauses

    def _starting_with(self, prefix: str) -> dict[str, int]:
        """The index's other words that start with ``prefix`` and how many pages hold each, those on the most
        pages first."""
        found = {
            str(term): int(pages)
            for term, pages in self._searcher.terms_with_prefix(TEXT, prefix, limit=MAX_PREFIX_TERMS + 1)
            if term != prefix
        }
        return dict(sorted(found.items(), key=lambda item: -item[1])[:MAX_PREFIX_TERMS])
