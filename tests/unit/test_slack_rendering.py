"""Pure rendering: core Markdown → Slack mrkdwn and Block Kit."""

from __future__ import annotations

import json
import re

import pytest

from kbbot.adapters.slack.rendering import (
    MAX_ANSWER_MESSAGES,
    MAX_BLOCKS,
    MAX_MESSAGE_BLOCK_TEXT,
    MAX_SECTION_CHARS,
    NOT_FOUND_LABEL,
    block_text_chars,
    escape,
    link,
    markdown_to_mrkdwn,
    plain_parts,
    render_answer,
    render_error,
    render_help,
    render_saved,
    render_status,
    split_mrkdwn,
)
from kbbot.core.ask import AskStatus
from kbbot.core.models import Answer, PageRef, SavedPage, Source
from kbbot.core.ports import CacheStats, FeedbackCounts, QuotaState
from kbbot.core.replies import NOTHING_FOUND

PINGS = re.compile(r"<!(channel|here|everyone|subteam)|<@[UW][A-Z0-9]+", re.IGNORECASE)


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold**", "*bold*"),
        ("__bold__", "*bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("**bold** and *it*", "*bold* and _it_"),
        ("~~gone~~", "~gone~"),
        ("[Docs](https://wiki.example/docs)", "<https://wiki.example/docs|Docs>"),
        ("![logo](https://x.example/l.png)", "<https://x.example/l.png|logo>"),
        ("<https://x.example/a>", "<https://x.example/a|https://x.example/a>"),
        ("# Title", "*Title*"),
        ("### **Sub** title ###", "*Sub title*"),
        ("- one\n* two\n  + three", "• one\n• two\n  • three"),
        ("> quoted **text**", "> quoted *text*"),
        ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
        ("`a < b` and `**x**`", "`a &lt; b` and `**x**`"),
        ("```python\nif a < b:\n    **x**\n```", "```\nif a &lt; b:\n    **x**\n```"),
        ("```\nunclosed < fence", "```\nunclosed &lt; fence\n```"),
        ("---", "──────────"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("snake_case_name", "snake_case_name"),
        # Markdown's escape of a line that would read as a list item or heading (search answers quote a
        # "1. Get your configuration" heading so): mrkdwn has no escapes, the backslash would show.
        ("> 1\\. Get your configuration  \n> 1. Open", "> 1. Get your configuration  \n> 1. Open"),
        ("\\# 3 is the magic number\n\\- not a bullet", "# 3 is the magic number\n- not a bullet"),
        ("a \\. b", "a \\. b"),
        ("", ""),
    ],
)
def test_markdown_to_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn


@pytest.mark.parametrize(
    "hostile",
    [
        "<!channel>", "<!here>", "<!everyone>", "<!here|here>", "<!subteam^S0ABC|@team>", "<@U0BOB0001>",
        "<@W0ENT|boss>", "[x](!channel)", "[x](<@U1>)", "[<!here>](https://x.example)", "`<!channel>`",
        "```\n<!everyone>\n```", "# <!channel>", "> <@U0BOB0001>", "<<!channel>>", "\x02<!channel>\x03",
    ],
)
def test_no_mention_survives(hostile: str) -> None:
    out = markdown_to_mrkdwn(hostile)
    assert not PINGS.search(out), out
    rendered = json.dumps(render_answer(Answer(text=hostile, notice=hostile,
                                               related_pages=(PageRef("1", hostile, "https://x.example"),)),
                                        question=hostile)[0].blocks)
    assert not PINGS.search(rendered)


def test_escape_neutralizes_before_escaping() -> None:
    assert escape("<!channel> & <@U1>") == "@\u200bchannel &amp; @\u200bU1"
    assert escape("x\x00\x02y") == "xy"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://w.example/a?b=1&c=2", "<https://w.example/a?b=1&amp;c=2|T>"),
        ("https://w.example/a|b>c", "<https://w.example/a%7Cb%3Ec|T>"),
        ("https://w.example/with space", "<https://w.example/with%20space|T>"),
        ("javascript:alert(1)", "T"),
        ("!channel", "T"),
        (None, "T"),
    ],
)
def test_link_is_safe(url: str | None, expected: str) -> None:
    assert link(url, "T") == expected


def test_link_text_cannot_end_the_token() -> None:
    assert link("https://x.example", "a|b>c") == "<https://x.example|a¦b&gt;c>"


def test_answer_blocks_have_sources_related_pages_and_feedback() -> None:
    answer = Answer(
        text="Use **WireGuard**.",
        related_pages=(PageRef("1", "VPN setup", "https://wiki.example/1"), PageRef("2", "No link page")),
        source=Source.CACHE,
    )
    [message] = render_answer(answer, question="vpn?")
    kinds = [b["type"] for b in message.blocks]
    assert kinds == ["section", "section", "context", "actions"]
    assert message.blocks[0]["text"]["text"] == "Use *WireGuard*."
    related = message.blocks[1]["text"]["text"]
    assert "• <https://wiki.example/1|VPN setup>" in related and "• No link page" in related
    assert "Cached answer" in message.blocks[2]["elements"][0]["text"]
    buttons = message.blocks[3]["elements"]
    assert [b["action_id"] for b in buttons] == ["kb_feedback_up", "kb_feedback_down"]
    assert all(b["value"] == "vpn?" for b in buttons)
    assert message.text == "Use *WireGuard*."


@pytest.mark.parametrize(("source", "label"), [(Source.AI, "AI answer"), (Source.SEARCH, "Wiki search")])
def test_source_labels(source: Source, label: str) -> None:
    [message] = render_answer(Answer(text="x", source=source), question="q")
    assert label in json.dumps(message.blocks)


@pytest.mark.parametrize("source", [Source.AI, Source.SEARCH])
def test_a_dont_know_is_labelled_as_one_whoever_said_it(source: Source) -> None:
    # Perfect Wiki's isEmptyResult comes back as an empty answer from the AI: the reply is kbbot's own.
    empty = Answer(text="I couldn't find this in the wiki.", source=source, empty=True,
                   related_pages=(PageRef("p1", "VPN setup", "https://wiki.example/p1"),))
    [message] = render_answer(empty, question="q")
    assert NOT_FOUND_LABEL in json.dumps(message.blocks) and "AI answer" not in json.dumps(message.blocks)


def test_quota_notice_comes_first_and_in_fallback() -> None:
    [message] = render_answer(Answer(text="From the pages", source=Source.SEARCH, notice="AI paused"), question="q")
    assert message.blocks[0]["type"] == "context" and "AI paused" in message.blocks[0]["elements"][0]["text"]
    assert message.text.startswith("AI paused")


def test_empty_answer_offers_save_only_with_a_thread() -> None:
    empty = Answer(text="", empty=True)
    [with_thread] = render_answer(empty, question="q", save_target="C1:1700000000.000100")
    assert "couldn't find anything" in with_thread.blocks[0]["text"]["text"]
    ids = [b["action_id"] for b in with_thread.blocks[-1]["elements"]]
    assert ids[0] == "kb_save_thread"
    value = json.loads(with_thread.blocks[-1]["elements"][0]["value"])
    assert value == {"ref": "C1:1700000000.000100", "title": "q"}
    [without] = render_answer(empty, question="q")
    assert "kb_save_thread" not in json.dumps(without.blocks)


def test_share_button_for_ephemeral_answers() -> None:
    [message] = render_answer(Answer(text="a"), question="q", share_id="abc")
    assert message.blocks[-1]["elements"][0]["action_id"] == "kb_share"
    assert message.blocks[-1]["elements"][0]["value"] == "abc"


def test_huge_answer_respects_slack_limits() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word & <x> " * 400 for i in range(200))
    messages = render_answer(
        Answer(text=text, related_pages=tuple(PageRef(str(i), f"P{i}", None) for i in range(30)), notice="n"),
        question="q" * 5000,
    )
    assert 1 < len(messages) <= MAX_ANSWER_MESSAGES + 1
    for message in messages:
        assert len(message.blocks) <= MAX_BLOCKS
        assert block_text_chars(message.blocks) <= MAX_MESSAGE_BLOCK_TEXT + 200
        assert 0 < len(message.text) <= 3000
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= MAX_SECTION_CHARS
            if block["type"] == "actions":
                assert all(len(e["value"]) <= 2000 for e in block["elements"])
    everything = json.dumps([m.blocks for m in messages], ensure_ascii=False)
    assert "answer truncated" in everything
    assert "…and 20 more" in everything
    assert messages[0].blocks[0]["type"] == "context"  # the notice leads the first part only
    assert everything.count("kb_feedback_up") == 1


@pytest.mark.parametrize("paragraphs", [3, 9, 10, 11, 12, 20, 25])
def test_every_part_fits_and_nothing_is_lost(paragraphs: int) -> None:
    text = "\n\n".join(f"P{i:03d} " + "x" * 1290 for i in range(paragraphs))
    messages = render_answer(Answer(text=text), question="q")
    for message in messages:
        assert block_text_chars(message.blocks) <= MAX_MESSAGE_BLOCK_TEXT + 200 and len(message.blocks) <= MAX_BLOCKS
    shown = " ".join(b["text"]["text"] for m in messages for b in m.blocks if b["type"] == "section")
    assert all(f"P{i:03d}" in shown for i in range(paragraphs))


def test_plain_parts_carry_the_words_without_blocks() -> None:
    [message] = render_answer(Answer(text="Use **WireGuard**.", notice="AI paused"), question="q")
    parts = plain_parts(message)
    assert all(not p.blocks and len(p.text) <= MAX_SECTION_CHARS for p in parts)
    joined = "\n".join(p.text for p in parts)
    assert "WireGuard" in joined and "AI paused" in joined


def test_split_never_cuts_inside_a_link() -> None:
    link_text = "<https://x.example/page|a page title with many words>"
    text = " ".join([("filler " * 30).strip(), link_text] * 60)
    chunks = split_mrkdwn(text, 500)
    assert all(len(c) <= 500 for c in chunks)
    for chunk in chunks:
        assert chunk.count("<") == chunk.count(">")
    assert "".join(chunks).count(link_text) == 60


def test_empty_answer_with_its_own_text_says_it_once() -> None:
    answer = Answer(text="I couldn't find this in the wiki. These pages may be related.", empty=True,
                    related_pages=(PageRef("p1", "VPN"),))
    [message] = render_answer(answer, question="q")
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert sections[0] == "I couldn't find this in the wiki. These pages may be related."
    assert NOTHING_FOUND not in json.dumps(message.blocks) and message.text == sections[0]


def test_unicode_and_whitespace_answers() -> None:
    [message] = render_answer(Answer(text="   "), question="q")
    assert "couldn't find anything" in message.blocks[0]["text"]["text"]
    [emoji] = render_answer(Answer(text="Привет 👋 **мир**"), question="q")
    assert emoji.blocks[0]["text"]["text"] == "Привет 👋 *мир*"


def test_saved_messages() -> None:
    done = render_saved(SavedPage(id="1", url="https://w.example/1", created=True), title="T <x>", saved_by="Al")
    assert "Saved this thread to the wiki: <https://w.example/1|T &lt;x&gt;>" in done.text
    updated = render_saved(SavedPage(id="1", url=None, created=False), title="T", saved_by="Al")
    assert "Updated" in updated.text and "<" not in updated.text
    pending = render_saved(SavedPage(id=None, url=None, created=False, pending=True), title="T", saved_by="<!here>")
    assert "the wiki is busy, will retry" in pending.text and not PINGS.search(pending.text)


def test_status_and_help() -> None:
    status = render_status(
        AskStatus(kb_kind="perfectwiki", kb_name="Docs <&>", cache=CacheStats(size=1234, hits=4567, misses=5433),
                  quota=QuotaState(paused=True, next_probe_at=0), queued=3),
        FeedbackCounts(helpful=5, not_helpful=2),
    )
    text = status.blocks[0]["text"]["text"]
    assert "Docs &lt;&amp;&gt; (perfectwiki)" in text and "1,234 entries" in text and "46%" in text
    assert "paused" in text and "00:00 UTC" in text and "3 request(s)" in text and "👍 5 · 👎 2" in text
    assert "/kb save" in render_help().blocks[0]["text"]["text"]
    assert render_error("nope <!channel>").text == ":warning: nope @\u200bchannel"


def test_saved_note_is_a_second_escaped_line() -> None:
    saved = SavedPage(id="1", url="https://w.example/1", created=True)
    plain = render_saved(saved, title="T", saved_by="Al")
    noted = render_saved(saved, title="T", saved_by="Al", note="only the first 10 <!channel> & more")
    assert ":warning:" not in plain.text
    first, second = noted.text.split("\n")
    assert first == plain.text
    assert second.startswith(":warning: only the first 10 ") and second.endswith(" &amp; more")
    assert "<!channel>" not in noted.text and "<!channel>" not in json.dumps(noted.blocks)  # escaped, inert


def test_code_fenced_inside_a_quote_stays_code() -> None:
    # How the search answerer quotes a page's code block (kbbot.search.answerer._quote).
    text = "> Roll back:  \n> ```\n> ./scripts/promote <service> --rollback\n> # comment\n> ```\n\nafter **bold**"
    assert markdown_to_mrkdwn(text) == (
        "> Roll back:  \n> ```\n> ./scripts/promote &lt;service&gt; --rollback\n> # comment\n> ```\n\nafter *bold*"
    )
    # An unquoted fence keeps a quote-looking line as code.
    assert markdown_to_mrkdwn("```\n> x\n```") == "```\n&gt; x\n```"
