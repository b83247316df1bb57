"""Graceful shutdown: on SIGTERM/SIGINT stop taking new work, let in-flight answers and saves finish
(bounded), then close everything (flush the outbox, close stores and clients).

Adapters run each handled event through a :class:`TaskTracker`, so shutdown knows what is in flight.
Orchestrators (Kubernetes, systemd, docker) send SIGTERM and wait a grace period before SIGKILL;
``grace_seconds`` bounds the whole stop and must be shorter than that: 20 s by default, against 30 s in
deploy/ (docker-compose ``stop_grace_period``, k8s ``terminationGracePeriodSeconds`` with a 5 s preStop pause,
systemd ``TimeoutStopSec``). Askers whose questions cannot be answered in time are told to ask again (see
``AskService.close``), so nobody waits for an answer that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from kbbot.core.tasks import cancel_and_wait
from kbbot.errors import ShuttingDown

T = TypeVar("T")
log = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[Any]]
#: Marks one adapter's piece of work as in flight for the duration of a block (``TaskTracker.work``).
InFlight = Callable[[], AbstractAsyncContextManager[None]]

#: SIGTERM → exit within this many seconds, everything included (``SHUTDOWN_GRACE_SECONDS``). Docker compose,
#: Kubernetes and systemd kill at 30 s (deploy/), which leaves room for k8s's 5 s preStop pause.
DEFAULT_GRACE_SECONDS = 20.0
#: Of the grace, what closing (last outbox pass, HTTP server, stores, connections) may take after the drain.
CLOSE_RESERVE_SECONDS = 5.0


class TaskTracker:
    """Knows every piece of work in flight; refuses new work once closed."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def in_flight(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a tracked task (e.g. the answer after a Slack ack). Raises ShuttingDown."""
        if self._closed:
            coro.close()  # never started: close it so Python does not warn "never awaited"
            raise ShuttingDown()
        task = asyncio.create_task(coro, name=name)
        self._add(task)
        return task

    @contextlib.asynccontextmanager
    async def work(self, *, refuse_when_closed: bool = True) -> AsyncIterator[None]:
        """Track the current task for the duration of the block (for work done inline, not spawned).

        Raises ShuttingDown once closed, unless ``refuse_when_closed`` is False: for work the platform has
        already handed over (a Slack event acked with 200 is never redelivered), which must still reach its
        asker, if only with "restarting" (the question pipeline refuses it then)."""
        if self._closed and refuse_when_closed:
            raise ShuttingDown()
        task = asyncio.current_task()
        if task is None or task in self._tasks:
            yield
            return
        self._add(task)
        try:
            yield
        finally:
            self._discard(task)

    def _add(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._discard)

    def _discard(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    def close(self) -> None:
        """Stop accepting work; what is running keeps running."""
        self._closed = True

    async def idle(self, timeout_seconds: float) -> None:
        """Wait up to ``timeout_seconds`` for the work in flight now to finish, refusing and cancelling nothing
        (an adapter's own drain; tests waiting for the work to be done instead of sleeping)."""
        current = asyncio.current_task()
        pending = [t for t in self._tasks if not t.done() and t is not current]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, timeout_seconds))

    async def drain(self, timeout_seconds: float) -> int:
        """Wait up to ``timeout_seconds`` for in-flight work, then cancel the rest; returns how many."""
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=max(0.0, timeout_seconds))
        current = asyncio.current_task()
        left = [t for t in self._tasks if not t.done() and t is not current]
        if left:
            log.warning("shutdown: cancelled %d unfinished task(s) after %.1f s", len(left), timeout_seconds)
            await asyncio.gather(*(cancel_and_wait(task) for task in left), return_exceptions=True)
        return len(left)


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    cancelled: int
    seconds: float
    failed_steps: tuple[str, ...]


class GracefulShutdown:
    """Turns SIGTERM/SIGINT into an orderly stop.

    Usage in the startup function::

        shutdown = GracefulShutdown(tracker, grace_seconds=20)
        shutdown.install()                      # signal handlers on the running loop
        shutdown.on_stop_intake(server.stop)    # e.g. stop accepting Slack HTTP / socket events
        shutdown.on_close(saver.flush_outbox)   # then closers, in reverse order of registration
        shutdown.on_close(stores.aclose)
        await shutdown.wait()
        await shutdown.run()

    A second signal while draining stops waiting for in-flight work.
    """

    def __init__(
        self,
        tracker: TaskTracker,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        close_reserve_seconds: float = CLOSE_RESERVE_SECONDS,
        step_timeout_seconds: float = 5.0,
    ) -> None:
        self.tracker = tracker
        self._grace = grace_seconds
        self._close_reserve = min(close_reserve_seconds, grace_seconds / 2)
        self._step_timeout = step_timeout_seconds
        self._requested = asyncio.Event()
        self._forced = asyncio.Event()
        self._stop_intake: list[tuple[str, Callback, float | None]] = []
        self._closers: list[tuple[str, Callback]] = []
        self._installed: list[signal.Signals] = []

    @property
    def draining(self) -> bool:
        """True once a stop was requested: ``/readyz`` turns 503 so the load balancer stops sending work."""
        return self._requested.is_set()

    def on_stop_intake(
        self, callback: Callback, name: str | None = None, *, timeout_seconds: float | None = None
    ) -> None:
        """``timeout_seconds`` (default: the step timeout) lets a step that drains in-flight work, bounded on
        its own, take the time it needs."""
        self._stop_intake.append((name or _name(callback), callback, timeout_seconds))

    def on_close(self, callback: Callback, name: str | None = None) -> None:
        self._closers.append((name or _name(callback), callback))

    def install(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        loop = asyncio.get_running_loop()
        for sig in signals:
            try:
                loop.add_signal_handler(sig, self.request, sig)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                continue
            self._installed.append(sig)

    def request(self, sig: signal.Signals | None = None) -> None:
        if self._requested.is_set():
            log.warning("second stop signal: no longer waiting for in-flight work")
            self._forced.set()
            return
        log.info("stopping (%s): no new work; finishing what is in flight", sig.name if sig else "requested")
        self.tracker.close()
        self._requested.set()

    async def wait(self) -> None:
        await self._requested.wait()

    @property
    def answer_seconds(self) -> float:
        """How long after the stop request work in flight may go on: the grace minus what closing needs."""
        return self._grace - self._close_reserve

    async def run(self) -> ShutdownReport:
        """Stop intake, drain once (until ``answer_seconds``, or a second signal), then close; the whole stop
        stays within ``grace_seconds``."""
        started = time.monotonic()
        deadline = started + self._grace
        if not self._requested.is_set():
            self.request()
        failed: list[str] = []
        for name, callback, timeout in self._stop_intake:
            if not await self._step(name, callback, timeout, deadline=deadline - self._close_reserve):
                failed.append(name)
        # One drain, one deadline: whatever stopping intake took is off the drain's time.
        remaining = self.answer_seconds - (time.monotonic() - started)
        drain = asyncio.create_task(self.tracker.drain(remaining))
        forced = asyncio.create_task(self._forced.wait())
        await asyncio.wait({drain, forced}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            drain.cancel()
            cancelled = await self.tracker.drain(0)
        else:
            cancelled = drain.result()
        forced.cancel()
        for name, callback in reversed(self._closers):
            if not await self._step(name, callback, deadline=deadline):
                failed.append(name)
        elapsed = time.monotonic() - started
        log.info("stopped in %.1f s (%d task(s) cancelled)", elapsed, cancelled)
        return ShutdownReport(cancelled=cancelled, seconds=elapsed, failed_steps=tuple(failed))

    async def _step(
        self, name: str, callback: Callback, limit_seconds: float | None = None, *, deadline: float
    ) -> bool:
        try:
            limit = self._step_timeout if limit_seconds is None else limit_seconds
            # Never past the deadline, but a step always gets a moment (closing a store takes milliseconds).
            limit = min(limit, max(0.5, deadline - time.monotonic()))
            await asyncio.wait_for(callback(), timeout=limit)
        except Exception:
            log.warning("shutdown step %s failed", name, exc_info=True)
            return False
        return True


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)
