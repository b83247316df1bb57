"""Where kbbot remembers the threads it answered in (:class:`~kbbot.core.ports.ConversationStore`): SQLite under
KBBOT_DATA_DIR (survives restarts), or Redis under the knowledgebase's key prefix (every replica sees the same
threads). Entries expire ``ttl_seconds`` after they were last written."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kbbot.core.ports import Conversation
from kbbot.store.sqlite_threads import SqliteDatabase

if TYPE_CHECKING:
    from redis.asyncio import Redis

FILENAME = "conversations.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    key      TEXT PRIMARY KEY,
    value    TEXT NOT NULL,
    expires  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_expires ON conversations (expires);
"""
#: Answer messages are kept in the same table, under this prefix (message keys never start with it).
_LINK = "link\x00"


def _dump(conversation: Conversation) -> str:
    return json.dumps(
        {
            "q": list(conversation.questions), "help": conversation.needs_help, "stop": conversation.stopped,
            "offered": conversation.save_offered,
        },
        ensure_ascii=False,
    )


def _load(raw: str | bytes | None) -> Conversation | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        questions = tuple(str(q) for q in data.get("q", ()))
        return Conversation(
            questions=questions, needs_help=bool(data.get("help")), stopped=bool(data.get("stop")),
            save_offered=bool(data.get("offered")),
        )
    except (ValueError, TypeError, AttributeError):
        return None  # a damaged entry is a thread kbbot does not know, not a crash


class SqliteConversations:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)

    async def _read(self, key: str) -> str | None:
        now = time.time()

        def read(conn: sqlite3.Connection) -> str | None:
            query = "SELECT value FROM conversations WHERE key = ? AND expires > ?"
            row = conn.execute(query, (key, now)).fetchone()
            return str(row[0]) if row else None

        return await self._db.run(read)

    async def _write(self, key: str, value: str, ttl_seconds: int) -> None:
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?)", (key, value, now + ttl_seconds))
            conn.execute("DELETE FROM conversations WHERE expires <= ?", (now,))

        await self._db.run(write)

    async def get(self, key: str) -> Conversation | None:
        return _load(await self._read(key))

    async def put(self, key: str, conversation: Conversation, ttl_seconds: int) -> None:
        await self._write(key, _dump(conversation), ttl_seconds)

    async def link(self, message_key: str, key: str, ttl_seconds: int) -> None:
        await self._write(_LINK + message_key, key, ttl_seconds)

    async def thread_of(self, message_key: str) -> str | None:
        return await self._read(_LINK + message_key)

    async def aclose(self) -> None:
        await self._db.close()


class RedisConversations:
    """One string key per thread and per answer message (``SET … EX``), under the knowledgebase's prefix."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}conversation:"

    def _key(self, kind: str, key: str) -> str:
        # Digested like the other keys: thread keys carry channel ids, which need not show in a key listing.
        return f"{self._prefix}{kind}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    async def get(self, key: str) -> Conversation | None:
        return _load(await self._redis.get(self._key("thread", key)))

    async def put(self, key: str, conversation: Conversation, ttl_seconds: int) -> None:
        await self._redis.set(self._key("thread", key), _dump(conversation), ex=max(1, ttl_seconds))

    async def link(self, message_key: str, key: str, ttl_seconds: int) -> None:
        await self._redis.set(self._key("message", message_key), key, ex=max(1, ttl_seconds))

    async def thread_of(self, message_key: str) -> str | None:
        raw = await self._redis.get(self._key("message", message_key))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def aclose(self) -> None:
        return None  # the connection is the stores' one, closed with them
