"""`kbbot check`: is everything set up? Settings, token validity, knowledgebase name, rate-limit headroom; with
Slack configured, its tokens and the mode `kbbot run` will use; with Discord configured, the bot token, the
privileged intents switched on in the portal and the servers the bot is in; thread saves waiting in the outbox."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from rich.markup import escape

from kbbot.commands.output import print_json
from kbbot.core.text import how_long
from kbbot.errors import ConfigError, KbbotError, TransportFailure, Unavailable

if TYPE_CHECKING:
    from kbbot.config import Settings
    from kbbot.runtime import KnowledgebaseStack, Runtime

T = TypeVar("T")

#: Every network call of the check together answers within this (a hung wiki used to take 3 attempts of
#: REQUEST_TIMEOUT_SECONDS each, ~90 s); `kbbot check` as a whole stays under 15 s.
CHECK_SECONDS = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("check", help="check settings and the knowledgebase connection")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    s = rt.settings
    placeholders = rt.knowledgebases.placeholders(s)
    if placeholders:
        # A template copied as is (deploy/k8s/secret.yaml says replace-me): say so, before a confusing 401.
        raise ConfigError(
            f"{', '.join(placeholders)} still {'holds' if len(placeholders) == 1 else 'hold'} a placeholder "
            "(like replace-me or your-…): set the real value"
        )
    report: dict[str, Any] = {
        "backend": s.backend,
        "data_dir": str(s.kbbot_data_dir),
        "adapters": rt.configured_adapters(),
        "redis": s.redis_url is not None,
        # The knowledgebase's key prefix in Redis (replicas of one bot show the same one; never the token).
        "redis_namespace": rt.stores.namespace,
    }
    if misspelled := misspelled_settings(rt):
        report["misspelled_settings"] = misspelled
    if s.backend == "local" and s.local_kb_dir is not None and not any(s.local_kb_dir.rglob("*.md")):
        # A folder of .txt or .html notes: every question would get "I couldn't find this", with no hint why.
        report["warnings"] = [
            f"LOCAL_KB_DIR {s.local_kb_dir} holds no .md files (the only pages kbbot reads): "
            "questions find nothing there"
        ]
    deadline = asyncio.get_running_loop().time() + CHECK_SECONDS
    kbs = rt.knowledgebases
    if kbs.named and getattr(args, "kb", None) is None:
        # Every knowledgebase of KBBOT_CONFIG (each route's target among them), all at once within the deadline.
        report["knowledgebases"], failures = await _check_all(rt, deadline)
        report["routes"] = {where: name for where, name in kbs.routes.targets()}
        if failures:
            # Every knowledgebase is reported (✓ or ✗), then the failures, as one line, end the check.
            if args.json:
                print_json(rt.console, report)
            else:
                _print_knowledgebases(rt, report)
            first = failures[0]
            first.args = ("; ".join(str(exc) for exc in failures),)  # same class (and exit code) as the first
            raise first
    # info() raises a KbbotError with a clear sentence (bad token, unreachable): the CLI prints it, exits non-zero.
    info = await _within(deadline, _wiki_url_setting(s), rt.kb.info())
    report["knowledgebase"] = info.name
    report["requests_left_second"] = info.requests_left_second
    report["requests_left_minute"] = info.requests_left_minute
    if "slack" in report["adapters"]:
        from kbbot.adapters.slack.check import slack_status
        from kbbot.runtime import slack_credentials

        report["slack"] = asdict(await _within(deadline, "SLACK_API_URL", slack_status(slack_credentials(s))))
    if "discord" in report["adapters"]:
        from kbbot.adapters.discord.check import discord_status
        from kbbot.runtime import discord_options

        assert s.discord_bot_token is not None
        status = discord_status(s.discord_bot_token.get_secret_value(), discord_options(s))
        report["discord"] = asdict(await _within(deadline, "DISCORD_API_URL", status))
    checked = rt.all_stacks if "knowledgebases" in report else [rt.stack]
    where = "REDIS_URL" if report["redis"] else "KBBOT_DATA_DIR"
    if waiting := await _within(deadline, where, _queued_saves(checked)):
        report["queued_saves"] = waiting
    if args.json:
        print_json(rt.console, report)
        return 0
    if "knowledgebases" in report:
        _print_knowledgebases(rt, report)
    rt.console.print(f"[green]✓[/green] knowledgebase: [bold]{escape(info.name)}[/bold] ({s.backend})", markup=True)
    if info.requests_left_minute is not None:
        rt.console.print(
            f"  rate budget left: {info.requests_left_second}/s, {info.requests_left_minute}/min", markup=False
        )
    rt.console.print(f"  data dir: {s.kbbot_data_dir}", markup=False, highlight=False)
    rt.console.print(f"  adapters: {', '.join(report['adapters']) or 'terminal only'}", markup=False)
    redis = f"on (keys under {rt.stores.namespace})" if report["redis"] else "off (single process)"
    rt.console.print(f"  redis: {redis}", markup=False, highlight=False)
    for warning in report.get("warnings", []):
        rt.console.print(f"  ! {warning}", markup=False, highlight=False)
    for name, meant in report.get("misspelled_settings", {}).items():
        rt.console.print(f"  ! {name} is not a kbbot setting (ignored): did you mean {meant}?", markup=False)
    for name, queued in report.get("queued_saves", {}).items():
        rt.console.print(f"  ! {_queued_line(queued, name if len(checked) > 1 else None)}", markup=False)
    if "slack" in report:
        _print_slack(rt, report["slack"])
    if "discord" in report:
        _print_discord(rt, report["discord"])
    return 0


def misspelled_settings(rt: Runtime) -> dict[str, str]:
    """Variables of ./.env and the environment that are not settings but nearly one (``PERFECTWIKI_TOKEN``):
    ignored, so the bot quietly ran over the sample. Names KBBOT_CONFIG reads as ``env:NAME`` secrets are meant."""
    import os
    import re

    from dotenv import dotenv_values
    from rapidfuzz import fuzz, process

    from kbbot.config import Settings

    settings = [name.upper() for name in Settings.model_fields]
    source = rt.knowledgebases.source
    referenced = set(re.findall(r"env:([A-Za-z_]\w*)", source.read_text(encoding="utf-8"))) if source else set()
    found: dict[str, str] = {}
    for name in sorted({*dotenv_values(".env", encoding="utf-8"), *os.environ} - referenced):
        if name.upper() in settings:  # names are read case-insensitively
            continue
        # 85: a dropped or swapped word part (SLACK_BOT_TOKN, DISCORD_TOKEN), never two different settings' names.
        if match := process.extractOne(name.upper(), settings, scorer=fuzz.ratio, score_cutoff=85):
            found[name] = match[0]
    return found


async def _check_all(rt: Runtime, deadline: float) -> tuple[dict[str, dict[str, Any]], list[KbbotError]]:
    """``info()`` of every knowledgebase, concurrently: each one's report (``error`` for those that failed) and
    the failures (file order), each naming its knowledgebase."""

    async def one(name: str) -> tuple[dict[str, Any], KbbotError | None]:
        stack = rt.stacks[name]
        entry: dict[str, Any] = {"backend": stack.settings.backend, "redis_namespace": stack.stores.namespace}
        try:
            info = await _within(deadline, _wiki_url_setting(stack.settings), stack.kb.info())
        except KbbotError as exc:
            exc.args = (f"knowledgebase {name}: {exc}",)  # same class (and exit code), named
            return {**entry, "error": str(exc)}, exc
        return {
            **entry,
            "name": info.name,
            "requests_left_second": info.requests_left_second,
            "requests_left_minute": info.requests_left_minute,
        }, None

    names = list(rt.stacks)
    results = await asyncio.gather(*(one(name) for name in names))
    report = {name: entry for name, (entry, _) in zip(names, results, strict=True)}
    return report, [exc for _, exc in results if exc is not None]


async def _queued_saves(stacks: list[KnowledgebaseStack]) -> dict[str, dict[str, Any]]:
    """The knowledgebases whose outbox holds saves: how many, and since when the oldest waits (seconds)."""
    now, found = time.time(), {}
    for stack in stacks:
        queued = await stack.saver.queued_saves()
        if queued.count:
            since = queued.oldest_queued_at
            age = None if since is None else round(max(0.0, now - since))
            found[stack.name] = {"count": queued.count, "oldest_age_seconds": age}
    return found


def _queued_line(queued: dict[str, Any], kb: str | None) -> str:
    count, age = queued["count"], queued["oldest_age_seconds"]
    what = f"{count} thread save{'s' if count != 1 else ''}" + (f" of {kb}" if kb else "")
    oldest = "" if age is None else f" (the oldest queued {how_long(age)} ago)"
    return (
        f"{what} waiting to be retried{oldest}: `kbbot run` sends them once the wiki takes them; "
        "its log says why they failed"
    )


def _print_knowledgebases(rt: Runtime, report: dict[str, Any]) -> None:
    for name, kb in report["knowledgebases"].items():
        if "error" in kb:
            rt.console.print(f"[red]✗[/red] {escape(kb['error'])}", markup=True, highlight=False)
            continue
        rt.console.print(
            f"[green]✓[/green] {escape(name)}: [bold]{escape(kb['name'])}[/bold] ({kb['backend']})",
            markup=True, highlight=False,
        )
    for where, name in report["routes"].items():
        rt.console.print(f"  {where} → {name}", markup=False, highlight=False)


def _print_slack(rt: Runtime, status: dict[str, Any]) -> None:
    bot, team = escape(status["bot"]), escape(status["team"])
    rt.console.print(f"[green]✓[/green] slack: bot [bold]{bot}[/bold] in {team}", markup=True, highlight=False)
    mode = "Socket Mode (SLACK_APP_TOKEN)" if status["mode"] == "socket" else "HTTP mode, events at /slack/events"
    rt.console.print(f"  kbbot run will use: {mode}", markup=False, highlight=False)
    for warning in status["warnings"]:
        rt.console.print(f"  ! {warning}", markup=False, highlight=False)


async def _within(deadline: float, setting: str, call: Awaitable[T]) -> T:
    """``call``, cut off at ``deadline``: one clear line instead of the client's retries running on."""
    try:
        async with asyncio.timeout_at(deadline):
            return await call
    except TimeoutError:
        raise Unavailable(
            f"no answer within {CHECK_SECONDS:g} s: check {setting} and the network (a proxy or firewall "
            "that accepts connections but never answers)"
        ) from None
    except TransportFailure as exc:
        # "could not reach Perfect Wiki (ConnectError)" named no setting; the address is in this one.
        raise Unavailable(f"{exc}: check {setting} and the network") from None


def _wiki_url_setting(s: Settings) -> str:
    return {"perfectwiki": "PERFECTWIKI_BASE_URL", "mathub": "MATHUB_BASE_URL"}.get(s.backend, "LOCAL_KB_DIR")


def _print_discord(rt: Runtime, status: dict[str, Any]) -> None:
    on = [name.replace("_", " ") for name, enabled in status["intents"].items() if enabled]
    bot = escape(status["bot"])
    rt.console.print(f"[green]✓[/green] discord: bot [bold]{bot}[/bold]", markup=True, highlight=False)
    rt.console.print(f"  privileged intents on: {', '.join(on) or 'none'}", markup=False, highlight=False)
    names = ", ".join(f"{name} ({gid})" for gid, name in status["guilds"])
    rt.console.print(f"  servers ({len(status['guilds'])}): {names or 'none yet'}", markup=False, highlight=False)
    for warning in status["warnings"]:
        rt.console.print(f"  ! {warning}", markup=False, highlight=False)
