"""The terminal chat in a real pseudo-terminal: prompt_toolkit line editing, history across sessions, Ctrl-C.

pexpect drives ``kbbot chat`` the way a person at a keyboard does (arrow keys and Ctrl-C are bytes on the
terminal). ``expect`` waits for output; its timeout only turns a hang into a failure.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pexpect

from tests.integration.cli_support import ROOT

UP = "\x1b[A"
CTRL_C = "\x03"


def spawn_chat(tmp_path: Path) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"PYTHONPATH": str(ROOT), "TERM": "xterm", "NO_COLOR": "1", "KBBOT_DATA_DIR": str(tmp_path / "data")})
    return pexpect.spawn(
        sys.executable, ["-m", "kbbot", "chat"], cwd=str(tmp_path), env=env, encoding="utf-8", timeout=60,
        dimensions=(40, 120),
    )


def test_line_editing_history_and_ctrl_c(tmp_path: Path) -> None:
    chat = spawn_chat(tmp_path)
    chat.logfile_read = transcript = io.StringIO()
    chat.expect("you ›")
    chat.send("how do I roll back a deplox")
    chat.send("\x7fy\r")  # backspace fixes the typo: line editing
    chat.expect("Deploying services")
    chat.expect("you ›")
    chat.send("half a line" + CTRL_C)  # Ctrl-C drops the line…
    chat.expect("Ctrl-C again to leave")
    chat.expect("you ›")
    chat.send(CTRL_C)  # …and a second one in a row leaves
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0
    # pexpect answers no cursor-position request, like IDE consoles and `script`: the prompt sends none, so
    # prompt_toolkit's "WARNING: your terminal doesn't support cursor position requests (CPR)" never shows.
    assert "\x1b[6n" not in transcript.getvalue() and "cursor position" not in transcript.getvalue()
    history = (tmp_path / "data" / "chat-history").read_text()
    assert "how do I roll back a deploy" in history and "half a line" not in history

    # The next session brings the question back with ↑.
    again = spawn_chat(tmp_path)
    again.expect("you ›")
    again.send(UP)
    again.expect("roll back a deploy")
    again.send("\r")
    again.expect("Deploying services")
    again.expect("you ›")
    again.send("/quit\r")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0
