"""Redis implementations of the store protocols, for running several replicas that must behave like one bot.

Every replica talks to the same Redis, so the answer cache, the single-flight lease, the 402 breaker, event
dedupe and feedback are shared: one replica's 402 pauses all of them, and a question asked on two replicas at
once costs one upstream AI call. The ``redis`` package is an optional extra (``pip install kbbot[redis]``): it
is imported only by :func:`connect_redis`, so the base install never needs it.

Every multi-step change is a Lua script so that it is atomic across replicas without WATCH/retry loops. Keys
share the ``prefix`` (default ``kbbot:``) so several bots can share one Redis; each family of keys carries a
hash tag (``{…}``) so a script's keys land in one slot on Redis Cluster too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from kbbot.core.models import Answer, PageRef, Source
from kbbot.core.ports import FeedbackCounts, OutboxItem, QuotaState
from kbbot.core.tasks import cancel_and_wait, raise_if_cancelled
from kbbot.errors import ConfigError, KbbotError, Unavailable, error_payload, rebuild_error
from kbbot.store.memory import LocalSingleFlight
from kbbot.store.outbox_codec import dump_payload, load_item

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_PREFIX = "kbbot:"


async def connect_redis(url: str, *, timeout_seconds: float = 5.0) -> Redis:
    """Open a client for ``url`` and check it answers. The URL itself is a secret (it may hold a password)."""
    try:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # pragma: no cover - exercised by the base-install test with redis hidden
        raise ConfigError(
            "REDIS_URL is set but the redis package is missing: pip install 'kbbot[redis]'"
        ) from None
    # One immediate retry on a connection error: after Redis restarts, every pooled connection is dead, and
    # the first command on each would fail; the retry runs on a fresh connection. Timeouts are not retried
    # (that would double the wait when Redis hangs).
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        # Never echo the URL: it may carry a password.
        raise Unavailable(f"cannot reach Redis at REDIS_URL ({type(exc).__name__})") from None
    return client


def _digest(text: str) -> str:
    """Fixed-length key part for arbitrary user text (questions can be kilobytes of unicode)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


# --- answer (de)serialization -------------------------------------------------------------------------------


def encode_answer(answer: Answer) -> str:
    """JSON for an :class:`Answer`; every field, so a cached answer renders exactly like a fresh one."""
    return json.dumps(
        {
            "text": answer.text,
            "related_pages": [page.to_json() for page in answer.related_pages],
            "source": answer.source.value,
            "empty": answer.empty,
            "notice": answer.notice,
        },
        ensure_ascii=False,
    )


def decode_answer(payload: str | bytes) -> Answer:
    data = json.loads(payload)
    return Answer(
        text=str(data["text"]),
        related_pages=tuple(
            PageRef(id=str(p["id"]), title=str(p["title"]), url=p.get("url"))
            for p in data.get("related_pages", ())
        ),
        source=Source(data.get("source", Source.AI.value)),
        empty=bool(data.get("empty", False)),
        notice=data.get("notice"),
    )


# --- answer cache -------------------------------------------------------------------------------------------

# KEYS[1] entry, KEYS[2] recency zset; ARGV[1] payload, ARGV[2] ttl milliseconds, ARGV[3] max entries.
# Scores are the last write/read time (server clock, so replicas' clocks do not matter). An entry whose score
# is older than the TTL has certainly expired, so those members are dropped first; then the least recently
# used entries beyond the bound are evicted.
_CACHE_SET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2]) / 1000
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local n = redis.call('ZCARD', KEYS[2])
local excess = n - tonumber(ARGV[3])
if excess > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #old, 2 do redis.call('DEL', old[i]) end
  n = n - excess
end
return n
"""

# KEYS[1] entry, KEYS[2] recency zset. Returns the payload (refreshing its recency) or nil (forgetting it).
_CACHE_GET = """
local v = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
if v then
  redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) + tonumber(t[2]) / 1000000, KEYS[1])
else
  redis.call('ZREM', KEYS[2], KEYS[1])
end
return v
"""


class RedisAnswerCache:
    """Shared answer cache: entries expire after ``ttl_seconds``; past ``max_entries`` the least used go."""

    def __init__(
        self, redis: Redis, *, ttl_seconds: float, max_entries: int, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_seconds * 1000)
        self._max = max_entries
        self._prefix = f"{prefix}{{cache}}:"
        self._lru = f"{self._prefix}lru"
        self._set = redis.register_script(_CACHE_SET)
        self._get = redis.register_script(_CACHE_GET)

    def _key(self, key: str) -> str:
        return f"{self._prefix}a:{_digest(key)}"

    async def get(self, key: str) -> Answer | None:
        payload = await self._get(keys=[self._key(key), self._lru])
        if payload is None:
            return None
        try:
            return decode_answer(payload)
        except (ValueError, KeyError, TypeError):
            # A foreign or corrupt value under our key: treat as a miss rather than failing the question.
            log.warning("ignoring an unreadable cache entry")
            return None

    async def set(self, key: str, answer: Answer) -> None:
        if self._ttl_ms <= 0:  # CACHE_TTL_SECONDS=0 turns caching off
            return
        await self._set(keys=[self._key(key), self._lru], args=[encode_answer(answer), self._ttl_ms, self._max])

    async def size(self) -> int:
        """The shared number of entries right now."""
        return int(await self._redis.zcard(self._lru))

    async def aclose(self) -> None:
        # The client is shared by every Redis store and closed once, by the Stores bundle.
        return None


# --- single flight ------------------------------------------------------------------------------------------

# KEYS[1] lock; ARGV[1] token, ARGV[2] lease ms. {0} we got the lease; {1, holder token} another flight runs.
_LEASE_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
return {1, redis.call('GET', KEYS[1]) or ''}
"""

# KEYS[1] lock; ARGV[1] token, ARGV[2] lease ms. Extends the lease only if we still hold it.
_LEASE_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS[1] lock, KEYS[2] this flight's result; ARGV[1] token, ARGV[2] payload ('' = none), ARGV[3] result ttl
# seconds. Publishing the result and releasing the lease in one step means a waiter never sees "released, no
# result" for a flight that did produce one.
_LEASE_FINISH = """
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

_RETRY = object()


class RedisSingleFlight:
    """One replica asks upstream per key at a time; the others wait for its result.

    The leader takes a lease (``SET NX PX`` with a random token) and renews it while ``fn`` runs. Then, in one
    script, it publishes the result (or the :class:`KbbotError` it raised) under a key named by its token and
    releases the lease. Followers poll for that result. When the lease vanishes without a result (the leader
    crashed, or failed unexpectedly), one follower takes over. Followers wait as long as the leader renews its
    lease: the leader may be waiting its fair turn at the rate limiter, and its own askers wait for it just as
    long, so a fixed bound would turn a busy minute into errors on every other replica. ``wait_seconds`` (None
    by default) adds an absolute bound for callers that want one. Within
    one process, concurrent callers for a key share one flight: fifty local callers make one poller.

    A caller that arrives just after a flight finished starts a new one; the function it runs looks in the
    shared answer cache first (``AskService`` does), so it is not billed again.

    Results cross process boundaries, so they are encoded with ``encode``/``decode`` (default: an Answer).
    ``sleep`` is how the renewer and the followers pause (tests inject one).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_seconds: float = 15.0,
        wait_seconds: float | None = None,
        poll_seconds: float = 0.05,
        result_ttl_seconds: int = 60,
        encode: Callable[[Any], str] = encode_answer,
        decode: Callable[[str | bytes], Any] = decode_answer,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._sleep = sleep
        self._prefix = f"{prefix}{{flight}}:"
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._result_ttl = result_ttl_seconds
        self._encode = encode
        self._decode = decode
        self._take = redis.register_script(_LEASE_TAKE)
        self._renew = redis.register_script(_LEASE_RENEW)
        self._finish = redis.register_script(_LEASE_FINISH)
        # Within this process, the callers of a key share one flight (and so one poller of the lease).
        self._local = LocalSingleFlight()

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await self._local.run(key, lambda: self._flight(key, fn))

    async def _flight(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        lock = f"{self._prefix}lock:{_digest(key)}"
        deadline = math.inf if self._wait is None else time.monotonic() + self._wait
        while True:
            token = uuid.uuid4().hex
            reply = await self._take(keys=[lock], args=[token, self._lease_ms])
            if int(reply[0]) == 0:
                return await self._lead(lock, token, fn)
            outcome = await self._follow(lock, _text(reply[1]) or "", deadline)
            if outcome is not _RETRY:
                return outcome
            if time.monotonic() >= deadline:
                raise Unavailable("another replica is still answering this question; try again shortly")

    async def _lead(self, lock: str, token: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        renewer = asyncio.create_task(self._keep_lease(lock, token))
        payload = ""
        try:
            try:
                result = await fn()
            except KbbotError as exc:
                payload = json.dumps({"error": error_payload(exc)})
                raise
            try:
                payload = json.dumps({"ok": self._encode(result)})
            except Exception:
                # Not encodable: followers will take over and run fn themselves; correct, just not shared.
                log.warning("single-flight result could not be shared across replicas", exc_info=True)
            return result
        finally:
            # Shielded: a cancelled leader still stops renewing, publishes what it has and frees the lease.
            await asyncio.shield(self._release(renewer, lock, token, payload))

    async def _release(self, renewer: asyncio.Task[None], lock: str, token: str, payload: str) -> None:
        # Stopped for sure before the lease goes: a renewer whose cancel was lost mid-command (see
        # cancel_and_wait) would otherwise renew a lease nobody holds, and followers would wait on it forever.
        await cancel_and_wait(renewer)
        try:
            finish: list[str | int] = [token, payload, self._result_ttl]
            await self._finish(keys=[lock, self._result_key(token)], args=finish)
        except Exception:
            # The lease expires by itself; followers then take over.
            log.warning("could not release a single-flight lease", exc_info=True)

    async def _keep_lease(self, lock: str, token: str) -> None:
        interval = self._lease_ms / 3000
        while True:
            raise_if_cancelled()  # the leader is done; a renew that lost its cancel ends here
            await self._sleep(interval)
            try:
                if not await self._renew(keys=[lock], args=[token, self._lease_ms]):
                    return  # lost it (expired during a Redis outage); nothing left to renew
            except Exception:
                log.warning("could not renew a single-flight lease", exc_info=True)

    def _result_key(self, token: str) -> str:
        return f"{self._prefix}result:{token}"

    async def _follow(self, lock: str, holder: str, deadline: float) -> Any:
        result_key = self._result_key(holder)
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(result_key)
                pipe.get(lock)
                payload, current = await pipe.execute()
            if payload is not None:
                return self._unpack(payload)
            if _text(current) != holder:
                return _RETRY  # the leader is gone without a result: take over
            if time.monotonic() >= deadline:
                raise Unavailable("another replica is still answering this question; try again shortly")
            await self._sleep(self._poll)

    def _unpack(self, payload: str | bytes) -> Any:
        data = json.loads(payload)
        if "ok" in data:
            return self._decode(data["ok"])
        raise rebuild_error(data.get("error") or {})


# --- 402 breaker --------------------------------------------------------------------------------------------


class RedisQuotaGate:
    """The shared 402 breaker: one replica's 402 pauses every replica; one probe per interval across them all.

    ``paused`` has no expiry: the monthly quota comes back only when a probe succeeds (the caller then
    :meth:`reset`\\ s). The probe slot is a ``SET NX EX`` key, so exactly one replica wins it per interval.
    """

    def __init__(self, redis: Redis, *, probe_seconds: float, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._probe_ms = max(1, int(probe_seconds * 1000))
        self._paused = f"{prefix}{{quota}}:paused"
        self._probe = f"{prefix}{{quota}}:probe"

    async def allow(self) -> bool:
        if not await self._redis.exists(self._paused):
            return True
        return bool(await self._redis.set(self._probe, "1", nx=True, px=self._probe_ms))

    async def trip(self) -> None:
        # The call that saw the 402 was this interval's call: the next probe is one interval from now.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._paused, str(time.time()))
            pipe.set(self._probe, "1", px=self._probe_ms)
            await pipe.execute()

    async def reset(self) -> None:
        await self._redis.delete(self._paused, self._probe)

    async def state(self) -> QuotaState:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(self._paused)
            pipe.pttl(self._probe)
            paused, pttl = await pipe.execute()
        if not paused:
            return QuotaState(paused=False)
        wait = max(0, int(pttl)) / 1000
        return QuotaState(paused=True, next_probe_at=time.time() + wait)


# --- dedupe -------------------------------------------------------------------------------------------------


class RedisDeduper:
    """``first_seen`` is a ``SET NX EX``: exactly one replica sees a redelivered event as new."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = f"{prefix}seen:"

    async def first_seen(self, key: str, ttl_seconds: float = 3600) -> bool:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        return bool(await self._redis.set(f"{self._prefix}{_digest(key)}", "1", nx=True, px=ttl_ms))


# --- feedback -----------------------------------------------------------------------------------------------

# KEYS[1] votes hash, KEYS[2] counters hash; ARGV[1] voter field, ARGV[2] '1' helpful | '0' not.
# One vote per user per question: a repeat vote moves the count instead of adding one.
_FEEDBACK_RECORD = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if old then redis.call('HINCRBY', KEYS[2], old, -1) end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 1
"""


class RedisFeedbackStore:
    """👍/👎 per (platform, question, user), counted atomically so every replica reports the same totals."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._votes = f"{prefix}{{feedback}}:votes"
        self._counts = f"{prefix}{{feedback}}:counts"
        self._record = redis.register_script(_FEEDBACK_RECORD)

    async def record(
        self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = ""
    ) -> None:
        voter = _digest(json.dumps([platform, question, user_id], ensure_ascii=False))
        await self._record(keys=[self._votes, self._counts], args=[voter, "1" if helpful else "0"])

    async def counts(self) -> FeedbackCounts:
        helpful, not_helpful = await self._redis.hmget(self._counts, ["1", "0"])
        return FeedbackCounts(helpful=int(helpful or 0), not_helpful=int(not_helpful or 0))


# --- saved threads ------------------------------------------------------------------------------------------


class RedisSavedThreadMap:
    """Thread key → page ids, shared: a thread saved on one replica is updated (not duplicated) by another.

    No expiry: the map is what makes a re-save next month update the same page. One small string per thread.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = f"{prefix}thread:"

    def _key(self, key: str) -> str:
        return f"{self._prefix}{_digest(key)}"

    async def get(self, key: str) -> tuple[str, ...] | None:
        value = await self._redis.get(self._key(key))
        if value is None:
            return None
        return tuple(str(page_id) for page_id in json.loads(value))

    async def put(self, key: str, page_ids: Sequence[str]) -> None:
        await self._redis.set(self._key(key), json.dumps([str(page_id) for page_id in page_ids]))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._key(key))

    async def aclose(self) -> None:
        return None


# --- outbox ---------------------------------------------------------------------------------------------------

# One hash per entry (payload, revision, attempts, failures, next_attempt_at, claimed_until, last_error; failures
# appears with the first unexpected failure, so entries of older versions read the same) and a sorted set
# of keys by due time, so ``pending`` lists earliest first. Each script touches only the {outbox} slot.

# KEYS[1] entry hash, KEYS[2] due zset; ARGV[1] key, ARGV[2] payload, ARGV[3] now. Keeps attempts, lease and
# last error, exactly like a re-queued SQLite row; returns the new revision.
_OUTBOX_ADD = """
local revision = redis.call('HINCRBY', KEYS[1], 'revision', 1)
redis.call('HSET', KEYS[1], 'key', ARGV[1], 'payload', ARGV[2], 'next_attempt_at', ARGV[3])
redis.call('HSETNX', KEYS[1], 'attempts', 0)
redis.call('HSETNX', KEYS[1], 'claimed_until', 0)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return revision
"""

# KEYS[1] entry hash; ARGV[1] now, ARGV[2] lease seconds. Returns the entry's fields with the counted attempt,
# or nil when there is no entry or another holder's lease is still running.
_OUTBOX_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if tonumber(redis.call('HGET', KEYS[1], 'claimed_until') or '0') > tonumber(ARGV[1]) then return false end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'claimed_until', tonumber(ARGV[1]) + tonumber(ARGV[2]))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1] entry hash, KEYS[2] due zset; ARGV[1] key, ARGV[2] next attempt at, ARGV[3] error ('' = none),
# ARGV[4] '1' when the attempt failed unexpectedly (counted in failures).
_OUTBOX_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'failures', 1) end
redis.call('HSET', KEYS[1], 'claimed_until', 0, 'next_attempt_at', ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'last_error')
else
  redis.call('HSET', KEYS[1], 'last_error', ARGV[3])
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS[1] entry hash, KEYS[2] due zset; ARGV[1] key, ARGV[2] revision.
_OUTBOX_REMOVE = """
if redis.call('HGET', KEYS[1], 'revision') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class RedisOutbox:
    """The durable outbox of saves (:class:`kbbot.core.ports.Outbox`), shared by every replica.

    With replicas on Kubernetes a pod's disk is not durable, so a save queued while the wiki was down must
    outlive the pod: it waits in Redis and any replica's worker sends it. The lease in :meth:`claim` keeps
    two replicas from sending one save at the same time.
    """

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = f"{prefix}{{outbox}}:"
        self._due = f"{self._prefix}due"
        self._add = redis.register_script(_OUTBOX_ADD)
        self._claim = redis.register_script(_OUTBOX_CLAIM)
        self._release = redis.register_script(_OUTBOX_RELEASE)
        self._remove = redis.register_script(_OUTBOX_REMOVE)

    def _entry(self, key: str) -> str:
        return f"{self._prefix}item:{_digest(key)}"

    async def add(self, item: OutboxItem, *, now: float) -> int:
        args: list[str | float] = [item.key, dump_payload(item), now]
        return int(await self._add(keys=[self._entry(item.key), self._due], args=args))

    async def claim(self, key: str, *, now: float, lease_seconds: float) -> OutboxItem | None:
        reply = await self._claim(keys=[self._entry(key)], args=[now, lease_seconds])
        if not reply:
            return None
        return _load_outbox(key, dict(zip(reply[::2], reply[1::2], strict=True)))

    async def release(
        self, key: str, *, next_attempt_at: float, error: str | None, failed: bool = False
    ) -> None:
        args: list[str | float] = [key, next_attempt_at, error or "", "1" if failed else "0"]
        await self._release(keys=[self._entry(key), self._due], args=args)

    async def remove(self, key: str, revision: int) -> bool:
        return bool(await self._remove(keys=[self._entry(key), self._due], args=[key, revision]))

    async def pending(self) -> list[OutboxItem]:
        keys = [_text(k) or "" for k in await self._redis.zrange(self._due, 0, -1)]
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(self._entry(key))
            rows = await pipe.execute()
        items = []
        for key, row in zip(keys, rows, strict=True):
            if row:  # removed between the two reads
                items.append(_load_outbox(key, row))
        return sorted(items, key=lambda item: (item.next_attempt_at, item.key))

    async def aclose(self) -> None:
        return None


def _load_outbox(key: str, raw: dict[Any, Any]) -> OutboxItem:
    # Values go to the codec as stored (bytes): a damaged one makes the item unreadable instead of failing
    # the whole listing (field names are ours; "replace" only keeps a hand-edited one from raising).
    fields = {k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k): v for k, v in raw.items()}
    return load_item(
        key,
        fields.get("payload"),
        revision=fields.get("revision") or 0,
        attempts=fields.get("attempts") or 0,
        failures=fields.get("failures"),
        next_attempt_at=fields.get("next_attempt_at") or 0,
        last_error=fields.get("last_error"),
    )


# --- rate limiter storage -----------------------------------------------------------------------------------


def limits_storage_uri(redis_url: str) -> str:
    """The ``limits`` async storage URI for ``redis_url``: both rate windows become one budget for all.

    ``redis://`` → ``async+redis://``, ``rediss://`` → ``async+rediss://``, ``unix://`` →
    ``async+redis+unix://``.
    """
    scheme, sep, rest = redis_url.partition("://")
    if not sep:
        raise ConfigError("REDIS_URL must look like redis://host:6379/0")
    mapping = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
    if scheme not in mapping:
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    return f"{mapping[scheme]}://{rest}"


# --- keys of kbbot before namespacing ------------------------------------------------------------------------

#: Durable key families an older kbbot kept directly under ``kbbot:`` (no knowledgebase namespace). Cache,
#: single-flight, dedupe and quota keys are transient and simply expire; these hold queued saves, the
#: saved-thread map (without it a re-save duplicates its page) and feedback totals.
_LEGACY_DURABLE = ("kbbot:{outbox}:*", "kbbot:thread:*", "kbbot:{feedback}:*")

# KEYS[1] legacy key, KEYS[2] its namespaced name. Moves it when the new name is free; merges the outbox's due
# set (a replica of the old version may have queued more after a first adoption); else leaves it alone.
_ADOPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('RENAME', KEYS[1], KEYS[2]) return 1 end
if redis.call('TYPE', KEYS[1])['ok'] == 'zset' and redis.call('TYPE', KEYS[2])['ok'] == 'zset' then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'MIN')
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


async def adopt_legacy_keys(redis: Redis, namespace: str) -> int:
    """Move an older kbbot's un-namespaced durable keys into ``namespace``, so upgrading loses no queued save
    and no saved-thread mapping. The first knowledgebase to start after the upgrade adopts them (before
    namespacing, one Redis served one bot, or several bots that were already mixing their state). Returns
    how many keys moved."""
    if namespace == DEFAULT_PREFIX:
        return 0
    adopt = redis.register_script(_ADOPT)
    moved = 0
    for pattern in _LEGACY_DURABLE:
        async for raw in redis.scan_iter(match=pattern, count=500):
            key = _text(raw) or ""
            if key.startswith(namespace):  # an explicit REDIS_PREFIX that happens to look like a family
                continue
            moved += int(await adopt(keys=[key, namespace + key.removeprefix(DEFAULT_PREFIX)]))
    if moved:
        log.warning("moved %d Redis keys of an older kbbot (queued saves, saved threads) into %s", moved, namespace)
    return moved
