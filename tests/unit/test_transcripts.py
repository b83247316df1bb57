from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from kbbot.commands import save as save_cmd
from kbbot.config import Settings
from kbbot.core.models import SavedPage, Thread
from kbbot.errors import KbbotError, SaveError, TranscriptError
from kbbot.transcripts import load_transcript, parse_transcript

SLACK = [
    {
        "user": "U1",
        "user_profile": {"real_name": "Ada Lovelace"},
        "text": "How do I *rotate* keys? <@U2>",
        "ts": "1700000000.000100",
        "thread_ts": "1700000000.000100",
    },
    {
        "user": "U2",
        "user_name": "grace",
        "text": "Run `rotate.sh` &amp; check <https://e.com|docs>",
        "ts": "1700000060.000200",
        "edited": {"user": "U2", "ts": "1700000070.0"},
        "files": [{"name": "log.txt", "url_private": "https://files.slack.com/log.txt"}],
    },
    {"subtype": "channel_join", "user": "U3", "text": "<@U3> has joined", "ts": "1700000070.0"},
    {"user": "U3", "text": "<!channel> thanks", "ts": "1700000080.0"},
]

DISCORD = {
    "guild": {"id": "1", "name": "Eng"},
    "channel": {"id": "555", "name": "help-desk", "type": "GuildTextChat"},
    "messages": [
        {
            "id": "10",
            "timestamp": "2026-01-05T10:00:00.123+01:00",
            "timestampEdited": None,
            "content": "Why does **build** fail? <@22>",
            "author": {"id": "21", "name": "ada", "nickname": "Ada"},
            "attachments": [{"url": "https://cdn.discordapp.com/a.png", "fileName": "a.png"}],
        },
        {
            "id": "11",
            "timestamp": "2026-01-05T09:05:00+00:00",
            "timestampEdited": "2026-01-05T09:06:00+00:00",
            "content": "@everyone clear the cache",
            "author": {"id": "22", "name": "grace", "nickname": None},
            "attachments": [],
        },
    ],
}


def test_slack_export() -> None:
    thread = parse_transcript(json.dumps(SLACK))
    assert thread.platform == "slack" and thread.key == "export:1700000000.000100"
    a, b, c = thread.messages
    assert a.author_name == "Ada Lovelace" and a.text == "How do I **rotate** keys? @grace"
    assert a.timestamp == "2023-11-14T22:13:20.000100+00:00"
    assert b.author_name == "grace" and b.edited and b.text == "Run `rotate.sh` & check [docs](https://e.com)"
    assert b.attachments[0].name == "log.txt"
    assert c.author_name == "U3" and c.text == "@\u200bchannel thanks"


def test_discord_export() -> None:
    thread = parse_transcript(json.dumps(DISCORD))
    assert thread.platform == "discord" and thread.key == "export:555" and thread.channel_name == "help-desk"
    a, b = thread.messages
    assert a.author_name == "Ada" and a.text == "Why does **build** fail? @grace"
    assert a.timestamp == "2026-01-05T09:00:00.123000+00:00"
    assert a.attachments[0].url == "https://cdn.discordapp.com/a.png" and not a.edited
    assert b.author_name == "grace" and b.edited and b.text.startswith("@\u200beveryone")


def test_plain_text() -> None:
    thread = parse_transcript("Ada: hello\nsecond line\n\nGrace: hi: there\nhttp://x.y/z\n", key_hint="/tmp/a")
    assert [m.author_name for m in thread.messages] == ["Ada", "Grace"]
    assert thread.messages[0].text == "hello\nsecond line"
    assert thread.messages[1].text == "hi: there\nhttp://x.y/z"
    assert thread.platform == "text" and thread.key.startswith("file:")
    assert parse_transcript("Ada: x", key_hint="/tmp/a").key == thread.key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("   \n", "is empty"),
        ("[1, 2", "not valid JSON"),
        ('{"a": 1}', "neither a Slack export"),
        ('[{"text": "x"}]', "has no 'ts'"),
        ('[{"text": "x", "ts": "soon"}]', "bad 'ts'"),
        ("[]", "has no messages"),
        ('{"messages": [{"content": "x"}]}', "no valid 'timestamp'"),
        ('{"messages": []}', "has no messages"),
        ("just some prose without names", "should look like 'Name: message'"),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_bad_transcripts_have_clear_errors(text: str, message: str) -> None:
    with pytest.raises(TranscriptError, match=message) as info:
        parse_transcript(text, name="t.json")
    assert isinstance(info.value, SaveError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, KbbotError)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="cannot read"):
        load_transcript(tmp_path / "missing.json")
    binary = tmp_path / "export.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TranscriptError, match="not UTF-8"):
        load_transcript(binary)
    big = tmp_path / "big.txt"
    big.write_text("A: " + "x" * 2000)
    with pytest.raises(TranscriptError, match="refused"):
        load_transcript(big, max_bytes=1000)


def test_a_whole_export_names_kbbot_import(tmp_path: Path) -> None:
    # The real slackdump zip and its unzipped folder: `kbbot save` once said "unpack the export first", but
    # the unpacked folder is no transcript either; `kbbot import` takes both.
    zipped = Path(__file__).resolve().parents[1] / "fixtures" / "exports" / "slack" / "slackdump_source_export.zip"
    for export, kind in ((zipped, "a zip file"), (tmp_path, "a folder")):
        with pytest.raises(TranscriptError) as info:
            load_transcript(export)
        assert str(info.value).startswith(f"{export} is {kind}; kbbot save takes one conversation")
        assert str(info.value).endswith("run: kbbot import EXPORT")


def test_bom_and_unicode(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffZoë: 日本語 🎉\n".encode())
    thread = load_transcript(path)
    assert thread.messages[0].author_name == "Zoë" and thread.messages[0].text == "日本語 🎉"


# --- the CLI command -----------------------------------------------------------------------------------------


@dataclass
class StubSaver:
    result: SavedPage
    calls: list[tuple[Thread, str | None, tuple[str, ...] | None]] = field(default_factory=list)

    async def save(
        self, thread: Thread, title: str | None = None, tags: object = None, *, announce: bool = True
    ) -> SavedPage:
        self.calls.append((thread, title, tags))  # type: ignore[arg-type]
        return self.result


@dataclass
class Rt:
    saver: StubSaver
    console: Console
    settings: Settings


def run_cli(tmp_path: Path, argv: list[str], result: SavedPage) -> tuple[int, str, StubSaver]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    save_cmd.register(sub)
    args = parser.parse_args(argv)
    out = io.StringIO()
    rt = Rt(StubSaver(result), Console(file=out, width=200), Settings())
    import asyncio

    code = asyncio.run(args.handler(args, rt))
    return code, out.getvalue(), rt.saver


def test_cli_json_created(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Ada: How do I deploy?\nGrace: make deploy\n")
    page = SavedPage(id="p1", url="https://wiki/p1", created=True, title="How do I deploy?")
    code, out, saver = run_cli(tmp_path, ["save", str(path), "--title", "Deploy", "--tags", "a, b,", "--json"], page)
    assert code == 0
    assert json.loads(out) == {"id": "p1", "url": "https://wiki/p1", "created": True}
    thread, title, tags = saver.calls[0]
    assert title == "Deploy" and tags == ("a", "b") and len(thread.messages) == 2


def test_cli_human_and_pending(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Ada: hi\n")
    code, out, _ = run_cli(tmp_path, ["save", str(path)], SavedPage("p1", None, False, title="hi"))
    assert code == 0 and "Updated “hi”: page id p1" in out
    code, out, _ = run_cli(tmp_path, ["save", str(path)], SavedPage(None, None, False, pending=True))
    assert code == save_cmd.EXIT_PENDING and "will retry" in out
    code, out, _ = run_cli(tmp_path, ["save", str(path), "--json"], SavedPage(None, None, False, pending=True))
    assert code == save_cmd.EXIT_PENDING and json.loads(out) == {"id": None, "url": None, "created": False}


def test_cli_unreadable_file_raises_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="cannot read"):
        run_cli(tmp_path, ["save", str(tmp_path / "nope.json")], SavedPage("p", None, True))
