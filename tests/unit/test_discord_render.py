"""Pure parts of the Discord adapter: answer layout within Discord's limits, mention safety, small helpers."""

from __future__ import annotations

import re
from typing import Any

import discord
import pytest

from kbbot.adapters.discord import REQUIRED_PERMISSIONS, invite_url
from kbbot.adapters.discord.client import DiscordOptions, intents_for
from kbbot.adapters.discord.handlers import saved_text
from kbbot.adapters.discord.render import (
    CONTENT_LIMIT,
    EMPTY_TEXT,
    FIELD_VALUE_LIMIT,
    NOT_FOUND_LABEL,
    SEARCH_COLOUR,
    TITLE_LIMIT,
    OutgoingMessage,
    check_limits,
    question_title,
    related_links,
    render_answer,
    render_text,
)
from kbbot.adapters.discord.sync import payload_hash
from kbbot.config import Settings
from kbbot.core.models import Answer, PageRef, SavedPage, Source
from kbbot.runtime import discord_options

ZWSP = "\u200b"
PING = re.compile(r"@(everyone|here)|<@[!&]?\d+>")


def all_text(messages: list[OutgoingMessage]) -> str:
    parts = []
    for m in messages:
        parts.append(m.content or "")
        for e in m.embeds:
            parts += [e.title or "", e.description or "", e.footer.text or ""]
            parts += [f.value or "" for f in e.fields]
    return "\n".join(parts)


def test_short_answer_is_one_embed_with_title_links_and_source() -> None:
    answer = Answer(
        text="Use **WireGuard**.",
        related_pages=(PageRef("1", "VPN setup", "https://wiki.example/1"), PageRef("2", "No link")),
    )
    [message] = render_answer(answer, question="  How do I\nconnect? ")
    assert message.content is None
    [embed] = message.embeds
    assert embed.title == "How do I connect?"
    assert embed.description == "Use **WireGuard**."
    assert embed.fields[0].name == "Related pages"
    assert embed.fields[0].value == "• [VPN setup](https://wiki.example/1)\n• No link"
    assert embed.footer.text == "Answered by the wiki's AI"


@pytest.mark.parametrize(
    ("source", "label"),
    [
        (Source.AI, "Answered by the wiki's AI"),
        (Source.CACHE, "Cached AI answer"),
        (Source.SEARCH, "From a wiki search (no AI)"),
    ],
)
def test_footer_names_the_source(source: Source, label: str) -> None:
    [message] = render_answer(Answer(text="x", source=source), question="q")
    assert message.embeds[-1].footer.text == label


@pytest.mark.parametrize("source", [Source.AI, Source.SEARCH])
def test_a_dont_know_is_labelled_as_one_whoever_said_it(source: Source) -> None:
    # Perfect Wiki's isEmptyResult comes back as an empty answer from the AI: the reply is kbbot's own.
    [message] = render_answer(Answer(text="I couldn't find this in the wiki.", source=source, empty=True), question="q")
    assert message.embeds[-1].footer.text == NOT_FOUND_LABEL and message.embeds[0].colour.value == SEARCH_COLOUR


def test_quota_notice_is_the_content_of_the_first_message_only() -> None:
    answer = Answer(text="word " * 3000, source=Source.SEARCH, notice="AI answers are paused.")
    messages = render_answer(answer, question="q")
    assert len(messages) > 1
    assert messages[0].content == "⚠️ AI answers are paused."
    assert all(m.content is None for m in messages[1:])


def test_empty_answer_says_so() -> None:
    [message] = render_answer(Answer(text="  \n ", empty=True), question="q")
    assert message.embeds[0].description == EMPTY_TEXT


def test_empty_answer_with_its_own_text_says_it_once() -> None:
    [message] = render_answer(Answer(text="I couldn't find this in the wiki.", empty=True), question="q")
    assert [e.description for e in message.embeds] == ["I couldn't find this in the wiki."]
    assert EMPTY_TEXT not in str([e.to_dict() for e in message.embeds])


@pytest.mark.parametrize(
    "text",
    [
        "word " * 20_000,  # 100k characters of words
        "x" * 50_000,  # no break anywhere
        "\n\n".join(f"para {i} " + "é🙂 " * 400 for i in range(30)),  # unicode, paragraphs
        "```python\n" + "print('hi')\n" * 3000 + "```",  # one huge code block
    ],
)
def test_long_answers_split_within_every_limit_and_lose_nothing(text: str) -> None:
    answer = Answer(
        text=text,
        related_pages=tuple(PageRef(str(i), f"Page {i}", f"https://wiki.example/{i}") for i in range(5)),
        notice="n" * 5000,
    )
    messages = render_answer(answer, question="q" * 1000)
    assert len(messages) > 1
    for message in messages:
        check_limits(message)
        assert message.embeds[0].title is not None and len(message.embeds[0].title) <= TITLE_LIMIT
    joined = "".join(e.description or "" for m in messages for e in m.embeds)
    assert re.sub(r"\s|`", "", joined).replace("python", "") == re.sub(r"\s|`", "", text).replace(
        "python", ""
    )
    parts = [m.embeds[-1].footer.text for m in messages]
    assert parts[-1] is not None and parts[-1].endswith(f"part {len(messages)}/{len(messages)}")
    assert sum(bool(e.fields) for m in messages for e in m.embeds) == 1  # related pages once, at the end
    assert messages[-1].embeds[-1].fields


def test_mentions_are_neutralized_everywhere() -> None:
    answer = Answer(
        text="Ping @everyone and @here and <@123> and <@&456> and <@!789>",
        related_pages=(PageRef("1", "@everyone [rules]", "https://wiki.example/1"),),
        notice="@here quota",
    )
    messages = render_answer(answer, question="<@1> @everyone?")
    text = all_text(messages)
    assert not PING.search(text)
    assert f"@{ZWSP}everyone" in text
    assert "(rules)" in text  # brackets in titles cannot break the Markdown link


def test_related_links_stay_within_a_field_and_drop_unsafe_urls() -> None:
    pages = tuple(PageRef(str(i), "T" * 60, f"https://wiki.example/{i}") for i in range(100))
    value = related_links(pages)
    assert 0 < len(value) <= FIELD_VALUE_LIMIT
    weird = related_links(
        (PageRef("1", "A", "https://x.example/a)b"), PageRef("2", "B", "javascript:alert(1)"))
    )
    assert weird == "• A\n• B"


def test_question_title_is_bounded_and_never_empty() -> None:
    assert len(question_title("q" * 5000)) == TITLE_LIMIT
    assert question_title("   ") == "Answer"


def test_check_limits_rejects_oversized_messages() -> None:
    with pytest.raises(ValueError, match="2000"):
        check_limits(OutgoingMessage(content="x" * (CONTENT_LIMIT + 1)))
    with pytest.raises(ValueError, match="10 embeds"):
        check_limits(OutgoingMessage(embeds=tuple(discord.Embed(description="x") for _ in range(11))))
    with pytest.raises(ValueError, match="6000"):
        check_limits(
            OutgoingMessage(
                embeds=(discord.Embed(description="x" * 4000), discord.Embed(description="y" * 4000))
            )
        )


def test_render_text_splits_and_neutralizes() -> None:
    chunks = render_text("@everyone " + "z" * 5000)
    assert len(chunks) == 3 and all(len(c) <= CONTENT_LIMIT for c in chunks)
    assert not PING.search("".join(chunks))


def test_saved_text_variants() -> None:
    assert saved_text(SavedPage(id="1", url="https://w/1", created=True, title="T"), count=3) == (
        "Saved 3 messages to the wiki: [T](https://w/1)"
    )
    assert saved_text(SavedPage(id="1", url=None, created=False, title="T"), count=3).startswith("Updated 3")
    assert "queued" in saved_text(SavedPage(id=None, url=None, created=False, pending=True), count=9)
    one = SavedPage(id="1", url="https://w/1", created=True, title="T")
    assert saved_text(one, count=1) == "Saved 1 message to the wiki: [T](https://w/1)"
    assert "(1 message)" in saved_text(SavedPage(id=None, url=None, created=False, pending=True), count=1)


def test_payload_hash_ignores_order_but_not_content() -> None:
    a, b = {"name": "ask", "type": 1}, {"name": "save-thread", "type": 1, "options": []}
    assert payload_hash([a, b]) == payload_hash([dict(reversed(list(b.items()))), a])
    assert payload_hash([a, b]) != payload_hash([a, dict(b, description="new")])


def test_permissions_integer_and_invite_url() -> None:
    assert REQUIRED_PERMISSIONS.value == 274877992000
    perms = REQUIRED_PERMISSIONS
    assert perms.view_channel and perms.send_messages and perms.send_messages_in_threads
    assert perms.embed_links and perms.read_message_history and perms.add_reactions
    assert not perms.administrator and not perms.mention_everyone and not perms.manage_messages
    assert not perms.attach_files
    assert invite_url(42) == (
        "https://discord.com/oauth2/authorize?client_id=42&scope=bot+applications.commands&permissions=274877992000"
    )


def test_message_content_intent_only_for_saving_or_auto_channels() -> None:
    def options(**settings: Any) -> DiscordOptions:
        return discord_options(Settings(**settings))

    plain = options(discord_save_threads=False)
    assert not intents_for(plain).message_content  # mentions, DMs and slash commands need no privileged intent
    assert intents_for(options()).message_content  # saving (on by default) reads other people's messages
    assert intents_for(options(discord_save_threads=False, discord_auto_channels="1")).message_content
    assert intents_for(plain).guild_messages and intents_for(plain).dm_messages and not intents_for(plain).members
