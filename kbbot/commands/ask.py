"""`kbbot ask "QUESTION" [--json]`: one answer, for people and for scripts (the JSON shape is a contract)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kbbot.commands.output import print_json
from kbbot.core.models import Question

if TYPE_CHECKING:
    from kbbot.runtime import Runtime


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # argparse reads an argument that starts with "-" as an option ("-h is …" is -h); after "--" none is.
    parser = sub.add_parser(
        "ask",
        help="ask one question and print the answer",
        epilog='a question that starts with "-" goes after -- (options before it):\n  kbbot ask --json -- "-v means?"',
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the example on a line of its own
    )
    parser.add_argument("question", help='the question, in quotes (one that starts with "-": after --)')
    parser.add_argument(
        "--json", action="store_true", help='print {"answer", "related_pages", "source", "empty", "notice"}'
    )
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    answer = await rt.ask.ask(Question(text=args.question, platform="cli"))
    if args.json:
        print_json(rt.console, answer.to_json())
    else:
        from kbbot.adapters.terminal_render import print_answer  # rich's Markdown: not for --json

        print_answer(rt.console, answer)
    return 0
