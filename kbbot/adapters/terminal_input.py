"""Where the terminal chat's lines come from: prompt_toolkit on a terminal, plain lines from a pipe.

On a terminal people expect a shell-like prompt: arrow keys, Ctrl-A/E, Ctrl-R and ↑ for earlier questions
(kept across sessions in an owner-only file in the data folder). Piped input (scripts, tests, ``echo q |
kbbot chat``) has no terminal for prompt_toolkit to drive, so it is read line by line instead.

Both raise ``EOFError`` at the end of input (Ctrl-D) and ``KeyboardInterrupt`` for Ctrl-C; what those mean is
the chat's business.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

#: The history file in ``KBBOT_DATA_DIR``: the questions asked, one entry each (owner-only: they may be personal).
HISTORY_FILE = "chat-history"


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


class LineReader:
    """``await reader("you › ")`` → the next line, without its newline."""

    def __init__(self, console: Console, *, history: Path | None = None, interactive: bool | None = None) -> None:
        self._console = console
        self._history = history
        self._interactive = is_terminal() if interactive is None else interactive
        self._session: PromptSession[str] | None = None

    async def __call__(self, prompt: str) -> str:
        if not self._interactive:
            # input() blocks; a thread keeps background work (index refresh, outbox) going meanwhile.
            return await asyncio.to_thread(self._console.input, prompt, markup=False)
        return await self._prompt_session().prompt_async(prompt)

    def _prompt_session(self) -> PromptSession[str]:
        if self._session is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory, InMemoryHistory
            from prompt_toolkit.output import create_output
            from prompt_toolkit.output.vt100 import Vt100_Output

            history = FileHistory(str(_private_file(self._history))) if self._history else InMemoryHistory()
            output = create_output()
            if isinstance(output, Vt100_Output):
                # Cursor-position requests only size drop-down menus, which this one-line prompt has none of; a
                # terminal that does not answer them (IDE consoles, `script`, pexpect) printed "WARNING: your
                # terminal doesn't support cursor position requests (CPR)" above the first question.
                output.enable_cpr = False
            self._session = PromptSession(history=history, output=output)
        return self._session


def _private_file(path: Path) -> Path:
    """``path``, created owner-only (0600) whatever the umask, before prompt_toolkit appends to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    return path
