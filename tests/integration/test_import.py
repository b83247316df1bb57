"""`kbbot import` end to end on real export files: a real ThreadSaver on the local Markdown backend (and the
real CLI once), pages compared with the export message by message; re-runs, parts and ranges lose nothing.

Sources of the files: tests/fixtures/exports/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kbbot.backends.local import LocalBackend
from kbbot.commands import imports, save
from kbbot.config import Settings
from kbbot.core.threads import ThreadSaver
from kbbot.formats.slack import iso_time
from kbbot.formats.slack_export import read_slack_export
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from kbbot.transcripts import TranscriptError
from tests.integration.cli_support import kbbot_in_process, run_kbbot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports"
SLACK_ZIP = FIXTURES / "slack" / "slackdump_source_export.zip"
CHANNEL = "CO69735E8A"
SPLIT = FIXTURES / "discord" / "split"


@dataclass
class Rt:
    saver: ThreadSaver
    console: Console
    settings: Settings
    out: io.StringIO
    kb: LocalBackend

    def pages(self) -> dict[str, str]:
        return {p.name: p.read_text(encoding="utf-8") for p in sorted((self.kb.writable_dir).glob("*.md"))}

    async def run(self, *argv: str) -> tuple[int, str]:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        imports.register(sub)
        save.register(sub)
        args = parser.parse_args(list(argv))
        self.out.seek(0)
        self.out.truncate()
        code: int = await args.handler(args, self)
        return code, self.out.getvalue()


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Rt]:
    data = tmp_path / "data"
    source = tmp_path / "kb"
    source.mkdir()
    kb = LocalBackend(source, data / "pages")
    db = data / "threads.sqlite3"
    data.mkdir()
    thread_map, outbox = SqliteSavedThreadMap(db), SqliteOutbox(db)
    out = io.StringIO()
    yield Rt(ThreadSaver(kb, thread_map, outbox), Console(file=out, width=200), Settings(kbbot_data_dir=data),
             out, kb)
    await thread_map.aclose()
    await outbox.aclose()


def _unzipped(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    with zipfile.ZipFile(SLACK_ZIP) as archive:
        archive.extractall(folder)
    return folder


def _export_messages(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for day in sorted((folder / "B75B4C7").glob("*.json")):
        rows.extend(json.loads(day.read_text(encoding="utf-8")))
    return rows


@pytest.mark.parametrize("form", ["zip", "folder"])
async def test_slack_export_pages_match_the_export_message_by_message(rt: Rt, tmp_path: Path, form: str) -> None:
    folder = _unzipped(tmp_path)
    code, out = await rt.run("import", str(SLACK_ZIP if form == "zip" else folder))
    assert code == 0, out
    assert "7 created, 0 updated" in out
    users = {u["id"]: u for u in json.loads((folder / "users.json").read_text(encoding="utf-8"))}
    pages = rt.pages()
    assert len(pages) == 7
    everything = "\n".join(pages.values())
    # Message by message: every chat message of every day file is on exactly one page, with its author's
    # users.json name and its time; notices (channel_join) are not.
    for raw in _export_messages(folder):
        stamp = iso_time(raw["ts"])
        shown_time = f"{stamp[:10]} {stamp[11:16]} UTC"
        if raw.get("subtype") == "channel_join":
            assert raw["text"] not in everything
            continue
        if raw.get("subtype") == "tombstone":
            assert everything.count("*(deleted message)*") == 1
            continue
        holders = [name for name, page in pages.items() if raw.get("text", "\x00") in page or (
            not raw.get("text") and shown_time in page)]
        assert len(holders) >= 1, raw["ts"]
        page = pages[holders[0]]
        author = raw.get("bot_profile", {}).get("name") or users[raw["user"]]["profile"].get("display_name") or (
            users[raw["user"]]["profile"].get("real_name"))
        assert f"**{author}** · {shown_time}" in page
    # A thread whose replies are in a later day file is one page, root first.
    [thread_page] = [p for p in pages.values() if "dtUeWsjQpQO8 TFoFBeQ" in p.split("\n# ")[1].split("\n")[0]]
    assert thread_page.index("dtUeWsjQpQO8") < thread_page.index("V360Tq4QS6YZ") < thread_page.index("n3S3KfdGJ6w")
    assert "3 messages" in thread_page
    # The file-only message (no "text" key) made it, with its file link.
    assert "befvnsUNVjwGzKFcKxuIlJ2dYo5z59neCfT8P2Y3t" in everything


async def test_rerun_updates_the_same_pages_and_dry_run_writes_nothing(rt: Rt) -> None:
    code, out = await rt.run("import", str(SLACK_ZIP), "--dry-run")
    assert code == 0 and out.count("would write") == 7 and "nothing was written" in out
    assert rt.pages() == {} and not (rt.settings.kbbot_data_dir / "imports").exists()
    await rt.run("import", str(SLACK_ZIP))
    first = rt.pages()
    code, out = await rt.run("import", str(SLACK_ZIP), "--json")
    report = json.loads(out)
    assert code == 0 and [p["created"] for p in report["pages"]] == [False] * 7
    assert rt.pages().keys() == first.keys()


async def test_channel_and_date_filters(rt: Rt) -> None:
    code, out = await rt.run("import", str(SLACK_ZIP), "--channel", "#B75B4C7", "--since", "2025-01-11",
                             "--until", "2025-01-18", "--json")
    assert code == 0
    keys = [p["key"] for p in json.loads(out)["pages"]]
    # Threads started on the 11th (whose replies may come later) and the day pages of the 11th and 18th.
    assert keys == [
        f"{CHANNEL}:1736554801.872639", f"{CHANNEL}:1736554828.343759", f"{CHANNEL}:day:2025-01-11",
        f"{CHANNEL}:day:2025-01-18",
    ]
    with pytest.raises(TranscriptError, match=r"no channel 'random'.*B75B4C7"):
        await rt.run("import", str(SLACK_ZIP), "--channel", "random")
    with pytest.raises(TranscriptError, match="--since is after --until"):
        await rt.run("import", str(SLACK_ZIP), "--since", "2025-02-01", "--until", "2025-01-01")


async def test_damaged_day_file_is_reported_and_skipped(rt: Rt, tmp_path: Path) -> None:
    folder = _unzipped(tmp_path)
    (folder / "B75B4C7" / "2025-01-18.json").write_text('[{"ts": "1737160363.583369", "text": "cut off', "utf-8")
    (folder / "B75B4C7" / "2025-01-19.json").write_text('{"not": "a list"}', "utf-8")
    day = folder / "B75B4C7" / "2025-01-24.json"
    rows = json.loads(day.read_text(encoding="utf-8"))
    day.write_text(json.dumps([{"text": "no ts"}, "junk", *rows]), "utf-8")
    code, out = await rt.run("import", str(folder))
    assert code == 0
    assert "2025-01-18.json: skipped, not valid JSON" in out and "2025-01-19.json: skipped, expected a list" in out
    assert "2025-01-24.json: message 1 skipped (no valid 'ts')" in out
    assert "6 created" in out  # the 18th's page is missing; everything else was imported
    assert any("2CmwhKHbqi1" in page for page in rt.pages().values())


async def test_slack_import_of_a_later_range_keeps_earlier_messages(rt: Rt, tmp_path: Path) -> None:
    folder = _unzipped(tmp_path)
    await rt.run("import", str(folder), "--since", "2025-01-10", "--until", "2025-01-10")
    # A second export that lost the root's day file (an export of a later range): the thread's page keeps it.
    (folder / "B75B4C7" / "2025-01-10.json").unlink()
    code, out = await rt.run("import", str(folder), "--json")
    assert code == 0
    report = {p["key"]: p for p in json.loads(out)["pages"]}
    thread = report[f"{CHANNEL}:1736478630.905399"]
    assert thread["messages"] == 3 and thread["earlier"] == 1 and not thread["created"]
    page = next(p for p in rt.pages().values() if "dtUeWsjQpQO8 TFoFBeQ\n" in p)
    assert "CYmxt38hm" not in page and "V360Tq4QS6YZ" in page and page.count("**WgO268Xc0KtFylJ**") == 2


async def test_discord_split_parts_together_and_one_after_another(rt: Rt, tmp_path: Path) -> None:
    whole = json.loads((FIXTURES / "discord" / "GC_3A_5M.json").read_text(encoding="utf-8"))
    chat = [m for m in whole["messages"] if m["type"] == "Default"]
    code, out = await rt.run("import", str(SPLIT))
    assert code == 0 and "1 created" in out
    [together] = rt.pages().values()
    for raw in chat:  # message by message
        assert raw["content"].split(" @")[0] in together
    # One after another, starting afresh (no page, nothing remembered): part 2 does not replace part 1.
    shutil.rmtree(rt.kb.writable_dir)
    shutil.rmtree(rt.settings.kbbot_data_dir / "imports")
    code, out = await rt.run("save", str(SPLIT / "a group chat [1064990764406419508].json"))
    assert code == 0
    code, out = await rt.run("save", str(SPLIT / "a group chat [1064990764406419508] [part 2].json"))
    assert code == 0 and "kept" in out
    [one_by_one] = rt.pages().values()
    for raw in chat:
        assert raw["content"].split(" @")[0] in one_by_one


async def test_two_discord_exports_with_different_ranges_lose_nothing(rt: Rt, tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "discord" / "dce_current_format.json").read_text(encoding="utf-8"))
    early, late = dict(data), dict(data)
    early["messages"], late["messages"] = data["messages"][:4], data["messages"][4:]
    (tmp_path / "early.json").write_text(json.dumps(early), "utf-8")
    (tmp_path / "late.json").write_text(json.dumps(late), "utf-8")
    await rt.run("import", str(tmp_path / "late.json"))
    code, out = await rt.run("import", str(tmp_path / "early.json"), "--json")
    assert code == 0
    [row] = json.loads(out)["pages"]
    assert row["messages"] == 6 and row["earlier"] == 3 and not row["created"]
    [page] = rt.pages().values()
    for needle in ("Why does the **build** fail?", "Build #812 failed", "Known issue", "Ticket closed."):
        assert needle in page


def test_reader_progress_reports_every_day_file() -> None:
    seen: list[tuple[int, int]] = []
    result = read_slack_export(SLACK_ZIP, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and result.files_read == 4


def test_not_an_export_is_a_clear_error(tmp_path: Path) -> None:
    bad_zip = tmp_path / "x.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(TranscriptError, match="is not a Slack export"):
        asyncio.run(_run_bare(tmp_path, bad_zip))


async def _run_bare(tmp_path: Path, path: Path) -> int:
    parser = argparse.ArgumentParser()
    imports.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import", str(path)])
    out = io.StringIO()

    class Bare:
        saver: Any = None
        console = Console(file=out)
        settings = Settings(kbbot_data_dir=tmp_path / "d")

    code: int = await args.handler(args, Bare())
    return code


def test_cli_import_zip_end_to_end(tmp_path: Path) -> None:
    """The real command line (subprocess), embedded local backend: import, then re-import updates."""
    (tmp_path / "kb").mkdir()
    env = {"LOCAL_KB_DIR": str(tmp_path / "kb"), "KBBOT_DATA_DIR": str(tmp_path / "data")}
    first = run_kbbot("import", str(SLACK_ZIP), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Imported 7 page(s) from 4 file(s) of the Slack export: 7 created, 0 updated." in first.stdout
    flat = " ".join(first.stdout.split())  # rich wraps long lines
    assert "(1 message)" in flat and "(3 messages)" in flat and "1 messages" not in flat
    # The re-import and the missing file in this process: what the command does, not the process again.
    again = kbbot_in_process("import", str(SLACK_ZIP), "--channel", "B75B4C7", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "0 created, 7 updated" in again.stdout
    missing = kbbot_in_process("import", str(tmp_path / "nope.zip"), env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


async def test_save_of_a_single_real_day_file_keeps_working(rt: Rt, tmp_path: Path) -> None:
    folder = _unzipped(tmp_path)
    code, out = await rt.run("save", str(folder / "B75B4C7" / "2025-01-11.json"))
    assert code == 0 and "Created" in out
    [page] = rt.pages().values()
    # Names come from the export's users.json; the file-only message (no "text") and the tombstone are kept,
    # the channel_join is not.
    assert "**YTX35tuC1zyFhKZL**" in page and "*(deleted message)*" in page
    assert "DazJQoOpCbNj33I" not in page
    assert "befvnsUNVjwGzKFcKxuIlJ2dYo5z59neCfT8P2Y3t" in page
    code, out = await rt.run("save", str(folder / "B75B4C7" / "2025-01-11.json"))
    assert code == 0 and "Updated" in out and len(rt.pages()) == 1


class FlakySaver:
    """Refuses one thread, queues another, saves the rest: the import goes on and its exit code says so."""

    def __init__(self) -> None:
        self.calls = 0

    def title_for(self, thread: Any, title: str | None = None) -> str:
        return str(thread.key)

    async def save(self, thread: Any, title: str | None = None, tags: Any = None, *, announce: bool = True) -> Any:
        assert not announce  # an import is never announced in the conversation
        from kbbot.core.models import SavedPage
        from kbbot.errors import SaveError

        self.calls += 1
        if self.calls == 1:
            raise SaveError("The wiki refused this page (bad request).")
        if self.calls == 2:
            return SavedPage(None, None, False, pending=True, title=str(thread.key))
        return SavedPage(f"p{self.calls}", None, True, title=str(thread.key))


@pytest.mark.parametrize(("refuse", "expected"), [(True, 1), (False, 75)])
async def test_import_goes_on_after_a_refused_or_queued_page(tmp_path: Path, refuse: bool, expected: int) -> None:
    saver = FlakySaver()
    if not refuse:
        saver.calls = 1  # the first page is queued, none refused
    out = io.StringIO()
    rt = Rt(saver, Console(file=out, width=200), Settings(kbbot_data_dir=tmp_path / "d"), out,  # type: ignore[arg-type]
            LocalBackend(None, tmp_path / "pages"))
    start = saver.calls
    code, text = await rt.run("import", str(SLACK_ZIP))
    assert code == expected and saver.calls - start == 7  # every thread was tried
    assert ("1 failed" in text) == refuse and "queued for retry" in text


async def test_progress_bar_on_a_terminal(rt: Rt) -> None:
    rt.console = Console(file=rt.out, width=100, force_terminal=True, color_system=None)
    code, out = await rt.run("import", str(SLACK_ZIP))
    assert code == 0 and "7 created" in out
    assert "Reading files" in out or "Saving pages" in out  # rich drew the bar (transient: erased at the end)
