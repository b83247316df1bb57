"""The same Slack thread saved live (conversations.replies via the real slack_sdk client against the fake Slack
Web API) and imported from a real export (slackdump's fixture) is the same page: same key, same messages.

Both paths go through kbbot.formats.slack.to_neutral; this test is what keeps them from drifting apart again.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.history import ThreadReader, UserDirectory
from kbbot.adapters.slack.parsing import ThreadRef
from kbbot.backends.local import LocalBackend
from kbbot.core.threads import ThreadSaver
from kbbot.formats.slack_export import read_slack_export
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "exports" / "slack" / "slackdump_source_export.zip"
CHANNEL = "CO69735E8A"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    with zipfile.ZipFile(EXPORT) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture
def slack(export: Path) -> Iterator[FakeSlack]:
    """The fake workspace holds what the export holds: its users and its channel's threads, as Slack sent them."""
    with FakeSlack() as fake:
        for user in json.loads((export / "users.json").read_text(encoding="utf-8")):
            profile = user.get("profile") or {}
            fake.add_user(user["id"], user["name"], display_name=profile.get("display_name", ""),
                          real_name=profile.get("real_name") or user["name"])
        fake.add_channel(CHANNEL, "B75B4C7")
        rows: list[dict[str, Any]] = []
        for day in sorted((export / "B75B4C7").glob("*.json")):
            rows.extend(json.loads(day.read_text(encoding="utf-8")))
        roots = [r for r in rows if r.get("thread_ts") == r["ts"]]
        for root in roots:
            replies = [r for r in rows if r.get("thread_ts") == root["ts"] and r["ts"] != root["ts"]]
            fake.add_thread(CHANNEL, [root, *replies], root_ts=root["ts"])
        yield fake


@pytest.mark.parametrize(
    "root",
    [
        "1736478630.905399",  # replies filed in the next day's file
        "1736554828.343759",  # a deleted (tombstone) root with a reply
    ],
)
async def test_live_save_and_export_import_are_one_page(
    slack: FakeSlack, export: Path, tmp_path: Path, root: str
) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    live = await ThreadReader(client, UserDirectory(client)).read(ThreadRef(CHANNEL, root), channel_name="B75B4C7")
    [imported] = [t for t in read_slack_export(export).threads if t.key == live.key]

    assert imported.key == live.key == f"{CHANNEL}:{root}"
    assert imported.messages == live.messages  # message by message: author, time, text, files, flags, id
    assert imported.title_hint == live.title_hint

    source = tmp_path / "kb"
    source.mkdir()
    db = tmp_path / "data" / "threads.sqlite3"
    db.parent.mkdir()
    kb = LocalBackend(source, tmp_path / "data" / "pages")
    thread_map, outbox = SqliteSavedThreadMap(db), SqliteOutbox(db)
    saver = ThreadSaver(kb, thread_map, outbox)
    try:
        first = await saver.save(live)
        second = await saver.save(imported)
    finally:
        await thread_map.aclose()
        await outbox.aclose()
    assert first.created and not second.created and second.id == first.id
    [page] = list((tmp_path / "data" / "pages").glob("*.md"))
    text = page.read_text(encoding="utf-8")
    for message in live.messages:
        assert (message.text or "(deleted message)") in text
