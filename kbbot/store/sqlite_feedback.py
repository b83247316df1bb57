"""Feedback votes in SQLite under KBBOT_DATA_DIR: survive restarts without any server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from kbbot.core.ports import FeedbackCounts

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
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = asyncio.Lock()

    async def record(
        self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = ""
    ) -> None:
        async with self._lock:
            await asyncio.to_thread(
                self._db.execute,
                "INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?)",
                (platform, question[:2000], user_id, int(helpful), time.time()),
            )

    async def counts(self) -> FeedbackCounts:
        async with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(helpful), 0), COUNT(*) FROM feedback").fetchone()
        return FeedbackCounts(helpful=int(row[0]), not_helpful=int(row[1]) - int(row[0]))

    async def aclose(self) -> None:
        self._db.close()
