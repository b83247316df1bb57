"""A test-only bot replica: the real stack (settings → build_stores → limiter → Perfect Wiki backend →
AskService) behind a tiny HTTP API, so an integration test can run two of them as separate processes.

    python -m tests.integration.replica_app      # settings from the environment, like `kbbot run`

Routes: ``POST /ask`` ``{"text"}`` → the answer JSON; ``POST /slack/events`` → the real Slack adapter in HTTP
mode (signed Events API requests; it answers through ``SLACK_API_URL`` and dedupes with the shared deduper);
plus ``/healthz``, ``/readyz`` and ``/metrics`` — all on one aiohttp app, as the startup code is meant to
serve them. Prints ``READY <port>`` on stdout once serving; SIGTERM drains and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import httpx
from aiohttp import web

from kbbot.adapters.slack import slack_service
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.config import load_settings
from kbbot.core.ask import AskService, AskStatus
from kbbot.core.models import Answer, Asker, Question, Source
from kbbot.core.threads import ThreadSaver
from kbbot.errors import KbbotError
from kbbot.ops.http import HttpServer, mount_ops, request_id_middleware
from kbbot.ops.logging import setup_logging
from kbbot.ops.metrics import Metrics
from kbbot.ops.shutdown import GracefulShutdown, TaskTracker
from kbbot.store.factory import build_stores

log = logging.getLogger("kbbot.replica")


class MeteredAsk:
    """Where the integrator's AskService should call ``metrics.question`` (here as a wrapper, test-only)."""

    def __init__(self, inner: AskService, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def ask(self, question: Question) -> Answer:
        started = time.perf_counter()
        source = "error"
        try:
            answer = await self._inner.ask(question)
            source = answer.source.value
            log.info("answered", extra={"platform": question.platform, "source": source})
            return answer
        finally:
            self._metrics.question(question.platform, source, time.perf_counter() - started)

    async def status(self) -> AskStatus:
        return await self._inner.status()


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
    ask = MeteredAsk(
        AskService(
            kb=kb, cache=stores.cache, flights=stores.flights, quota=stores.quota, fallback=PlainFallback(),
            limiter=limiter, max_chars=settings.question_max_chars,
        ),
        metrics,
    )  # fmt: skip
    saver = ThreadSaver(kb, stores.thread_map, stores.outbox)
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=10)

    async def ask_route(request: web.Request) -> web.Response:
        body = await request.json()
        async with tracker.work():
            try:
                result = await ask.ask(Question(text=str(body["text"]), asker=Asker("U1"), platform="cli"))
            except KbbotError as exc:
                return web.json_response({"error": str(exc)}, status=502)
        return web.json_response({**result.to_json(), "notice": result.notice})

    async with slack_service(settings, ask=ask, saver=saver, feedback=stores.feedback, deduper=stores.deduper) as slack:
        saver.on_saved = slack.bot.on_saved
        app = web.Application(middlewares=[request_id_middleware])
        app.router.add_post("/ask", ask_route)
        app.add_routes(slack.routes)
        mount_ops(app, kb=kb, stores=stores, metrics=metrics, draining=lambda: shutdown.draining)
        server = await HttpServer(app, settings.http_host, settings.http_port).start()
        shutdown.install()
        shutdown.on_stop_intake(slack.stop_intake)
        shutdown.on_stop_intake(slack.drain)
        shutdown.on_close(server.stop)
        print(f"READY {server.port}", flush=True)
        await shutdown.wait()
        report = await shutdown.run()
    await stores.aclose()
    await client.aclose()
    return 0 if not report.failed_steps else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
