"""A test-only bot replica: the real stack (settings → build_stores → limiter → Perfect Wiki backend →
AskService) behind a tiny HTTP API, so an integration test can run two of them as separate processes.

    python -m tests.integration.replica_app      # settings from the environment, like `kbbot run`

Routes: ``POST /ask`` ``{"text"}`` → the answer JSON; ``POST /event`` ``{"event_id", "text"}`` → a platform
event delivered (maybe again, maybe to another replica): answered only when the shared deduper sees it first,
exactly as the Slack adapter does with ``event_id``; plus ``/healthz``, ``/readyz`` and ``/metrics``.
Prints ``READY <port>`` on stdout once serving; SIGTERM drains and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import httpx
from aiohttp import web

from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.config import load_settings
from kbbot.core.ask import AskService
from kbbot.core.models import Answer, Asker, Question, Source
from kbbot.errors import KbbotError
from kbbot.ops.http import HttpServer, ReadinessCheck, add_ops_routes, quota_refresher
from kbbot.ops.logging import request_context, setup_logging
from kbbot.ops.metrics import Metrics
from kbbot.ops.shutdown import GracefulShutdown, TaskTracker
from kbbot.store.factory import build_stores

log = logging.getLogger("kbbot.replica")


class PlainFallback:
    """Stands in for the search index (not part of this test): a fixed, recognizable answer."""

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        return Answer(text="From the wiki's pages (search).", source=Source.SEARCH, empty=True)


async def main() -> int:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    token = settings.perfectwiki_api_token
    assert token is not None
    # Deliberately careless, like a library logging its config: redaction must scrub it from the output.
    log.debug("configured Perfect Wiki token %s and redis %s", token.get_secret_value(), settings.redis_url)
    metrics = Metrics()
    stores = await build_stores(settings, metrics=metrics)
    limiter = stores.rate_limiter(settings)
    assert limiter is not None
    client = httpx.AsyncClient(timeout=settings.request_timeout_seconds)
    kb = PerfectWikiBackend(client, token, limiter=limiter, base_url=settings.perfectwiki_base_url)
    ask = AskService(
        kb=kb, cache=stores.cache, flights=stores.flights, quota=stores.quota, fallback=PlainFallback(),
        limiter=limiter, max_chars=settings.question_max_chars,
    )  # fmt: skip
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=10)

    async def answer(text: str, platform: str, request_id: str | None) -> dict[str, Any]:
        with request_context(request_id):
            started = time.perf_counter()
            source = "error"
            try:
                result = await ask.ask(Question(text=text, asker=Asker("U1"), platform=platform))
                source = result.source.value
                log.info("answered", extra={"platform": platform, "source": source})
                return {**result.to_json(), "notice": result.notice}
            finally:
                metrics.question(platform, source, time.perf_counter() - started)

    async def ask_route(request: web.Request) -> web.Response:
        body = await request.json()
        async with tracker.work():
            try:
                data = await answer(str(body["text"]), "cli", request.headers.get("X-Request-Id"))
            except KbbotError as exc:
                return web.json_response({"error": str(exc)}, status=502)
        return web.json_response(data)

    async def event_route(request: web.Request) -> web.Response:
        body = await request.json()
        event_id = str(body["event_id"])
        async with tracker.work():
            if not await stores.deduper.first_seen(f"slack:{event_id}", ttl_seconds=3600):
                log.info("duplicate event ignored", extra={"event_id": event_id})
                return web.json_response({"answered": False})
            data = await answer(str(body["text"]), "slack", event_id)
        return web.json_response({"answered": True, **data})

    app = web.Application()
    app.router.add_post("/ask", ask_route)
    app.router.add_post("/event", event_route)
    readiness = ReadinessCheck(kb.info, redis_ping=stores.ping, draining=lambda: shutdown.draining)
    add_ops_routes(app, readiness=readiness, metrics=metrics, refreshers=[quota_refresher(stores.quota.state)])
    server = await HttpServer(app, settings.http_host, settings.http_port).start()
    shutdown.install()
    shutdown.on_stop_intake(server.stop)
    shutdown.on_close(stores.aclose)
    shutdown.on_close(client.aclose)
    print(f"READY {server.port}", flush=True)
    await shutdown.wait()
    report = await shutdown.run()
    return 0 if not report.failed_steps else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
