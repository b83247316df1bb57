"""Keep answering while Redis is down: each shared store falls back to per-process state until Redis returns.

A Redis outage must not silence the bot (before this, a mention acked with 200 then vanished when the dedupe
call raised). So every Redis-backed store is wrapped: a call that fails because Redis cannot be reached is
served by the in-process store instead (memory cache, local single-flight, local 402 breaker, local dedupe,
memory feedback, in-process rate windows). :class:`RedisHealth` is shared by all wrappers: it logs the outage
once and the recovery once, and while Redis is down it lets one call per ``retry_seconds`` try Redis again
(the others go straight to the fallback, without waiting on a connect timeout).

Saves are different: their thread map and outbox must be the shared ones (a private outbox on a pod's disk is
lost with the pod, a private map would duplicate pages), so while Redis is down a save fails with a clear
:class:`~kbbot.errors.SaveError` the user is shown, and the outbox worker finds nothing to send.

What counts as "Redis is down": connection and timeout errors (also the ``limits`` library's wrapped
``StorageError``), not Redis answering with an error, which is a bug to surface.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from limits.aio.storage import MemoryStorage, MovingWindowSupport, Storage
from limits.errors import StorageError

from kbbot.core.models import Answer
from kbbot.core.outcomes import Outcome, OutcomeLog
from kbbot.core.ports import (
    AnswerCache,
    Conversation,
    ConversationStore,
    Deduper,
    FeedbackCounts,
    FeedbackStore,
    Outbox,
    OutboxItem,
    QuotaGate,
    QuotaState,
    SavedThreadMap,
    SingleFlight,
)
from kbbot.core.routing import ChoiceStore
from kbbot.errors import SaveError

T = TypeVar("T")
log = logging.getLogger(__name__)

SAVE_PAUSED = "Saving is paused: the bot's shared storage (Redis) can't be reached. Please try again in a minute."


def _outage_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # OSError covers refused/reset sockets that escape redis-py; TimeoutError an asyncio timeout around a call.
    return (RedisConnectionError, RedisTimeoutError, StorageError, OSError, TimeoutError)


class RedisHealth:
    """Whether Redis is usable right now, shared by every wrapper of one Redis connection."""

    def __init__(self, *, retry_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.up = True
        self.errors = _outage_errors()
        self._retry = retry_seconds
        self._clock = clock
        self._next_try = 0.0
        self.last_error = ""

    def attempt(self) -> bool:
        """Try Redis for this call? Always while up; while down, one call per ``retry_seconds``."""
        if self.up:
            return True
        now = self._clock()
        if now < self._next_try:
            return False
        self._next_try = now + self._retry
        return True

    def failed(self, exc: BaseException) -> None:
        self._next_try = self._clock() + self._retry
        self.last_error = type(exc).__name__
        if self.up:
            self.up = False
            # Never the exception text: it may quote the URL, which can carry a password.
            log.warning(
                "Redis cannot be reached (%s): answering with per-process state (cache, limits, dedupe) and "
                "pausing saves until it is back",
                self.last_error,
            )

    def succeeded(self) -> None:
        if not self.up:
            self.up = True
            log.warning("Redis is reachable again: shared state resumed")

    async def guard(self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        """``primary()`` (Redis) unless Redis is down, else (or when it fails for that reason) ``fallback()``."""
        if self.attempt():
            try:
                result = await primary()
            except self.errors as exc:
                self.failed(exc)
            else:
                self.succeeded()
                return result
        return await fallback()

    async def required(self, primary: Callable[[], Awaitable[T]]) -> T:
        """``primary()``, which has no per-process substitute (saving): :class:`SaveError` while Redis is down."""
        if not self.attempt():
            raise SaveError(SAVE_PAUSED)
        try:
            result = await primary()
        except self.errors as exc:
            self.failed(exc)
            raise SaveError(SAVE_PAUSED) from None
        self.succeeded()
        return result

    def probe(self, ping: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[str]]:
        """A readiness probe: ``"ok"``, or ``"degraded: …"`` while Redis is down (the bot still answers)."""

        async def check() -> str:
            try:
                await ping()
            except self.errors as exc:
                self.failed(exc)
                return f"degraded: Redis is unreachable ({self.last_error}); answering with per-process state"
            self.succeeded()
            return "ok"

        return check


class FailoverAnswerCache:
    def __init__(self, primary: AnswerCache, fallback: AnswerCache, health: RedisHealth) -> None:
        self._primary, self._fallback, self._health = primary, fallback, health

    async def get(self, key: str) -> Answer | None:
        return await self._health.guard(lambda: self._primary.get(key), lambda: self._fallback.get(key))

    async def set(self, key: str, answer: Answer) -> None:
        await self._health.guard(lambda: self._primary.set(key, answer), lambda: self._fallback.set(key, answer))

    async def size(self) -> int:
        return await self._health.guard(self._primary.size, self._fallback.size)

    async def aclose(self) -> None:
        await self._fallback.aclose()
        await self._primary.aclose()


class FailoverSingleFlight:
    def __init__(self, primary: SingleFlight, fallback: SingleFlight, health: RedisHealth) -> None:
        self._primary, self._fallback, self._health = primary, fallback, health

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        # A failure inside fn (the upstream call) is fn's own and propagates; only Redis failing while taking,
        # renewing or polling the lease switches to the local flight (fn then runs here).
        return await self._health.guard(lambda: self._primary.run(key, fn), lambda: self._fallback.run(key, fn))


class FailoverQuotaGate:
    def __init__(self, primary: QuotaGate, fallback: QuotaGate, health: RedisHealth) -> None:
        self._primary, self._fallback, self._health = primary, fallback, health

    async def allow(self) -> bool:
        return await self._health.guard(self._primary.allow, self._fallback.allow)

    async def trip(self) -> None:
        await self._fallback.trip()  # also locally: a 402 seen during an outage pauses at least this process
        await self._health.guard(self._primary.trip, _nothing)

    async def reset(self) -> None:
        await self._fallback.reset()
        await self._health.guard(self._primary.reset, _nothing)

    async def state(self) -> QuotaState:
        return await self._health.guard(self._primary.state, self._fallback.state)


class FailoverDeduper:
    def __init__(self, primary: Deduper, fallback: Deduper, health: RedisHealth) -> None:
        self._primary, self._fallback, self._health = primary, fallback, health

    async def first_seen(self, key: str, ttl_seconds: int = 3600) -> bool:
        # Recorded locally as well, so a redelivery during an outage is still answered once by this replica.
        local = await self._fallback.first_seen(key, ttl_seconds)
        return await self._health.guard(lambda: self._primary.first_seen(key, ttl_seconds), lambda: _value(local))


class FailoverFeedbackStore:
    def __init__(self, primary: FeedbackStore, fallback: FeedbackStore, health: RedisHealth) -> None:
        self._primary, self._fallback, self._health = primary, fallback, health

    async def record(
        self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = ""
    ) -> None:
        await self._health.guard(
            lambda: self._primary.record(platform=platform, question=question, user_id=user_id, helpful=helpful),
            lambda: self._fallback.record(platform=platform, question=question, user_id=user_id, helpful=helpful),
        )

    async def counts(self) -> FeedbackCounts:
        return await self._health.guard(self._primary.counts, self._fallback.counts)


class FailoverOutcomeLog:
    """The outcome log (dashboard statistics) has no per-process substitute worth keeping: while Redis is down
    outcomes are not recorded (the dashboard shows a gap), rather than a warning and traceback per question."""

    def __init__(self, primary: OutcomeLog, health: RedisHealth) -> None:
        self._primary, self._health = primary, health

    async def record(self, outcome: Outcome) -> None:
        await self._health.guard(lambda: self._primary.record(outcome), _nothing)

    async def since(self, at: float) -> list[Outcome]:
        return await self._health.guard(lambda: self._primary.since(at), _no_outcomes)

    async def count_ai_call(self, day: str) -> None:
        await self._health.guard(lambda: self._primary.count_ai_call(day), _nothing)

    async def ai_calls(self, since_day: str) -> dict[str, int]:
        return await self._health.guard(lambda: self._primary.ai_calls(since_day), _no_calls)

    async def prune(self, before: float) -> int:
        return await self._health.guard(lambda: self._primary.prune(before), _zero)

    async def aclose(self) -> None:
        await self._primary.aclose()


class FailoverChoices:
    """People's `/kb use` choices: while Redis is down a direct message goes to the default knowledgebase (it is
    answered, not dropped); a new choice remembered during the outage lives in this process only."""

    def __init__(self, primary: ChoiceStore, health: RedisHealth) -> None:
        self._primary, self._health = primary, health
        self._local: dict[str, str | None] = {}

    async def get(self, person: str) -> str | None:
        return await self._health.guard(lambda: self._primary.get(person), lambda: _value(self._local.get(person)))

    async def set(self, person: str, knowledgebase: str | None) -> None:
        self._local[person] = knowledgebase
        await self._health.guard(lambda: self._primary.set(person, knowledgebase), _nothing)

    async def aclose(self) -> None:
        await self._primary.aclose()


class RequiredSavedThreadMap:
    def __init__(self, primary: SavedThreadMap, health: RedisHealth) -> None:
        self._primary, self._health = primary, health

    async def get(self, key: str) -> tuple[str, ...] | None:
        return await self._health.required(lambda: self._primary.get(key))

    async def put(self, key: str, page_ids: Sequence[str]) -> None:
        await self._health.required(lambda: self._primary.put(key, page_ids))

    async def delete(self, key: str) -> None:
        await self._health.required(lambda: self._primary.delete(key))

    async def aclose(self) -> None:
        await self._primary.aclose()


class RequiredOutbox:
    def __init__(self, primary: Outbox, health: RedisHealth) -> None:
        self._primary, self._health = primary, health

    async def add(self, item: OutboxItem, *, now: float) -> int:
        return await self._health.required(lambda: self._primary.add(item, now=now))

    async def claim(self, key: str, *, now: float, lease_seconds: float) -> OutboxItem | None:
        return await self._health.required(lambda: self._primary.claim(key, now=now, lease_seconds=lease_seconds))

    async def release(
        self, key: str, *, next_attempt_at: float, error: str | None, failed: bool = False
    ) -> None:
        await self._health.required(
            lambda: self._primary.release(key, next_attempt_at=next_attempt_at, error=error, failed=failed)
        )

    async def remove(self, key: str, revision: int) -> bool:
        return await self._health.required(lambda: self._primary.remove(key, revision))

    async def pending(self) -> list[OutboxItem]:
        # The outbox worker polls this: while Redis is down there is nothing it could send (and the entries
        # are safe in Redis), so "nothing due" instead of an error logged on every poll.
        return await self._health.guard(self._primary.pending, _no_items)

    async def aclose(self) -> None:
        await self._primary.aclose()


class FailoverLimiterStorage(Storage, MovingWindowSupport):
    """The ``limits`` storage of the rate windows: Redis (one budget for all replicas), or this process's own
    windows while Redis is down. ``primary`` uses the stores' connection pool, closed with them. Our headroom
    and the server's ``rateLimit`` hints keep a replica that counts alone from drawing 429s for long; the
    budget is shared again as soon as Redis answers."""

    STORAGE_SCHEME = None

    def __init__(self, primary: Storage, health: RedisHealth) -> None:
        super().__init__()
        if not isinstance(primary, MovingWindowSupport):  # pragma: no cover - limits' Redis storage has it
            raise TypeError("the rate limiter needs a moving-window storage")
        self.primary: Storage = primary
        self._windows: MovingWindowSupport = primary
        self.fallback = MemoryStorage()
        self._health = health

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return StorageError

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return await self._health.guard(
            lambda: self._windows.acquire_entry(key, limit, expiry, amount),
            lambda: self.fallback.acquire_entry(key, limit, expiry, amount),
        )

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return await self._health.guard(
            lambda: self._windows.get_moving_window(key, limit, expiry),
            lambda: self.fallback.get_moving_window(key, limit, expiry),
        )

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._health.guard(
            lambda: self.primary.incr(key, expiry, amount), lambda: self.fallback.incr(key, expiry, amount)
        )

    async def get(self, key: str) -> int:
        return await self._health.guard(lambda: self.primary.get(key), lambda: self.fallback.get(key))

    async def get_expiry(self, key: str) -> float:
        return await self._health.guard(lambda: self.primary.get_expiry(key), lambda: self.fallback.get_expiry(key))

    async def check(self) -> bool:
        return await self._health.guard(self.primary.check, _false)

    async def reset(self) -> int | None:
        await self.fallback.reset()
        return await self._health.guard(self.primary.reset, _none)

    async def clear(self, key: str) -> None:
        await self.fallback.clear(key)
        await self._health.guard(lambda: self.primary.clear(key), _nothing)


async def _nothing() -> None:
    return None


async def _none() -> int | None:
    return None


async def _false() -> bool:
    return False


async def _no_items() -> list[OutboxItem]:
    return []


async def _no_outcomes() -> list[Outcome]:
    return []


async def _no_calls() -> dict[str, int]:
    return {}


async def _zero() -> int:
    return 0


async def _value(value: T) -> T:
    return value


class FailoverConversations:
    """The threads kbbot answered in, in Redis. While Redis is down no thread is known (replies there are left
    alone rather than answered by a replica that cannot tell) and nothing is remembered: the outage is logged
    once, not per message."""

    def __init__(self, primary: ConversationStore, health: RedisHealth) -> None:
        self._primary, self._health = primary, health

    async def get(self, key: str) -> Conversation | None:
        return await self._health.guard(lambda: self._primary.get(key), lambda: _value(None))

    async def put(self, key: str, conversation: Conversation, ttl_seconds: int) -> None:
        await self._health.guard(lambda: self._primary.put(key, conversation, ttl_seconds), _nothing)

    async def link(self, message_key: str, key: str, ttl_seconds: int) -> None:
        await self._health.guard(lambda: self._primary.link(message_key, key, ttl_seconds), _nothing)

    async def thread_of(self, message_key: str) -> str | None:
        return await self._health.guard(lambda: self._primary.thread_of(message_key), lambda: _value(None))

    async def aclose(self) -> None:
        await self._primary.aclose()
