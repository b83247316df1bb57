"""The full-text index: one SQLite file with an FTS5 table over page title, tags and plain-text body.

Why SQLite FTS5: it ships with Python, ranks with ``bm25()``, cuts excerpts with ``snippet()``, and answers a
search over 10,000 pages in a few milliseconds from a file, with no server to run.

sqlite3 blocks, so every statement runs on one dedicated worker thread
(``ThreadPoolExecutor(max_workers=1)``): the event loop never waits on the disk. One exception: a tantivy search
whose question the index can read from memory (every word's page count known, nothing to commit; the ranking
holds the hits' rows) takes less than the hand-over to that thread and back, so when the thread is idle it runs
on the caller's (a lock keeps the connection to one user at a time). Writes are small transactions (a page, or
a small batch), so a search never queues behind a whole sync.

The index is a cache of the wiki: when its file is from an older schema or is corrupt, it is rebuilt empty and
the next sync fills it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from kbbot.errors import ConfigError, SearchIndexError
from kbbot.search.query import PARTICLES, QueryPlan, Term, TermCounter, plan_terms, word_stems
from kbbot.search.saved_chats import below_their_sources
from kbbot.search.spelling import Vocabulary, english_loaded, is_english, specificity
from kbbot.search.tantivy_ranking import Candidate, RankedPage, RankingBusy, TantivyRanking
from kbbot.search.tantivy_ranking import available as tantivy_available
from kbbot.search.word_forms import index_text, table_digest

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Who ranks the pages: SQLite FTS5's bm25 (built in, the default) or tantivy (optional, for big wikis).
ENGINES = ("sqlite", "tantivy")

#: 2: saved_chat. 3: no FTS5 prefix index (measured at 10,000 pages: writes 27 % faster, the file 20 % smaller,
#: search time and ranking the same; only the last word of a question is matched as a prefix). 4: the body is
#: the pages table's last column, so reading a hit's title, URL and tags no longer walks the body's overflow
#: pages (a search fetched its 15 candidates' rows in 0.16 ms at 10,000 pages; now a few µs). 5: FTS5 indexes
#: irregular word forms in their base form too ("kept" as keep), and "on-call" as "oncall" (kbbot.search.word_forms;
#: its table's digest is part of the version: another table, another index).
SCHEMA_VERSION = f"5.{table_digest()}"
#: The tantivy ranking commits at least every this many written pages (see _commit_ranking_sync). Each commit
#: makes a segment, and a search costs tantivy about as much per segment (at 10,000 pages 49 µs with one, 86 µs
#: with five); but writes not yet committed hold memory (at 50,000 pages, committing only at the end peaked
#: 45 MB higher than every 2,000 pages). 10,000 is about what tantivy's 20 MB writer heap holds before it makes
#: a segment anyway.
_RANKING_BATCH = 10_000
#: bm25 column weights: a word in the title counts most, then tags, then the body.
TITLE_WEIGHT, TAGS_WEIGHT, BODY_WEIGHT = 10.0, 4.0, 1.0
#: Snippet highlight markers (control characters never found in extracted text); see
#: :attr:`SearchHit.snippet`.
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"
#: Bodies longer than this are cut: the index is for finding pages, not for storing huge ones twice.
MAX_BODY_CHARS = 500_000
#: A page whose title holds every term of the question scores (1 + TITLE_BOOST) times its bm25 score.
TITLE_BOOST = 2.0
#: How many bm25-ranked pages are re-ranked by title match before the best ``limit`` are returned: at least
#: _CANDIDATES, else this many times ``limit``. With tantivy's ranking twice as many: on the benchmark corpus
#: at 10,000 pages known-item recall@5 / MRR 0.715 / 0.638 against 0.735 / 0.643 with three times, whose
#: search took 11 % longer (0.192 against 0.173 ms p95, nearer 3× the peer's); FTS5's needs three (recall@5
#: 0.735 against 0.73 with two).
_CANDIDATES = 10
_CANDIDATES_PER_HIT = {"sqlite": 3, "tantivy": 2}
#: FTS5's bm25 scores every page that holds any word of the question (about 0.6 µs a page on 2 cores) before
#: the best few are kept. A question whose words are on more pages than this in all ranks a smaller set first
#: (see SearchIndex._first_pass_sync), so a search stays around 2 ms however big the wiki grows; below it,
#: and so on any small wiki, the ranking is FTS5's exact one.
_EXACT_PAGES = 2000
#: Page counts of the index's words, and how the words it lacks are read, are kept in memory, up to this many
#: words each, until the index changes.
_MAX_CACHED_WORDS = 20_000

# Both f-strings interpolate module constants only; every value from outside is a bound parameter.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    tags TEXT NOT NULL,          -- JSON array; FTS5 tokenizes the words out of it
    url TEXT,
    slug TEXT,
    version INTEGER,
    updated_at TEXT,
    content_hash TEXT NOT NULL,
    last_fetched REAL NOT NULL,
    saved_chat INTEGER NOT NULL DEFAULT 0,  -- a thread kbbot saved (see kbbot.search.saved_chats)
    body TEXT NOT NULL           -- last: the columns after a long text are read by walking through it
);
CREATE VIRTUAL TABLE IF NOT EXISTS pages_fts USING fts5(
    title, tags, body,
    content='pages', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS pages_ai AFTER INSERT ON pages BEGIN
    INSERT INTO pages_fts(rowid, title, tags, body)
    VALUES (new.rowid, kbbot_index_text(new.title), kbbot_index_text(new.tags), kbbot_index_text(new.body));
END;
CREATE TRIGGER IF NOT EXISTS pages_ad AFTER DELETE ON pages BEGIN
    INSERT INTO pages_fts(pages_fts, rowid, title, tags, body)
    VALUES ('delete', old.rowid, kbbot_index_text(old.title), kbbot_index_text(old.tags), kbbot_index_text(old.body));
END;
CREATE TRIGGER IF NOT EXISTS pages_au AFTER UPDATE OF title, tags, body ON pages BEGIN
    INSERT INTO pages_fts(pages_fts, rowid, title, tags, body)
    VALUES ('delete', old.rowid, kbbot_index_text(old.title), kbbot_index_text(old.tags), kbbot_index_text(old.body));
    INSERT INTO pages_fts(rowid, title, tags, body)
    VALUES (new.rowid, kbbot_index_text(new.title), kbbot_index_text(new.tags), kbbot_index_text(new.body));
END;
-- The index's own words (porter stems) with how many pages hold each: page frequencies for relevance, the
-- dictionary for typo correction. A view over pages_fts: it costs nothing to build.
CREATE VIRTUAL TABLE IF NOT EXISTS pages_vocab USING fts5vocab(pages_fts, 'row');
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""  # noqa: S608

# Ranking and excerpts are two steps: snippet() in the ranking query would run for every matching row before
# the sort (thousands for a common word), so excerpts are cut afterwards, only for the rows returned.
_RANK = f"""
SELECT rowid, -bm25(pages_fts, {TITLE_WEIGHT}, {TAGS_WEIGHT}, {BODY_WEIGHT}) FROM pages_fts
WHERE pages_fts MATCH ? ORDER BY bm25(pages_fts, {TITLE_WEIGHT}, {TAGS_WEIGHT}, {BODY_WEIGHT}) LIMIT ?
"""  # noqa: S608
_ROWS = "SELECT rowid, id, title, url, tags, saved_chat FROM pages WHERE rowid IN ({marks})"
#: A hit's row: id, title, url, tags (JSON), saved_chat.
Row = tuple[Any, ...]
_SNIPPET = "SELECT snippet(pages_fts, 2, char(2), char(3), '…', ?) FROM pages_fts WHERE pages_fts MATCH ? AND rowid = ?"
#: What the tantivy ranking is given of each page (see RankedPage).
_RANKING_PAGES = "SELECT rowid, id, title, url, tags, body, saved_chat FROM pages"
#: set_urls updates this many pages per trip to the index thread (with tantivy each is written again).
_URL_BATCH = 500
_TERM_DOCS = "SELECT term, doc FROM pages_vocab WHERE term IN ({marks})"
_PREFIX_DOCS = "SELECT max(doc) FROM pages_vocab WHERE term >= ? AND term < ?"


def index_path(data_dir: Path, backend: str) -> Path:
    """Where the index of ``backend`` lives: one file per backend, so switching wikis never mixes their
    pages."""
    return data_dir / f"index-{backend}.sqlite3"


def content_hash(*parts: str) -> str:
    """A stable fingerprint of what was indexed, so an unchanged page is not rewritten into FTS5."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class IndexedPage:
    """A page as stored: ``text`` is plain text already extracted from the page's HTML or Markdown."""

    id: str
    title: str
    text: str
    tags: tuple[str, ...] = ()
    url: str | None = None
    slug: str | None = None
    version: int | None = None
    updated_at: str | None = None
    #: Fingerprint of the source content; computed from title, tags and text when empty.
    content_hash: str = ""
    #: A conversation kbbot saved as a page: it never ranks above the pages it quotes.
    saved_chat: bool = False


@dataclass(frozen=True, slots=True)
class PageState:
    """What sync needs to decide whether a listed page must be fetched again."""

    title: str
    tags: tuple[str, ...]
    url: str | None
    slug: str | None
    version: int | None
    updated_at: str | None
    content_hash: str
    last_fetched: float


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ranked page. ``score`` is the negated bm25 (higher is better); ``marked_snippet`` wraps matched
    terms in :data:`MARK_OPEN`/:data:`MARK_CLOSE` so each renderer can highlight them its own way."""

    id: str
    title: str
    url: str | None
    tags: tuple[str, ...]
    score: float
    #: Empty unless the search asked for excerpts (``snippets=True``): cutting one costs FTS5 a pass over the
    #: page, which only `kbbot index search` shows.
    marked_snippet: str = ""
    #: The page's stored plain text, for the first ``texts`` hits of a search (None for the others).
    text: str | None = None
    #: A thread kbbot saved (ranked just below the page it quotes, see :mod:`kbbot.search.saved_chats`).
    saved_chat: bool = False

    def page_text(self) -> PageText:
        """The hit as a :class:`PageText` (its ``text`` empty when the search did not load it)."""
        return PageText(id=self.id, title=self.title, url=self.url, text=self.text or "")

    @property
    def snippet(self) -> str:
        """The excerpt as plain text."""
        return self.marked_snippet.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")

    def to_json(self) -> dict[str, Any]:
        """The ``kbbot index search --json`` contract."""
        return {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Ranked pages and the question as the index read it (page frequencies, typo corrections)."""

    plan: QueryPlan
    hits: list[SearchHit]


@dataclass(frozen=True, slots=True)
class PageText:
    """A page's stored plain text, for quoting passages."""

    id: str
    title: str
    url: str | None
    text: str


def _clean(text: str) -> str:
    """Lone surrogates (from a JSON ``"\\ud800"``) cannot be stored as UTF-8: replace them, keep the rest."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class SearchIndex:
    """The FTS5 index of one knowledgebase. Open with ``async with SearchIndex(path) as index`` (or
    :meth:`open`/:meth:`aclose`). Every method is a coroutine that runs its SQL on the index's own thread."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        snippet_tokens: int = 24,
        engine: str = "sqlite",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown search engine {engine!r}")
        self.path = path
        self.engine = engine
        #: With ``engine="tantivy"`` the ranking is tantivy's (see kbbot.search.tantivy_ranking); else FTS5's.
        self._ranking: TantivyRanking | None = None
        self._ranking_seen: tuple[int, int] | None = None  # the _stats_key the ranking last looked at
        self._clock = clock
        self._snippet_tokens = max(1, min(64, snippet_tokens))
        self._executor: ThreadPoolExecutor | None = None
        #: Held while the connection or the ranking is in use: by the index thread, or by a cheap search on
        #: the caller's thread.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # Page count and vocabulary, cached until the index changes: by this connection (_writes) or by
        # another process (PRAGMA data_version).
        self._writes = 0
        self._stats_key: tuple[int, int] | None = None
        self._total_docs = 0
        self._vocab: Vocabulary | None = None
        #: (stem, as a prefix) → pages holding it: fts5vocab counts them by reading the word's page list,
        #: 80 µs for a word on 4,000 pages.
        self._word_docs: dict[tuple[str, bool], int] = {}
        #: A word no page holds → what it is searched as (a typo's correction, its parts, …: see _unknown_sync).
        self._unknown: dict[str, tuple[Term, ...]] = {}
        #: (word, the stem it joins, pages holding it) → its Term, made once (a frozen dataclass takes a
        #: microsecond to make, a tenth of a tantivy search's own Python).
        self._known: dict[tuple[str, str, int], Term] = {}
        self._unsettled = False  # changed by this connection since flush() last read the vocabulary

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> SearchIndex:
        """Create or open the index file. Raises :class:`SearchIndexError` when it cannot (a folder that is
        not writable, a full disk), naming the file."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbbot-index")
            try:
                await self._run(self._open_sync)
            except (SearchIndexError, ConfigError):
                await self.aclose()
                raise
            except OSError as exc:
                await self.aclose()
                raise SearchIndexError(
                    f"Cannot open the search index at {self.path} ({exc.strerror or exc}); "
                    "check that KBBOT_DATA_DIR is a writable folder."
                ) from None
        return self

    async def __aenter__(self) -> SearchIndex:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_sync)
        executor.shutdown(wait=False)

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("SearchIndex is not open (use `async with SearchIndex(path)`)")

        def locked() -> T:
            with self._lock:
                return fn()

        with self._errors():
            return await asyncio.get_running_loop().run_in_executor(self._executor, locked)

    def _run_here_if_cheap(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` on the caller's thread when the index thread is idle, unless ``fn`` finds it would read
        more than a few rows from the file (it raises :class:`_NotInMemory`); then None (:meth:`_run` it). A
        tantivy search the index can plan from memory takes a fraction of a millisecond, about what handing it
        to the index thread and back costs."""
        if self._executor is None or not self._lock.acquire(blocking=False):
            return None
        try:
            return fn()
        except _NotInMemory:
            return None
        except (RankingBusy, sqlite3.Error) as exc:  # as _errors says it (a contextmanager costs µs here)
            self._raise(exc)
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (RankingBusy, sqlite3.Error) as exc:
            self._raise(exc)

    def _raise(self, exc: RankingBusy | sqlite3.Error) -> NoReturn:
        if isinstance(exc, RankingBusy):
            raise SearchIndexError(
                f"The search index at {self.path} is being written by another kbbot process (SEARCH_ENGINE=tantivy "
                "takes one writer at a time); try again when it is done."
            ) from None
        # Disk full, a file broken while open, a lock held too long by another process: one clear error in
        # kbbot's tree instead of a sqlite3 traceback. The index is a cache, so deleting it is safe.
        raise SearchIndexError(
            f"The search index at {self.path} failed ({exc}); delete the file to rebuild it."
        ) from exc

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            # A cache is worth nothing if it cannot be opened: keep the broken file for inspection, start
            # over.
            broken = self.path.with_name(self.path.name + f".broken-{int(self._clock())}")
            log.warning("search index %s is unreadable (%s); rebuilding it empty", self.path, exc)
            self.path.replace(broken)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            self._conn = self._connect()
        if self.engine == "tantivy":
            self._open_ranking_sync()

    def _open_ranking_sync(self) -> None:
        if not tantivy_available():
            # A setting the installation cannot honour: exit 2 (fix the settings), like every other one.
            raise ConfigError(
                "SEARCH_ENGINE=tantivy needs the tantivy library: pip install 'kbbot[tantivy]' (or leave "
                "SEARCH_ENGINE unset for the built-in SQLite search)."
            )
        self._ranking = ranking = TantivyRanking(self.path.with_name(self.path.name + ".tantivy"))
        db = self._db
        pages = int(db.execute("SELECT count(*) FROM pages").fetchone()[0])
        dirty = db.execute("SELECT 1 FROM meta WHERE key = 'tantivy_dirty'").fetchone()
        if dirty or ranking.count() != pages:
            # A write that did not reach the ranking (a crash between the two), a rebuilt or new SQLite file:
            # the ranking is rebuilt from the pages, which SQLite holds, unless another process is writing
            # it right now (its writes are on their way: it commits them).
            log.info("rebuilding the tantivy ranking of %s from its %d pages", self.path, pages)
            try:
                ranking.clear()
                ranking.put(db.execute(_RANKING_PAGES))
            except RankingBusy:
                log.info("the tantivy ranking of %s is being written by another process; using it", self.path)
                return
            self._commit_ranking_sync()

    def _commit_ranking_sync(self, *, unless_fewer_than: int = 1) -> None:
        """Commit what the ranking was given since its last commit, then clear the flag that says it lags
        behind SQLite. A sync's writes are committed together: before the next search (which must see them),
        every ``_RANKING_BATCH`` pages, on flush, optimize and close."""
        ranking = self._ranking
        if ranking is not None and ranking.pending >= unless_fewer_than:
            ranking.commit()
            self._db.execute("DELETE FROM meta WHERE key = 'tantivy_dirty'")

    def _connect(self) -> sqlite3.Connection:
        # Used from the index thread, and by cheap searches from the caller's (see _run_here_if_cheap): one
        # at a time, under self._lock.
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        # The triggers feed FTS5 the pages' words as kbbot.search.query.stem sees them.
        conn.create_function("kbbot_index_text", 1, index_text, deterministic=True)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # the CLI can search while the bot syncs
            conn.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commit on power loss is fine
            version = self._schema_version(conn)
            if version not in (None, SCHEMA_VERSION):
                log.info("search index schema %s is outdated; rebuilding", version)
                conn.executescript(
                    "DROP TABLE IF EXISTS pages_vocab; DROP TABLE IF EXISTS pages_fts; DROP TABLE IF EXISTS pages;"
                    " DROP TABLE IF EXISTS meta;"
                )
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> str | None:
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return str(row[0]) if row else None

    def _close_sync(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._conn is not None:
            self._commit_ranking_sync()
        ranking, self._ranking = self._ranking, None
        if ranking is not None:
            ranking.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SearchIndex is closed")
        return self._conn

    # --- writes -------------------------------------------------------------------------------

    async def upsert(self, page: IndexedPage) -> bool:
        """Store ``page``; True when its content changed (or it is new)."""
        return await self.upsert_many([page]) == 1

    async def upsert_many(self, pages: Sequence[IndexedPage]) -> int:
        """Store ``pages`` in one transaction; returns how many were new or changed. Keep batches small
        (tens of pages) so searches are not held up behind a long write."""
        if not pages:
            return 0
        now = self._clock()
        return await self._run(lambda: self._upsert_sync(list(pages), now))

    def _upsert_sync(self, pages: list[IndexedPage], now: float) -> int:
        db = self._db
        changed = 0
        written: list[RankedPage] = []  # for the tantivy ranking
        if self._ranking is not None:
            self._ranking.hold()  # busy elsewhere: nothing is written, neither here nor there
        with _transaction(db):
            for page in pages:
                body = _clean(page.text[:MAX_BODY_CHARS])
                title = _clean(page.title)
                tags = json.dumps([_clean(tag) for tag in page.tags], ensure_ascii=False)
                fingerprint = page.content_hash or content_hash(title, tags, body)
                row = db.execute(
                    "SELECT content_hash, title, tags, url, rowid, saved_chat FROM pages WHERE id = ?", (page.id,)
                ).fetchone()
                meta = (page.url, page.slug, page.version, page.updated_at, now)
                if row is not None and tuple(row[:3]) == (fingerprint, title, tags):
                    # Same content: refresh the bookkeeping only, leave the FTS rows alone.
                    db.execute(
                        "UPDATE pages SET url=?, slug=?, version=?, updated_at=?, last_fetched=? WHERE id=?",
                        (*meta, page.id),
                    )
                    if row[3] != page.url and self._ranking is not None:  # the ranking holds hits' URLs too
                        written.append(RankedPage(row[4], page.id, title, page.url, tags, body, bool(row[5])))
                    continue
                changed += 1
                (rowid,) = db.execute(
                    """INSERT INTO pages(id, title, tags, body, content_hash, url, slug, version, updated_at,
                                         last_fetched, saved_chat)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(id) DO UPDATE SET title=excluded.title, tags=excluded.tags,
                       body=excluded.body,
                           content_hash=excluded.content_hash, url=excluded.url, slug=excluded.slug,
                           version=excluded.version, updated_at=excluded.updated_at,
                           last_fetched=excluded.last_fetched, saved_chat=excluded.saved_chat
                       RETURNING rowid""",
                    (page.id, title, tags, body, fingerprint, *meta, int(page.saved_chat)),
                ).fetchone()
                written.append(RankedPage(int(rowid), page.id, title, page.url, tags, body, page.saved_chat))
            if written and self._ranking is not None:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tantivy_dirty', '1')")
        if changed:
            self._changed_sync()
        if self._ranking is not None:
            self._ranking.put(written)
            self._commit_ranking_sync(unless_fewer_than=_RANKING_BATCH)
            self._ranking.release_if_idle()
        return changed

    async def set_urls(self, urls: dict[str, str | None]) -> None:
        """Update stored page URLs (the URL template changed) without re-fetching anything; with tantivy,
        which holds each hit's URL, those pages are given to it again (a few at a time, so searches are not
        held up)."""
        items = list(urls.items())
        for start in range(0, len(items), _URL_BATCH):
            batch = items[start : start + _URL_BATCH]
            await self._run(lambda batch=batch: self._set_urls_sync(batch))  # type: ignore[misc]

    def _set_urls_sync(self, urls: list[tuple[str, str | None]]) -> None:
        ranking = self._ranking
        if ranking is not None:
            ranking.hold()
        with _transaction(self._db) as db:
            db.executemany("UPDATE pages SET url = ? WHERE id = ?", [(url, pid) for pid, url in urls])
            if ranking is None:
                return
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tantivy_dirty', '1')")
            marks = ",".join("?" * len(urls))
            pages = db.execute(f"{_RANKING_PAGES} WHERE id IN ({marks})", [pid for pid, _ in urls]).fetchall()
        ranking.put(pages)
        self._commit_ranking_sync(unless_fewer_than=_RANKING_BATCH)
        ranking.release_if_idle()

    async def delete(self, ids: Iterable[str]) -> int:
        """Drop pages (deleted from the wiki); returns how many were in the index."""
        id_list = list(ids)
        if not id_list:
            return 0
        return await self._run(lambda: self._delete_sync(id_list))

    def _delete_sync(self, ids: list[str]) -> int:
        rowids: list[int] = []
        if self._ranking is not None:
            self._ranking.hold()
        with _transaction(self._db) as db:
            if self._ranking is not None:
                for pid in ids:
                    rowids.extend(int(r[0]) for r in db.execute("SELECT rowid FROM pages WHERE id = ?", (pid,)))
                if rowids:
                    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tantivy_dirty', '1')")
            # rowcount (sqlite3_changes) counts the pages rows only, not the FTS rows the trigger deletes.
            deleted = db.executemany("DELETE FROM pages WHERE id = ?", [(pid,) for pid in ids]).rowcount
        if deleted:
            self._changed_sync()
        if self._ranking is not None:
            self._ranking.delete(rowids)
            self._commit_ranking_sync(unless_fewer_than=_RANKING_BATCH)
            self._ranking.release_if_idle()
        return deleted

    def _changed_sync(self) -> None:
        """This connection changed the pages: the page counts and vocabulary in memory are out of date."""
        self._writes += 1
        self._unsettled = True

    async def flush(self) -> None:
        """Make every write searchable now ((tantivy) and give the writer back so another process can write),
        and when they changed the index, read its vocabulary again: every word's page count in memory, so no
        search reads them word by word (0.05 s at 10,000 pages, 0.35 s at 50,000). Sync calls it when it is
        done."""
        await self._run(self._settle_sync)

    def _settle_sync(self) -> None:
        self._commit_ranking_sync()
        if self._unsettled:
            self._unsettled = False
            self._stats_sync()
            self._vocabulary_sync()

    async def optimize(self) -> None:
        """Merge FTS5's b-trees after many changes so searches stay fast (and commit the tantivy ranking)."""

        def optimize() -> None:
            self._db.execute("INSERT INTO pages_fts(pages_fts) VALUES ('optimize')")
            self._settle_sync()

        await self._run(optimize)

    async def set_meta(self, key: str, value: str) -> None:
        await self._run(lambda: self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)))

    # --- reads --------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        def read() -> str | None:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return str(row[0]) if row else None

        return await self._run(read)

    async def count(self) -> int:
        return await self._run(lambda: int(self._db.execute("SELECT count(*) FROM pages").fetchone()[0]))

    async def states(self) -> dict[str, PageState]:
        """Every indexed page's bookkeeping, by id (a few hundred bytes a page: fine for 10,000s of pages)."""
        return await self._run(self._states_sync)

    def _states_sync(self) -> dict[str, PageState]:
        rows = self._db.execute(
            "SELECT id, title, tags, url, slug, version, updated_at, content_hash, last_fetched FROM pages"
        )
        return {
            row[0]: PageState(
                title=row[1],
                tags=_tags(row[2]),
                url=row[3],
                slug=row[4],
                version=row[5],
                updated_at=row[6],
                content_hash=row[7],
                last_fetched=row[8],
            )
            for row in rows
        }

    async def search(
        self, question: str, *, limit: int = 10, texts: int = 0, snippets: bool = False
    ) -> list[SearchHit]:
        """Pages ranked for ``question`` (any text: it is never parsed as FTS5 syntax). Empty when the
        question has no searchable words or nothing matches. ``texts``: load the stored text of the first
        that many hits (:attr:`SearchHit.text`) in the same trip to the index thread; ``snippets``: cut an
        excerpt for every hit."""
        return (await self.query(question, limit=limit, texts=texts, snippets=snippets)).hits

    async def query(
        self, question: str, *, limit: int = 10, texts: int = 0, snippets: bool = False
    ) -> SearchResult:
        """:meth:`search`, with the question as the index read it: each word's page frequency, and words the
        index has never seen corrected to its closest word ("vacaton" → vacation)."""
        terms = plan_terms(question)
        if not terms or limit <= 0:
            return SearchResult(QueryPlan((), 0), [])
        limit = min(limit, 100)
        texts = max(0, min(texts, limit))

        if self._ranking is not None and not texts and not snippets:  # reading page bodies is for the index thread
            result = self._run_here_if_cheap(lambda: self._query_sync(terms, limit, 0, False, in_memory=True))
            if result is not None:
                return result
        return await self._run(lambda: self._query_sync(terms, limit, texts, snippets))

    def _query_sync(
        self, terms: list[tuple[str, str, str]], limit: int, texts: int, snippets: bool, *, in_memory: bool = False
    ) -> SearchResult:
        """The search. ``in_memory``: raise :class:`_NotInMemory` rather than read the file to plan the question
        or commit the ranking (the search then goes to the index thread)."""
        if in_memory and (self._ranking is None or self._ranking.pending):
            raise _NotInMemory
        try:
            plan = self._plan_sync(terms, in_memory=in_memory)
        except sqlite3.Error as exc:
            log.warning("search failed in %s: %s", self.path, exc)
            return SearchResult(QueryPlan((), 0), [])
        hits = self._search_sync(plan, limit, texts, snippets) if any(t.docs for t in plan.terms) else []
        return SearchResult(plan, hits)

    def _stats_sync(self, *, in_memory: bool = False) -> None:
        """Drop the page counts and the vocabulary when the index changed since they were read: by this
        connection (_writes) or by another process (PRAGMA data_version)."""
        db = self._db
        key = (self._writes, int(db.execute("PRAGMA data_version").fetchone()[0]))
        if key != self._stats_key:
            if in_memory:
                raise _NotInMemory
            self._stats_key, self._vocab = key, None
            self._word_docs, self._unknown, self._known = {}, {}, {}
            self._total_docs = int(db.execute("SELECT count(*) FROM pages").fetchone()[0])

    def _plan_sync(self, terms: list[tuple[str, str, str]], *, in_memory: bool = False) -> QueryPlan:
        self._stats_sync(in_memory=in_memory)
        db, docs, vocabulary = self._db, self._word_docs, self._vocab
        if len(docs) > _MAX_CACHED_WORDS:
            docs.clear()
            self._known.clear()
        stems = [stem_ for stem_ in {stem_ for _, stem_, _ in terms} if (stem_, False) not in docs]
        if stems and vocabulary is None and self._ranking is not None and not in_memory:
            # With tantivy a search whose words' page counts are all known runs on the caller's thread (see
            # _run_here_if_cheap); one with a word not yet seen came here for them. Reading every count
            # once (the vocabulary) plans the questions after it from memory until the index changes: on the
            # benchmark corpus a sixth of questions had a new word, and each cost 2-4 times a search.
            vocabulary = self._vocabulary_sync()
        if stems and vocabulary is not None:  # loaded for a word the index lacked: it has every count
            docs.update(((stem_, False), vocabulary.docs(stem_)) for stem_ in stems)
        elif stems:
            if in_memory:
                raise _NotInMemory
            marks = ",".join("?" * len(stems))
            found = {str(term): int(n) for term, n in db.execute(_TERM_DOCS.format(marks=marks), stems)}
            docs.update(((stem_, False), found.get(stem_, 0)) for stem_ in stems)
        planned: list[Term] = []
        for n, (word, stem_, joins) in enumerate(terms):
            count = docs[stem_, False]
            if not count and n == len(terms) - 1 and len(word) >= 3:
                # The last word may be a start still being typed ("kube"): it is searched as a prefix.
                if (stem_, True) not in docs:
                    if vocabulary is not None:
                        docs[stem_, True] = vocabulary.prefix_docs(stem_)
                    elif in_memory:
                        raise _NotInMemory
                    else:
                        row = db.execute(_PREFIX_DOCS, (stem_, stem_ + "\U0010ffff")).fetchone()
                        docs[stem_, True] = int(row[0] or 0)
                count = docs[stem_, True]
            if count:
                known = self._known.get((word, joins, count))
                if known is None:
                    known = self._known[word, joins, count] = Term(word, stem_, count, joins=joins)
                planned.append(known)
            elif not joins:  # (a compound no page has is no word: "thevpn" of "the vpn")
                planned += self._unknown_sync(word, stem_, in_memory=in_memory)
        return QueryPlan(tuple(planned), self._total_docs)

    def _unknown_sync(self, word: str, stem_: str, *, in_memory: bool) -> tuple[Term, ...]:
        """What a word no page holds is searched as: the closest word the index has (a typo), the two words
        it runs together, another form of it, or itself (found nowhere). Kept until the index changes."""
        known = self._unknown.get(word)
        if known is not None:
            return known
        if in_memory and (self._vocab is None or not english_loaded()):
            raise _NotInMemory  # the vocabulary is read from the file, the English word lists from disk
        if len(self._unknown) > _MAX_CACHED_WORDS:
            self._unknown.clear()
        vocabulary = self._vocabulary_sync()
        planned: list[Term] = []
        # A verb and its particle run together ("handover" → hand over) are two indexed words exactly, which
        # explains the word better than a correction ("hand", two letters off) whether or not it is English.
        parts = vocabulary.split(word) if word.endswith(PARTICLES) else []
        corrected = vocabulary.correct(word) if not parts else None
        if corrected is not None:
            planned.append(Term(word, corrected, vocabulary.docs(corrected), corrected=True))
        else:
            english = is_english(word)
            # "helpdesk" → help desk; but an English word is itself ("passport" is no pass and port) unless
            # it is a verb and its particle ("handover" → hand over), as "hand over" is searched as "handover".
            parts = parts or vocabulary.split(word)
            if english and not (parts and word.endswith(PARTICLES)):
                parts = []
            planned += [Term(word, part, vocabulary.docs(part), corrected=True) for part in parts]
            form = vocabulary.other_form(word) if english and not parts else None
            if form is not None:
                planned.append(Term(word, form, vocabulary.docs(form), corrected=True))
            elif not parts:
                planned.append(Term(word, stem_, 0, english=english, specificity=specificity(word) if english else 0.0))
        self._unknown[word] = result = tuple(planned)
        return result

    def _vocabulary_sync(self) -> Vocabulary:
        if self._vocab is None:
            rows = self._db.execute("SELECT term, doc FROM pages_vocab")
            self._vocab = Vocabulary({str(term): int(n) for term, n in rows})
        return self._vocab

    def _tantivy_rank_sync(self, ranking: TantivyRanking, plan: QueryPlan, candidates: int) -> list[Candidate]:
        """The best ``candidates`` pages for ``plan`` by tantivy, with what the title boost needs."""
        self._commit_ranking_sync()
        if self._ranking_seen != self._stats_key:  # the file changed: maybe another process committed
            ranking.refresh()
            self._ranking_seen = self._stats_key
        return ranking.rank(_ranking_words(plan), candidates)

    def _rank_sync(self, plan: QueryPlan, limit: int, candidates: int) -> list[tuple[int, float]]:
        """(rowid, score) of the best ``candidates`` pages for ``plan`` by FTS5's bm25."""
        db = self._db
        selective = sorted((t for t in plan.terms if t.docs and t.docs * 2 <= plan.total_docs), key=_docs)
        if len(selective) > 1 and sum(t.docs for t in selective) > _EXACT_PAGES:
            first = self._first_pass_sync(plan, selective, candidates)
            if len(first) >= limit:
                return first
        cheap_match = _ranking_match(plan)
        ranked: list[tuple[int, float]] = db.execute(_RANK, (cheap_match, candidates)).fetchall() if cheap_match else []
        if len(ranked) < limit:
            # Fewer pages hold the rarer words than we return: the pages with only the common words are next
            # in line (with a score of ~0), so rank them all.
            ranked = db.execute(_RANK, (plan.match(), candidates)).fetchall()
        return ranked

    def _first_pass_sync(self, plan: QueryPlan, selective: list[Term], candidates: int) -> list[tuple[int, float]]:
        """A ranking that scores at most about :data:`_EXACT_PAGES` pages, for a question whose words are on
        many: first the pages that hold every one of its words (AND: FTS5 intersects the page lists without
        scoring the rest; their bm25 is the full ranking's), then, while there are fewer of those than
        ``candidates``, the best pages of its rarest words (``selective``, rarest first). A page that holds
        only some of the more common words is left out: on the benchmark corpus at 50,000 pages that keeps
        known-item recall@5 and MRR as they were (a little better: the pages with every word come first),
        at a third of the time."""
        db = self._db
        required = [t for t in selective if not t.compound]  # "setup" stands for "set up": not both needed
        ranked: list[tuple[int, float]] = []
        if len(required) > 1:
            every = " AND ".join(filter(None, (_match_of(plan, [t]) for t in required)))
            ranked = db.execute(_RANK, (every, candidates)).fetchall()
        if len(ranked) < candidates:
            rarest: list[Term] = []
            pages = 0
            for term in selective:
                if rarest and pages + term.docs > _EXACT_PAGES:
                    break
                rarest.append(term)
                pages += term.docs
            seen = {rowid for rowid, _ in ranked}
            more = db.execute(_RANK, (_match_of(plan, rarest), candidates)).fetchall()
            ranked += [row for row in more if row[0] not in seen]
        return ranked

    def _search_sync(self, plan: QueryPlan, limit: int, texts: int, snippets: bool) -> list[SearchHit]:
        db = self._db
        candidates = max(limit * _CANDIDATES_PER_HIT[self.engine], _CANDIDATES)
        try:
            ranked, title_words, row_of = self._candidates_sync(plan, limit, candidates)
            if not ranked:
                return []
            chats = any(c.saved_chat for c in ranked)  # a saved chat's place depends on every candidate's title
            boosted = _title_boosted(ranked, title_words, plan.stems, limit, every=chats)
            if chats:
                scored = [(score, c.rowid, row_of(c)) for score, c in boosted]
                scored = below_their_sources(scored, self._bodies([r for _, r, row in scored if row[4]]))
            else:
                scored = [(score, c.rowid, row_of(c)) for score, c in boosted[:limit]]
            best = scored[:limit]
            bodies: dict[int, str] = {}
            if texts:
                wanted = [rowid for _, rowid, _ in best[:texts]]
                bodies = self._bodies(wanted)
            hits = []
            for score, rowid, (page_id, title, url, tags, saved_chat) in best:
                snippet = None
                if snippets:
                    snippet = db.execute(_SNIPPET, (self._snippet_tokens, plan.match(), rowid)).fetchone()
                hits.append(
                    SearchHit(
                        id=page_id,
                        title=title,
                        url=url,
                        tags=_tags(tags),
                        score=score,
                        marked_snippet=(snippet[0] if snippet else "") or "",
                        text=bodies.get(rowid),
                        saved_chat=bool(saved_chat),
                    )
                )
        except sqlite3.Error as exc:
            # A search must not take the answer pipeline down (it is the fallback when the AI is gone):
            # log it and find nothing. build_match only emits quoted terms, so this is a broken file, not
            # a query.
            log.warning("search failed in %s: %s", self.path, exc)
            return []
        return hits

    def _candidates_sync(
        self, plan: QueryPlan, limit: int, candidates: int
    ) -> tuple[list[Candidate], Callable[[Candidate], Sequence[str]], Callable[[Candidate], Row]]:
        """The ranked candidates, where the title boost reads each one's title words, and where its row is.
        tantivy holds both (a page another process deleted is found until that process commits its ranking,
        at its next search or the end of its sync); with FTS5 every candidate's row is read from SQLite."""
        ranking = self._ranking
        if ranking is not None:  # it reads each candidate's stored page once (and keeps it, see page)
            page = ranking.page
            return self._tantivy_rank_sync(ranking, plan, candidates), lambda c: page(c)[1], lambda c: page(c)[0]
        ranked = self._rank_sync(plan, limit, candidates)
        rows = self._rows_sync([int(rowid) for rowid, _ in ranked])
        found = [
            Candidate(rowid, float(score), bool(rows[rowid][4]))
            for rowid, score in ranked
            if rowid in rows  # FTS rows follow the pages table in one transaction: always there
        ]
        return found, lambda c: word_stems(rows[c.rowid][1]), lambda c: rows[c.rowid]

    def _rows_sync(self, rowids: list[int]) -> dict[int, Row]:
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        return {r[0]: r[1:] for r in self._db.execute(_ROWS.format(marks=marks), rowids)}

    def _bodies(self, rowids: list[int]) -> dict[int, str]:
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        sql = f"SELECT rowid, body FROM pages WHERE rowid IN ({marks})"  # noqa: S608 - only "?"s
        return {int(r[0]): str(r[1]) for r in self._db.execute(sql, rowids)}

    async def texts(self, ids: Sequence[str]) -> list[PageText]:
        """The stored plain text of ``ids``, in the given order (missing ids are skipped)."""
        id_list = list(ids)
        if not id_list:
            return []
        return await self._run(lambda: self._texts_sync(id_list))

    def _texts_sync(self, ids: list[str]) -> list[PageText]:
        marks = ",".join("?" * len(ids))
        sql = f"SELECT id, title, url, body FROM pages WHERE id IN ({marks})"  # noqa: S608 - only "?"s
        by_id = {r[0]: PageText(id=r[0], title=r[1], url=r[2], text=r[3]) for r in self._db.execute(sql, ids)}
        return [by_id[pid] for pid in ids if pid in by_id]


def _ranking_words(plan: QueryPlan) -> list[tuple[str, bool]]:
    """The plan's words for the tantivy ranking: (stem, also as a prefix), as :meth:`QueryPlan.match` puts
    them to FTS5 — every word the index holds, the last one typed also as the start of a longer word."""
    last = len(plan.terms) - 1
    return [
        (term.stem, n == last and not term.corrected and len(term.word) >= 3)
        for n, term in enumerate(plan.terms)
        if term.docs
    ]


def _title_boosted(
    ranked: list[Candidate],
    title_words: Callable[[Candidate], Sequence[str]],
    stemmed: set[str],
    limit: int,
    *,
    every: bool,
) -> list[tuple[float, Candidate]]:
    """(score, candidate) best first, each score grown by the share of the question's terms in the page's title:
    FTS5's bm25 counts a title hit as a few body hits, and a body that mentions a word often saturates to nearly
    the same score, but a page whose title says what was asked is what people want.

    A boost is at most 1 + TITLE_BOOST, so once a page's score times that cannot reach the ``limit``-th boosted
    score, no page after it can: their titles are not read, unless ``every`` title must be (a saved chat is
    among the candidates: its place depends on every page, see :func:`below_their_sources`)."""
    matched = TermCounter(stemmed).matched
    terms = max(1, len(stemmed))
    # The boost of a title that holds 0, 1, … of the terms, worked out once per search (the same floats).
    boosts = [1.0 + TITLE_BOOST * found / terms for found in range(len(stemmed) + 1)]
    most = 1 + TITLE_BOOST
    best: list[float] = []  # a heap of the ``limit`` best boosted scores so far
    scored = []
    for candidate in sorted(ranked, key=_SCORE, reverse=True):  # a stable sort: ties keep the ranking's order
        score = candidate.score
        full = len(best) == limit
        if full and not every and max(score, score * most) < best[0]:
            break
        boosted = score * boosts[matched(title_words(candidate))]
        scored.append((boosted, candidate))
        if full:
            heapq.heappushpop(best, boosted)
        else:
            heapq.heappush(best, boosted)
    scored.sort(key=_BOOSTED, reverse=True)
    return scored


#: Sort keys (C-level: a Python key function cost a µs per search).
_SCORE, _BOOSTED = attrgetter("score"), itemgetter(0)


def _docs(term: Term) -> int:
    return term.docs


def _match_of(plan: QueryPlan, terms: Sequence[Term]) -> str | None:
    """The plan's MATCH expression (:meth:`QueryPlan.match`) for ``terms`` only: each keeps its place, so the
    last word keeps its prefix star."""
    words = {t.word for t in terms}
    return QueryPlan(tuple(t if t.word in words else replace(t, docs=0) for t in plan.terms), plan.total_docs).match()


def _ranking_match(plan: QueryPlan) -> str | None:
    """A cheaper MATCH expression that ranks the top pages the same, or None: the plan's, less the words on
    more than half of the pages, when rarer words remain. FTS5's bm25 gives such a word an idf of 1e-6 (its
    formula goes negative and is clamped), so it cannot change the order of pages that hold a rarer word,
    yet ranking scores every page that holds it: for a word on every page of a 50,000-page wiki that is most
    of the search's time. The word still counts for the title boost and for passages."""
    common = {t.stem for t in plan.terms if t.docs * 2 > plan.total_docs}
    if not common or not any(t.docs and t.stem not in common for t in plan.terms):
        return None
    return _match_of(plan, [t for t in plan.terms if t.stem not in common])


class _NotInMemory(Exception):
    """A search on the caller's thread would read the file or commit the ranking (see _run_here_if_cheap)."""


class _transaction:
    """BEGIN IMMEDIATE … COMMIT/ROLLBACK on an autocommit connection (``isolation_level=None``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


@lru_cache(maxsize=4096)  # a few distinct tag lists serve a whole wiki; the tuple is immutable
def _tags(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return ()
    return tuple(map(str, value)) if isinstance(value, list) else ()
