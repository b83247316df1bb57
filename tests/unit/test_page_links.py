"""Links with refused schemes become their plain text in saved pages (Markdown and HTML), however obfuscated."""

from __future__ import annotations

import re
import time

import pytest
from markdown_it import MarkdownIt

from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.page_links import flatten_markdown_links, is_allowed_url
from kbbot.core.page_render import PageRenderer


def page(fmt: str, text: str) -> str:
    t = Thread("slack", "C1:1", (ThreadMessage("ada", "U1", "2026-01-05T09:00:00+00:00", text),))
    return PageRenderer(fmt).render(t, "T")[0].content  # type: ignore[arg-type]


def commonmark_hrefs(markdown: str) -> list[str]:
    """What a permissive CommonMark renderer (no link validation at all) would link to."""
    md = MarkdownIt("commonmark")
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return re.findall(r'href="([^"]*)"', md.render(markdown))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://e.com/x", True), ("HTTP://e.com", True), ("mailto:a@b.c", True), ("/relative", True),
        ("#anchor", True), ("page.md", True), ("javascript:alert(1)", False), ("JaVaScRiPt:x", False),
        ("file:///kb/a.md", False), ("data:text/html,hi", False), ("vbscript:x", False),
        ("&#106;avascript:x", False), ("javascript&colon;x", False), ("java&#9;script:x", False),
        ("javascript\\:x", False), (" \x01javascript:x", False), ("java\u200bscript:x", False), ("tel:123", False),
    ],
)
def test_is_allowed_url(url: str, allowed: bool) -> None:
    assert is_allowed_url(url) is allowed


def test_percent_encoded_scheme_is_refused_when_asked() -> None:
    assert is_allowed_url("%6Aavascript:x", markdown=False)  # a relative path to a browser
    assert not is_allowed_url("%6Aavascript:x", markdown=False, percent=True)  # but we are cautious


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see [Shell tips](file:///kb/shell%20tips.md) now", "see Shell tips now"),
        ("[x](javascript:alert(1)) after", "x after"),
        ('[x](javascript:alert(1) "title") y', "x y"),
        ("![pic](data:image/png;base64,AAAA)", "pic"),
        ("[x](<javascript:alert(1)>)", "x"),
        ("[x](&#106;avascript:alert(1))", "x"),
        ("[ok](https://e.com/a_(b)) [bad](file:///c)", "[ok](https://e.com/a_(b)) bad"),
        ("<file:///kb/a.md> and <https://e.com>", "file:///kb/a.md and <https://e.com>"),
        ("no links at all", "no links at all"),
    ],
)
def test_flatten_markdown_links(text: str, expected: str) -> None:
    assert flatten_markdown_links(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[a [b] c](javascript:alert(1))",  # nested brackets: pass 1 cannot take it apart, the backstop can
        "[r][1]\n\n[1]: javascript:alert(1)",
        "> [r][1]\n>\n> [1]: javascript:alert(1)",  # a definition inside a quote
        "- [r][1]\n\n  [1]: <javascript:alert(1)>",
        "``[x](javascript:y)`",  # looks like code to a simple scanner, is a link to CommonMark
        "\\`[x](javascript:y)`",
        "[x](\njavascript:y)",
        "[x](" + "(" * 50 + "javascript:y" + ")" * 50 + ")",
        "[x](java&#x09;script:y)",
        "[a [b] c](java" + "&#9;" * 2_000 + "script:alert(1))",  # padded past what pass 1 and the backstop read
        "[" + "a" * 3_000 + "](javascript:alert(1))",  # link text longer than pass 1 reads
    ],
)
def test_no_refused_link_survives_a_commonmark_renderer(text: str) -> None:
    flattened = flatten_markdown_links(text)
    assert all(is_allowed_url(href, markdown=False, percent=True) for href in commonmark_hrefs(flattened))
    # and through the whole page renderer, in both formats
    md_page = page("markdown", text)
    assert all(is_allowed_url(href, markdown=False, percent=True) for href in commonmark_hrefs(md_page))
    html_page = page("html", text)
    assert all(is_allowed_url(href, markdown=False) for href in re.findall(r'href="([^"]*)"', html_page))


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_refused_links_render_as_plain_text_without_placeholder_hrefs(fmt: str) -> None:
    text = "Sources: [Shell tips](file:///kb/shell.md), [VPN](javascript:alert(1)), [Docs](https://e.com/d)"
    content = page(fmt, text)
    assert "blocked" not in content and "file:" not in content and "javascript:" not in content
    assert "Shell tips" in content and "VPN" in content
    if fmt == "html":
        assert '<a href="https://e.com/d" rel="noopener noreferrer nofollow">Docs</a>' in content
        assert content.count("<a ") == 1
    else:
        assert "[Docs](https://e.com/d)" in content and "[Shell tips]" not in content


def test_html_autolink_to_a_refused_scheme_is_its_text() -> None:
    content = page("html", "open <file:///kb/a.md> or <mailto:it@e.com>")
    assert "file:///kb/a.md" in content and 'href="file' not in content
    assert 'href="mailto:it@e.com"' in content


def test_flattening_is_linear_on_hostile_input() -> None:
    hostile = (
        ("](javascript:" * 40_000)
        + ("[a](" * 40_000)
        + ("[x](file:///" + "(" * 30) * 2_000
        + ("[a](b " + " " * 50_000)
        + ("](a:" * 40_000)
        + ("](" * 100_000)
    )
    started = time.thread_time()  # CPU time: a busy machine's other work does not count against it
    out = flatten_markdown_links(hostile)
    assert time.thread_time() - started < 5.0
    assert all(is_allowed_url(href, markdown=False, percent=True) for href in commonmark_hrefs(out[:50_000]))
