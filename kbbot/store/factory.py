"""One place that picks the store implementations: embedded (memory + SQLite) or shared (Redis).

The composition root calls :func:`build_stores` (``async with await build_stores(settings) as stores``) and hands
the parts to the core. Without ``REDIS_URL`` one process keeps its state in memory and SQLite files under
``KBBOT_DATA_DIR``; with it, every replica shares cache, single-flight, the 402 breaker, dedupe, feedback, the
saved-thread map, the save outbox and the rate-limit windows through Redis. The core sees the same protocols
either way and never asks which it got.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from limits.aio.storage import Storage

from kbbot.config import Settings
from kbbot.core.outcomes import OutcomeLog
from kbbot.core.ports import (
    AnswerCache,
    ConversationStore,
    Deduper,
    FeedbackStore,
    Outbox,
    QuotaGate,
    SavedThreadMap,
    SingleFlight,
)
from kbbot.store.namespace import namespace_from_settings

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
    #: What became of each question and the billed AI calls per day (``kbbot gaps``, the dashboard).
    outcomes: OutcomeLog
    #: Threads kbbot answered in, for follow-ups (:mod:`kbbot.core.conversations`).
    conversations: ConversationStore
    #: ``limits`` storage for every per-token :class:`TokenRateLimiter`: None keeps the windows in process
    #: memory; the Redis one makes both windows one budget for every replica.
    limiter_storage: Storage | str | None = None
    #: Cheap liveness check of the shared store for ``/readyz`` (None: nothing to check).
    ping: Callable[[], Awaitable[Any]] | None = None
    #: The knowledgebase's key prefix in Redis (None: embedded stores).
    namespace: str | None = None
    _closers: list[Closer] = field(default_factory=list, repr=False)

    async def aclose(self) -> None:
        """Close everything once, last opened first; one failing close does not skip the others."""
        closers, self._closers = self._closers, []
        async with AsyncExitStack() as stack:
            for close in closers:
                stack.push_async_callback(close)

    async def __aenter__(self) -> Stores:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def build_stores(
    settings: Settings, *, namespace: str | None = None, quota_clock: Callable[[], float] = time.time
) -> Stores:
    """Open the stores ``settings`` asks for. Raises ``ConfigError``/``Unavailable`` when Redis is set but
    missing or unreachable (a replica must not start with private state).

    ``namespace`` prefixes every Redis key: the composition root passes the knowledgebase's own
    (:func:`kbbot.store.namespace.namespace_from_settings`, the default). ``quota_clock``: the in-process 402
    breaker's wall clock (test rigs; Redis times its probe interval itself)."""
    if settings.redis_url is not None and settings.redis_url.get_secret_value():
        prefix = namespace if namespace is not None else namespace_from_settings(settings)
        return await _redis_stores(settings, settings.redis_url.get_secret_value(), prefix, quota_clock)
    return _embedded_stores(settings, quota_clock)


def _embedded_stores(settings: Settings, quota_clock: Callable[[], float]) -> Stores:
    from kbbot.store.conversations import FILENAME as CONVERSATIONS_FILENAME
    from kbbot.store.conversations import SqliteConversations
    from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryQuotaGate, TTLAnswerCache
    from kbbot.store.sqlite_feedback import SqliteFeedbackStore
    from kbbot.store.sqlite_outcomes import DEFAULT_FILENAME as OUTCOMES_FILENAME
    from kbbot.store.sqlite_outcomes import SqliteOutcomeLog
    from kbbot.store.sqlite_threads import DEFAULT_FILENAME, SqliteOutbox, SqliteSavedThreadMap

    data = settings.kbbot_data_dir
    cache = TTLAnswerCache(ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries)
    feedback = SqliteFeedbackStore(data / FEEDBACK_FILENAME)
    thread_map = SqliteSavedThreadMap(data / DEFAULT_FILENAME)
    outbox = SqliteOutbox(data / DEFAULT_FILENAME)
    outcomes = SqliteOutcomeLog(data / OUTCOMES_FILENAME)
    conversations = SqliteConversations(data / CONVERSATIONS_FILENAME)
    return Stores(
        kind="memory",
        cache=cache,
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=settings.quota_probe_seconds, clock=quota_clock),
        deduper=MemoryDeduper(),
        feedback=feedback,
        thread_map=thread_map,
        outbox=outbox,
        outcomes=outcomes,
        conversations=conversations,
        _closers=[
            cache.aclose, feedback.aclose, thread_map.aclose, outbox.aclose, outcomes.aclose, conversations.aclose
        ],
    )


async def _redis_stores(settings: Settings, url: str, prefix: str, quota_clock: Callable[[], float]) -> Stores:
    # Imported here: the base install (no redis package) never reaches this module's redis import.
    from limits.aio.storage import RedisStorage

    from kbbot.store import redis_store as rs
    from kbbot.store.conversations import RedisConversations
    from kbbot.store.failover import (
        FailoverAnswerCache,
        FailoverConversations,
        FailoverDeduper,
        FailoverFeedbackStore,
        FailoverLimiterStorage,
        FailoverOutcomeLog,
        FailoverQuotaGate,
        FailoverSingleFlight,
        RedisHealth,
        RequiredOutbox,
        RequiredSavedThreadMap,
    )
    from kbbot.store.memory import (
        LocalSingleFlight,
        MemoryDeduper,
        MemoryFeedbackStore,
        MemoryQuotaGate,
        TTLAnswerCache,
    )
    from kbbot.store.redis_outcomes import RedisOutcomeLog

    limits_uri = rs.limits_storage_uri(url)  # validates the scheme before connecting
    client = await rs.connect_redis(url)
    await rs.adopt_legacy_keys(client, prefix)
    # While Redis is down each store falls back to this process's own state (see kbbot.store.failover).
    health = RedisHealth()
    cache = FailoverAnswerCache(
        rs.RedisAnswerCache(
            client, ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries, prefix=prefix
        ),
        TTLAnswerCache(ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries),
        health,
    )
    limiter_windows = RedisStorage(
        limits_uri,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=f"{prefix}limits",
        connection_pool=client.connection_pool,  # type: ignore[arg-type]  # one pool, closed with the client
    )
    return Stores(
        kind="redis",
        cache=cache,
        # Waiters give up after a bit more than one upstream call's worst case (timeout plus retries).
        flights=FailoverSingleFlight(
            rs.RedisSingleFlight(client, prefix=prefix),
            LocalSingleFlight(),
            health,
        ),
        quota=FailoverQuotaGate(
            rs.RedisQuotaGate(client, probe_seconds=settings.quota_probe_seconds, prefix=prefix),
            MemoryQuotaGate(probe_seconds=settings.quota_probe_seconds, clock=quota_clock),
            health,
        ),
        deduper=FailoverDeduper(rs.RedisDeduper(client, prefix=prefix), MemoryDeduper(), health),
        feedback=FailoverFeedbackStore(rs.RedisFeedbackStore(client, prefix=prefix), MemoryFeedbackStore(), health),
        thread_map=RequiredSavedThreadMap(rs.RedisSavedThreadMap(client, prefix=prefix), health),
        outbox=RequiredOutbox(rs.RedisOutbox(client, prefix=prefix), health),
        outcomes=FailoverOutcomeLog(RedisOutcomeLog(client, prefix=prefix), health),
        conversations=FailoverConversations(RedisConversations(client, prefix=prefix), health),
        limiter_storage=FailoverLimiterStorage(limiter_windows, health),
        ping=health.probe(client.ping),
        namespace=prefix,
        _closers=[client.aclose, cache.aclose],
    )
