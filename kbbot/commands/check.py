"""`kbbot check`: is everything set up? Settings, token validity, knowledgebase name, rate-limit headroom; with
Discord configured, the bot token, the privileged intents switched on in the portal and the servers the bot is in."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from kbbot.commands.output import print_json

if TYPE_CHECKING:
    from kbbot.runtime import Runtime


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("check", help="check settings and the knowledgebase connection")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    s = rt.settings
    report: dict[str, Any] = {
        "backend": s.backend,
        "data_dir": str(s.kbbot_data_dir),
        "adapters": rt.configured_adapters(),
        "redis": s.redis_url is not None,
    }
    # info() raises a KbbotError with a clear sentence (bad token, unreachable): the CLI prints it, exits non-zero.
    info = await rt.kb.info()
    report["knowledgebase"] = info.name
    report["requests_left_second"] = info.requests_left_second
    report["requests_left_minute"] = info.requests_left_minute
    if "discord" in report["adapters"]:
        from kbbot.adapters.discord.check import discord_status

        report["discord"] = asdict(await discord_status(s))
    if args.json:
        print_json(rt.console, report)
        return 0
    rt.console.print(f"[green]✓[/green] knowledgebase: [bold]{info.name}[/bold] ({s.backend})", markup=True)
    if info.requests_left_minute is not None:
        rt.console.print(
            f"  rate budget left: {info.requests_left_second}/s, {info.requests_left_minute}/min", markup=False
        )
    rt.console.print(f"  data dir: {s.kbbot_data_dir}", markup=False, highlight=False)
    rt.console.print(f"  adapters: {', '.join(report['adapters']) or 'terminal only'}", markup=False)
    rt.console.print(f"  redis: {'on' if report['redis'] else 'off (single process)'}", markup=False)
    if "discord" in report:
        _print_discord(rt, report["discord"])
    return 0


def _print_discord(rt: Runtime, status: dict[str, Any]) -> None:
    on = [name.replace("_", " ") for name, enabled in status["intents"].items() if enabled]
    bot = escape(status["bot"])
    rt.console.print(f"[green]✓[/green] discord: bot [bold]{bot}[/bold]", markup=True, highlight=False)
    rt.console.print(f"  privileged intents on: {', '.join(on) or 'none'}", markup=False, highlight=False)
    names = ", ".join(f"{name} ({gid})" for gid, name in status["guilds"])
    rt.console.print(f"  servers ({len(status['guilds'])}): {names or 'none yet'}", markup=False, highlight=False)
    for warning in status["warnings"]:
        rt.console.print(f"  ! {warning}", markup=False, highlight=False)
