"""`kbbot run`: start every adapter whose credentials are set; with none, the terminal chat.

The long-running bot also serves ``/healthz``, ``/readyz`` and ``/metrics`` (and Slack's ``/slack/events`` in
HTTP mode) on ``HTTP_HOST:HTTP_PORT``, refreshes the search index in the background, retries queued saves, and
on SIGTERM/SIGINT stops taking work, finishes what is in flight (bounded) and closes everything in order.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiohttp import web

from kbbot.commands.chat import run_chat
from kbbot.errors import ConfigError
from kbbot.ops.http import (
    HttpServer,
    add_healthz,
    ai_quota_refresher,
    mount_ops,
    queued_saves_refresher,
    quota_refresher,
    request_id_middleware,
)
from kbbot.ops.shutdown import GracefulShutdown, TaskTracker
from kbbot.reports.digest import Poster, WeeklyDigest
from kbbot.search.sync import IndexRefresher

if TYPE_CHECKING:
    from kbbot.ops.http import ReadinessCheck
    from kbbot.ops.metrics import Refresher
    from kbbot.runtime import Runtime

log = logging.getLogger(__name__)

#: What an AI answer takes once its turn comes: at SIGTERM, questions whose turn comes later than this before
#: the drain ends are refused at once (their askers are told to ask again), the rest are answered.
ANSWER_SECONDS = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="start the configured adapters (the terminal chat when none is configured)",
        description="Run the bot: every adapter whose token is set (Slack, Discord), with the health and metrics "
        "endpoints on HTTP_HOST:HTTP_PORT; with no adapter configured, the terminal chat.",
    )
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    if not rt.configured_adapters():
        if not sys.stdin.isatty():
            # Docker, systemd, k8s: a chat reading end-of-input would exit 0 at once, a silent restart loop.
            raise ConfigError(
                "nothing to run: set SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN (see .env.example); "
                "the terminal chat needs a terminal"
            )
        await run_chat(rt)
        return 0
    report = await serve(rt)
    return 0 if not report else 1


async def serve(
    rt: Runtime,
    *,
    extra_routes: Iterable[web.RouteDef] = (),
    on_ready: Callable[[int], object] | None = None,
) -> tuple[str, ...]:
    """Run until a stop signal; returns the names of shutdown steps that failed (empty when clean).

    ``extra_routes`` and ``on_ready`` (called with the bound port, e.g. for ``HTTP_PORT=0``) let a test
    harness drive the real startup path; the bot itself uses neither.
    """
    settings = rt.settings
    tracker = TaskTracker()
    shutdown = GracefulShutdown(tracker, grace_seconds=settings.shutdown_grace_seconds)
    shutdown.install()
    async with AsyncExitStack() as stack:
        for kb in rt.all_stacks:  # each knowledgebase of KBBOT_CONFIG keeps its own index current
            refresher = await stack.enter_async_context(IndexRefresher(kb.syncer, kb.settings.index_refresh_seconds))
            # A sync stops at SIGTERM, first: it must not take rate budget from the drain nor outlive the grace
            # (the next start resumes it). Leaving the stack then finds it stopped.
            shutdown.on_stop_intake(refresher.stop, name="stop the index sync" + _of(rt, kb.name))
        app = web.Application(middlewares=[request_id_middleware])
        app.add_routes(list(extra_routes))
        # With OPS_PORT, /readyz and /metrics move to an internal port; the public one keeps /healthz.
        ops_app = app if settings.ops_port is None else web.Application(middlewares=[request_id_middleware])
        readiness = mount_runtime_ops(ops_app, rt, draining=lambda: shutdown.draining)
        if settings.kbbot_admin_token is not None:  # GET /admin, next to /metrics
            from kbbot.ops.dashboard import mount_admin

            mount_admin(ops_app, rt.dashboards(), token=settings.kbbot_admin_token.get_secret_value())
        if ops_app is not app:
            add_healthz(app)

        adapters = rt.configured_adapters()
        digest_posters: dict[str, Poster] = {}
        discord_task: asyncio.Task[None] | None = None
        slack_task: asyncio.Task[None] | None = None
        if "slack" in adapters:
            from kbbot.runtime import open_slack

            # Slack's answers drain with everything else (once). An event acked before the stop still runs: its
            # asker gets the answer, or "restarting" from the closed question pipeline.
            in_flight = functools.partial(tracker.work, refuse_when_closed=False)
            slack = await stack.enter_async_context(open_slack(rt, in_flight=in_flight))
            app.add_routes(slack.routes)
            readiness.add_state("slack", slack.problem)
            # Start-up checks run in the background (SIGTERM works meanwhile); a rejected token stops the bot.
            slack_task = slack.started
            slack_task.add_done_callback(lambda task: _stop_if_failed(task, shutdown))
            shutdown.on_stop_intake(slack.stop_intake)
            if settings.gaps_digest_slack_channel:
                from kbbot.adapters.slack.gaps import digest_poster

                digest_posters["slack"] = digest_poster(slack.bot.handlers.client, settings.gaps_digest_slack_channel)
        if "discord" in adapters:
            from kbbot.adapters.discord import run_discord_client
            from kbbot.runtime import discord_client as build_discord

            assert settings.discord_bot_token is not None
            discord_client = build_discord(rt, in_flight=tracker.work)
            discord_task = asyncio.create_task(
                run_discord_client(discord_client, settings.discord_bot_token.get_secret_value())
            )
            discord_task.add_done_callback(lambda task: _stop_if_failed(task, shutdown))
            # The connection stays open while in-flight answers drain (new ones are refused by the tracker),
            # then closes with the other closers.
            shutdown.on_close(discord_client.close)
            if settings.gaps_digest_discord_channel:
                from kbbot.adapters.discord.gaps import digest_poster as discord_digest

                digest_posters["discord"] = discord_digest(discord_client, settings.gaps_digest_discord_channel)
        # The weekly gaps digest (GAPS_DIGEST_*_CHANNEL): one replica posts each platform's, claimed in the deduper.
        await stack.enter_async_context(
            WeeklyDigest(
                rt.gaps(), digest_posters, rt.stores.deduper,
                clock=rt.outcomes.now,
            )
        )

        # The outbox retry worker starts after the adapters registered their listeners, so a save retried in
        # its first pass still gets its link posted.
        for kb in rt.all_stacks:
            await stack.enter_async_context(kb.saver)
        server = await HttpServer(app, settings.http_host, settings.http_port).start()
        shutdown.on_close(server.stop)
        ops_note = ""
        if settings.ops_port is not None:
            ops_server = await HttpServer(ops_app, settings.http_host, settings.ops_port, name="ops").start()
            shutdown.on_close(ops_server.stop)
            ops_note = f"; ops (/readyz, /metrics) on port {ops_server.port}"
        # Closers run last-registered first: one last pass over the outbox before the server goes away. What
        # is still queued after it stays in the durable outbox and is sent after the next start.
        for kb in rt.all_stacks:
            shutdown.on_close(kb.saver.retry_due, name="flush the save outbox" + _of(rt, kb.name))
        shutdown.on_stop_intake(
            lambda: _stop_asking(rt, answer_within=shutdown.answer_seconds - ANSWER_SECONDS), name="stop asking"
        )
        log.info("kbbot running: %s; HTTP on %s:%s%s", ", ".join(adapters), settings.http_host, server.port, ops_note)
        if on_ready is not None:
            on_ready(server.port)
        await shutdown.wait()
        report = await shutdown.run()
        for task in (slack_task, discord_task):
            if task is not None and task.done() and not task.cancelled():
                task.result()  # re-raise a ConfigError/Unauthorized so the CLI prints it and exits non-zero
    return report.failed_steps


async def _stop_asking(rt: Runtime, *, answer_within: float) -> None:
    """Questions that cannot be answered before the drain ends are refused now, the rest when it is time:
    every waiting asker hears "restarting" while the bot can still post it."""
    for kb in rt.all_stacks:
        kb.ask.close(answer_within=max(0.0, answer_within))


def mount_runtime_ops(
    app: web.Application, rt: Runtime, *, draining: Callable[[], bool] = lambda: False
) -> ReadinessCheck:
    """``/readyz`` over every knowledgebase of KBBOT_CONFIG (its body names each one) and ``/metrics`` with
    each one's 402 state, AI quota series and queued saves."""
    kbs = {stack.name: stack.kb for stack in rt.all_stacks} if rt.knowledgebases.named else rt.kb
    queued = [queued_saves_refresher(stack.saver.queued, kb=stack.name) for stack in rt.all_stacks]
    return mount_ops(
        app, kb=kbs, stores=rt.stores, metrics=rt.metrics, draining=draining,
        refreshers=[ai_quota_refresher(rt.outcomes.quota), *_other_quota_refreshers(rt), *queued],
    )


def _other_quota_refreshers(rt: Runtime) -> list[Refresher]:
    """With several knowledgebases, each one's (maybe Redis-shared) 402 state and AI quota use go into its
    ``kb`` series at every scrape, as the default's do (mount_ops and the refresher next to it)."""
    return [
        refresher
        for stack in rt.all_stacks
        if stack is not rt.stack
        for refresher in (
            quota_refresher(stack.stores.quota.state, kb=stack.name),
            ai_quota_refresher(stack.outcomes.quota, kb=stack.name),
        )
    ]


def _of(rt: Runtime, name: str) -> str:
    """`` of NAME`` when several knowledgebases are configured (names shutdown steps apart)."""
    return f" of {name}" if len(rt.all_stacks) > 1 else ""


def _stop_if_failed(task: asyncio.Task[None], shutdown: GracefulShutdown) -> None:
    """A rejected Slack or Discord token or a missing intent ends that task with an error: stop the whole bot
    (the error is re-raised after shutdown, so the CLI prints it and exits non-zero)."""
    if not task.cancelled() and task.exception() is not None:
        shutdown.request()
