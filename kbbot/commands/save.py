"""`kbbot save FILE --title T [--tags a,b] [--json]`: save a transcript file as a wiki page.

FILE is a Slack export JSON, a DiscordChatExporter JSON or ``Name: message`` lines (see ``kbbot.transcripts``).
Saving the same file again updates the page it created. When the wiki is unreachable the save is kept in the
outbox under KBBOT_DATA_DIR (retried by the outbox worker of ``kbbot run``) and the exit code is 75
(EX_TEMPFAIL).

``--json`` prints exactly ``{"id", "url", "created"}`` (while pending, ``id``/``url`` are those of the page a
re-save will update, or null for a thread never saved before).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from kbbot.commands.output import print_json
from kbbot.core.replies import masked_note
from kbbot.core.text import parse_tags
from kbbot.store.transcript_archive import TranscriptArchive
from kbbot.transcripts import load_transcript

if TYPE_CHECKING:
    from kbbot.config import Settings
    from kbbot.runtime import Runtime

#: ``sysexits.h`` EX_TEMPFAIL: not saved yet, queued for retry.
EXIT_PENDING = 75


def archive_for(settings: Settings) -> TranscriptArchive:
    """What earlier saves and imports of each conversation held (``kbbot save`` and ``kbbot import``), so a
    DiscordChatExporter part or an export of another range adds to its page instead of replacing it."""
    return TranscriptArchive(settings.kbbot_data_dir / "imports")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "save",
        help="save a chat transcript file as a wiki page",
        description="Save a Slack export JSON, a DiscordChatExporter JSON or 'Name: message' lines as a page. "
        "Saving the same file again updates the same page.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the transcript file")
    parser.add_argument("--title", help="page title (default: the first line of the first message)")
    parser.add_argument(
        "--tags", type=parse_tags, help="comma-separated tags (default: channel name + SAVE_DEFAULT_TAGS)"
    )
    parser.add_argument("--json", action="store_true", help='print {"id", "url", "created"}')
    parser.set_defaults(handler=handler)


async def handler(args: argparse.Namespace, rt: Runtime) -> int:
    merged = archive_for(rt.settings).merge(load_transcript(args.file))
    # From a file, not a chat: a save queued now is not announced in the conversation when it lands later.
    page = await rt.saver.save(merged.thread, title=args.title, tags=args.tags, announce=False)
    if args.json:
        print_json(rt.console, page.to_json())
    elif page.pending:
        rt.console.print(
            "Saving, will retry: the wiki is unavailable right now. The page is kept in the outbox and sent "
            "by `kbbot run` once the wiki is back (or run this command again).",
            markup=False,
            highlight=False,
        )
    else:
        verb = "Created" if page.created else "Updated"
        where = page.url or f"page id {page.id}"
        # soft_wrap: the link stays whole on one line (rich would break it at 80 columns in a pipe).
        rt.console.print(f"{verb} “{page.title}”: {where}", markup=False, highlight=False, soft_wrap=True)
        parts = page.extra.get("parts")
        if isinstance(parts, list) and len(parts) > 1:
            rt.console.print(f"  (split into {len(parts)} parts: the thread is longer than PAGE_MAX_CHARS)")
        if merged.earlier:
            rt.console.print(f"  (kept {merged.earlier} messages of earlier saves that this file does not hold)")
        if masked := masked_note(page):
            rt.console.print(f"  {masked}", markup=False, highlight=False)
    return EXIT_PENDING if page.pending else 0
