"""`kbbot run` with nothing configured: the terminal chat in a terminal, a clear error without one.

Under Docker, systemd or k8s stdin is not a terminal; the chat used to read end-of-input and exit 0, which a
restart policy turns into a silent loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect

from tests.integration.cli_support import ROOT, default_data_dir


def _env(cwd: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "XDG_DATA_HOME": str(default_data_dir(cwd).parent),
        "TERM": "dumb",
        "NO_COLOR": "1",
    }


def test_run_without_adapters_or_terminal_exits_2_with_one_line(tmp_path: Path) -> None:
    for stdin in ({"stdin": subprocess.DEVNULL}, {"input": ""}):  # /dev/null (systemd), an empty pipe (compose)
        result = subprocess.run(
            [sys.executable, "-m", "kbbot", "run"],
            cwd=tmp_path,
            env=_env(tmp_path),
            **stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "SLACK_BOT_TOKEN" in lines[0] and "DISCORD_BOT_TOKEN" in lines[0]
        assert result.stdout == ""


def test_run_without_adapters_in_a_terminal_is_the_chat(tmp_path: Path) -> None:
    child = pexpect.spawn(
        sys.executable, ["-m", "kbbot", "run"], cwd=str(tmp_path), env=_env(tmp_path), encoding="utf-8", timeout=60
    )
    try:
        child.sendline("how do I set up the VPN")
        child.expect("From the wiki")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_run_help_describes_the_command_and_starts_nothing(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kbbot", "run", "--help"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    description = " ".join(out.stdout.split("options:")[0].split()[4:])  # what follows "usage: kbbot run [-h]"
    assert description.startswith("Run the bot:") and "terminal chat" in description
