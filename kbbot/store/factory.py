"""One place that picks the store implementations: embedded (memory + SQLite) or shared (Redis).

The startup function calls :func:`build_stores` (or ``async with open_stores(settings) as stores``) and hands
the parts to the core. Without ``REDIS_URL`` one process keeps its state in memory and SQLite files under
``KBBOT_DATA_DIR``; with it, every replica shares cache, single-flight, the 402 breaker, dedupe, feedback, the
saved-thread map, the save outbox and the rate-limit windows through Redis. The core sees the same protocols
either way and never asks which it got.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kbbot.config import Settings
from kbbot.core.ports import AnswerCache, Deduper, FeedbackStore, Outbox, QuotaGate, SavedThreadMap, SingleFlight

FEEDBACK_FILENAME = "feedback.sqlite3"

Closer = Callable[[], Awaitable[Any]]


@dataclass
class Stores:
    """Every piece of state the core and adapters need, plus how to close it."""

    kind: Literal["memory", "redis"]
    cache: AnswerCache
    flights: SingleFlight
    quota: QuotaGate
    deduper: Deduper
    feedback: FeedbackStore
    thread_map: SavedThreadMap
    outbox: Outbox
    #: ``limits`` storage for every per-token :class:`TokenRateLimiter`: None keeps the
    #: windows in process memory; a Redis URI makes both windows one budget for every replica.
    limiter_storage: str | None = None
    #: Cheap liveness check of the shared store for ``/readyz`` (None: nothing to check).
    ping: Callable[[], Awaitable[Any]] | None = None
    _closers: list[Closer] = field(default_factory=list, repr=False)

    async def aclose(self) -> None:
        """Close everything once, last opened first; one failing close does not skip the others."""
        closers, self._closers = self._closers, []
        errors: list[BaseException] = []
        for close in reversed(closers):
            try:
                await close()
            except Exception as exc:  # keep closing the rest
                errors.append(exc)
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Stores:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def build_stores(settings: Settings, *, redis_prefix: str = "kbbot:") -> Stores:
    """Open the stores ``settings`` asks for. Raises ``ConfigError``/``Unavailable`` when Redis is set but
    missing or unreachable (a replica must not silently fall back to private state)."""
    if settings.redis_url is not None and settings.redis_url.get_secret_value():
        return await _redis_stores(settings, settings.redis_url.get_secret_value(), redis_prefix)
    return _embedded_stores(settings)


@contextlib.asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[Stores]:
    stores = await build_stores(settings)
    try:
        yield stores
    finally:
        await stores.aclose()


def _embedded_stores(settings: Settings) -> Stores:
    from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryQuotaGate, TTLAnswerCache
    from kbbot.store.sqlite_feedback import SqliteFeedbackStore
    from kbbot.store.sqlite_threads import DEFAULT_FILENAME, SqliteOutbox, SqliteSavedThreadMap

    data = settings.kbbot_data_dir
    cache = TTLAnswerCache(ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries)
    feedback = SqliteFeedbackStore(data / FEEDBACK_FILENAME)
    thread_map = SqliteSavedThreadMap(data / DEFAULT_FILENAME)
    outbox = SqliteOutbox(data / DEFAULT_FILENAME)
    return Stores(
        kind="memory",
        cache=cache,
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=settings.quota_probe_seconds),
        deduper=MemoryDeduper(),
        feedback=feedback,
        thread_map=thread_map,
        outbox=outbox,
        _closers=[cache.aclose, feedback.aclose, thread_map.aclose, outbox.aclose],
    )


async def _redis_stores(settings: Settings, url: str, prefix: str) -> Stores:
    # Imported here: the base install (no redis package) never reaches this module's redis import.
    from kbbot.store import redis_store as rs

    storage = rs.limits_storage_uri(url)  # validates the scheme before connecting
    client = await rs.connect_redis(url)
    return Stores(
        kind="redis",
        cache=rs.RedisAnswerCache(
            client, ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries, prefix=prefix
        ),
        # Waiters give up after a bit more than one upstream call's worst case (timeout plus retries).
        flights=rs.RedisSingleFlight(client, prefix=prefix, wait_seconds=settings.request_timeout_seconds * 4),
        quota=rs.RedisQuotaGate(client, probe_seconds=settings.quota_probe_seconds, prefix=prefix),
        deduper=rs.RedisDeduper(client, prefix=prefix),
        feedback=rs.RedisFeedbackStore(client, prefix=prefix),
        thread_map=rs.RedisSavedThreadMap(client, prefix=prefix),
        outbox=rs.RedisOutbox(client, prefix=prefix),
        limiter_storage=storage,
        ping=client.ping,
        _closers=[client.aclose],
    )
