"""The per-token request budget (:class:`kbbot.core.ports.RateLimiter`).

Perfect Wiki allows 10 requests per second and 60 per minute *per token*, counted in sliding windows. Every
caller that uses the token (live questions, index sync, thread saving, and with Redis every replica) must draw
from one budget. One process counts in its own windows on a monotonic clock (a wall-clock step cannot stall
them); replicas share the windows in a ``limits`` storage (``async+redis://…``, moving windows) under a key
derived from a hash of the token (the token itself is never a key, a log line or a metric label). The class
is the same either way.

**When a request counts.** The server counts a request when it *arrives*, which is somewhere between our
sending it and our receiving the answer. Delays vary (a request that must first open a connection, or do a TLS
handshake, lands later than one reusing a connection; a busy event loop sends late), so counting at send time
alone lets a fast batch overtake a slow one and land inside the server's window of the previous batch: a 429.
So a request taken with :meth:`TokenRateLimiter.slot` occupies the budget from the moment it is sent until
one window *after its answer came back*. The server's arrival time lies between those two, so every request
the server counts in any of its windows is one we still count, whatever the delays: our own traffic cannot
draw a 429.

How that is stored: each request is counted in the shared ``limits`` windows when it is sent (so other
processes see it at once); the process that sent it also remembers it until one window after its answer and
counts it itself once its send has left the shared window. Across replicas this is count-at-send (a replica
cannot know when another's answers come back), within a process it is exact.

**Why one request of headroom per window (9/s and 59/min, not 10 and 60)**: our clock and the server's do not
tick at exactly the same rate, and the server's window edges are its own (it may round, or count a request a
little before it has read all of it). One spare slot absorbs that; it costs a tenth of the per-second rate.

**Why a second limit for background callers**: index sync can list and fetch hundreds of pages and would use
the whole budget; held to half of it, a live question always finds a free slot within a fraction of a window.
Live and background callers queue separately, so a waiting sync job never holds a question up.

**Why** :meth:`~TokenRateLimiter.observe`: another integration may share the token, which our counters cannot
see. The server's ``rateLimit`` numbers can: when a window is nearly used up we space requests out to the rate
the window sustains, and when it is used up we wait a whole window before the next request.

Waiting is a sleep (``asyncio.sleep``, or a test's simulated one) until the oldest counted request leaves the
window, or until an in-flight request comes back; never a busy loop.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, cast

from limits import RateLimitItem
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.limits import Granularity
from limits.storage import storage_from_string
from pydantic import SecretStr

from kbbot.core.ports import Priority
from kbbot.core.tasks import raise_if_cancelled

log = logging.getLogger(__name__)

#: Entries a window can record. We compare counts against our own limits (counting in-flight requests too),
#: so the storage must never refuse to record a request that has already been sent.
_RECORD_CAP = 100_000


class _Window(RateLimitItem):
    """A moving window of any length. ``limits`` has whole-second granularities only; tests shrink the windows
    (memory storage accepts fractions; Redis needs whole seconds, which the production 1 s / 60 s are)."""

    GRANULARITY = Granularity(1, "kbbot-window")
    __slots__ = ("label", "window")

    def __init__(self, window: float, namespace: str, label: str) -> None:
        super().__init__(_RECORD_CAP, 1, namespace)
        self.window = window
        self.label = label

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        # The base key has the amount and granularity but not the window length: name the window.
        return super().key_for(*identifiers, self.label)

    def get_expiry(self) -> int:
        # Typed int by ``limits``; a float works with memory storage (see class docstring).
        return int(self.window) if float(self.window).is_integer() else self.window  # type: ignore[return-value]


class _Windows(Protocol):
    """Where the moving windows are counted. ``now`` is their clock: every timestamp of a request is on it."""

    now: Callable[[], float]

    async def count(self, window: _Window, key: str) -> tuple[int, float]:
        """Requests counted in ``window`` now, and when the oldest of them leaves it."""
        ...

    async def take(self, window: _Window, key: str, limit: int) -> bool:
        """Count one more request if fewer than ``limit`` are counted (atomically); False when full."""
        ...

    async def aclose(self) -> None: ...


class _OwnWindows:
    """This process's windows, on its own clock (monotonic unless a test injects one): a wall-clock step
    (NTP, a VM resumed, an admin's ``date -s``) cannot make old requests look young and stall the budget."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.now = clock
        self._sent: dict[str, list[float]] = {}

    def _live(self, window: _Window, key: str) -> list[float]:
        edge = self.now() - window.window
        entries = self._sent[window.key_for(key)] = [t for t in self._sent.get(window.key_for(key), ()) if t > edge]
        return entries

    async def count(self, window: _Window, key: str) -> tuple[int, float]:
        entries = self._live(window, key)
        return len(entries), (entries[0] + window.window if entries else self.now())

    async def take(self, window: _Window, key: str, limit: int) -> bool:
        entries = self._live(window, key)
        if len(entries) >= limit:
            return False
        entries.append(self.now())
        return True

    async def aclose(self) -> None:
        return None


class _SharedWindows:
    """Windows in a ``limits`` storage, which other processes see too (Redis, for replicas on one token). Its
    timestamps are wall-clock time (``limits`` stamps entries with ``time.time()``), so ours are too."""

    now = staticmethod(time.time)

    def __init__(self, storage: Storage, *, owned: bool) -> None:
        self._strategy = MovingWindowRateLimiter(storage)
        self._owned = owned

    async def count(self, window: _Window, key: str) -> tuple[int, float]:
        stats = await self._strategy.get_window_stats(window, key)
        return _RECORD_CAP - stats.remaining, stats.reset_time

    async def take(self, window: _Window, key: str, limit: int) -> bool:
        storage = cast(MovingWindowSupport, self._strategy.storage)
        return await storage.acquire_entry(window.key_for(key), limit, window.get_expiry())

    async def aclose(self) -> None:
        # A storage passed in as an object is closed by its owner; one opened from a URI is ours.
        if self._owned:
            await close_storage(self._strategy.storage)


@dataclass(slots=True)
class _Sent:
    """One request of this process: sent at ``sent`` and answered at ``answered`` (None: still in flight),
    on the windows' clock."""

    sent: float
    answered: float | None = None


@dataclass(slots=True)
class _Budget:
    """One class of caller (live or background): its limits per window and this process's recent requests."""

    name: str
    limits: tuple[int, int]
    windows: tuple[_Window, _Window]
    requests: list[_Sent] = field(default_factory=list)

    def lingering(self, window: float, now: float) -> int:
        """Our requests that still occupy ``window`` although their send has left the shared count: sent
        longer than a window ago, but in flight or answered less than a window ago."""
        edge = now - window
        return sum(1 for r in self.requests if r.sent <= edge and (r.answered is None or r.answered > edge))

    def next_release(self, window: float, now: float) -> float | None:
        """Seconds until the first of those lingering requests stops occupying ``window`` (None: none will
        until an in-flight request is answered)."""
        edge = now - window
        ends = [
            r.answered + window - now for r in self.requests if r.answered is not None and r.answered > edge
        ]
        return min(ends) if ends else None

    def prune(self, longest_window: float, now: float) -> None:
        self.requests = [r for r in self.requests if r.answered is None or r.answered > now - longest_window]


def _nearly_used_up(limit: int) -> int:
    """Requests left in a server window at which :meth:`TokenRateLimiter.observe` starts spacing (~10 %)."""
    return max(2, limit // 10)


def token_key(token: SecretStr | str) -> str:
    """A stable, non-reversible identifier of the token for storage keys."""
    raw = token.get_secret_value() if isinstance(token, SecretStr) else token
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


class TokenRateLimiter:
    """One token's budget: ``per_second`` and ``per_minute`` (the server's limits), minus ``headroom``.

    ``storage`` is a ``limits`` async storage or its URI (``async+memory://``, ``async+redis://host:6379``;
    a plain ``redis://`` URI is accepted too), for a budget shared with other processes. None counts in this
    process on ``clock`` (monotonic): the composition root builds exactly one limiter per token, so nothing
    else in the process needs to see the counts. ``clock`` and ``sleep`` are injectable so tests run on
    simulated time; ``second_window``/``minute_window`` shrink the windows.
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
        namespace: str = "kbbot-pw",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second < 1 or per_minute < 1:
            raise ValueError("rate limits must be at least 1")
        if not 0 < background_share <= 1:
            raise ValueError("background_share must be in (0, 1]")
        self._key = token_key(token)
        self._storage_arg = storage
        self._windows: _Windows | None = None
        self._clock = clock
        self._sleep = sleep
        self.per_second = per_second
        self.per_minute = per_minute
        self.second_window = second_window
        self.minute_window = minute_window
        live = (max(1, per_second - headroom), max(1, per_minute - headroom))
        self._live = _Budget(
            "live",
            live,
            (_Window(second_window, namespace, "second"), _Window(minute_window, namespace, "minute")),
        )
        self._bg = _Budget(
            "background",
            (max(1, int(live[0] * background_share)), max(1, int(live[1] * background_share))),
            (
                _Window(second_window, namespace, "background-second"),
                _Window(minute_window, namespace, "background-minute"),
            ),
        )
        # One queue per class of caller (FIFO each), so a background caller waiting for its half never holds
        # up the live callers behind it. ``_take`` makes "check, then take" atomic between the two queues.
        self._live_queue = asyncio.Lock()
        self._bg_queue = asyncio.Lock()
        self._take = asyncio.Lock()
        self._returned = asyncio.Event()
        self._waiting = 0
        # observe() state, on ``clock``.
        self._not_before = 0.0
        self._spacing = 0.0
        self._last_grant = 0.0

    @property
    def limits(self) -> tuple[int, int]:
        """(per second, per minute) that live callers get after headroom."""
        return self._live.limits

    @property
    def background_limits(self) -> tuple[int, int]:
        return self._bg.limits

    def queued(self) -> int:
        return self._waiting

    def estimate_wait(self, position: int, ready: Sequence[float] = ()) -> float:
        """Seconds until the live caller at ``position`` in the queue has its answer. ``ready[i]``: seconds
        from now until the ``i+1``-th of those callers comes to the limiter (held up before it by the turns'
        pace); callers past the end of ``ready`` are here now.

        The windows are played forward from this process's own requests, each occupying the budget until one
        window after its answer (see the module docstring; one still in flight is taken to be answered in
        the usual time): the callers ahead take the slots as they free up, the server's hints (a pause, a
        spacing) hold grants back, and the asker's own request then takes as long as answers usually take
        (the 90th percentile of the recent ones). A backlog drains fast while the minute's budget lasts and
        at the per-minute rate after that; a flat per-minute rate promised 23 s where 2 s came true. With
        several replicas on one token (Redis) the others' requests are not seen: an estimate from below.
        """
        now, mono = self._windows_now().now(), self._clock()
        answer_time = self._answer_time()
        budget = self._live
        # Per window: when each counted request stops occupying it, ascending.
        ends = [
            sorted(
                max(r.sent, r.answered if r.answered is not None else max(now, r.sent + answer_time)) + w.window
                for r in budget.requests
            )
            for w in budget.windows
        ]
        at = now + max(self._not_before - mono, 0.0)
        last = now + (self._last_grant - mono) if self._last_grant else None
        spacing = self._spacing
        for i in range(max(1, position)):
            if i < len(ready):
                at = max(at, now + ready[i])
            if spacing and last is not None:
                at = max(at, last + spacing)
            moved = True
            while moved:  # the first moment every window has room (a later one may close another again)
                moved = False
                for occupied, limit in zip(ends, budget.limits, strict=True):
                    still = occupied[bisect.bisect_right(occupied, at) :]
                    if len(still) >= limit:
                        at, moved = still[len(still) - limit], True
            for occupied, window in zip(ends, budget.windows, strict=True):
                bisect.insort(occupied, at + answer_time + window.window)
            last = at
            # As the server's count nears its limit, observe() will space requests out (see there).
            spacing = 0.0
            for occupied, limit, length in zip(ends, self._server_limits, self._window_lengths, strict=True):
                if limit - (len(occupied) - bisect.bisect_right(occupied, at)) <= _nearly_used_up(limit):
                    spacing = max(spacing, length / limit)
        return at - now + answer_time

    @property
    def _server_limits(self) -> tuple[int, int]:
        return (self.per_second, self.per_minute)

    @property
    def _window_lengths(self) -> tuple[float, float]:
        return (self.second_window, self.minute_window)

    def _answer_time(self) -> float:
        """How long answers take, from send to answer: the 90th percentile of this process's recent ones."""
        took = sorted(r.answered - r.sent for r in self._live.requests if r.answered is not None)
        return took[min(len(took) - 1, int(len(took) * 0.9))] if took else 0.0

    # --- taking a slot --------------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        """``async with limiter.slot(priority): send the request`` — waits (asleep) until one request fits
        every window; the request occupies the budget from then until one window after the block ends (see
        module docstring)."""
        sent = await self._wait_and_take(priority is Priority.BACKGROUND)
        try:
            yield
        finally:
            sent.answered = max(self._windows_now().now(), sent.sent)
            self._returned.set()

    def in_flight(self) -> int:
        """Requests of this process sent and not yet answered."""
        return sum(1 for r in self._live.requests if r.answered is None)

    def _budgets(self, background: bool) -> tuple[_Budget, ...]:
        return (self._live, self._bg) if background else (self._live,)

    async def _wait_and_take(self, background: bool) -> _Sent:
        windows = self._windows_now()
        queue = self._bg_queue if background else self._live_queue
        budgets = self._budgets(background)
        self._waiting += 1
        try:
            async with queue:
                while True:
                    # A cancel lost inside a Redis call (Python 3.11's wait_for, see kbbot.core.tasks) must not
                    # leave a cancelled caller waiting on and then spending a billed slot for nobody.
                    raise_if_cancelled()
                    delay = self._hint_delay()
                    if delay > 0:
                        await self._sleep(delay)
                        continue
                    async with self._take:
                        wait = await self._room(windows, budgets)
                        raise_if_cancelled()  # neither take nor sleep on after a cancel lost in there
                        if wait is None:
                            sent = await self._take_now(windows, budgets)
                            if sent is not None:
                                self._give_back_if_cancelled(sent)
                                return sent
                            # Another process took the last slot between our look and our take: look again
                            # in a moment (not at once, so a window edge cannot make us spin).
                            wait = 0.005
                    await self._sleep_or_returned(wait)
        finally:
            self._waiting -= 1

    def _give_back_if_cancelled(self, sent: _Sent) -> None:
        """Raise CancelledError if the caller was cancelled while its slot was being taken (the cancel lost in
        the storage call): the request is never sent, so it is answered at once here and stops occupying this
        process's budget. Its entries in the shared windows stay until they leave them (``limits`` cannot
        remove one entry), which errs on the safe side like a refused take does."""
        try:
            raise_if_cancelled()
        except asyncio.CancelledError:
            sent.answered = sent.sent
            self._returned.set()
            raise

    async def _take_now(self, windows: _Windows, budgets: tuple[_Budget, ...]) -> _Sent | None:
        """Count the request in the shared windows (other processes see it from now) and locally; None when
        another process took the last slot since :meth:`_room` looked.

        Each window is taken with the storage's atomic check-and-add (a Lua script in Redis), limited to what
        our own lingering requests leave: with several replicas a plain "look, then record" lets two of them
        take the same last slot. A refusal after an earlier window accepted leaves one extra entry there,
        which only errs on the safe side (it occupies a slot until it expires).
        """
        # Stamped before the storage stamps its entries, so no moment has the request in neither count.
        sent = _Sent(windows.now())
        for budget in budgets:
            for window, limit in zip(budget.windows, budget.limits, strict=True):
                room = limit - budget.lingering(window.window, sent.sent)
                if room < 1 or not await windows.take(window, self._key, room):
                    return None
        for budget in budgets:  # a background request counts against the live budget too
            budget.requests.append(sent)
        self._last_grant = self._clock()
        return sent

    async def _room(self, windows: _Windows, budgets: tuple[_Budget, ...]) -> float | None:
        """None when one more request fits every window of ``budgets``; else how long until that may change
        (inf: not before an in-flight request is answered)."""
        longest: float | None = None
        for budget in budgets:
            now = windows.now()
            budget.prune(max(w.window for w in budget.windows), now)
            for window, limit in zip(budget.windows, budget.limits, strict=True):
                counted, reset_time = await windows.count(window, self._key)
                if counted + budget.lingering(window.window, now) < limit:
                    continue
                changes = [reset_time - now] if counted else []
                release = budget.next_release(window.window, now)
                if release is not None:
                    changes.append(release)
                # A millisecond past the change: the window check is "older than", not "as old as".
                wait = max(min(changes), 0.0) + 0.001 if changes else float("inf")
                longest = wait if longest is None else max(longest, wait)
        return longest

    async def _sleep_or_returned(self, wait: float) -> None:
        """Sleep ``wait`` seconds, or until an in-flight request is answered if that is sooner."""
        self._returned.clear()
        # "Until an answer" is still rechecked every window, as a guard against a missed wake-up.
        timeout = min(wait, max(self.second_window, 0.01))
        returned = asyncio.ensure_future(self._returned.wait())
        slept = asyncio.ensure_future(self._sleep(timeout))
        try:
            await asyncio.wait({returned, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            returned.cancel()
            slept.cancel()

    def _windows_now(self) -> _Windows:
        if self._windows is None:
            if isinstance(self._storage_arg, Storage):
                self._windows = _SharedWindows(self._storage_arg, owned=False)
            elif isinstance(self._storage_arg, str):
                self._windows = _SharedWindows(storage_from_uri(self._storage_arg), owned=True)
            else:
                self._windows = _OwnWindows(self._clock)
        return self._windows

    # --- server hints ---------------------------------------------------------------------------------------

    def _hint_delay(self) -> float:
        now = self._clock()
        return max(self._not_before - now, self._last_grant + self._spacing - now, 0.0)

    def observe(self, left_second: int | None, left_minute: int | None) -> None:
        """Fold in the server's ``rateLimit`` from a response.

        Our own traffic never empties a server window (headroom), so 0 left means someone else shares the
        token: pause for a whole window. Nearly empty (at most ~10% left): space requests at the window's
        sustainable rate (1/10 s, 1 s) until the server reports room again.
        """
        if left_second is None and left_minute is None:
            return
        now = self._clock()
        spacing = 0.0
        for left, limit, window in zip(
            (left_second, left_minute), self._server_limits, self._window_lengths, strict=True
        ):
            if left is None:
                continue
            if left <= 0:
                if self._not_before < now + window:
                    log.info("rate limit window used up by the server's count; pausing %.1f s", window)
                self._not_before = max(self._not_before, now + window)
            elif left <= _nearly_used_up(limit):
                spacing = max(spacing, window / limit)
        if spacing and not self._spacing:
            log.info("rate limit nearly used up; spacing requests %.2f s apart", spacing)
        self._spacing = spacing

    async def aclose(self) -> None:
        """Close the Redis connection of a storage this limiter opened from a URI (nothing else to release)."""
        windows, self._windows = self._windows, None
        if windows is not None:
            await windows.aclose()


def storage_from_uri(uri: str) -> Storage:
    """An async ``limits`` storage from ``async+memory://``, ``async+redis://…`` or a plain ``redis://`` URI."""
    if not uri.startswith("async+"):
        uri = "async+" + uri
    # kbbot's optional Redis dependency is redis-py, not limits' default (coredis).
    options = {"implementation": "redispy"} if uri.startswith("async+redis") else {}
    built = storage_from_string(uri, **options)
    if not isinstance(built, Storage):  # pragma: no cover - async+ schemes give async storages
        raise ValueError("rate limiter storage must be an async limits storage")
    return built


async def close_storage(storage: Storage) -> None:
    """Close the Redis connection of a storage from :func:`storage_from_uri` (``limits`` has no close for its
    async Redis storage: close the redis-py client it holds). Nothing to do for memory storage."""
    client = getattr(getattr(storage, "bridge", None), "storage", None)
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()
