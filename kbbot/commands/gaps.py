"""`kbbot gaps [--days N] [--json] [--csv]`: what the wiki failed to answer lately, most asked first.

Reads the outcome log (the data folder's SQLite file, or Redis with REDIS_URL: every replica's questions).
``--json`` prints ``{"since": ISO8601, "gaps": [{"question", "count", "reasons", "last_asked", "examples"}]}``.
"""

from __future__ import annotations

import argparse
import csv
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from kbbot.commands.output import print_json
from kbbot.reports.gaps import find_gaps, iso, report_json

if TYPE_CHECKING:
    from kbbot.runtime import Runtime

DEFAULT_DAYS = 30


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError("must be between 1 and 3650")
    return days


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("gaps", help="questions the wiki failed to answer (empty, 👎, error), grouped")
    parser.add_argument("--days", type=_days, default=DEFAULT_DAYS,
                        help=f"look back this many days (default {DEFAULT_DAYS}; kept: GAPS_RETENTION_DAYS)")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print the report as one JSON object")
    formats.add_argument("--csv", action="store_true", help="print CSV: question,count,reasons,last_asked,examples")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    since = rt.outcomes.now() - args.days * 86400
    gaps = find_gaps(await rt.outcomes.store.since(since))
    if args.json:
        print_json(rt.console, report_json(gaps, since=since))
    elif args.csv:
        writer = csv.writer(rt.console.file, lineterminator="\n")
        writer.writerow(["question", "count", "reasons", "last_asked", "examples"])
        for gap in gaps:
            writer.writerow([_cell(gap.question), gap.count, ";".join(gap.reasons), iso(gap.last_asked),
                             " | ".join(_cell(example) for example in gap.examples)])
        rt.console.file.flush()
    elif not gaps:
        rt.console.print(f"No gaps in the last {args.days} day(s): every question got an answer nobody downvoted.")
    else:
        table = Table(title=f"Knowledge gaps since {iso(since)}", show_lines=False)
        table.add_column("asked", justify="right")
        table.add_column("question", overflow="fold")
        table.add_column("why")
        table.add_column("last asked")
        for gap in gaps:
            # Question text is user text: never parsed as rich markup.
            table.add_row(str(gap.count), escape(gap.question), ", ".join(gap.reasons), iso(gap.last_asked))
        rt.console.print(table)
    return 0


def _cell(text: str) -> str:
    """A spreadsheet must not run a question as a formula (CSV injection): such cells get a leading quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
