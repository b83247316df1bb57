"""Per-asker (and per-channel) budgets of billed AI answers (:class:`kbbot.core.ports.AiBudget`), on ``limits``.

Every Perfect Wiki AI query is billed against a monthly quota, so one person (or one busy channel) must not be
able to spend it (only the calls made on their behalf count: :class:`kbbot.core.ask.AskService` spends just
before it sends one): ``AI_USER_LIMIT`` (e.g. ``5/minute;40/day``) caps each asker, ``AI_CHANNEL_DAILY_LIMIT`` each
channel. Moving windows in a ``limits`` storage: process memory by default, Redis when replicas share a token
(then every replica counts against the same windows). Keys carry a hash of the asker/channel id, never the id.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from limits import RateLimitItem, RateLimitItemPerDay, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from kbbot.core.ports import BudgetRefusal
from kbbot.store.limiter import close_storage, storage_from_uri

_UNITS = {"second": "a second", "minute": "a minute", "hour": "an hour", "day": "a day", "month": "a month"}


def describe(item: RateLimitItem) -> str:
    """``5 a minute``, ``40 a day``, ``10 every 2 hours``."""
    unit = item.GRANULARITY.name
    if item.multiples == 1:
        return f"{item.amount} {_UNITS.get(unit, 'a ' + unit)}"
    return f"{item.amount} every {item.multiples} {unit}s"


def parse_limit(text: str) -> tuple[RateLimitItem, ...]:
    """``"5/minute;40/day"`` → limits; ``"off"``/``"none"``/``"0"`` → none. Raises ValueError when unreadable."""
    if text.strip().lower() in ("off", "none", "0", "unlimited"):
        return ()
    return tuple(parse_many(text))


def _hashed(kind: str, value: str) -> str:
    return kind + ":" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:20]


class LimitsAiBudget:
    """``user_limits`` apply to each asker, ``channel_per_day`` (None: unlimited) to each channel. ``storage`` is a
    ``limits`` storage (closed by its owner), a URI (opened and closed here), or None for process memory."""

    def __init__(
        self,
        *,
        user_limits: tuple[RateLimitItem, ...],
        channel_per_day: int | None = None,
        storage: Storage | str | None = None,
        namespace: str = "kbbot-ai",
    ) -> None:
        self._user = tuple(_namespaced(item, namespace) for item in user_limits)
        self._channel = (_namespaced(RateLimitItemPerDay(channel_per_day), namespace),) if channel_per_day else ()
        self._storage_arg = storage
        self._storage: Storage | None = None
        self._limiter: MovingWindowRateLimiter | None = None
        # "Test every window, then count in every window" must not interleave between two of this process's
        # spends (across replicas, hit() itself refuses past the limit).
        self._lock = asyncio.Lock()

    def _strategy(self) -> MovingWindowRateLimiter:
        if self._limiter is None:
            arg = self._storage_arg
            self._storage = storage_from_uri(arg) if isinstance(arg, str) else arg or MemoryStorage()
            self._limiter = MovingWindowRateLimiter(self._storage)
        return self._limiter

    async def check(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
        checks = self._checks(asker, channel)
        return await self._refusal(checks) if checks else None

    async def spend(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
        checks = self._checks(asker, channel)
        if not checks:
            return None
        async with self._lock:
            if (refusal := await self._refusal(checks)) is not None:
                return refusal
            limiter = self._strategy()
            for scope, item, key in checks:
                # hit() counts only while the window has room, in one atomic step (a Lua script in Redis): two
                # replicas spending the last one at once never both pass. The loser is refused; a window it
                # was already counted in keeps that count (errs on the side of the quota, only in that race).
                if not await limiter.hit(item, key):
                    return await self._refused(scope, item, key)
        return None

    def _checks(self, asker: str | None, channel: str | None) -> list[tuple[str, RateLimitItem, str]]:
        checks = [("user", item, _hashed("user", asker)) for item in self._user] if asker else []
        if channel:
            checks += [("channel", item, _hashed("channel", channel)) for item in self._channel]
        return checks

    async def _refusal(self, checks: list[tuple[str, RateLimitItem, str]]) -> BudgetRefusal | None:
        limiter = self._strategy()
        for scope, item, key in checks:
            if not await limiter.test(item, key):
                return await self._refused(scope, item, key)
        return None

    async def _refused(self, scope: str, item: RateLimitItem, key: str) -> BudgetRefusal:
        stats = await self._strategy().get_window_stats(item, key)
        return BudgetRefusal(scope, describe(item), max(1.0, stats.reset_time - time.time()))

    async def aclose(self) -> None:
        storage, self._storage, self._limiter = self._storage, None, None
        if storage is not None and isinstance(self._storage_arg, str):
            await close_storage(storage)


def _namespaced(item: RateLimitItem, namespace: str) -> RateLimitItem:
    return type(item)(item.amount, item.multiples, namespace)
