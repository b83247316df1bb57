"""`kbbot chat`: the terminal chat over the configured knowledgebase (the sample one by default)."""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

from kbbot.adapters.terminal import TerminalChat
from kbbot.adapters.terminal_input import HISTORY_FILE, LineReader
from kbbot.core.models import SavedPage

if TYPE_CHECKING:
    from kbbot.runtime import Runtime


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("chat", help="terminal chat: ask questions, /save the conversation as a page")
    parser.set_defaults(handler=handle)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "you"


async def handle(args: argparse.Namespace, rt: Runtime) -> int:
    await run_chat(rt)
    return 0


async def run_chat(rt: Runtime) -> None:
    """The chat with the save retry worker running, so a save queued while the wiki is down still lands."""
    async def make_answerable(saved: SavedPage) -> None:
        # The saved conversation is a page now: index it at once so the next question can find it.
        if saved.id is not None:
            await rt.syncer.index_page(saved.id)

    chat = TerminalChat(
        ask=rt.ask,
        saver=rt.saver,
        console=rt.console,
        user_name=_user_name(),
        read_line=LineReader(rt.console, history=rt.settings.kbbot_data_dir / HISTORY_FILE),
        after_save=make_answerable,
    )
    # Before the worker starts: it retries only the saves of platforms whose listener is registered.
    rt.saver.listen("terminal", chat.on_saved)
    async with rt.saver:
        await chat.run()
