"""Serve an aiohttp application on 127.0.0.1 (random port) from an event loop in its own daemon thread.

Every fake server (Perfect Wiki, MatHub, Slack, Discord) needs the same lifecycle so it works from sync tests,
async tests (whose own loop must not be blocked by the server) and CLI subprocesses alike. Each fake *has* a
:class:`BackgroundServer` and keeps its own public ``start``/``stop``/``url``/context-manager surface::

    self._server = BackgroundServer(self._build_app, name="fake-thing", on_shutdown=self._close_sockets)
    ...
    def start(self) -> FakeThing:
        self._server.start()
        return self
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

#: How long start/stop wait for the server thread before giving up (a healthy fake needs milliseconds).
_WAIT = 10.0


class BackgroundServer:
    """One aiohttp app on ``127.0.0.1:<random port>`` served by a private loop in a daemon thread.

    ``build_app`` runs on the server's loop (so it may create loop-bound objects such as ``asyncio.Event``).
    ``on_shutdown`` runs on the server's loop before the runner is cleaned up: fakes close their websockets
    or wake their sleeping handlers there, so ``stop()`` does not wait for in-flight requests to time out.
    """

    def __init__(
        self,
        build_app: Callable[[], web.Application],
        *,
        name: str,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        shutdown_timeout: float = 0.5,
    ) -> None:
        self._build_app = build_app
        self._name = name
        self._on_shutdown = on_shutdown
        self._shutdown_timeout = shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's loop (only while running)."""
        if self._loop is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._loop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        """Run ``coro`` on the server's loop from any other thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        if not ready.wait(_WAIT):
            raise RuntimeError(f"{self._name} did not start")
        if errors:
            self._loop = self._thread = None
            raise errors[0]

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self._build_app(), shutdown_timeout=self._shutdown_timeout, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        if self._on_shutdown is not None:
            await self._on_shutdown()
        assert self._runner is not None
        await self._runner.cleanup()

    def stop(self) -> None:
        """Close connections, clean up the runner and end the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_WAIT)
        self._loop = self._thread = None
