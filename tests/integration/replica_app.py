"""A test-only bot replica: the real startup path (`load_settings` → `open_runtime` → `kbbot run`'s `serve`)
with one extra route, so an integration test can run two of them as separate processes and ask questions.

    python -m tests.integration.replica_app      # settings from the environment, like `kbbot run`

Routes: ``POST /ask`` ``{"text"}`` → the answer JSON (the only test-only part); everything else is what
`kbbot run` serves: ``POST /slack/events`` (the real Slack adapter in HTTP mode), ``/healthz``, ``/readyz``,
``/metrics``. Prints ``READY <port>`` on stdout once serving; SIGTERM drains and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from kbbot.commands.run import serve
from kbbot.config import load_settings
from kbbot.core.models import Asker, Question
from kbbot.errors import KbbotError
from kbbot.ops.logging import setup_logging
from kbbot.runtime import Runtime, open_runtime

log = logging.getLogger("kbbot.replica")


def ask_route(rt: Runtime) -> web.RouteDef:
    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            result = await rt.ask.ask(Question(text=str(body["text"]), asker=Asker("U1"), platform="cli"))
        except KbbotError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        return web.json_response({**result.to_json(), "notice": result.notice})

    return web.post("/ask", handler)


async def main() -> int:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    token = settings.perfectwiki_api_token
    assert token is not None
    # Deliberately careless, like a library logging its config: redaction must scrub it from the output.
    log.debug("configured Perfect Wiki token %s and redis %s", token.get_secret_value(), settings.redis_url)
    async with open_runtime(settings) as rt:
        failed = await serve(
            rt, extra_routes=[ask_route(rt)], on_ready=lambda port: print(f"READY {port}", flush=True)
        )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
