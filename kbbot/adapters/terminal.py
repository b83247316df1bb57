"""The terminal chat: the embedded default, so anyone can try ask → answer → save in a minute.

Reads one question per line (works interactively and with piped stdin), prints answers with rich, and records
the conversation so ``/save [title]`` can turn it into a wiki page (saving again updates the same page).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console

from kbbot.commands.output import print_answer
from kbbot.core.ask import QueuePosition
from kbbot.core.models import Answer, Question, SavedPage, Thread, ThreadMessage
from kbbot.core.ports import Asking, Saving
from kbbot.core.replies import error_reply
from kbbot.errors import KbbotError

HELP = """\
Type a question and press Enter. Commands:
  /save [title]   save this conversation as a wiki page (saving again updates it)
  /help           this help
  /quit           leave (Ctrl-D works too)"""

InputFn = Callable[[str], Awaitable[str]]
SavedHook = Callable[[SavedPage], Awaitable[object]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _answer_markdown(answer: Answer) -> str:
    links = [f"[{p.title}]({p.url})" if p.url else p.title for p in answer.related_pages]
    related = "\n\nRelated pages: " + ", ".join(links) if links else ""
    return (answer.notice + "\n\n" if answer.notice else "") + answer.text + related


class TerminalChat:
    """One chat session. ``read_line`` is injectable so tests can drive it without a terminal."""

    def __init__(
        self,
        *,
        ask: Asking,
        saver: Saving,
        console: Console,
        user_name: str = "you",
        read_line: InputFn | None = None,
        after_save: SavedHook | None = None,
    ) -> None:
        self._ask = ask
        self._saver = saver
        self._console = console
        self._user = user_name
        self._read_line = read_line or self._stdin_line
        self._after_save = after_save
        self._key = f"terminal:{uuid.uuid4().hex}"
        self._messages: list[ThreadMessage] = []
        self._title: str | None = None  # kept so that `/save` after `/save My title` keeps "My title"

    async def _stdin_line(self, prompt: str) -> str:
        # input() blocks; run it in a thread so background work (index refresh, outbox) keeps going.
        return await asyncio.to_thread(self._console.input, prompt)

    async def run(self) -> None:
        self._console.print("[bold]kbbot[/bold] — ask the knowledgebase. /help for commands.", markup=True)
        while True:
            try:
                line = (await self._read_line("[bold cyan]you ›[/bold cyan] ")).strip()
            except (EOFError, KeyboardInterrupt):
                self._console.print()
                return
            if not line:
                continue
            if line in ("/quit", "/exit", "/q"):
                return
            if line == "/help":
                self._console.print(HELP, markup=False, highlight=False)
            elif line == "/save" or line.startswith("/save "):
                await self._save(line[len("/save") :].strip() or None)
            elif line.startswith("/"):
                self._console.print(f"Unknown command {line.split()[0]!r}. /help lists the commands.", markup=False)
            else:
                await self._question(line)

    async def _question(self, text: str) -> None:
        try:
            with self._console.status("thinking…"):
                answer = await self._ask.ask(Question(text=text, platform="terminal"), on_queued=self._queued)
        except Exception as exc:  # every failure becomes one friendly line; the chat goes on
            self._console.print(f"[red]{error_reply(exc)}[/red]", markup=True, highlight=False)
            return
        print_answer(self._console, answer)
        self._messages.append(ThreadMessage(self._user, "terminal-user", _now(), text))
        self._messages.append(ThreadMessage("kbbot", "kbbot", _now(), _answer_markdown(answer)))

    async def _queued(self, position: QueuePosition) -> None:
        self._console.print(position.message(), style="yellow", markup=False)

    async def _save(self, title: str | None) -> None:
        title = title or self._title
        if not self._messages:
            self._console.print("Nothing to save yet: ask a question first.", markup=False)
            return
        thread = Thread(
            platform="terminal",
            key=self._key,
            messages=tuple(self._messages),
            channel_name="terminal",
            title_hint=title,
        )
        try:
            saved = await self._saver.save(thread, title=title)
        except KbbotError as exc:
            self._console.print(f"[red]{error_reply(exc)}[/red]", markup=True, highlight=False)
            return
        if saved.pending:
            self._console.print("Saving — the wiki is busy; it will be retried in the background.", markup=False)
            return
        self._title = title
        if self._after_save is not None:
            await self._after_save(saved)
        verb = "Saved" if saved.created else "Updated"
        where = saved.url or saved.id
        self._console.print(f"[green]{verb}:[/green] {saved.title} — {where}", markup=True, highlight=False)
