"""Answers drawn in a terminal with rich (``kbbot ask`` and the terminal chat): notice, Markdown, pages, source."""

from __future__ import annotations

from markdown_it import MarkdownIt
from rich.console import Console
from rich.markdown import Markdown

from kbbot.core.models import Answer, Source
from kbbot.core.text import strip_invisible

SOURCE_LABEL = {Source.AI: "AI answer", Source.CACHE: "AI answer (cached)", Source.SEARCH: "wiki search"}
#: A "don't know" (``empty``), whoever said it: when the wiki's AI found nothing the reply is kbbot's own.
NOT_FOUND_LABEL = "not found in the wiki"


class AnswerMarkdown(Markdown):
    """rich's Markdown with raw HTML shown as the text it is: an answer saying ``run promote <service>``
    must not lose ``<service>`` as an unknown HTML tag (rich drops HTML it cannot draw)."""

    def __init__(self, markup: str) -> None:
        super().__init__(markup)
        self.parsed = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table").parse(markup)


def print_answer(console: Console, answer: Answer) -> None:
    """An answer for a person: notice, Markdown body, related pages with links, and where it came from.
    Everything from the wiki goes through :func:`strip_invisible`: rich passes escape sequences through."""
    if answer.notice:
        console.print(strip_invisible(answer.notice), style="yellow", markup=False, highlight=False)
    # A quoted line that starts like Markdown comes escaped by the answerer ("1\\. Get your configuration"):
    # Markdown itself keeps it a line of text.
    console.print(AnswerMarkdown(strip_invisible(answer.text) or "_No answer._"))
    if answer.related_pages:
        console.print("[bold]Related pages[/bold]", markup=True)
        for page in answer.related_pages:
            # soft_wrap: rich would break a long URL with a newline (a pipe is 80 columns), leaving a link
            # nobody can open or copy; the terminal wraps the whole line instead.
            shown = f"  • {page.title} — {page.url}" if page.url else f"  • {page.title}"
            console.print(strip_invisible(shown), markup=False, highlight=False, soft_wrap=True)
    label = NOT_FOUND_LABEL if answer.empty else SOURCE_LABEL[answer.source]
    console.print(f"[dim]source: {label}[/dim]", markup=True)
