"""`kbbot run`: start every adapter whose credentials are set; with none, the terminal chat."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiohttp import web

from kbbot.commands.chat import run_chat
from kbbot.search.sync import IndexRefresher

if TYPE_CHECKING:
    from kbbot.runtime import Runtime

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="start the configured adapters (the terminal chat when none is configured)")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    if not rt.configured_adapters():
        await run_chat(rt)
        return 0
    await serve(rt)
    return 0


async def serve(rt: Runtime) -> None:
    """Run the platform adapters and the HTTP server until SIGTERM/SIGINT, then shut down in order."""
    settings = rt.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(rt.saver)  # outbox retry worker
        await stack.enter_async_context(IndexRefresher(rt.syncer, settings.index_refresh_seconds))
        web_app = web.Application()
        if "slack" in rt.configured_adapters():
            from kbbot.adapters.slack import slack_service

            slack = await stack.enter_async_context(
                slack_service(settings, ask=rt.ask, saver=rt.saver, feedback=rt.feedback, deduper=rt.deduper)
            )
            web_app.add_routes(slack.routes)
            rt.saver.listen("slack", slack.bot.on_saved)
        runner = web.AppRunner(web_app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        log.info("kbbot running: %s; HTTP on %s:%s", ", ".join(rt.configured_adapters()), settings.http_host,
                 settings.http_port)
        await stop.wait()
        log.info("shutting down: finishing in-flight work")
