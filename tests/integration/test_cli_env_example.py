"""`cp .env.example .env` (the README's first step) behaves exactly like having no `.env` at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.cli_support import ROOT, kbbot_in_process, run_kbbot

COMMANDS = [
    ("ask", "how do I set up the VPN", "--json"),
    ("check", "--json"),
    ("index", "search", "vpn", "--json"),
    ("pages", "list", "--json"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_copied_env_example_is_the_same_as_no_env(tmp_path: Path, command: tuple[str, ...]) -> None:
    with_env, without = tmp_path / "with-env", tmp_path / "without"
    with_env.mkdir()
    without.mkdir()
    shutil.copy(ROOT / ".env.example", with_env / ".env")  # the real file, blank values and all
    # The copied file read in this process (kbbot_in_process), no file in a real one: the same output either way.
    copied = kbbot_in_process(*command, cwd=with_env)
    bare = run_kbbot(*command, cwd=without)
    assert copied.returncode == 0, copied.stderr
    assert bare.returncode == 0, bare.stderr
    # Same answer, except for the path of the data folder each run was given.
    assert copied.stdout.replace(str(with_env), "X") == bare.stdout.replace(str(without), "X")
    assert copied.stderr == bare.stderr == ""
