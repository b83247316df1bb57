"""DiscordChatExporter JSON of several format versions (real files; see tests/fixtures/exports/README.md)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kbbot.errors import ExportError
from kbbot.formats.discord_export import parse_discord_export
from kbbot.formats.exports import read_export

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "exports" / "discord"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("DM_2A_2M.json", 2),  # older format: no "stickers" key; one Call system message
        ("SV_5A_5M.json", 4),  # one message id twice; deleted user; no nickname; stickers + attachments
        ("GC_3A_5M.json", 3),  # channel name/icon changes and a call are events, not chat
        ("Example guild - Text Channels - general [1012224565567721552].json", 1),
        ("dce_current_format.json", 6),  # the current writer's shape: replies, forwards, interactions
    ],
)
def test_every_format_version_reads(name: str, messages: int) -> None:
    data = _load(name)
    thread = parse_discord_export(data, name)
    assert thread.platform == "discord" and thread.key == f"export:{data['channel']['id']}"
    assert thread.channel_name == data["channel"]["name"]
    assert len(thread.messages) == messages
    assert all(m.timestamp.endswith("+00:00") and m.id for m in thread.messages)
    assert [m.timestamp for m in thread.messages] == sorted(m.timestamp for m in thread.messages)


def test_page_matches_the_export_message_by_message() -> None:
    """Each chat message of the export is one message of the thread: same id, author, time, text, files."""
    data = _load("SV_5A_5M.json")
    thread = parse_discord_export(data, "SV")
    expected: dict[str, dict[str, Any]] = {}
    for raw in data["messages"]:
        expected[raw["id"]] = raw  # the export repeats one id; one message on the page
    assert [m.id for m in thread.messages] == sorted(expected, key=lambda i: (expected[i]["timestamp"], int(i)))
    for message in thread.messages:
        raw = expected[message.id]
        assert message.author_name == (raw["author"].get("nickname") or raw["author"]["name"])
        assert message.author_id == raw["author"]["id"]
        assert message.text.startswith(raw["content"])
        assert message.edited == bool(raw["timestampEdited"])
        assert [a.name for a in message.attachments] == [a["fileName"] for a in raw["attachments"]]
    stickers = next(m for m in thread.messages if m.id == "447793085255123005")
    assert stickers.text.endswith("*(sticker: Laugh)*")
    no_nick = next(m for m in thread.messages if m.id == "447793085255123004")
    assert no_nick.author_name == "mlomb"


def test_current_format_content() -> None:
    thread = parse_discord_export(_load("dce_current_format.json"), "x")
    by_id = {m.id: m for m in thread.messages}
    assert "400000000000000001" not in by_id  # "Joined the server." is an event
    assert "400000000000000005" not in by_id  # "Pinned a message." too
    embed = by_id["400000000000000003"]
    assert embed.author_name == "CI"
    # A bot's embed is its message: title linked, description, fields (the live bot's embed_markdown).
    assert embed.text == (
        "**[Build #812 failed](<https://ci.example.com/builds/812>)**\n\n`test_login` failed on **main**\n\n"
        "**Branch**\nmain"
    )
    reply = by_id["400000000000000004"]
    assert reply.text.startswith("> ↪ *Replying to Ada*: Why does the **build** fail? @Grace\n\nClear the cache:")
    assert "```\nrm -rf .cache\n```" in reply.text and reply.edited
    forward = by_id["400000000000000006"]
    assert "*Forwarded message:*\n> Known issue: the cache breaks builds" in forward.text
    assert [a.name for a in forward.attachments] == ["notes.txt"]
    assert by_id["400000000000000007"].text == "thanks!\n\n*(sticker: Thumbs Up)*"
    assert by_id["400000000000000008"].text == "*(/close by Grace)*\n\nTicket closed."


def test_date_range_filter() -> None:
    data = _load("SV_5A_5M.json")
    assert parse_discord_export(data, "x", since=date(2018, 5, 21)).messages == ()
    assert len(parse_discord_export(data, "x", until=date(2018, 5, 20)).messages) == 4


def test_split_parts_in_one_folder_are_one_channel() -> None:
    batch = read_export(FIXTURES / "split")
    [thread] = batch.threads
    whole = parse_discord_export(_load("GC_3A_5M.json"), "whole")
    assert thread.messages == whole.messages and batch.files_read == 2


def test_damaged_file_in_a_folder_is_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text((FIXTURES / "DM_2A_2M.json").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "broken.json").write_text('{"messages": [', encoding="utf-8")
    (tmp_path / "no-time.json").write_text('{"channel": {"id": "9"}, "messages": [{"content": "x"}]}')
    (tmp_path / "other.json").write_text('{"unrelated": true}')
    batch = read_export(tmp_path)
    assert len(batch.threads) == 1 and batch.files_read == 1
    assert len(batch.problems) == 2
    assert any("broken.json" in p and "skipped" in p for p in batch.problems)
    assert any("no-time.json" in p and "timestamp" in p for p in batch.problems)


def test_unknown_channel_and_non_export_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no channel 'nope'"):
        read_export(FIXTURES / "split", channels=["#nope"])
    (tmp_path / "x.json").write_text('{"unrelated": true}')
    with pytest.raises(ExportError, match="not a DiscordChatExporter export"):
        read_export(tmp_path / "x.json")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ExportError, match="is not a Slack export"):
        read_export(tmp_path / "x.txt")
    with pytest.raises(ExportError, match="does not exist"):
        read_export(tmp_path / "missing")


def test_hostile_content_is_converted_not_trusted() -> None:
    data = {
        "channel": {"id": "1", "name": "x"},
        "messages": [
            {"id": "1", "type": "Default", "timestamp": "2026-01-01T00:00:00Z",
             "content": "@everyone <script>x</script>",
             "author": {"id": "2", "name": "<b>eve</b>"}, "embeds": [None, {"url": "javascript:alert(1)"}],
             "attachments": "nope", "reference": {"messageId": "999"}},
            {"id": "2", "type": "Default", "timestamp": "2026-01-01T00:00:01Z", "content": None, "author": None},
        ],
    }
    first, second = parse_discord_export(data, "x").messages
    assert "@\u200beveryone" in first.text and "javascript:" not in first.text
    assert first.text.startswith("> ↪ *Reply to a message not in this export*")
    assert second.author_name == "unknown" and second.text == ""


def test_emoji_shortcodes_never_inside_math_or_code() -> None:
    data = {"channel": {"id": "1"}, "messages": [
        {"id": "1", "timestamp": "2026-01-01T00:00:00Z", "author": {"id": "2", "name": "a"},
         "content": "ratio $1:100:1000$ is :100: but `:100:` stays"}]}
    [message] = parse_discord_export(data, "x").messages
    assert message.text == "ratio $1:100:1000$ is 💯 but `:100:` stays"
