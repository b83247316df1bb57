"""Pure parsing: mention text, commands, permalinks, the save modal."""

from __future__ import annotations

import json

import pytest

from kbbot.adapters.slack.parsing import (
    Command,
    ThreadRef,
    mentioned_users,
    object_id,
    parse_command,
    parse_permalink,
    plain_text,
)
from kbbot.adapters.slack.views import (
    InvalidSubmission,
    parse_submission,
    save_modal,
)
from kbbot.core.text import parse_tags


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@UBOT> how do I reset my password?", "how do I reset my password?"),
        ("<@UBOT> ask <@U2|bob> about <#C1|general>", "ask @bob about #general"),
        ("<@UBOT> see <https://x.example|the docs> &amp; <https://y.example>", "see the docs & https://y.example"),
        ("<@UBOT> a &lt;b&gt; c", "a <b> c"),
        ("<!here> <@UBOT> hi", "hi"),
        ("<!channel> is the <!everyone> VPN <!here|here> down?", "is the VPN down?"),
        ("<!subteam^S1|@ops> help", "@ops help"),
        ("due <!date^1392734382^{date}|Feb 18, 2014>", "due Feb 18, 2014"),
        ("ask <@W0GRID1> and <@U2>", "ask @Grace Hopper and @U2"),
        ("", ""),
    ],
)
def test_plain_text(text: str, expected: str) -> None:
    assert plain_text(text, bot_user_id="UBOT", users={"W0GRID1": "Grace Hopper"}) == expected


def test_mentioned_users() -> None:
    assert mentioned_users("<@UBOT> ask <@W0GRID1> and <@U2|bob>, not <#C1|x> or <!here>") == {"UBOT", "W0GRID1", "U2"}


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("help", Command("help", "")),
        ("HELP", Command("help", "")),
        ("status", Command("status", "")),
        ("save", Command("save", "")),
        ("save My title", Command("save", "My title")),
        ("Save: title", Command("save", "title")),
        ("help me with the VPN", Command("ask", "help me with the VPN")),
        ("status of the build?", Command("ask", "status of the build?")),
        ("  what is X  ", Command("ask", "what is X")),
        ("", Command("ask", "")),
    ],
)
def test_parse_command(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "ref", "title"),
    [
        ("https://acme.slack.com/archives/C0123ABC/p1700000000000100", ("C0123ABC", "1700000000.000100"), ""),
        ("<https://acme.slack.com/archives/C0123ABC/p1700000000000100> My title",
         ("C0123ABC", "1700000000.000100"), "My title"),
        ("<https://acme.slack.com/archives/C0123ABC/p1700000000000100|link> T",
         ("C0123ABC", "1700000000.000100"), "T"),
        ("https://acme.slack.com/archives/G0PRIV/p1700000005000200?thread_ts=1700000000.000100&cid=G0PRIV Reply",
         ("G0PRIV", "1700000000.000100"), "Reply"),
        ("https://acme.enterprise.slack.com/archives/D0DM/p1700000000000100", ("D0DM", "1700000000.000100"), ""),
    ],
)
def test_parse_permalink(text: str, ref: tuple[str, str], title: str) -> None:
    assert parse_permalink(text) == (ThreadRef(*ref), title)


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "title only", "https://evil.example/archives/C1/p1700000000000100",
        "https://acme.slack.com/archives/C0123ABC", "https://acme.slack.com/archives/C0123ABC/p12",
        "https://acme.slack.com/archives/nope/p1700000000000100", "https://acme.slack.com/files/U1/F1/x.png",
        "<https://acme.slack.com/archives/C0123ABC/p1700000000000100", "ftp://acme.slack.com/archives/C1/p1700000000000100",
        "https://acme.slack.com/archives/C0123ABC/p1700000000000100?thread_ts=<!channel>",
        "http://[::1/archives/C1/p1", "https://evilslack.com/archives/C0123ABC/p1700000000000100", "https://slack.com.evil.example/archives/C0123ABC/p1700000000000100",
    ],
)
def test_parse_permalink_rejects(text: str) -> None:
    assert parse_permalink(text) is None


def test_thread_ref_keys() -> None:
    assert ThreadRef.from_key("C1AB:1700000000.000100") == ThreadRef("C1AB", "1700000000.000100")
    for bad in ("", "C1AB", "C1AB:", ":1700000000.000100", "X1:1700000000.000100", "C1AB:1.2", "C1AB:<!here>"):
        assert ThreadRef.from_key(bad) is None


def test_modal_round_trip() -> None:
    ref = ThreadRef("C0GENERAL", "1700000000.000100")
    view = save_modal(ref, title="x" * 500, tags=("ops",))
    assert view["callback_id"] == "kb_save_modal"
    assert len(view["blocks"][0]["element"]["initial_value"]) == 150
    assert view["blocks"][1]["element"]["initial_value"] == "ops"
    submitted = {**view, "state": {"values": {
        "title": {"title_input": {"type": "plain_text_input", "value": "  VPN notes "}},
        "tags": {"tags_input": {"type": "plain_text_input", "value": "vpn, #it,, vpn\nops"}},
    }}}
    request = parse_submission(submitted)
    assert request.ref == ref and request.title == "VPN notes" and request.tags == ("vpn", "it", "ops")


@pytest.mark.parametrize(
    ("metadata", "values", "block"),
    [
        ("not json", {"title": {"title_input": {"value": "T"}}}, "title"),
        (json.dumps(["list"]), {"title": {"title_input": {"value": "T"}}}, "title"),
        (json.dumps({"channel": "C1AB", "thread_ts": "nope"}), {"title": {"title_input": {"value": "T"}}}, "title"),
        (json.dumps({"channel": "C1AB", "thread_ts": "1700000000.000100"}), {}, "title"),
        (json.dumps({"channel": "C1AB", "thread_ts": "1700000000.000100"}),
         {"title": {"title_input": {"value": "T" * 151}}}, "title"),
        (json.dumps({"channel": "C1AB", "thread_ts": "1700000000.000100"}),
         {"title": {"title_input": {"value": "T"}}, "tags": {"tags_input": {"value": ",".join(map(str, range(11)))}}},
         "tags"),
    ],
)
def test_modal_submission_errors(metadata: str, values: dict, block: str) -> None:
    with pytest.raises(InvalidSubmission) as info:
        parse_submission({"private_metadata": metadata, "state": {"values": values}})
    assert block in info.value.errors


def test_parse_tags() -> None:
    assert parse_tags("") == ()
    assert parse_tags(" a , b,a,# c ,") == ("a", "b", "c")
    assert parse_tags("x" * 80) == ("x" * 50,)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # slackapi/bolt-python tests/scenario_tests_async/test_shortcut.py, global_shortcut_body["user"]
        ({"user": {"id": "W111", "username": "primary-owner", "team_id": "T111"}}, "W111"),
        ({"user": {}}, ""),
        ({}, ""),
        ({"user": None}, ""),
        ({"user": "W111"}, ""),  # not an object: nothing to read, no crash
    ],
)
def test_object_id(payload: dict[str, object], expected: str) -> None:
    assert object_id(payload, "user") == expected
