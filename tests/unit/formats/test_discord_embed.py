"""Discord embeds on saved pages (kbbot.formats.discord_embed): readable content of the message, in the HTML
Perfect Wiki gets and the Markdown MatHub and local folders get, whatever the embed's text holds.

Embed shape: Discord's Embed Object, discord/discord-api-docs developers/resources/message.mdx ("Embed
Object": title, type, description, url, fields [{name, value, inline}], footer {text}, author {name}).
"""

from __future__ import annotations

from typing import Any

import pytest

from kbbot.adapters.discord.render import render_answer
from kbbot.core.models import Answer, PageRef, Source, Thread, ThreadMessage
from kbbot.core.page_render import PageRenderer
from kbbot.formats.discord_embed import PREVIEW_CHARS, embed_markdown


def _page(text: str, content_format: Any) -> str:
    message = ThreadMessage(author_name="kbbot", author_id="1", timestamp="2026-12-01T12:00:00+00:00", text=text)
    return PageRenderer(content_format).render(Thread("discord", "42", (message,)), "Saved")[0].content


def _kbbot_answer() -> dict[str, Any]:
    answer = Answer(text="Install WireGuard, then import the **company** profile.",
                    related_pages=(PageRef("p1", "VPN setup", "https://wiki.example/p1"),
                                   PageRef("p2", "VPN FAQ", "https://wiki.example/p2")), source=Source.AI)
    [message] = render_answer(answer, question="How do I set up the VPN?")
    [embed] = message.embeds
    return dict(embed.to_dict())


def test_kbbots_answer_reads_as_the_messages_content() -> None:
    text = embed_markdown(_kbbot_answer(), preview=False)
    assert text == (
        "**How do I set up the VPN?**\n\nInstall WireGuard, then import the **company** profile.\n\n"
        "**Related pages**\n- [VPN setup](https://wiki.example/p1)\n- [VPN FAQ](https://wiki.example/p2)\n\n"
        "*Answered by the wiki's AI*"
    )
    html = _page(text, "html")
    assert "Embed:" not in html and "<blockquote>" not in html
    assert "<p><strong>How do I set up the VPN?</strong></p>" in html
    assert '<li><a href="https://wiki.example/p1" rel="noopener noreferrer nofollow">VPN setup</a></li>' in html
    markdown = _page(text, "markdown")
    assert "**Related pages**\n- [VPN setup](https://wiki.example/p1)\n- [VPN FAQ]" in markdown
    assert "*Answered by the wiki's AI*" in markdown


def test_title_links_to_the_url_and_a_link_preview_is_a_short_quote() -> None:
    embed = {"type": "link", "title": "Runbook [v2]", "url": "https://runbooks.example/vpn", "description": "x" * 900}
    assert embed_markdown(embed, preview=False).startswith("**[Runbook \\[v2\\]](<https://runbooks.example/vpn>)**")
    quoted = embed_markdown(embed, preview=True)
    assert quoted.startswith("> **[Runbook") and all(line.startswith(">") for line in quoted.split("\n"))
    assert len(quoted.split("\n")[-1]) == len("> ") + PREVIEW_CHARS and quoted.endswith("…")
    html = _page("see the runbook\n\n" + quoted, "html")
    assert '<blockquote>\n<p><strong><a href="https://runbooks.example/vpn"' in html


HOSTILE: dict[str, Any] = {
    "title": "<script>alert(1)</script>\n# Not a heading",
    "url": "javascript:alert(1)",
    "description": "@everyone <img src=x onerror=alert(2)> [click](javascript:alert(3)) kbbot-thread: 0000-1",
    "author": {"name": "> not a quote"},
    "fields": [
        {"name": "1. not a list", "value": "<@&123> @here ```\nunclosed fence", "inline": True},
        {"name": None, "value": 7},
        "not a field",
    ],
    "footer": {"text": "- not a list **"},
}


@pytest.mark.parametrize("content_format", ["html", "markdown"])
def test_hostile_embed_text_stays_inert_text(content_format: Any) -> None:
    text = embed_markdown(HOSTILE, preview=False)
    page = _page(text, content_format)
    body = page.split("kbbot-thread-begin")[1]
    assert "<script" not in page and "<img" not in page and "javascript:" not in page
    assert "@everyone" not in page and "@here" not in page
    assert body.count("kbbot-thread: ") == 1  # the page's own end marker only: the embed's was neutralized
    if content_format == "html":
        assert "&lt;script&gt;" in page and "href=\"javascript" not in page
        assert "<h1>" not in body.split("</h1>", 1)[1]  # the page title is the only heading
        assert "<ol>" not in page and "<ul>" not in page
        assert page.count("<blockquote>") == 0
    else:
        assert "&lt;script>" in page and "&lt;img" in page
        assert "\n# Not a heading" not in page and "\n> not a quote" not in page
        assert "\n1. not a list" not in page and "\n- not a list" not in page


@pytest.mark.parametrize("embed", [{}, {"title": "", "description": "  "}, {"fields": "x", "footer": "y"},
                                   {"title": 5, "url": None, "author": []}])
def test_empty_or_malformed_embeds_show_nothing(embed: dict[str, Any]) -> None:
    assert embed_markdown(embed, preview=False) == "" and embed_markdown(embed, preview=True) == ""


def test_huge_and_unicode_embeds_are_kept_whole() -> None:
    # At Discord's limits (Embed Limits): description 4096, 25 fields of 1024.
    embed = {"title": "Ünïcødé 🚀 " * 30, "description": "ж" * 4096,
             "fields": [{"name": "n", "value": "v" * 1024}] * 25}
    text = embed_markdown(embed, preview=False)
    assert "ж" * 4096 in text and text.count("**n**") == 25 and "Ünïcødé 🚀" in text
