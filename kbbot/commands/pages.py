"""`kbbot pages list|get|create|update|delete`: the knowledgebase API from the shell."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from kbbot.commands.output import print_json
from kbbot.core.models import PageChange
from kbbot.core.text import parse_tags, strip_invisible
from kbbot.errors import ConfigError

if TYPE_CHECKING:
    from kbbot.runtime import Runtime


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pages = sub.add_parser("pages", help="list, read, create, update and delete wiki pages")
    actions = pages.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list every page")
    listing.set_defaults(handler=handle_list)

    get = actions.add_parser("get", help="print one page")
    get.add_argument("id")
    get.set_defaults(handler=handle_get)

    create = actions.add_parser("create", help="create a page")
    create.add_argument("--title", required=True)
    _content_args(create)
    create.set_defaults(handler=handle_create)

    update = actions.add_parser("update", help="change a page's title, content or tags (only what you pass)")
    update.add_argument("id")
    update.add_argument("--title")
    _content_args(update)
    update.set_defaults(handler=handle_update)

    delete = actions.add_parser("delete", help="delete a page (cannot be undone)")
    delete.add_argument("id")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    delete.set_defaults(handler=handle_delete)

    for action in (listing, get, create, update, delete):
        action.add_argument("--json", action="store_true", help="machine-readable output")


def _content_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--content", help="page content (HTML for Perfect Wiki, Markdown for MatHub/local)")
    group.add_argument("--file", type=Path, help="read the content from this file ('-' for stdin)")
    parser.add_argument("--tags", type=parse_tags, help="comma-separated tags (replace the existing ones)")


def _content(args: argparse.Namespace) -> str | None:
    if args.file is None:
        return args.content  # type: ignore[no-any-return]
    if str(args.file) == "-":
        import sys

        return sys.stdin.read()
    try:
        return args.file.read_text(encoding="utf-8")  # type: ignore[no-any-return]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.__class__.__name__}") from None


async def handle_list(args: argparse.Namespace, rt: Runtime) -> int:
    pages = await rt.kb.list_pages()
    if args.json:
        print_json(rt.console, [{**asdict(p), "url": rt.kb.page_url(p.id, p.title, p.slug)} for p in pages])
        return 0
    table = Table("id", "title", "tags")
    for page in pages:
        # Text cells, not markup; no escape sequences from the wiki reach the terminal (strip_invisible).
        table.add_row(*(Text(strip_invisible(cell)) for cell in (page.id, page.title, ", ".join(page.tags))))
    rt.console.print(table)
    rt.console.print(f"{len(pages)} pages", style="dim")
    return 0


async def handle_get(args: argparse.Namespace, rt: Runtime) -> int:
    page = await rt.kb.get_page(args.id)
    if args.json:
        print_json(rt.console, {**asdict(page), "url": rt.kb.page_url(page.id, page.title, page.slug)})
        return 0
    # The title is text, not markup; no escape sequences from the wiki reach the terminal (strip_invisible).
    # --json gives the page as stored.
    rt.console.print(Text(strip_invisible(page.title), style="bold"), f" ({strip_invisible(page.id)})", highlight=False)
    if page.tags:
        rt.console.print(strip_invisible("tags: " + ", ".join(page.tags)), markup=False)
    rt.console.print(strip_invisible(page.content), markup=False, highlight=False)
    return 0


async def handle_create(args: argparse.Namespace, rt: Runtime) -> int:
    ref = await rt.kb.create_page(args.title, _content(args) or "", args.tags or ())
    if args.json:
        print_json(rt.console, ref.to_json())
    else:
        rt.console.print(f"created {ref.id}" + (f" — {ref.url}" if ref.url else ""), markup=False, soft_wrap=True)
    return 0


async def handle_update(args: argparse.Namespace, rt: Runtime) -> int:
    change = PageChange(title=args.title, content=_content(args), tags=args.tags)
    if change.title is None and change.content is None and change.tags is None:
        raise ConfigError("pages update needs at least one of --title, --content/--file, --tags")
    await rt.kb.update_page(args.id, change)
    if args.json:
        print_json(rt.console, {"id": args.id, "updated": True})
    else:
        rt.console.print(f"updated {args.id}", markup=False)
    return 0


async def handle_delete(args: argparse.Namespace, rt: Runtime) -> int:
    if not args.yes:
        raise ConfigError(f"deleting {args.id} cannot be undone; run again with --yes to confirm")
    await rt.kb.delete_page(args.id)
    if args.json:
        print_json(rt.console, {"id": args.id, "deleted": True})
    else:
        rt.console.print(f"deleted {args.id}", markup=False)
    return 0
