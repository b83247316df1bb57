"""SQLite implementations of :class:`SavedThreadMap` and :class:`Outbox`, in one file under the data dir.

Both survive restarts; that is the point: a save queued while the wiki was down is retried by the next
process, and a re-save finds the page it made last week. SQLite in WAL mode lets the bot and a ``kbbot save``
CLI run share the file; the outbox lease (``claimed_until``) keeps them from sending one save twice at once.

sqlite3 is blocking, so every call runs in a worker thread (``asyncio.to_thread``) on one connection guarded
by a lock; the statements are tiny, so this never holds the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from kbbot.core.ports import OutboxItem
from kbbot.store.datadir import describe_failure
from kbbot.store.outbox_codec import dump_payload, load_item

__all__ = ["DEFAULT_FILENAME", "SqliteDatabase", "SqliteOutbox", "SqliteSavedThreadMap"]

DEFAULT_FILENAME = "threads.sqlite3"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS saved_threads (
    key TEXT PRIMARY KEY,
    page_ids TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    revision INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    claimed_until REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
"""


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when anything fails (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteDatabase:
    """One connection, serialized by a lock, used from worker threads (every SQLite store's way to stay off
    the event loop)."""

    def __init__(
        self, path: Path, schema: str = _SCHEMA, upgrade: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(schema)
        if upgrade is not None:  # a file an older version wrote: CREATE TABLE IF NOT EXISTS left it as it was
            upgrade(self._conn)
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"{self._path.name} is closed")
                return fn(self._conn)

        try:
            return await asyncio.to_thread(call)
        except sqlite3.DatabaseError as exc:
            # A full disk or a read-only folder: a clear error (the save is refused, not silently lost).
            problem = describe_failure(self._path.parent, exc)
            if problem is None:
                raise
            raise problem from exc

    async def close(self) -> None:
        def call() -> None:
            with self._lock:
                if not self._closed:
                    self._closed = True
                    self._conn.close()

        await asyncio.to_thread(call)


class SqliteSavedThreadMap:
    """Thread key → page ids. ``path`` is usually ``settings.kbbot_data_dir / DEFAULT_FILENAME``."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path)

    async def get(self, key: str) -> tuple[str, ...] | None:
        def fn(conn: sqlite3.Connection) -> tuple[str, ...] | None:
            row = conn.execute("SELECT page_ids FROM saved_threads WHERE key = ?", (key,)).fetchone()
            return tuple(json.loads(row[0])) if row else None

        return await self._db.run(fn)

    async def put(self, key: str, page_ids: Sequence[str]) -> None:
        ids = json.dumps([str(page_id) for page_id in page_ids])
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT INTO saved_threads (key, page_ids) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET page_ids = excluded.page_ids",
                (key, ids),
            )
        )

    async def delete(self, key: str) -> None:
        await self._db.run(lambda conn: conn.execute("DELETE FROM saved_threads WHERE key = ?", (key,)))

    async def aclose(self) -> None:
        await self._db.close()


class SqliteOutbox:
    """The durable outbox of saves (see :class:`kbbot.core.ports.Outbox`)."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, upgrade=_count_failures)

    async def add(self, item: OutboxItem, *, now: float) -> int:
        payload = dump_payload(item)

        def fn(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                row = conn.execute("SELECT revision FROM outbox WHERE key = ?", (item.key,)).fetchone()
                revision = (row[0] + 1) if row else 1
                conn.execute(
                    "INSERT INTO outbox (key, payload, revision, attempts, next_attempt_at) "
                    "VALUES (?, ?, ?, 0, ?) ON CONFLICT(key) DO UPDATE SET payload = excluded.payload, "
                    "revision = excluded.revision, next_attempt_at = excluded.next_attempt_at",
                    (item.key, payload, revision, now),
                )
            return revision

        return await self._db.run(fn)

    async def claim(self, key: str, *, now: float, lease_seconds: float) -> OutboxItem | None:
        def fn(conn: sqlite3.Connection) -> OutboxItem | None:
            with _transaction(conn):
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM outbox WHERE key = ? AND claimed_until <= ?",  # noqa: S608
                    (key, now),
                ).fetchone()
                if row is None:
                    return None
                conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, claimed_until = ? WHERE key = ?",
                    (now + lease_seconds, key),
                )
            item = _load(row)
            return _replace_attempts(item, item.attempts + 1)

        return await self._db.run(fn)

    async def release(
        self, key: str, *, next_attempt_at: float, error: str | None, failed: bool = False
    ) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                "UPDATE outbox SET claimed_until = 0, next_attempt_at = ?, last_error = ?, "
                "failures = failures + ? WHERE key = ?",
                (next_attempt_at, error, int(failed), key),
            )
        )

    async def remove(self, key: str, revision: int) -> bool:
        def fn(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM outbox WHERE key = ? AND revision = ?", (key, revision))
            return cursor.rowcount > 0

        return await self._db.run(fn)

    async def pending(self) -> list[OutboxItem]:
        def fn(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY next_attempt_at, key").fetchall()  # noqa: S608
            return [_load(row) for row in rows]

        return await self._db.run(fn)

    async def aclose(self) -> None:
        await self._db.close()


_COLUMNS = "key, payload, revision, attempts, failures, next_attempt_at, last_error"


def _count_failures(conn: sqlite3.Connection) -> None:
    """Files written before unexpected failures were counted apart have no ``failures`` column: add it (none
    so far for every waiting save). In a transaction, so two processes opening such a file add it once."""
    with _transaction(conn):
        columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
        if "failures" not in columns:
            conn.execute("ALTER TABLE outbox ADD COLUMN failures INTEGER NOT NULL DEFAULT 0")


def _load(row: tuple[Any, ...]) -> OutboxItem:
    key, payload, revision, attempts, failures, next_attempt_at, last_error = row
    return load_item(
        str(key), payload, revision=revision, attempts=attempts, failures=failures,
        next_attempt_at=next_attempt_at, last_error=last_error,
    )


def _replace_attempts(item: OutboxItem, attempts: int) -> OutboxItem:
    return replace(item, attempts=attempts)
