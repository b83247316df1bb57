"""The terminal chat: the embedded default, so anyone can try ask → answer → save in a minute.

Reads one question per line (line editing and history on a terminal, plain lines from a pipe: see
:mod:`kbbot.adapters.terminal_input`), prints answers with rich, and records the conversation so
``/save [title]`` can turn it into a wiki page (saving again updates the same page).

Ctrl-C works as in a shell: at the prompt it drops the line being typed and a second one in a row leaves;
while an answer is on its way it gives up waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape

from kbbot.adapters.terminal_input import LineReader
from kbbot.adapters.terminal_render import print_answer
from kbbot.core.ask import QueuePosition
from kbbot.core.models import Answer, Question, SavedPage, Thread, ThreadMessage
from kbbot.core.ports import Asking, Saving
from kbbot.core.replies import error_reply, masked_note
from kbbot.core.text import strip_invisible
from kbbot.errors import KbbotError, SaveError

HELP = """\
Type a question and press Enter (↑ brings back earlier ones). Commands:
  /save [title]   save this conversation as a wiki page (saving again updates it)
  /help           this help
  /quit           leave (Ctrl-D, or Ctrl-C twice, works too)
Ctrl-C clears the line you are typing, or stops waiting for an answer."""

PROMPT = "you › "

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
        self._read_line = read_line or LineReader(console)
        self._after_save = after_save
        self._key = f"terminal:{uuid.uuid4().hex}"
        self._messages: list[ThreadMessage] = []
        self._title: str | None = None  # kept so that `/save` after `/save My title` keeps "My title"

    async def run(self) -> None:
        self._console.print("[bold]kbbot[/bold] — ask the knowledgebase. /help for commands.", markup=True)
        interrupted = False
        while True:
            try:
                line = (await self._read_line(PROMPT)).strip()
            except EOFError:
                self._console.print()
                return
            except KeyboardInterrupt:
                if interrupted:
                    return
                interrupted = True
                self._console.print("(Ctrl-C again to leave, or type a question)", style="dim", markup=False)
                continue
            interrupted = False
            if not line:
                continue
            command = line.split()[0] if line.startswith("/") else ""
            if command in ("/quit", "/exit", "/q"):
                return
            if command == "/help":  # "/help save", "/help me": whatever follows, the help is what was asked for
                self._console.print(HELP, markup=False, highlight=False)
            elif command == "/save":
                await self._save(line[len("/save") :].strip() or None)
            elif line.startswith("/"):
                self._console.print(f"Unknown command {command!r}. /help lists the commands.", markup=False)
            else:
                await self._question(line)

    async def _question(self, text: str) -> None:
        try:
            with self._console.status("thinking…"), _cancel_on_ctrl_c() as cancelled:
                answer = await self._ask.ask(Question(text=text, platform="terminal"), on_queued=self._queued)
        except asyncio.CancelledError:
            if not cancelled.is_set():
                raise
            self._console.print("Stopped waiting for that answer.", style="dim", markup=False)
            return
        except Exception as exc:  # every failure becomes one friendly line; the chat goes on
            self._console.print(strip_invisible(error_reply(exc)), style="red", markup=False, highlight=False)
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
            self._console.print(strip_invisible(error_reply(exc)), style="red", markup=False, highlight=False)
            return
        if saved.pending:
            self._console.print("Saving — the wiki is busy; it will be retried in the background.", markup=False)
            return
        self._title = title
        await self._saved(saved)

    async def on_saved(self, conversation_key: str, saved: SavedPage | SaveError) -> None:
        """ThreadSaver's callback for a terminal save that was queued (this session's or an earlier one's) and
        has now ended: print the link, or why the wiki refused it."""
        if isinstance(saved, SaveError):
            self._console.print(strip_invisible(error_reply(saved)), style="red", markup=False, highlight=False)
        else:
            await self._saved(saved)

    async def _saved(self, saved: SavedPage) -> None:
        if self._after_save is not None:
            await self._after_save(saved)
        verb = "Saved" if saved.created else "Updated"
        where = saved.url or saved.id
        # Titles keep symbols such as "[x]": escaped so rich does not read them as markup.
        shown = strip_invisible(f"{saved.title} — {where or ''}")
        # soft_wrap: the link stays whole, as in print_answer.
        self._console.print(f"[green]{verb}:[/green] {escape(shown)}", markup=True, highlight=False, soft_wrap=True)
        if masked := masked_note(saved):
            self._console.print(masked, markup=False, highlight=False)


@contextlib.contextmanager
def _cancel_on_ctrl_c() -> Iterator[asyncio.Event]:
    """While the block runs, Ctrl-C (SIGINT) cancels the current task instead of ending the program; the
    event tells the caller it was that. The previous SIGINT handler is back afterwards."""
    cancelled = asyncio.Event()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler

    def on_sigint() -> None:
        cancelled.set()
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        yield cancelled
        return
    try:
        yield cancelled
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)
        if cancelled.is_set() and task is not None:
            task.uncancel()
