"""``/healthz``, ``/readyz`` and ``/metrics`` on aiohttp, to mount next to the Slack HTTP events endpoint.

- ``/healthz`` (liveness): the event loop answers. Never touches the network, so a slow wiki never gets the
  pod killed.
- ``/readyz`` (readiness): the knowledgebase is reachable and the token valid (``kb.info()``), and Redis
  answers when configured; 503 while shutting down so the load balancer drains the replica. Each
  knowledgebase's result is cached (longer when healthy), so frequent probes do not spend the per-token API
  budget. With several knowledgebases (KBBOT_CONFIG) the body names each one; one that does not answer is
  ``degraded`` and the bot stays ready while another one answers (every replica sees the same wiki, as the
  same Redis: a 503 would pull a bot that still serves the other knowledgebases out of the load balancer).
- ``/metrics``: Prometheus exposition of :class:`~kbbot.ops.metrics.Metrics`, after refreshing shared state.

Bodies never carry exception text from libraries (which may echo URLs or headers): only our own words and the
user-safe messages of :mod:`kbbot.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kbbot.errors import ConfigError, KbbotError, Unauthorized
from kbbot.ops.logging import request_context
from kbbot.ops.metrics import Metrics, Refresher

if TYPE_CHECKING:
    from kbbot.core.ports import KnowledgeBase
    from kbbot.store.factory import Stores

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)
    #: Each knowledgebase's state by name (several knowledgebases only): ``ok`` or ``degraded: why``.
    knowledgebases: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ready": self.ready, "checks": self.checks}
        if self.knowledgebases is not None:
            body["knowledgebases"] = self.knowledgebases
        return body


class _CachedProbe:
    """One knowledgebase's ``info`` outcome, reused for a while; concurrent probes share one call."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.result: tuple[bool, str] | None = None
        self.expires = 0.0
        self.lock = asyncio.Lock()


class ReadinessCheck:
    """Answers "can this replica serve questions?" without spending the API budget on every probe.

    ``kb_info`` is ``kb.info`` (one cheap authenticated call), or a mapping of knowledgebase name to its
    ``info`` when several are configured; each outcome is reused for ``ok_cache_seconds`` when healthy and
    ``fail_cache_seconds`` when not, concurrent probes share one call, and the knowledgebases are probed at
    once. Several: ready while at least one answers, the others reported ``degraded: …``. ``redis_ping``
    costs nothing upstream and is checked on every probe.
    """

    def __init__(
        self,
        kb_info: Probe | Mapping[str, Probe],
        *,
        redis_ping: Probe | None = None,
        draining: Callable[[], bool] = lambda: False,
        timeout_seconds: float = 3.0,
        ok_cache_seconds: float = 60.0,
        fail_cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._named = isinstance(kb_info, Mapping)
        probes = kb_info if isinstance(kb_info, Mapping) else {"knowledgebase": kb_info}
        if not probes:
            raise ValueError("ReadinessCheck needs at least one knowledgebase")
        self._kbs = {name: _CachedProbe(probe) for name, probe in probes.items()}
        self._redis_ping = redis_ping
        self._draining = draining
        self._timeout = timeout_seconds
        self._ok_ttl = ok_cache_seconds
        self._fail_ttl = fail_cache_seconds
        self._clock = clock
        self._states: dict[str, Callable[[], str | None]] = {}

    def add_state(self, name: str, problem: Callable[[], str | None]) -> None:
        """Another part that must be up, e.g. ``slack``: ``problem()`` says what is wrong (None when fine). It is
        called on every probe, so it reads state and never calls the network."""
        self._states[name] = problem

    async def check(self) -> Readiness:
        checks: dict[str, str] = {}
        ok = True
        if self._draining():
            ok = False
            checks["shutdown"] = "draining"
        results = dict(zip(self._kbs, await asyncio.gather(*map(self._knowledgebase, self._kbs.values())), strict=True))
        kb_ok, checks["knowledgebase"], per_kb = self._summary(results)
        ok = ok and kb_ok
        if self._redis_ping is not None:
            redis_ok, redis_text = await self._run(self._redis_ping, "Redis")
            checks["redis"] = redis_text
            ok = ok and redis_ok
        for name, problem in self._states.items():
            text = problem()
            checks[name] = text or "ok"
            ok = ok and text is None
        return Readiness(ready=ok, checks=checks, knowledgebases=per_kb)

    def _summary(self, results: dict[str, tuple[bool, str]]) -> tuple[bool, str, dict[str, str] | None]:
        """(ready, the ``knowledgebase`` check, each one's state when several are configured)."""
        if not self._named:
            return (*results["knowledgebase"], None)
        down = [name for name, (up, _) in results.items() if not up]
        if len(down) == len(results):
            # Nothing can be answered: not degraded but down, as the one knowledgebase of the environment.
            return False, "no knowledgebase answers", {name: text for name, (_, text) in results.items()}
        states = {name: text if up else f"degraded: {text}" for name, (up, text) in results.items()}
        summary = f"degraded: {', '.join(down)} not answering ({len(down)} of {len(results)})" if down else "ok"
        return True, summary, states

    async def _knowledgebase(self, cached: _CachedProbe) -> tuple[bool, str]:
        async with cached.lock:
            if cached.result is not None and self._clock() < cached.expires:
                return cached.result
            result = await self._run(cached.probe, "the knowledgebase")
            cached.result = result
            cached.expires = self._clock() + (self._ok_ttl if result[0] else self._fail_ttl)
            return result

    async def _run(self, probe: Probe, what: str) -> tuple[bool, str]:
        try:
            outcome = await asyncio.wait_for(probe(), timeout=self._timeout)
        except TimeoutError:
            return False, f"{what} did not answer within {self._timeout:g} s"
        except Unauthorized:
            return False, "the API token was rejected (401): regenerate it and update the secret"
        except KbbotError as exc:
            return False, str(exc)
        except Exception as exc:
            # Library exceptions may quote URLs or headers: name the type only.
            return False, f"{what} is unreachable ({type(exc).__name__})"
        # A probe may describe a state that still serves: "degraded: …" (Redis down, per-process state).
        return True, outcome if isinstance(outcome, str) else "ok"


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every HTTP request (e.g. a Slack event) gets a request id for its log lines: the caller's
    ``X-Request-Id`` when sane, else a fresh one. Tasks started while handling it (Bolt runs listeners as
    tasks after the ack) inherit the id, so the whole answer is traceable."""
    with request_context(request.headers.get("X-Request-Id")):
        return await handler(request)


def add_healthz(app: web.Application) -> None:
    """``/healthz`` alone: the liveness probe, on every port the process serves."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)


def add_ops_routes(
    app: web.Application,
    *,
    readiness: ReadinessCheck,
    metrics: Metrics | None = None,
    refreshers: Sequence[Refresher] = (),
    refresh_timeout_seconds: float = 2.0,
) -> None:
    """Mount ``/healthz``, ``/readyz`` and ``/metrics`` on ``app`` (the same app that serves Slack events)."""

    async def readyz(_: web.Request) -> web.Response:
        result = await readiness.check()
        return web.json_response(result.to_json(), status=200 if result.ready else 503)

    async def metrics_handler(request: web.Request) -> web.Response:
        if metrics is None:
            raise web.HTTPNotFound()
        for refresh in refreshers:
            try:
                await asyncio.wait_for(refresh(metrics), timeout=refresh_timeout_seconds)
            except Exception:
                log.warning("a metrics refresher failed; serving the last values", exc_info=True)
        body, content_type = metrics.render()
        # aiohttp wants the charset separate from the media type.
        media_type, _, params = content_type.partition(";")
        charset = params.split("charset=")[-1].strip() if "charset=" in params else None
        return web.Response(body=body, content_type=media_type.strip(), charset=charset)

    add_healthz(app)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)


#: A client gets this long to send its request line and headers (aiohttp's keep-alive timer also runs from the
#: moment a connection opens, so it doubles as the header deadline); Slack sends a whole request at once.
HEADER_TIMEOUT_SECONDS = 10.0
#: Connections served at once; more are answered 503 and closed, so slow or idle clients cannot exhaust the
#: process's file descriptors (the usual limit is 1024) and starve Slack's real requests.
MAX_CONNECTIONS = 256

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"


class _Busy(asyncio.Protocol):
    """What a connection past the bound gets: a 503 and the door shut, without reading a byte."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class _BoundedSite(web.BaseSite):
    """A TCP site that hands at most ``max_connections`` connections to aiohttp at a time (approximately: the
    count is aiohttp's own list of open connections, which a connection joins as it is accepted)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, max_connections: int) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._max = max_connections

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.Protocol:
            return server() if len(server.connections) < self._max else _Busy()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, reuse_address=True
        )


class HttpServer:
    """Serves an aiohttp app on ``host:port`` (port 0 picks a free one, see :attr:`port`), with a deadline for
    request headers and a bound on concurrent connections (the Slack route adds one for the body)."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        shutdown_timeout_seconds: float = 5.0,
        header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        name: str = "HTTP",
    ):
        self.app = app
        self._host = host
        self._port = port
        self._max_connections = max_connections
        self._name = name
        # lingering_time=0: a request answered without reading its body (refused unsigned, too slow, too big) is
        # closed at once instead of aiohttp reading and discarding what the client still sends for 10 s.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=shutdown_timeout_seconds, keepalive_timeout=header_timeout_seconds,
            lingering_time=0,
        )
        self.port = port

    async def start(self) -> HttpServer:
        await self._runner.setup()
        site = _BoundedSite(self._runner, self._host, self._port, max_connections=self._max_connections)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, or the host is not an address of this machine
            await self._runner.cleanup()
            setting = "OPS_PORT" if self._name == "ops" else "HTTP_HOST/HTTP_PORT"
            raise ConfigError(
                f"cannot listen on {self._host}:{self._port} ({exc.strerror or type(exc).__name__}); "
                f"set {setting} to a free address"
            ) from None
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("%s server listening on %s:%d", self._name, self._host, self.port)
        return self

    @property
    def connections(self) -> int:
        """Connections open right now (for tests and diagnostics)."""
        server = self._runner.server
        return len(server.connections) if server is not None else 0

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host  # noqa: S104
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> HttpServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def quota_refresher(state: Callable[[], Awaitable[Any]], *, kb: str | None = None) -> Refresher:
    """Copies the (maybe Redis-shared) 402 state into the gauge per scrape; ``state`` is ``gate.state``, ``kb``
    the knowledgebase's label (None: the default one)."""

    async def refresh(metrics: Metrics) -> None:
        metrics.quota_state(await state(), kb=kb)

    return refresh


def feedback_refresher(counts: Callable[[], Awaitable[Any]]) -> Refresher:
    """Copies the feedback totals into the gauge at each scrape. ``counts`` is ``feedback_store.counts``."""

    async def refresh(metrics: Metrics) -> None:
        metrics.feedback_counts(await counts())

    return refresh


def ai_quota_refresher(forecast: Callable[[], Awaitable[Any]], *, kb: str | None = None) -> Refresher:
    """Copies this month's AI quota use (shared by replicas) into the gauges; ``forecast`` is
    ``OutcomeRecorder.quota``, ``kb`` the knowledgebase's label (None: the default one)."""

    async def refresh(metrics: Metrics) -> None:
        metrics.ai_quota(await forecast(), kb=kb)

    return refresh


def queued_saves_refresher(queued: Callable[[], Awaitable[int]], *, kb: str | None = None) -> Refresher:
    """Copies the number of saves waiting in the (maybe Redis-shared) outbox into the gauge per scrape;
    ``queued`` is ``ThreadSaver.queued``, ``kb`` the knowledgebase's label (None: the default one)."""

    async def refresh(metrics: Metrics) -> None:
        metrics.queued_saves(await queued(), kb=kb)

    return refresh


def mount_ops(
    app: web.Application,
    *,
    kb: KnowledgeBase | Mapping[str, KnowledgeBase],
    stores: Stores,
    metrics: Metrics,
    draining: Callable[[], bool] = lambda: False,
    refreshers: Sequence[Refresher] = (),
) -> ReadinessCheck:
    """The usual wiring in one call: readiness from ``kb.info`` (of each knowledgebase by name, when several)
    and the shared store's ping, ``/metrics`` with the shared 402 state and feedback totals refreshed per
    scrape. Returns the readiness check."""
    info = {name: each.info for name, each in kb.items()} if isinstance(kb, Mapping) else kb.info
    readiness = ReadinessCheck(info, redis_ping=stores.ping, draining=draining)
    add_ops_routes(
        app,
        readiness=readiness,
        metrics=metrics,
        refreshers=[quota_refresher(stores.quota.state), feedback_refresher(stores.feedback.counts), *refreshers],
    )
    return readiness
