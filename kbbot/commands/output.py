"""Shared output helpers for commands: JSON to stdout, answers rendered with rich."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markdown import Markdown

from kbbot.core.models import Answer, Source

SOURCE_LABEL = {Source.AI: "AI answer", Source.CACHE: "AI answer (cached)", Source.SEARCH: "wiki search"}


def print_json(console: Console, value: Any) -> None:
    """Plain JSON on stdout (no rich markup, no wrapping), so scripts can parse it."""
    console.file.write(json.dumps(value, ensure_ascii=False) + "\n")
    console.file.flush()


def print_answer(console: Console, answer: Answer) -> None:
    """An answer for a person: notice, Markdown body, related pages with links, and where it came from."""
    if answer.notice:
        console.print(f"[yellow]{answer.notice}[/yellow]", markup=True, highlight=False)
    console.print(Markdown(answer.text or "_No answer._"))
    if answer.related_pages:
        console.print("[bold]Related pages[/bold]", markup=True)
        for page in answer.related_pages:
            if page.url:
                console.print(f"  • {page.title} — {page.url}", markup=False, highlight=False)
            else:
                console.print(f"  • {page.title}", markup=False, highlight=False)
    console.print(f"[dim]source: {SOURCE_LABEL[answer.source]}[/dim]", markup=True)
