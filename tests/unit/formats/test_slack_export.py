"""Slack export layouts beyond the real fixture: private channels, DMs, group DMs, a zip with a top folder,
mentions named from users.json, hostile zips and files. (The real export is tested in tests/integration.)"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from kbbot.errors import ExportError
from kbbot.formats import slack_export
from kbbot.formats.slack_export import read_slack_export

USERS = [
    {"id": "U1", "name": "ada", "profile": {"display_name": "Ada L", "real_name": "Ada Lovelace"}},
    {"id": "U2", "name": "grace", "real_name": "Grace Hopper", "profile": {"display_name": ""}},
    {"id": "W3", "name": "linus", "profile": {}},
]


def _write(root: Path, files: dict[str, Any]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
    return root


def _export(root: Path) -> Path:
    return _write(root, {
        "users.json": USERS,
        "channels.json": [{"id": "C0GENERAL1", "name": "general"}],
        "groups.json": [{"id": "G0SECRET01", "name": "secret"}],
        "dms.json": [{"id": "D0DIRECT01", "members": ["U1", "U2"]}],
        "mpims.json": [{"id": "G0MPIM0001", "name": "mpdm-ada--grace--linus-1"}],
        "general/2024-03-01.json": [
            {"user": "U1", "ts": "1709290800.000100", "thread_ts": "1709290800.000100",
             "text": "Ask <@U2> or <@W3|linus> in <#C0GENERAL1|general>"},
        ],
        "general/2024-03-02.json": [
            {"user": "U2", "ts": "1709377200.000200", "thread_ts": "1709290800.000100", "text": "I can help"},
        ],
        "secret/2024-03-01.json": [{"user": "U2", "ts": "1709290801.000100", "text": "private note"}],
        "D0DIRECT01/2024-03-01.json": [{"user": "U1", "ts": "1709290802.000100", "text": "hi grace"}],
        "mpdm-ada--grace--linus-1/2024-03-01.json": [{"user": "W3", "ts": "1709290803.000100", "text": "hey all"}],
    })


def test_every_conversation_kind_and_names_from_users_json(tmp_path: Path) -> None:
    result = read_slack_export(_export(tmp_path / "x"))
    assert [c.kind for c in result.channels] == ["channel", "private channel", "group DM", "DM"]
    by_key = {t.key: t for t in result.threads}
    thread = by_key["C0GENERAL1:1709290800.000100"]
    first, reply = thread.messages
    assert first.author_name == "Ada L" and first.text == "Ask @Grace Hopper or @linus in #general"
    assert reply.author_name == "Grace Hopper" and reply.text == "I can help"
    assert by_key["G0SECRET01:day:2024-03-01"].channel_name == "secret"
    dm = by_key["D0DIRECT01:day:2024-03-01"]
    assert dm.messages[0].text == "hi grace" and dm.channel_name == "DM Ada L and Grace Hopper"
    assert by_key["G0MPIM0001:day:2024-03-01"].messages[0].author_name == "linus"
    assert result.problems == []


def test_zip_with_a_top_folder_and_channel_by_id(tmp_path: Path) -> None:
    folder = _export(tmp_path / "x")
    archive = tmp_path / "Acme Slack export Mar 1 2024.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in folder.rglob("*.json"):
            out.write(path, f"Acme Slack export/{path.relative_to(folder).as_posix()}")
    result = read_slack_export(archive, channels=["C0GENERAL1", "#secret"])
    assert [c.name for c in result.channels] == ["general", "secret"]
    assert {t.key for t in result.threads} == {"C0GENERAL1:1709290800.000100", "G0SECRET01:day:2024-03-01"}


def test_an_oversized_member_is_skipped_not_inflated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _export(tmp_path / "x")
    (folder / "general" / "2024-03-03.json").write_text(json.dumps([{"ts": "1709463600.0", "text": "x" * 5000}]))
    archive = tmp_path / "e.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in folder.rglob("*.json"):
            out.write(path, path.relative_to(folder).as_posix())
    monkeypatch.setattr(slack_export, "MAX_FILE_BYTES", 4000)  # the real cap is 64 MiB; a bomb looks the same
    result = read_slack_export(archive)
    assert any("2024-03-03.json: skipped" in p and "more than a day of chat" in p for p in result.problems)
    assert len(result.threads) == 4


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"readme.txt": "hi"}, "not a Slack export folder"),
        ({"a/users.json": [], "b/users.json": []}, "not a Slack export folder"),
    ],
)
def test_not_an_export(tmp_path: Path, files: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        read_slack_export(_write(tmp_path / "x", files))


def test_export_without_lists_uses_its_folders(tmp_path: Path) -> None:
    root = _write(tmp_path / "x", {
        "users.json": USERS,
        "channels.json": "not a list",
        "random/2024-01-01.json": [{"user": "U1", "ts": "1704067200.0", "text": "hello"}],
        "random/notes.json": [{"user": "U1", "ts": "1704067201.0", "text": "not a day file"}],
    })
    result = read_slack_export(root)
    [thread] = result.threads
    assert thread.channel_name == "random" and thread.messages[0].text == "hello"
    assert any("channels.json: skipped" in p for p in result.problems)


def test_folder_unzipped_with_its_top_folder(tmp_path: Path) -> None:
    _export(tmp_path / "Acme Slack export Mar 1 2024")
    result = read_slack_export(tmp_path)
    assert len(result.threads) == 4 and result.problems == []
