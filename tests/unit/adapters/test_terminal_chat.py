"""The terminal chat loop: Ctrl-C semantics, /help with anything after it, answers rendered verbatim."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from kbbot.adapters.terminal import TerminalChat
from kbbot.adapters.terminal_input import LineReader
from kbbot.adapters.terminal_render import print_answer
from kbbot.core.models import Answer, PageRef, Question, SavedPage, Source, Thread, ThreadMessage
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.errors import BadRequest, Unavailable
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.memory_kb import MemoryKnowledgeBase


class Lines:
    """Stands for the keyboard: each item is a line, or an exception the prompt raises (Ctrl-C, Ctrl-D)."""

    def __init__(self, items: Iterable[str | BaseException]) -> None:
        self.items = list(items)
        self.prompts: list[str] = []

    async def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.items:
            raise EOFError
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


class Ask:
    def __init__(self, answer: Answer | None = None, block: bool = False) -> None:
        self.answer = answer or Answer(text="an answer", source=Source.SEARCH)
        self.block = block
        self.started = asyncio.Event()
        self.questions: list[str] = []

    async def ask(self, question: Question, **_: Any) -> Answer:
        self.questions.append(question.text)
        self.started.set()
        if self.block:
            await asyncio.Event().wait()  # never answers: only Ctrl-C ends the wait
        return self.answer


def chat(lines: Lines, ask: Ask) -> tuple[TerminalChat, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False)
    return TerminalChat(ask=ask, saver=None, console=console, read_line=lines), out  # type: ignore[arg-type]


async def test_one_ctrl_c_drops_the_line_and_a_second_in_a_row_leaves() -> None:
    lines = Lines([KeyboardInterrupt(), "first question", KeyboardInterrupt(), KeyboardInterrupt(), "never read"])
    ask = Ask()
    terminal, out = chat(lines, ask)
    await terminal.run()
    assert ask.questions == ["first question"]  # a line typed after one Ctrl-C is still answered
    assert lines.items == ["never read"]  # the two Ctrl-C in a row ended the chat
    assert out.getvalue().count("Ctrl-C again to leave") == 2


async def test_help_with_anything_after_it_and_commands_with_arguments() -> None:
    lines = Lines(["/help", "/help save", "/help me please", "/bogus arg", "/quit now"])
    terminal, out = chat(lines, Ask())
    await terminal.run()
    text = out.getvalue()
    assert text.count("/save [title]") == 3
    assert "Unknown command '/bogus'" in text
    assert "/quit now" not in text and lines.items == []


async def test_ctrl_c_while_waiting_stops_waiting_and_the_chat_goes_on() -> None:
    ask = Ask(block=True)
    lines = Lines(["a slow question"])
    terminal, out = chat(lines, ask)
    run = asyncio.create_task(terminal.run())
    await ask.started.wait()
    os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered through the event loop's handler
    await run
    assert "Stopped waiting for that answer." in out.getvalue()
    assert signal.getsignal(signal.SIGINT) is not None and lines.prompts == ["you › ", "you › "]


async def test_code_and_angle_brackets_are_shown_verbatim() -> None:
    text = "Run `./scripts/promote <service>` then:\n\n```\n# comment\n./scripts/promote <service> --rollback\n```"
    lines = Lines(["how do I promote"])
    terminal, out = chat(lines, Ask(Answer(text=text + "\n\nor simply promote <service> by hand")))
    await terminal.run()
    shown = out.getvalue()
    assert "./scripts/promote <service>" in shown and "# comment" in shown
    assert "promote <service> by hand" in shown  # raw HTML-looking prose is text, not a dropped tag
    assert "\u200b" not in shown


async def test_history_file_is_owner_only(tmp_path: Path) -> None:
    reader = LineReader(Console(file=io.StringIO()), history=tmp_path / "data" / "chat-history", interactive=True)
    old = os.umask(0o022)
    try:
        reader._prompt_session()
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "data" / "chat-history").stat().st_mode)
    assert mode == 0o600


def test_answers_from_a_hostile_page_print_no_escape_sequences() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=100)
    hostile = "\x1b]0;pwned\x07Use\x1b[2J the \u202eportal\r now"
    print_answer(console, Answer(text=hostile, source=Source.SEARCH, notice="stale \x1b[2J",
                                 related_pages=(PageRef("p1", "VPN \x1b]0;t\x07[red]x[/red]", "https://w/\x9b1"),)))
    printed = out.getvalue()
    assert not any(c in printed for c in "\x1b\x07\r\u202e\x9b"), repr(printed)
    assert "Use the portal now" in printed and "VPN [red]x[/red] — https://w/1" in printed


def test_a_dont_know_from_the_ai_is_not_called_an_ai_answer() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False)
    print_answer(console, Answer(text="I couldn't find this in the wiki.", source=Source.AI, empty=True,
                                 related_pages=(PageRef("p1", "VPN setup", "https://wiki.example/p1"),)))
    shown = out.getvalue()
    assert "VPN setup — https://wiki.example/p1" in shown
    assert "source: not found in the wiki" in shown and "AI answer" not in shown



async def test_a_queued_save_is_reported_in_the_chat_when_the_worker_ends_it(tmp_path: Path) -> None:
    kb, now = MemoryKnowledgeBase(), [1_700_000_000.0]
    thread_map, outbox = SqliteSavedThreadMap(tmp_path / "t.db"), SqliteOutbox(tmp_path / "t.db")
    saver = ThreadSaver(kb, thread_map, outbox, retry=SaveRetryPolicy(first_delay=10, jitter=0), clock=lambda: now[0])
    indexed: list[str | None] = []

    async def index(saved: SavedPage) -> None:
        indexed.append(saved.id)

    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, force_terminal=False)
    terminal = TerminalChat(ask=Ask(), saver=saver, console=console, read_line=Lines(["q", "/save VPN"]),
                            after_save=index)
    saver.listen("terminal", terminal.on_saved)  # as `kbbot chat` does, before the worker starts
    try:
        kb.fail_next("create_page", Unavailable("down", status=503))
        await terminal.run()
        assert "it will be retried in the background" in out.getvalue() and not kb.pages
        now[0] += 10
        await saver.retry_due()
        assert f"Saved: VPN — {kb.page_url('p1', 'VPN')}" in out.getvalue()
        assert indexed == ["p1"]  # answerable at once, as after a direct save

        # A queued save the wiki then refuses: the chat says so instead of staying silent.
        kb.fail_next("create_page", Unavailable("down", status=503))
        other = Thread("terminal", "terminal:other", (ThreadMessage("me", "me", "2026-01-05", "hi"),))
        assert (await saver.save(other, title="Later")).pending
        kb.fail_next("create_page", BadRequest("title too long", status=400))
        now[0] += 10
        await saver.retry_due()
        assert "The queued save of “Later” failed. The wiki refused the page: title too long" in out.getvalue()
        assert await saver.queued() == 0
    finally:
        await thread_map.aclose()
        await outbox.aclose()
