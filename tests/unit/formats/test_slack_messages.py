"""The one Slack message converter (kbbot.formats.slack) on Slack's real payload shapes.

Shapes: python-slack-sdk's model tests (attachments, rich_text, header/section/context) and slackdump's
``bot_message.json`` fixture — see tests/fixtures/exports/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kbbot.adapters.slack.rendering import render_answer, render_error, render_saved
from kbbot.core.models import Answer, SavedPage, Source, Thread
from kbbot.core.page_render import PageRenderer, clean_title
from kbbot.formats.slack import referenced_ids, title_hint, to_neutral

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "exports" / "slack"
SHAPES: list[dict[str, Any]] = json.loads((FIXTURES / "sdk_shapes.json").read_text())


def _shape(word: str) -> dict[str, Any]:
    return next(s["message"] for s in SHAPES if word in s["comment"])


def test_legacy_attachment_fields_are_all_on_the_page() -> None:
    message = to_neutral(_shape("test_attachments"))
    assert message is not None
    text = message.text
    for piece in ("some_pretext", "John Doe", "**Attachment**", "attachment text", "*and a footer*"):
        assert piece in text
    for i in range(5):
        assert f"**field_{i}_title**: field_{i}_value" in text
    assert "fallback_text" not in text  # only used when nothing else is there
    assert text.startswith("> ")  # one quoted card
    assert message.author_name == "Deploy Bot"  # a bot_message is credited to its username


def test_rich_text_block_only_message() -> None:
    message = to_neutral(_shape("RichTextBlockTests"), users={"WJC6QG0MS": "Ada"}, channels={"C02GD0YEHDJ": "ops"})
    assert message is not None
    text = message.text
    assert "**Hey!** this is ~~very~~ rich text `block` *test* links[Slack website!](<https://slack.com>)" in text
    assert "1. a\n2. b" in text and "- todo\n- todo" in text
    assert "> this is very important" in text
    assert '```\nprint("Hello world")\n```' in text
    assert "@Ada @\u200bgroup #opsAugust 10, 2021" in text  # the SDK's block has no space before the date


def test_header_section_context_replace_their_fallback_text() -> None:
    message = to_neutral(_shape("HeaderBlockTests"))
    assert message is not None
    assert message.author_name == "Budget Bot"
    assert message.text.startswith("**Budget Performance**")  # not twice: the text was the fallback
    assert message.text.count("Budget Performance") == 1
    assert "**Q3** spend is 12% under plan, see [the report](https://example.com/q3)" in message.text
    assert "images · Location: **Dogpatch**" in message.text


def test_slackdump_bot_message_blocks() -> None:
    raw = json.loads((FIXTURES / "bot_message.json").read_text())
    message = to_neutral(raw)
    assert message is not None
    assert message.text.startswith("Some question?") and "**Poll title**" in message.text
    assert message.author_id == "BUEBX9AUR" and message.edited


def test_user_message_text_wins_over_its_rich_text_copy() -> None:
    raw = {
        "user": "U1", "ts": "1700000000.000100", "text": "see <https://x.example|the doc>",
        "blocks": [{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": "see "}, {"type": "link", "url": "https://x.example", "text": "the doc"}]}]}],
    }
    message = to_neutral(raw, users={"U1": "Ada"})
    assert message is not None and message.text == "see [the doc](https://x.example)"


def test_deleted_root_has_no_invented_author_and_renders_as_deleted() -> None:
    raw = {"user": "USLACKBOT", "subtype": "tombstone", "hidden": True, "text": "This message was deleted.",
           "ts": "1700000000.000100", "thread_ts": "1700000000.000100", "reply_count": 1}
    message = to_neutral(raw, users={"USLACKBOT": "Slackbot"})
    assert message is not None and message.deleted
    assert (message.author_name, message.author_id, message.text) == ("", "", "")
    page = PageRenderer("markdown").render(Thread("slack", "C1:1", (message,)), "t")[0].content
    assert "*(deleted message)*" in page and "Slackbot" not in page and "unknown" not in page
    html = PageRenderer("html").render(Thread("slack", "C1:1", (message,)), "t")[0].content
    assert "<em>(deleted message)</em>" in html and "<strong>" not in html.split("(deleted message)")[0][-80:]


def test_bot_credit_prefers_the_bots_name_over_its_user() -> None:
    raw = {"user": "U0BOTUSER", "bot_id": "B089LPE68BB", "bot_profile": {"name": "GitHub"}, "text": "PR #1 opened",
           "ts": "1700000000.000100"}
    message = to_neutral(raw, users={"U0BOTUSER": "github-app-user"})
    assert message is not None and message.author_name == "GitHub" and message.author_id == "U0BOTUSER"


@pytest.mark.parametrize("subtype", ["channel_join", "channel_leave", "channel_topic", "pinned_item", "bot_add"])
def test_system_notices_are_not_chat(subtype: str) -> None:
    assert to_neutral({"subtype": subtype, "user": "U1", "text": "<@U1> has joined", "ts": "1.0"}) is None


def test_thread_broadcast_says_so() -> None:
    message = to_neutral({"subtype": "thread_broadcast", "user": "U1", "text": "fixed", "ts": "2.0",
                          "thread_ts": "1.0", "root": {"ts": "1.0"}})
    assert message is not None and message.text == "fixed\n\n*(Also sent to the channel.)*"


def test_files_keep_permalink_and_never_the_token() -> None:
    raw = {"user": "U1", "ts": "1.0", "files": [
        {"name": "a.png", "permalink": "https://acme.slack.com/files/U1/F1/a.png",
         "url_private": "https://files.slack.com/files-pri/T1-F1/a.png?t=xoxe-1-abc"},
        {"name": "b.pdf", "url_private": "https://files.slack.com/files-pri/T1-F2/b.pdf?t=xoxe-1-abc"},
        {"id": "F3", "mode": "tombstone"},
    ]}
    message = to_neutral(raw)  # no "text" at all: a file-only message is fine
    assert message is not None and message.text == ""
    assert [(a.name, a.url) for a in message.attachments] == [
        ("a.png", "https://acme.slack.com/files/U1/F1/a.png"),
        ("b.pdf", "https://files.slack.com/files-pri/T1-F2/b.pdf"),
    ]


def test_code_without_link_brackets_and_math_without_emoji() -> None:
    raw = {"user": "U1", "ts": "1.0", "text": "run `wget <http://x.example/f.tgz>` and\n```curl <https://y.example/a|y>```"
           "\nratio $1:100:1000$ :100:"}
    message = to_neutral(raw)
    assert message is not None
    assert "`wget http://x.example/f.tgz`" in message.text and "curl https://y.example/a\n```" in message.text
    assert "$1:100:1000$ 💯" in message.text


def test_referenced_ids_cover_authors_mentions_blocks_and_attachments() -> None:
    raws = [
        {"user": "U1", "text": "hi <@U2> in <#C9|ops>", "ts": "1.0"},
        {"bot_id": "B1", "ts": "2.0", "attachments": [{"text": "cc <@U3>", "fields": [{"value": "<@U4>"}]}]},
        {"user": "U5", "ts": "3.0", "blocks": [{"type": "rich_text", "elements": [
            {"type": "rich_text_section", "elements": [{"type": "user", "user_id": "U6"}]}]}]},
    ]
    users, channels = referenced_ids(raws)
    assert users == {"U1", "U2", "U3", "U4", "U5", "U6"} and channels == {"C9": "ops"}


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("```\n{\n  \"a\": 1\n}\n```\nWhy does this JSON fail?", "Why does this JSON fail?"),
        ("```\n{\n```", "Slack thread"),
        ("{\n}\n[\n]", "Slack thread"),
        ("```\ncode only\n```", "code only"),
        ("*Deploy* failed :fire: now", "Deploy failed :fire: now"),
    ],
)
def test_default_title_is_never_bare_punctuation(text: str, title: str) -> None:
    assert title_hint(text) == title
    assert clean_title(text) == ("" if title == "Slack thread" else title)


@pytest.mark.parametrize(
    "raw",
    [
        {"ts": "1.0", "text": None, "attachments": "nope", "blocks": {"x": 1}, "files": "x"},
        {"ts": "1.0", "blocks": [None, 1, {"type": "rich_text", "elements": [{"type": "rich_text_list",
                                                                             "indent": "x", "elements": [1]}]}]},
        {"ts": "1.0", "attachments": [{"fields": [None, {"title": 1}]}, None], "bot_profile": "x"},
        {"ts": "1.0", "text": "<!channel> <b>" * 1000},
    ],
)
def test_malformed_shapes_never_raise(raw: dict[str, Any]) -> None:
    message = to_neutral(raw)
    assert message is not None and "<!channel>" not in message.text


@pytest.mark.parametrize("ts", ["", "soon", "1e400", None])
def test_a_bad_ts_is_a_value_error(ts: object) -> None:
    with pytest.raises(ValueError):
        to_neutral({"ts": ts, "text": "x"})


def test_kbbots_own_notes_are_left_off_but_every_part_of_its_answers_kept() -> None:
    # As conversations.replies returns what chat.postMessage posted: the bot's user id and the blocks we sent.
    def posted(blocks: list[dict[str, Any]], text: str = "…") -> dict[str, Any]:
        return {"type": "message", "ts": "1700000000.000100", "user": "U0KBBOT01", "bot_id": "B0KBBOT01",
                "text": text, "blocks": blocks}

    parts = render_answer(Answer(text="word " * 6000), question="q")  # several messages; buttons on the last
    assert len(parts) > 1
    assert all(to_neutral(posted(p.blocks), bot_user_id="U0KBBOT01") is not None for p in parts)
    saved = render_saved(SavedPage(id="1", url="https://w.example/1", created=True), title="T", saved_by="Al")
    for note in (saved, render_error("nope")):
        assert to_neutral(posted(note.blocks, note.text), bot_user_id="U0KBBOT01") is None
        assert to_neutral(posted(note.blocks, note.text)) is not None  # an export import does not know our id
    person = {"type": "message", "ts": "1700000000.000200", "user": "U0ALICE01", "text": "Saved it, thanks"}
    assert to_neutral(person, bot_user_id="U0KBBOT01") is not None


@pytest.mark.parametrize(("answer", "line"), [
    (Answer(text="Use WireGuard.", source=Source.AI), "*🤖 AI answer from the wiki*"),
    (Answer(text="I couldn't find this in the wiki.", source=Source.AI, empty=True), "*🔍 Not found in the wiki*"),
])
def test_kbbots_answers_keep_a_readable_source_line_on_the_page(answer: Answer, line: str) -> None:
    [posted] = render_answer(answer, question="q")
    raw = {"type": "message", "ts": "1700000000.000100", "user": "U0KBBOT01", "bot_id": "B0KBBOT01",
           "text": posted.text, "blocks": posted.blocks}
    message = to_neutral(raw, bot_user_id="U0KBBOT01")
    assert message is not None and line in message.text and ":robot_face:" not in message.text
