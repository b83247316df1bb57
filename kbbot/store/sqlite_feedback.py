"""Feedback votes in SQLite under KBBOT_DATA_DIR: survive restarts without any server; every statement runs in
a worker thread (the count over all votes too), never on the event loop."""

from __future__ import annotations

import time
from pathlib import Path

from kbbot.core.ports import FeedbackCounts
from kbbot.store.sqlite_threads import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    platform TEXT NOT NULL,
    question TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    helpful  INTEGER NOT NULL,
    at       REAL NOT NULL,
    PRIMARY KEY (platform, question, user_id)
)
"""


class SqliteFeedbackStore:
    """One vote per (platform, question, user); voting again replaces the earlier vote."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)

    async def record(
        self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = ""
    ) -> None:
        vote = (platform, question[:2000], user_id, int(helpful), time.time())
        await self._db.run(lambda conn: conn.execute("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?)", vote))

    async def counts(self) -> FeedbackCounts:
        query = "SELECT COALESCE(SUM(helpful), 0), COUNT(*) FROM feedback"
        helpful, total = await self._db.run(lambda conn: conn.execute(query).fetchone())
        return FeedbackCounts(helpful=int(helpful), not_helpful=int(total) - int(helpful))

    async def aclose(self) -> None:
        await self._db.close()
