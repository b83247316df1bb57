"""The per-token request budget (:class:`kbbot.core.ports.RateLimiter`), built on the ``limits`` library.

Perfect Wiki allows 10 requests per second and 60 per minute *per token*, counted in sliding windows. Every
caller that uses the token (live questions, index sync, thread saving, and with Redis every replica) must
draw from one budget, so the counts live in a ``limits`` storage under a key derived from a hash of the token
(the token itself is never a key, a log line or a metric label). Memory storage by default,
``async+redis://…`` when replicas share the token: the class is the same.

Why one request of headroom per window (9/s and 59/min, not 10 and 60): the server counts a request when it
*arrives*, we count it when we *send* it. Network delay is not constant and our clock is not the server's,
so a request we sent just after our window freed a slot can land just before the server's window freed it.
One spare slot absorbs that skew; without it a full-speed burst draws an occasional 429 at every window edge.

Why a margin after each window edge (``arrival_margin``, 0.2 s by default): headroom absorbs *one* request
that lands early, but a queued burst is released in batches, one batch per window edge, and if the next batch
travels faster than the previous one (it reuses the connections the first batch had to open, with their TCP
and TLS handshakes), two or more of its requests can land inside the server's window of the previous batch.
So callers that had to wait are released ``arrival_margin`` after the window frees, not the instant it does.
This costs a queued burst a fifth of a second per window; an idle bot never waits.

Why a second limit for ``background`` callers: index sync can list and fetch hundreds of pages, and would use
the whole budget; held to half of it, a live question always finds a free slot within a fraction of a window.

Why :meth:`TokenRateLimiter.observe`: another integration may share the token, which our counters cannot see.
The server's ``rateLimit`` numbers can: when a window is nearly used up we space requests out to the rate the
window sustains, and when it is used up we wait a whole window before the next request.

Waiting is an ``asyncio.sleep`` until the oldest request in the window expires (``get_window_stats``), never a
busy loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from typing import TYPE_CHECKING

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.limits import Granularity
from limits.storage import storage_from_string
from pydantic import SecretStr

if TYPE_CHECKING:
    from kbbot.config import Settings

log = logging.getLogger(__name__)

#: Process-wide memory storage, one per event loop: limiters built separately for the same token share counts,
#: while tests (one loop each) stay isolated from one another.
_memory_storages: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MemoryStorage] = (
    weakref.WeakKeyDictionary()
)


class _Window(RateLimitItem):
    """A moving window of any length. ``limits`` has whole-second granularities only; tests shrink the windows
    (memory storage accepts fractions; Redis needs whole seconds, which the production 1 s / 60 s are)."""

    GRANULARITY = Granularity(1, "kbbot-window")
    __slots__ = ("window",)

    def __init__(self, amount: int, window: float, namespace: str) -> None:
        super().__init__(amount, 1, namespace)
        self.window = window

    def get_expiry(self) -> int:
        # Typed int by ``limits``; a float works with memory storage (see class docstring).
        return int(self.window) if float(self.window).is_integer() else self.window  # type: ignore[return-value]


def token_key(token: SecretStr | str) -> str:
    """A stable, non-reversible identifier of the token for storage keys."""
    raw = token.get_secret_value() if isinstance(token, SecretStr) else token
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


class TokenRateLimiter:
    """One token's budget: ``per_second`` and ``per_minute`` (the server's limits), minus ``headroom``.

    ``storage`` is a ``limits`` async storage or its URI (``async+memory://``, ``async+redis://host:6379``;
    a plain ``redis://`` URI is accepted too). None shares one in-process memory storage per event loop.
    ``second_window``/``minute_window``/``arrival_margin`` exist so tests can run the same logic at a faster
    clock.
    """

    def __init__(
        self,
        token: SecretStr | str,
        *,
        per_second: int = 10,
        per_minute: int = 60,
        headroom: int = 1,
        background_share: float = 0.5,
        storage: Storage | str | None = None,
        second_window: float = 1.0,
        minute_window: float = 60.0,
        arrival_margin: float = 0.2,
        namespace: str = "kbbot-pw",
    ) -> None:
        if per_second < 1 or per_minute < 1:
            raise ValueError("rate limits must be at least 1")
        if not 0 < background_share <= 1:
            raise ValueError("background_share must be in (0, 1]")
        self._key = token_key(token)
        self._storage_arg = storage
        self._strategy: MovingWindowRateLimiter | None = None
        self.per_second = per_second
        self.per_minute = per_minute
        self.second_window = second_window
        self.minute_window = minute_window
        self.arrival_margin = arrival_margin
        live_second = max(1, per_second - headroom)
        live_minute = max(1, per_minute - headroom)
        self._live = (
            _Window(live_second, second_window, namespace),
            _Window(live_minute, minute_window, namespace),
        )
        self._background = (
            _Window(max(1, int(live_second * background_share)), second_window, namespace + "-bg"),
            _Window(max(1, int(live_minute * background_share)), minute_window, namespace + "-bg"),
        )
        # One queue per class of caller: a background caller waiting for its half-budget must never hold up
        # the live callers behind it. Each lock is FIFO, so callers of one class are served in order.
        self._live_lock = asyncio.Lock()
        self._background_lock = asyncio.Lock()
        self._waiting = 0
        # observe() state, in time.monotonic() seconds.
        self._not_before = 0.0
        self._spacing = 0.0
        self._last_grant = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, *, storage: Storage | str | None = None) -> TokenRateLimiter:
        """The limiter for ``PERFECTWIKI_API_TOKEN``; pass ``storage`` (e.g. the Redis URI) to share it."""
        if settings.perfectwiki_api_token is None:
            raise ValueError("no PERFECTWIKI_API_TOKEN configured")
        return cls(
            settings.perfectwiki_api_token,
            per_second=settings.perfectwiki_rate_per_second,
            per_minute=settings.perfectwiki_rate_per_minute,
            storage=storage,
        )

    @property
    def limits(self) -> tuple[int, int]:
        """(per second, per minute) that live callers get after headroom."""
        return self._live[0].amount, self._live[1].amount

    @property
    def background_limits(self) -> tuple[int, int]:
        return self._background[0].amount, self._background[1].amount

    def queued(self) -> int:
        return self._waiting

    def _strategy_now(self) -> MovingWindowRateLimiter:
        if self._strategy is None:
            storage: Storage
            if isinstance(self._storage_arg, Storage):
                storage = self._storage_arg
            elif isinstance(self._storage_arg, str):
                uri = self._storage_arg
                if not uri.startswith("async+"):
                    uri = "async+" + uri
                # kbbot's optional Redis dependency is redis-py, not limits' default (coredis).
                options = {"implementation": "redispy"} if uri.startswith("async+redis") else {}
                built = storage_from_string(uri, **options)
                if not isinstance(built, Storage):  # pragma: no cover - async+ schemes give async storages
                    raise ValueError("rate limiter storage must be an async limits storage")
                storage = built
            else:
                loop = asyncio.get_running_loop()
                storage = _memory_storages.get(loop) or _memory_storages.setdefault(loop, MemoryStorage())
            self._strategy = MovingWindowRateLimiter(storage)
        return self._strategy

    async def acquire(self, *, background: bool = False) -> None:
        """Wait (asleep) until one request fits every window, then take it."""
        items = self._live + self._background if background else self._live
        lock = self._background_lock if background else self._live_lock
        strategy = self._strategy_now()
        self._waiting += 1
        try:
            async with lock:
                while True:
                    delay = self._hint_delay()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        continue
                    blocked = await self._try_take(strategy, items)
                    if blocked is None:
                        self._last_grant = time.monotonic()
                        return
                    stats = await strategy.get_window_stats(blocked, self._key)
                    # Past the reset by the margin (see module docstring), and at least a millisecond: the
                    # window check is "older than", not "as old as".
                    wait = max(stats.reset_time - time.time(), 0.0) + max(self.arrival_margin, 0.001)
                    await asyncio.sleep(wait)
        finally:
            self._waiting -= 1

    async def _try_take(
        self, strategy: MovingWindowRateLimiter, items: tuple[_Window, ...]
    ) -> _Window | None:
        """Take one slot in every window, or return the window that is full.

        Checked first and then hit one by one: a hit can still lose a race to another process (Redis), which
        costs a slot in a window already hit, never an extra request on the wire.
        """
        for item in items:
            if not await strategy.test(item, self._key):
                return item
        for item in items:
            if not await strategy.hit(item, self._key):
                return item
        return None

    def _hint_delay(self) -> float:
        now = time.monotonic()
        return max(self._not_before - now, self._last_grant + self._spacing - now, 0.0)

    def observe(self, left_second: int | None, left_minute: int | None) -> None:
        """Fold in the server's ``rateLimit`` from a response.

        Our own traffic never empties a server window (headroom), so 0 left means someone else shares the
        token: pause for a whole window. Nearly empty (at most ~10% left): space requests at the window's
        sustainable rate (1/10 s, 1 s) until the server reports room again.
        """
        if left_second is None and left_minute is None:
            return
        now = time.monotonic()
        spacing = 0.0
        for left, limit, window in (
            (left_second, self.per_second, self.second_window),
            (left_minute, self.per_minute, self.minute_window),
        ):
            if left is None:
                continue
            if left <= 0:
                if self._not_before < now + window:
                    log.info("rate limit window used up by the server's count; pausing %.1f s", window)
                self._not_before = max(self._not_before, now + window)
            elif left <= max(2, limit // 10):
                spacing = max(spacing, window / limit)
        if spacing and not self._spacing:
            log.info("rate limit nearly used up; spacing requests %.2f s apart", spacing)
        self._spacing = spacing

    async def aclose(self) -> None:
        """Nothing to release for memory storage; a Redis storage passed in is closed by its owner."""
