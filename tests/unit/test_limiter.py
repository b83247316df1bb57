"""TokenRateLimiter: sliding windows with headroom, one budget per token, half for background, server hints.

In-process windows run on simulated time (``SimClock``: exact, independent of the machine's speed); shared
storage (``limits`` memory or Redis, wall-clock time) is checked by its effects: whoever must wait is held
asleep (a held ``SimClock`` as the limiter's sleep), so the test sees who waits, never how long.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from limits.aio.storage import MemoryStorage
from pydantic import SecretStr

from kbbot.core.ports import Priority, RateLimiter
from kbbot.store.limiter import TokenRateLimiter, token_key
from tests.cancels import HANG_GUARD_SECONDS, LOSES_CANCELS, LostSend
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.limiting import SimClock, settle, take

SECRET = "pw-secret-token-abcdef"
#: Float rounding of simulated times.
EPS = 1e-9


def max_in_window(times: list[float], window: float) -> int:
    """The most grants inside any half-open interval of length ``window`` (a sliding count)."""
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


async def grant_times(limiter: TokenRateLimiter, n: int, clock: SimClock, *, background: bool = False) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        async with limiter.slot(Priority.BACKGROUND if background else Priority.LIVE):
            times.append(clock())  # no await between the grant and this line

    await asyncio.gather(*(one() for _ in range(n)))
    return times


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


def limiter_on(clock: SimClock, **options: Any) -> TokenRateLimiter:
    """A limiter counting in its own windows on simulated time: exact, and independent of the machine's speed."""
    return TokenRateLimiter(SECRET, clock=clock, sleep=clock.sleep, **options)


def test_defaults_keep_one_request_of_headroom() -> None:
    limiter = TokenRateLimiter(SECRET)
    assert limiter.limits == (9, 59)
    assert limiter.background_limits == (4, 29)
    port: RateLimiter = limiter  # structurally the core's protocol (checked by mypy)
    assert port.queued() == 0


def test_bad_arguments_rejected() -> None:
    with pytest.raises(ValueError):
        TokenRateLimiter(SECRET, per_second=0)
    with pytest.raises(ValueError):
        TokenRateLimiter(SECRET, background_share=0)


async def test_second_window_slides_and_never_overfills(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=5, per_minute=1000, second_window=0.2)
    start = clock()
    times = await grant_times(limiter, 12, clock)
    # 4 per window (5 minus headroom): 12 grants need three windows, i.e. two full waits.
    assert max(times) - start >= 0.4
    assert max_in_window(times, 0.2) <= 4


async def test_requests_answered_at_once_count_from_send_time(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=4, per_minute=1000, second_window=0.2)
    start = clock()
    await asyncio.gather(*(take(limiter) for _ in range(7)))
    assert clock() - start >= 0.4  # 3 per window: 7 need three windows
    assert limiter.in_flight() == 0


async def test_minute_window_binds_too(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=100, per_minute=6, second_window=0.05, minute_window=0.3)
    start = clock()
    times = await grant_times(limiter, 10, clock)
    assert max(times) - start >= 0.3
    assert max_in_window(times, 0.3) <= 5


async def test_waiting_sleeps_instead_of_spinning(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=3, per_minute=1000, second_window=0.3)
    await grant_times(limiter, 6, clock)
    # 2 per window (3 minus headroom): 6 grants cross two window edges; each blocked caller sleeps the rest of
    # the window once, then finds its slot.
    assert len(clock.slept) == 2 and all(wait > 0.29 for wait in clock.slept)


async def test_a_wall_clock_step_back_does_not_stall_the_budget(
    clock: SimClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NTP or an admin sets the clock back 10 minutes while the window is full: the next request still waits
    only for the window (the windows run on the monotonic clock), not for ten minutes."""
    limiter = limiter_on(clock, per_second=3, per_minute=1000, second_window=1.0)
    await grant_times(limiter, 2, clock)  # the window's two live slots
    wall = time.time()
    monkeypatch.setattr(time, "time", lambda: wall - 600)
    start = clock()
    await take(limiter)
    assert 1.0 <= clock() - start <= 1.01 and sum(clock.slept) <= 1.01


async def test_slot_counts_a_request_until_its_answer_is_back(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=3, per_minute=1000, second_window=0.2)
    release = asyncio.Event()

    async def slow_request() -> None:
        async with limiter.slot(Priority.LIVE):
            await release.wait()

    slow = [asyncio.create_task(slow_request()) for _ in range(2)]
    await settle(lambda: limiter.in_flight() == 2)
    clock.now += 0.3  # longer than the window: counted at send time only, they would no longer count
    third = asyncio.create_task(take(limiter))
    await settle(lambda: limiter.queued() == 1)
    await settle(lambda: len(clock.slept) >= 3)  # it slept (three times) and still has no slot
    assert not third.done()  # both slots are still taken by requests in flight
    returned = clock()
    release.set()
    await asyncio.gather(*slow)
    await third
    # The answers came back at `returned`; they occupy the window until one window later.
    assert clock() - returned >= 0.2
    assert limiter.in_flight() == 0 and limiter.queued() == 0


async def test_slot_is_given_back_when_the_request_fails(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=3, per_minute=1000, second_window=0.1)
    with pytest.raises(RuntimeError):
        async with limiter.slot(Priority.LIVE):
            raise RuntimeError("network down")
    assert limiter.in_flight() == 0
    await grant_times(limiter, 1, clock)
    assert clock.slept == []


async def test_token_is_hashed_in_storage_keys() -> None:
    storage = MemoryStorage()
    limiter = TokenRateLimiter(SECRET, storage=storage)
    await take(limiter)
    await take(limiter, Priority.BACKGROUND)
    keys = list(storage.events)
    assert keys and all(SECRET not in key for key in keys)
    assert all(token_key(SECRET) in key for key in keys)
    assert token_key(SecretStr(SECRET)) == token_key(SECRET)
    assert SECRET not in repr(limiter.__dict__)


async def test_limiters_on_one_storage_share_the_tokens_budget() -> None:
    storage = MemoryStorage()  # what Redis is for replicas
    a = TokenRateLimiter(SECRET, per_second=4, per_minute=1000, second_window=30, storage=storage)
    b = TokenRateLimiter(SecretStr(SECRET), per_second=4, per_minute=1000, second_window=30, storage=storage)
    other = TokenRateLimiter("another-token", per_second=4, per_minute=1000, second_window=30, storage=storage)
    for _ in range(3):
        await take(a)
    await take(other)  # a different token has its own budget
    waiting = asyncio.create_task(take(b))  # same token: the window is full, b waits for it
    await settle(lambda: b.queued() == 1)
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_storage_uri_accepted() -> None:
    asleep = SimClock()
    asleep.hold()  # whoever must wait stays asleep: the test sees that it waits, not how long that takes
    limiter = TokenRateLimiter(
        SECRET, per_second=2, per_minute=100, second_window=30, storage="memory://", sleep=asleep.sleep
    )
    await take(limiter)
    second = asyncio.create_task(take(limiter))
    await settle(lambda: asleep.sleeping == 1)
    assert 0 < asleep.slept[0] <= 30  # 1 per window: the second waits for the first to leave it
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    await limiter.aclose()


async def test_background_gets_half_and_never_starves_live_callers(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=11, per_minute=1000, second_window=0.4)
    assert limiter.limits == (10, 999) and limiter.background_limits == (5, 499)
    background: list[float] = []

    async def sync_job() -> None:
        async with limiter.slot(Priority.BACKGROUND):
            background.append(clock())

    start = clock()
    jobs = [asyncio.create_task(sync_job()) for _ in range(12)]
    await settle(lambda: len(background) == 5 and limiter.queued() == 7)  # half the budget, the rest queued
    # Live questions arriving now go straight through, ahead of 7 queued background calls: the other half.
    for _ in range(5):
        await take(limiter)
    assert clock() - start < 0.4
    await asyncio.gather(*jobs)
    assert max_in_window(background, 0.4) <= 5
    assert limiter.queued() == 0


async def test_queued_counts_waiters_and_cancelled_waiters_leave(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=2, per_minute=1000, second_window=5)
    await take(limiter)
    waiters = [asyncio.create_task(take(limiter)) for _ in range(3)]
    await settle(lambda: limiter.queued() == 3)
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert limiter.queued() == 0


async def test_observe_zero_left_pauses_a_whole_window(clock: SimClock) -> None:
    limiter = limiter_on(clock, second_window=0.3, minute_window=0.6)
    await take(limiter)
    limiter.observe(0, 40)
    start = clock()
    await take(limiter)
    assert clock() - start >= 0.3 - EPS
    limiter.observe(5, 0)
    start = clock()
    await take(limiter)
    assert clock() - start >= 0.6 - EPS


async def test_observe_low_budget_spaces_requests_then_recovers(clock: SimClock) -> None:
    limiter = limiter_on(clock, per_second=10, per_minute=60, second_window=0.5, minute_window=600)
    limiter.observe(9, 3)  # minute nearly gone (someone else uses the token): 600 s / 60 = 10 s apart
    await take(limiter)
    assert limiter._hint_delay() > 9
    limiter.observe(1, 50)  # second nearly gone: 0.5 s / 10 = 0.05 s apart
    times = sorted(await grant_times(limiter, 4, clock))
    assert all(b - a >= 0.05 - EPS for a, b in itertools.pairwise(times))
    limiter.observe(8, 50)  # room again: no more spacing
    start = clock()
    await grant_times(limiter, 3, clock)
    assert clock() == start
    limiter.observe(None, None)  # responses without rateLimit change nothing
    assert limiter._hint_delay() == 0


async def test_own_full_speed_traffic_does_not_trigger_a_pause() -> None:
    # The server never reports 0 for our own traffic (headroom), so observe() only spaces, never pauses.
    limiter = TokenRateLimiter(SECRET, second_window=0.2, minute_window=600)
    limiter.observe(1, 59)
    assert limiter._hint_delay() <= 0.2 / 10


# --- Redis storage: the same class shares the budget across processes ------------------------------


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A real redis-server (tests/fakes/redis_server.py), emptied for this test."""
    return redis_server.url


@pytest.mark.redis
async def test_redis_storage_shares_budget_between_limiters(redis_url: str) -> None:
    asleep = SimClock()
    asleep.hold()
    a = TokenRateLimiter(SECRET, per_second=1000, per_minute=3, storage=redis_url)
    b = TokenRateLimiter(SECRET, per_second=1000, per_minute=3, storage=redis_url, sleep=asleep.sleep)
    try:
        await take(a)
        await take(b)
        third = asyncio.create_task(take(b))  # a third would exceed 2 a minute (3 minus headroom)
        await settle_io(lambda: asleep.sleeping == 1)
        assert 0 < asleep.slept[0] <= 60 and not third.done()
        third.cancel()
        await asyncio.gather(third, return_exceptions=True)
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.redis
@pytest.mark.parametrize(("per_second", "per_minute", "budget"), [(10, 1000, 9), (1000, 12, 11)])
async def test_rate_limit_both_windows_are_one_budget_for_all_replicas(
    redis_url: str, per_second: int, per_minute: int, budget: int
) -> None:
    """Three replicas' limiters (own Redis connections, own locks), 45 eager callers: 9 per second (10 minus
    headroom), or 11 per minute, in total. Each replica looking, then taking, would let them share a last slot.
    Time stands still for the callers who must wait (each replica's first in line is asleep): then nobody
    else can be let in, and exactly the budget was."""
    clocks = [SimClock() for _ in range(3)]
    for clock in clocks:
        clock.hold()
    limiters = [
        TokenRateLimiter(SECRET, per_second=per_second, per_minute=per_minute, storage=redis_url, sleep=c.sleep)
        for c in clocks
    ]
    try:
        granted: list[int] = []

        async def call(i: int) -> None:
            await take(limiters[i % 3])
            granted.append(i)

        tasks = [asyncio.create_task(call(i)) for i in range(45)]
        await settle_io(lambda: len(granted) >= budget and all(c.sleeping == 1 for c in clocks))
        assert len(granted) == budget
        assert sum(limiter.queued() for limiter in limiters) == 45 - budget
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for limiter in limiters:
            await limiter.aclose()


async def settle_io(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Like ``settle``, for work that waits on Redis round trips (loop turns alone do not cover those)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def test_wait_estimate_drains_the_minutes_budget_fast_then_at_the_minute_rate() -> None:
    # An idle token (9/s, 59/min after headroom): a second's worth goes now, the next second's after it; as
    # the server's counts near their limits, observe() spaces requests (0.1 s in a second, 1 s in the
    # minute); the 60th waits for the first of the minute's 59 to leave the minute window.
    limiter = TokenRateLimiter(SECRET, storage=MemoryStorage())
    assert [limiter.estimate_wait(p) for p in (0, 1, 8)] == [0.0, 0.0, 0.0]
    assert limiter.estimate_wait(9) == pytest.approx(0.1)
    assert limiter.estimate_wait(10) == pytest.approx(1.0)
    assert limiter.estimate_wait(56) - limiter.estimate_wait(55) == pytest.approx(1.0)
    assert limiter.estimate_wait(60) == pytest.approx(60.0)


async def test_wait_estimate_counts_what_was_sent_and_how_long_answers_take() -> None:
    limiter = TokenRateLimiter(SECRET, per_second=3, per_minute=4, headroom=1, storage=MemoryStorage())
    idle = limiter.estimate_wait(3)
    for _ in range(2):
        await take(limiter)  # answered at once: each occupies one window after its send
    # 2 per second / 3 per minute: both slots of this second are used (free again one second after they
    # were sent), one of the minute's is left; the next goes when the first send leaves the minute window.
    # (Upper bounds: the time this test takes only brings those moments closer; the estimate adds the time
    # answers take, here the moment between a slot's grant and its end.)
    assert 0 <= limiter.estimate_wait(1) <= 1.5
    assert 50 < limiter.estimate_wait(2) <= 60.5
    assert limiter.estimate_wait(2) > idle


@pytest.mark.parametrize(
    ("lost_in", "budget_full"),
    [("count", False), ("count", True), ("take", False)],
    ids=["looking-with-room", "looking-while-full", "taking"],
)
async def test_a_caller_whose_cancel_was_lost_in_a_storage_call_spends_no_slot(
    clock: SimClock, monkeypatch: pytest.MonkeyPatch, lost_in: str, budget_full: bool
) -> None:
    """The caller is cancelled (shutdown, an asker who gave up) just as a storage command's send completes: on
    3.11 redis-py's wait_for loses that cancel (tests/cancels.py). The caller must stop there, not wait on and
    then send a billed request for nobody; a slot taken in that very command stops occupying the budget."""
    limiter = limiter_on(clock, per_second=3, per_minute=1000, second_window=5)  # 2 live slots per window
    if budget_full:
        await take(limiter)
        await take(limiter)
    windows = limiter._windows_now()
    real, send = getattr(windows, lost_in), LostSend()

    async def through_wait_for(*args: Any) -> Any:  # the command's send, awaited as redis-py awaits it
        await send()
        return await real(*args)

    monkeypatch.setattr(windows, lost_in, through_wait_for)
    sent: list[str] = []

    async def asker() -> None:
        async with limiter.slot(Priority.LIVE):
            sent.append("the request")

    task = asyncio.create_task(asker())
    await send.inside.wait()
    send.complete()  # the send completes, and the cancel lands in the same step
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=HANG_GUARD_SECONDS)
    assert done and task.cancelled()
    assert sent == [] and clock.slept == []  # nothing sent, and no waiting on for a slot
    assert limiter.in_flight() == 0 and limiter.queued() == 0
    monkeypatch.undo()
    if not budget_full:
        # The rest of the window's budget is there at once; a slot the cancelled caller took in the storage
        # stays counted there until it leaves the window (``limits`` cannot remove one entry), then all is free.
        free = 1 if lost_in == "take" and LOSES_CANCELS else 2
        await grant_times(limiter, free, clock)
        assert clock.slept == []
        clock.advance(5.001)
        await grant_times(limiter, 2, clock)
        assert clock.slept == []
