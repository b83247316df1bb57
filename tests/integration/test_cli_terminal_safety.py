"""Page text printed by the CLI (``kbbot index search``, ``ask``, ``chat``, ``pages get|list``) reaches the
terminal without escape sequences or invisible characters: a hostile page must not retitle the window (OSC 0),
clear the screen (CSI 2J) or reorder text (bidi overrides); a CR cannot reach a page through a local folder
(files are read with universal newlines), so tests/unit/test_text.py covers it. ``--json`` keeps the data as
stored (JSON escapes control characters itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_support import kbbot_in_process, run_kbbot

HOSTILE = (
    "\x1b]0;pwned\x07",  # OSC 0: sets the window title
    "\x1b[2J",  # CSI 2J: clears the screen
    "\x9b2J",  # the same as a C1 control
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\x07",
    "\x1b",
)
PAGE = (
    "---\ntitle: VPN gateway [red]x[/red]\n---\n# VPN gateway\n\n"
    "The VPN gateway \x1b]0;pwned\x07is gw.example \x1b[2Jtoday. Old text\rnew text, "
    "\u202edesrever\u202c and \u2066isolated\u2069, \x9b2Jcolour \x1b[31mred\x1b[0m.\n"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "vpn-gateway.md").write_text(PAGE, encoding="utf-8")
    return {"LOCAL_KB_DIR": str(folder), "KBBOT_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (("index", "search", "vpn gateway"), None),
        (("ask", "what is the VPN gateway?"), None),
        (("chat",), "what is the VPN gateway?\n/quit\n"),
        (("pages", "get", "vpn-gateway"), None),
        (("pages", "list"), None),
    ],
)
def test_page_text_reaches_the_terminal_inert(env: dict[str, str], tmp_path: Path, args: tuple[str, ...],
                                              stdin: str | None) -> None:
    # In this process (the text the command writes is what is tested); the --json test below is a real one.
    result = kbbot_in_process(*args, env=env, cwd=tmp_path, stdin=stdin)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "VPN gateway" in out
    assert [s for s in HOSTILE if s in out] == []
    if args[0] in ("pages", "index"):
        assert "VPN gateway [red]x[/red]" in out  # the title as written, never read as rich markup
    if args[0] != "pages" or args[1] == "get":  # the page body is shown: its words, in order, one line
        assert "gw.example" in out and "pwned" not in out
        assert "desrever" in out and "colour red" in out


def test_json_output_keeps_the_page_as_stored(env: dict[str, str], tmp_path: Path) -> None:
    result = run_kbbot("pages", "get", "vpn-gateway", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\u001b]0;pwned\\u0007" in result.stdout
