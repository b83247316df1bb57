"""The outcome log (:class:`kbbot.core.outcomes.OutcomeLog`) in SQLite under the data folder.

One small row per question, no user id. The bot and a ``kbbot gaps`` run share the file (WAL mode); statements run
off the event loop through the stores' one :class:`~kbbot.store.sqlite_threads.SqliteDatabase`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kbbot.core.outcomes import Kind, Outcome, day_of
from kbbot.store.sqlite_threads import SqliteDatabase

DEFAULT_FILENAME = "outcomes.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    at REAL NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    knowledgebase TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT,
    question TEXT
);
CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes (at);
CREATE TABLE IF NOT EXISTS ai_calls (
    day TEXT PRIMARY KEY,
    calls INTEGER NOT NULL
);
"""

#: A question's text is kept up to this long: enough to recognise it, bounded against pasted logs.
MAX_QUESTION_CHARS = 500
_KINDS = frozenset(kind.value for kind in Kind)


class SqliteOutcomeLog:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)

    async def record(self, outcome: Outcome) -> None:
        question = outcome.question[:MAX_QUESTION_CHARS] if outcome.question is not None else None
        row = (outcome.at, outcome.platform, outcome.channel, outcome.knowledgebase, outcome.kind.value,
               outcome.source, question)
        await self._db.run(lambda db: db.execute("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?)", row))

    async def since(self, at: float) -> list[Outcome]:
        rows = await self._db.run(
            lambda db: db.execute("SELECT * FROM outcomes WHERE at >= ? ORDER BY at", (at,)).fetchall()
        )
        return [Outcome(r[0], r[1], r[2], r[3], Kind(r[4]), r[5], r[6]) for r in rows if r[4] in _KINDS]

    async def count_ai_call(self, day: str) -> None:
        await self._db.run(
            lambda db: db.execute(
                "INSERT INTO ai_calls VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET calls = calls + 1", (day,)
            )
        )

    async def ai_calls(self, since_day: str) -> dict[str, int]:
        rows = await self._db.run(
            lambda db: db.execute("SELECT day, calls FROM ai_calls WHERE day >= ?", (since_day,)).fetchall()
        )
        return {str(day): int(calls) for day, calls in rows}

    async def prune(self, before: float) -> int:
        def prune(db: sqlite3.Connection) -> int:
            gone = db.execute("DELETE FROM outcomes WHERE at < ?", (before,)).rowcount
            db.execute("DELETE FROM ai_calls WHERE day < ?", (day_of(before),))
            return int(gone)

        return await self._db.run(prune)

    async def aclose(self) -> None:
        await self._db.close()
