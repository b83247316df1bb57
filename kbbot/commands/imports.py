"""`kbbot import EXPORT [--channel NAME]… [--since D] [--until D] [--dry-run] [--tags a,b] [--json]`.

EXPORT is a Slack workspace export (the zip, or its unzipped folder) or DiscordChatExporter JSON (one file, or
a folder of them, split parts included). One page per thread (Slack) or channel (Discord); re-running updates
the same pages, and what an earlier import of a conversation held is kept (:mod:`kbbot.store.transcript_archive`),
so an export of a later range or the next part adds to a page instead of replacing it. A damaged file is
reported and skipped. ``--dry-run`` lists the pages it would write and writes nothing.

Exit codes: 0 done (also with skipped files, which are listed); 1 some pages could not be saved; 2 EXPORT is
not an export or a ``--channel`` is not in it; 75 some saves were queued because the wiki is unavailable.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from kbbot.commands.output import print_json
from kbbot.commands.save import EXIT_PENDING, archive_for
from kbbot.core.page_render import masked_text
from kbbot.core.text import count_messages, parse_tags
from kbbot.errors import SaveError
from kbbot.formats.exports import read_export
from kbbot.transcripts import TranscriptError

if TYPE_CHECKING:
    from kbbot.runtime import Runtime

__all__ = ["register"]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2024-01-31") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "import",
        help="import a Slack export or DiscordChatExporter JSON as wiki pages",
        description="Import a Slack workspace export (zip or folder) or DiscordChatExporter JSON files (one "
        "file or a folder, split parts included): one page per thread. Re-running updates the same pages "
        "and keeps what earlier imports held.",
    )
    parser.add_argument("export", type=Path, metavar="EXPORT", help="the export zip, folder or .json file")
    parser.add_argument(
        "--channel", action="append", default=[], metavar="NAME", help="only this channel (repeatable)"
    )
    parser.add_argument("--since", type=_date, metavar="DATE", help="only threads started on or after DATE")
    parser.add_argument("--until", type=_date, metavar="DATE", help="only threads started on or before DATE")
    parser.add_argument("--dry-run", action="store_true", help="list the pages it would write; write nothing")
    parser.add_argument("--tags", type=parse_tags, help="comma-separated tags (default: channel name + defaults)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every page")
    parser.set_defaults(handler=handler)


@dataclass
class _Row:
    key: str
    title: str
    messages: int
    earlier: int
    id: str | None = None
    url: str | None = None
    created: bool = False
    pending: bool = False
    masked: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


async def handler(args: argparse.Namespace, rt: Runtime) -> int:
    if args.since and args.until and args.since > args.until:
        raise TranscriptError("--since is after --until: nothing would be imported")
    with _progress(rt.console, quiet=args.json) as bar:
        reading = bar("Reading files")
        # An unreadable export raises ExportError, a TranscriptError: one clear line and exit code 2.
        batch = read_export(args.export, channels=args.channel, since=args.since, until=args.until, progress=reading)
    archive = archive_for(rt.settings)
    rows: list[_Row] = []
    with _progress(rt.console, quiet=args.json) as bar:
        saving = bar("Checking pages" if args.dry_run else "Saving pages")
        for done, thread in enumerate(batch.threads, start=1):
            merged = archive.merge(thread, write=not args.dry_run)
            row = _Row(merged.thread.key, "", len(merged.thread.messages), merged.earlier)
            if args.dry_run:
                row.title = rt.saver.title_for(merged.thread)
            else:
                try:
                    # Not announced in Slack/Discord when a queued save lands: nobody there asked for it.
                    page = await rt.saver.save(merged.thread, tags=args.tags, announce=False)
                except SaveError as exc:
                    row.error = str(exc)
                else:
                    row.title, row.id, row.url = page.title, page.id, page.url
                    row.created, row.pending = page.created, page.pending
                    masked = page.extra.get("masked")
                    row.masked = masked if isinstance(masked, int) else 0
            rows.append(row)
            saving(done, len(batch.threads))
    if args.json:
        print_json(
            rt.console,
            {"kind": batch.kind, "dry_run": args.dry_run, "pages": [r.to_json() for r in rows],
             "problems": batch.problems},
        )
    else:
        _report(rt.console, batch.kind, batch.files_read, batch.problems, rows, dry_run=args.dry_run)
    if any(r.error for r in rows):
        return 1
    return EXIT_PENDING if any(r.pending for r in rows) else 0


def _report(
    console: Console, kind: str, files: int, problems: list[str], rows: list[_Row], *, dry_run: bool
) -> None:
    def say(text: str) -> None:
        # soft_wrap: a page's link stays whole on its line (rich would break it at 80 columns in a pipe).
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    for problem in problems:
        say(f"warning: {problem}")
    label = "Slack export" if kind == "slack" else "DiscordChatExporter export"
    if dry_run:
        say(f"Dry run: {len(rows)} page(s) from {files} file(s) of the {label}; nothing was written.")
        for row in rows:
            kept = f", {row.earlier} kept from earlier imports" if row.earlier else ""
            say(f"  would write “{row.title}” ({count_messages(row.messages)}{kept}) [{row.key}]")
        return
    created = sum(r.created and not r.error for r in rows)
    queued = sum(r.pending for r in rows)
    failed = [r for r in rows if r.error]
    updated = len(rows) - created - queued - len(failed)
    say(
        f"Imported {len(rows)} page(s) from {files} file(s) of the {label}: {created} created, {updated} updated"
        + (f", {queued} queued for retry (the wiki is unavailable; `kbbot run` sends them)" if queued else "")
        + (f", {len(failed)} failed" if failed else "")
        + "."
    )
    for row in rows:
        where = row.url or row.id or "queued"
        kept = f"; kept {count_messages(row.earlier, 'earlier ')}" if row.earlier else ""
        if row.error:
            say(f"  failed {row.key}: {row.error}")
        else:
            say(f"  “{row.title}” — {where} ({count_messages(row.messages)}{kept})")
    masked = sum(r.masked for r in rows)
    if masked:
        say(masked_text(masked))
    if problems:
        say(f"{len(problems)} problem(s) above: those files or messages were skipped.")




@contextmanager
def _progress(console: Console, *, quiet: bool) -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """A progress bar (rich) on a terminal; nothing for ``--json`` or when output is not a terminal."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )

    def bar(description: str) -> Callable[[int, int], None]:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return advance

    with progress:
        yield bar
