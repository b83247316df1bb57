"""Which knowledgebase each person chose for their direct messages (`/kb use NAME`, Discord `/use`).

Durable: in SQLite under KBBOT_DATA_DIR, or in one Redis hash when REDIS_URL is set, so every replica and
every restart knows the choice. A person is ``platform:user id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kbbot.store.sqlite_threads import SqliteDatabase

if TYPE_CHECKING:
    from redis.asyncio import Redis

FILENAME = "choices.sqlite3"

_SCHEMA = "CREATE TABLE IF NOT EXISTS choices (person TEXT PRIMARY KEY, knowledgebase TEXT NOT NULL)"


class SqliteChoices:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)

    async def get(self, person: str) -> str | None:
        row = await self._db.run(
            lambda conn: conn.execute("SELECT knowledgebase FROM choices WHERE person = ?", (person,)).fetchone()
        )
        return str(row[0]) if row else None

    async def set(self, person: str, knowledgebase: str | None) -> None:
        if knowledgebase is None:
            await self._db.run(lambda conn: conn.execute("DELETE FROM choices WHERE person = ?", (person,)))
        else:
            await self._db.run(
                lambda conn: conn.execute("INSERT OR REPLACE INTO choices VALUES (?, ?)", (person, knowledgebase))
            )

    async def aclose(self) -> None:
        await self._db.close()


class RedisChoices:
    def __init__(self, client: Redis, key: str) -> None:
        self._client = client
        self._key = key

    async def get(self, person: str) -> str | None:
        value = await self._client.hget(self._key, person)
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    async def set(self, person: str, knowledgebase: str | None) -> None:
        if knowledgebase is None:
            await self._client.hdel(self._key, person)
        else:
            await self._client.hset(self._key, person, knowledgebase)

    async def aclose(self) -> None:
        await self._client.aclose()
