"""`kbbot check`: is everything set up? Settings, token validity, knowledgebase name, rate-limit headroom."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

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
    return 0
