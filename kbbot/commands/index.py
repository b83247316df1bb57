"""``kbbot index sync`` and ``kbbot index search "…" [--json] [--limit N]``.

``register(subparsers)`` adds the ``index`` command group; each leaf parser carries its coroutine in
``args.handler``, called as ``await args.handler(args, rt)`` with the runtime built by the one startup
function.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from kbbot.commands.output import print_json
from kbbot.core.text import strip_invisible
from kbbot.search.index import MARK_CLOSE, MARK_OPEN, SearchHit
from kbbot.search.query import query_terms

if TYPE_CHECKING:
    from kbbot.runtime import Runtime
    from kbbot.search.sync import SyncReport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``index sync`` and ``index search`` to the ``kbbot`` parser."""
    parser = subparsers.add_parser("index", help="the full-text search index of the knowledgebase")
    commands = parser.add_subparsers(dest="index_command", metavar="{sync,search}", required=True)

    sync = commands.add_parser("sync", help="bring the index up to date with the knowledgebase")
    sync.add_argument("--full", action="store_true", help="re-fetch every page, not only changed ones")
    sync.add_argument("--json", action="store_true", help="print the sync report as JSON")
    sync.set_defaults(handler=sync_handler)

    search = commands.add_parser("search", help="search the index; ranked pages with excerpts")
    search.add_argument("query", help="words to search for (any text; it is not a query language)")
    search.add_argument("--json", action="store_true", help="print a JSON list of {id,title,url,score,snippet}")
    search.add_argument("--limit", type=_positive, default=10, help="how many pages (default 10, at most 100)")
    search.set_defaults(handler=search_handler)
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return number


async def _sync_with_progress(rt: Runtime, console: Console, *, full: bool) -> SyncReport:
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]Indexing pages"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # Off in a pipe or a log: there it drew nothing but left a blank line above the summary or the JSON.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("sync", total=None)

        def on_progress(total: int, done: int) -> None:
            progress.update(task, total=total, completed=done)

        return await rt.syncer.sync(full=full, progress=on_progress)


async def sync_handler(args: argparse.Namespace, rt: Runtime) -> int:
    """Exit 0 when every page synced, 1 when some failed (they are listed on stderr and retried next time)."""
    stderr = Console(stderr=True)
    report = await _sync_with_progress(rt, stderr if args.json else rt.console, full=args.full)
    if args.json:
        payload = {
            "listed": report.listed,
            "fetched": report.fetched,
            "changed": report.changed,
            "deleted": report.deleted,
            "failed": report.failed,
            "aborted": report.aborted,
        }
        print_json(rt.console, payload)
    else:
        rt.console.print(f"Index up to date: {report.summary()}.", markup=False, highlight=False)
    for error in report.errors[:10]:
        stderr.print(f"failed: {error}", markup=False, highlight=False)
    return 1 if report.failed else 0


async def search_handler(args: argparse.Namespace, rt: Runtime) -> int:
    """Exit 0 with results (or none found), 2 when the query has no searchable words."""
    stderr = Console(stderr=True)
    if not query_terms(args.query):
        stderr.print(
            'Nothing to search for: type some words, e.g. `kbbot index search "vpn setup"`.',
            markup=False,
            highlight=False,
        )
        return 2
    if await rt.index.count() == 0:
        # A fresh install: fill the index once instead of answering "nothing found".
        await _sync_with_progress(rt, stderr, full=False)
    hits = await rt.index.search(args.query, limit=args.limit, snippets=True)
    if args.json:
        print_json(rt.console, [hit.to_json() for hit in hits])
        return 0
    if not hits:
        rt.console.print("No pages match.", markup=False, highlight=False)
        return 0
    # bm25 weighs a word by how few pages hold it: in a folder of one page (or for words on every page) every
    # score is about 0 and says nothing, so none is shown; the order still holds.
    scored = max(hit.score for hit in hits) >= 0.005
    for rank, hit in enumerate(hits, start=1):
        _print_hit(rt.console, rank, hit, scored=scored)
    return 0


def _print_hit(console: Console, rank: int, hit: SearchHit, *, scored: bool) -> None:
    # Page text is stripped of escape sequences and invisible characters (strip_invisible): a hostile page must
    # not retitle or clear the terminal.
    title, url = strip_invisible(hit.title), strip_invisible(hit.url or "")
    score = f"  [dim]score {hit.score:.2f}[/dim]" if scored else ""
    console.print(f"[bold]{rank}. {escape(title)}[/bold]{score}")
    if url:
        console.print(f"   [link={escape(url)}]{escape(url)}[/link]", highlight=False, soft_wrap=True)
    snippet = " ".join(hit.marked_snippet.split())
    if snippet:
        # Built as a Text, not markup, so brackets in page text can never be read as rich markup.
        line = Text("   ")
        for i, part in enumerate(re.split(f"[{MARK_OPEN}{MARK_CLOSE}]", snippet)):
            line.append(strip_invisible(part), style="bold yellow" if i % 2 else None)
        console.print(line)
    console.print()
