"""The data folder as operators meet it (issue 15, items 3 and 7), through the real `kbbot` command:

- files are owner-only (0600, folders 0700) whatever the umask, also in a folder an older kbbot made 0755;
- a read-only or full disk gives one line, exit 2, and never advice that would discard queued saves — and a
  save queued before the disk filled is still there afterwards.

Full and read-only disks are real: small tmpfs mounts (needs root, as in CI's container; skipped otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbbot.store.sqlite_threads import DEFAULT_FILENAME, SqliteOutbox
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.cli_support import kbbot_in_process, run_kbbot

DISCARDING_ADVICE = ("delete", "remove", "move it", "afresh", "rm ", "start over")


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # as an older kbbot (or a careless mkdir) left it
    os.chmod(data, 0o755)
    transcript = tmp_path / "t.txt"
    transcript.write_text("Ann: how do we rotate the API key?\nBob: run make rotate\n")
    env = {"KBBOT_DATA_DIR": str(data)}
    with _umask(0o022):
        for args in (("save", str(transcript), "--title", "Key rotation"), ("ask", "how do I set up the VPN")):
            result = run_kbbot(*args, env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
    modes = _modes(data)
    assert any(name.endswith(".sqlite3") for name in modes) and any(name.endswith(".md") for name in modes)
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (data / name).is_dir() else 0o600)
    }
    assert wrong == {}


@contextlib.contextmanager
def _tmpfs(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): no real full or read-only disk to test with")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert not any(advice in lines[0].lower() for advice in DISCARDING_ADVICE), lines[0]
    return lines[0]


def test_read_only_data_folder_is_one_clear_line(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro", "size=1m") as folder:
        result = run_kbbot("ask", "vpn", env={"KBBOT_DATA_DIR": str(folder / "data")}, cwd=tmp_path)
        assert result.returncode == 2
        line = _one_line(result)
        assert "KBBOT_DATA_DIR" in line and "read-only" in line


def test_full_disk_is_one_clear_line_and_keeps_the_queued_save(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "disk", "size=2m") as disk:
        data = disk / "data"
        env = {"PERFECTWIKI_API_TOKEN": fake_pw.token, "PERFECTWIKI_BASE_URL": fake_pw.url,
               "KBBOT_DATA_DIR": str(data)}  # fmt: skip
        transcript = tmp_path / "t.txt"
        transcript.write_text("Ann: where is the VPN guide?\nBob: in the IT space\n")
        # The wiki is down: the save is queued in the data folder (exit 75).
        fake_pw.fail_next(1000, status=503, endpoint="create")
        queued = run_kbbot("save", str(transcript), "--title", "VPN guide", env=env, cwd=tmp_path)
        assert queued.returncode == 75, queued.stderr

        # Then the disk fills up.
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        for args in (("save", str(transcript), "--title", "VPN guide, again"), ("ask", "vpn")):
            result = kbbot_in_process(*args, env=env, cwd=tmp_path)  # what the command says, not the process
            assert result.returncode == 2, (args, result.stderr)
            line = _one_line(result)
            assert "KBBOT_DATA_DIR" in line and "disk is full" in line and "kept" in line

        # Space again: the save queued before is still there, ready for the outbox worker.
        filler.unlink()
        outbox = SqliteOutbox(data / DEFAULT_FILENAME)
        try:
            pending = asyncio.run(outbox.pending())
        finally:
            asyncio.run(outbox.aclose())
        assert [item.title for item in pending] == ["VPN guide"]


def test_the_old_default_folder_is_pointed_out_not_silently_ignored(tmp_path: Path) -> None:
    old = tmp_path / ".kbbot"
    old.mkdir()
    outbox = SqliteOutbox(old / DEFAULT_FILENAME)  # an older kbbot's store (its default was ./.kbbot)
    asyncio.run(outbox.aclose())
    warned = run_kbbot("ask", "vpn", env={"LOG_LEVEL": "DEBUG"}, cwd=tmp_path)
    assert warned.returncode == 0, warned.stderr
    assert "from an older kbbot" in warned.stderr and f"KBBOT_DATA_DIR={old}" in warned.stderr
    chosen = kbbot_in_process("ask", "vpn", env={"LOG_LEVEL": "DEBUG", "KBBOT_DATA_DIR": str(old)}, cwd=tmp_path)
    assert chosen.returncode == 0 and "older kbbot" not in chosen.stderr
