from __future__ import annotations

import html
import re
import time

import pytest

from benchmarks.bench_render import make_thread
from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.core.page_render import (
    PageRenderer,
    begin_marker_text,
    clean_title,
    find_marker,
    marker_text,
    thread_digest,
)

Z = "\u200b"


def msg(text: str, author: str = "Ada", **kw: object) -> ThreadMessage:
    stamp = str(kw.pop("timestamp", "2026-01-05T09:00:00+00:00"))
    return ThreadMessage(author_name=author, author_id="U1", timestamp=stamp, text=text, **kw)  # type: ignore[arg-type]


def thread(*messages: ThreadMessage, **kw: object) -> Thread:
    defaults: dict[str, object] = {
        "permalink": "https://team.slack.com/archives/C1/p1736067600000100",
        "channel_name": "ops",
    }
    defaults.update(kw)
    return Thread("slack", "C1:1736067600.000100", messages, **defaults)  # type: ignore[arg-type]


def html_page(t: Thread, title: str = "Deploy failed") -> str:
    parts = PageRenderer("html").render(t, title)
    assert len(parts) == 1
    return parts[0].content


def md_page(t: Thread, title: str = "Deploy failed") -> str:
    parts = PageRenderer("markdown").render(t, title)
    assert len(parts) == 1
    return parts[0].content


def test_html_page_has_title_header_messages_and_marker() -> None:
    t = thread(
        msg("Deploy **failed** on staging", timestamp="2026-01-05T09:00:00+00:00"),
        msg("Try `make migrate`", author="Grace", timestamp="2026-01-06T10:30:00Z", edited=True),
        msg("gone", author="Linus", deleted=True),
        msg("see file", attachments=(Attachment("log.txt", "https://files.example.com/log.txt"),)),
    )
    page = html_page(t)
    digest = thread_digest("slack", "C1:1736067600.000100")
    assert page.startswith(f"<p><small>{begin_marker_text(digest, 1)}</small></p>\n<h1>Deploy failed</h1>")
    assert "Saved from #ops on Slack" in page
    assert "2026-01-05 09:00 – 2026-01-06 10:30 UTC" in page
    assert "3 participants: Ada, Grace, Linus" in page
    assert 'href="https://team.slack.com/archives/C1/p1736067600000100"' in page
    assert "<strong>Ada</strong> <small>2026-01-05 09:00 UTC</small>" in page
    assert "<p>Deploy <strong>failed</strong> on staging</p>" in page
    assert "<code>make migrate</code>" in page
    assert "2026-01-06 10:30 UTC · edited" in page
    assert "This message was deleted." in page and ">gone<" not in page
    assert (
        '<a href="https://files.example.com/log.txt" rel="noopener noreferrer nofollow">log.txt</a>' in page
    )
    assert find_marker(page, digest, 1)
    assert not find_marker(page, digest, 2)


def test_markdown_page_layout_and_latex_kept() -> None:
    t = thread(
        msg("Energy: $E = mc^2$ and $$\\int_0^1 x<y\\,dx$$ and a<b outside"),
        msg("```python\nif a < b:\n    print('<@U1>')\n```", author="Grace"),
    )
    page = md_page(t)
    begin = begin_marker_text(thread_digest("slack", t.key), 1)
    assert page.startswith(f"{begin}\n\n# Deploy failed\n")
    assert "$E = mc^2$" in page
    assert "$$\\int_0^1 x<y\\,dx$$" in page
    assert "a&lt;b outside" in page
    assert "```python\nif a < b:\n    print('<@U1>')\n```" in page
    assert "**Ada** · 2026-01-05 09:00 UTC" in page
    assert page.rstrip().endswith(marker_text(thread_digest("slack", t.key), 1))


def test_code_blocks_preserved_in_html() -> None:
    code = "```\nfor i in range(3):\n    print(i) # <b>\n```"
    page = html_page(thread(msg(code)))
    assert "<pre><code>for i in range(3):\n    print(i) # &lt;b&gt;\n</code></pre>" in page


HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "<a href='javascript:alert(1)'>x</a>",
    "[data](data:text/html;base64,PHNjcmlwdD4=)",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "<iframe src=https://evil.example></iframe>",
    '<svg onload="alert(1)">',
    "<style>body{display:none}</style>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<!channel> @everyone @here <!here>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_inert_in_html(text: str) -> None:
    t = thread(msg(text, author="<img src=x onerror=alert(1)>@everyone"), permalink="javascript:alert(1)")
    page = html_page(t, title="<script>x</script>")
    lowered = page.lower()
    assert "<script" not in lowered
    assert (
        "<img" not in lowered
        and "<iframe" not in lowered
        and "<svg" not in lowered
        and "<style" not in lowered
    )
    assert "onerror=" not in lowered.replace("onerror=alert", "") or "&lt;img" in lowered
    assert not re.search(r"<[^>]+\son\w+\s*=", lowered)
    assert "javascript:" not in re.sub(r">[^<]*<", "><", lowered)  # never inside a tag (text may mention it)
    assert 'href="data:' not in lowered
    assert "@everyone" not in page and "@here" not in page and "<!channel>" not in page


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_inert_in_markdown(text: str) -> None:
    page = md_page(thread(msg(text, author="@everyone")))
    assert "<script" not in page and "<img" not in page and "<iframe" not in page and "<svg" not in page
    assert "](javascript:" not in page.lower() and "](data:" not in page.lower()
    assert not re.search(r"\]:\s*<?\s*(javascript|data):", page, re.I)
    assert "@everyone" not in page and "@here" not in page


def test_broadcasts_become_inert_but_readable() -> None:
    page = html_page(thread(msg("hey @everyone and <!channel>")))
    assert f"@{Z}everyone" in page and f"@{Z}channel" in page


def test_unclosed_fence_in_markdown_does_not_swallow_later_messages() -> None:
    page = md_page(thread(msg("```\nunclosed"), msg("next message", author="Grace")))
    assert page.count("```") % 2 == 0
    assert "**Grace**" in page


def test_unicode_and_control_chars() -> None:
    page = html_page(thread(msg("日本語のテキスト \x00\x1b[31m red 🎉", author="Zoë\u202e")))
    assert "日本語のテキスト" in page and "🎉" in page and "Zoë" in page
    assert "\x00" not in page and "\u202e" not in page


def test_empty_and_whitespace_bodies() -> None:
    page = html_page(thread(msg(""), msg("   \n  ")))
    assert page.count("<strong>Ada</strong>") == 2


@pytest.mark.parametrize("stamp", ["<b>yesterday</b>", "<b>x</b> UTC", "2026-01-01T<b>"])
def test_unparseable_timestamp_shown_escaped(stamp: str) -> None:
    page = html_page(thread(msg("x", timestamp=stamp)))
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert "**Ada** · \\*\\*b\\*\\*" in md_page(thread(msg("x", timestamp="**b**")))


def test_missing_timestamp_shows_author_only() -> None:
    page = html_page(thread(msg("x", timestamp="")))
    assert "<p><strong>Ada</strong></p>" in page


def test_non_http_attachment_urls_are_not_links() -> None:
    page = html_page(thread(msg("f", attachments=(Attachment("evil.html", "javascript:alert(1)"),))))
    assert "evil.html" in page and "javascript" not in page


def test_participants_capped() -> None:
    t = thread(*(msg("hi", author=f"user{i}") for i in range(40)))
    page = html_page(t)
    assert "40 participants" in page and "and 15 more" in page


def test_split_into_parts_when_over_cap() -> None:
    t = thread(*(msg(f"message {i} " + "word " * 200, author=f"u{i % 3}") for i in range(200)))
    parts = PageRenderer("html", max_chars=50_000).render(t, "Big thread")
    assert len(parts) > 1
    digest = thread_digest(t.platform, t.key)
    for part in parts:
        assert len(part.content) <= 50_000
        assert part.title == f"Big thread (part {part.index}/{len(parts)})"
        assert f"Part {part.index} of {len(parts)}" in part.content
        assert find_marker(part.content, digest, part.index)
    joined = "".join(p.content for p in parts)
    for i in range(200):  # nothing is dropped, order is kept
        assert f"message {i} " in joined
    assert joined.index("message 10 ") < joined.index("message 150 ")


def test_single_huge_message_is_truncated_with_note() -> None:
    huge = "A" * 1_000_000
    for fmt in ("html", "markdown"):
        parts = PageRenderer(fmt, max_chars=400_000).render(thread(msg(huge)), "Huge")  # type: ignore[arg-type]
        assert all(len(p.content) <= 400_000 for p in parts)
        assert "message truncated: 1,000,000 characters" in parts[0].content


def test_huge_hostile_message_is_inert() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(1)>" * 20_000  # ~1 MB
    parts = PageRenderer("html", max_chars=400_000).render(thread(msg(evil)), "Evil")
    for part in parts:
        assert "<script" not in part.content and "<img" not in part.content


def test_marker_only_counts_in_footer() -> None:
    digest = thread_digest("slack", "X")
    other = thread_digest("slack", "Y")
    spoof = marker_text(digest, 1) + "\n\n" + "filler " * 1000
    assert not find_marker(spoof, digest, 1)
    assert not find_marker(marker_text(digest, 12), digest, 1)
    assert find_marker("body\n" + marker_text(digest, 1), digest, 1)
    # a message quoting our marker just before another thread's footer does not count
    assert not find_marker(f"{marker_text(digest, 1)}\n---\n{marker_text(other, 1)}\n", digest, 1)
    # the renderer's real footer is found in both formats
    for fmt in ("html", "markdown"):
        t = thread(msg(f"quoting {marker_text(other, 1)}"))
        content = PageRenderer(fmt).render(t, "x")[0].content  # type: ignore[arg-type]
        assert find_marker(content, thread_digest(t.platform, t.key), 1)
        assert not find_marker(content, other, 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Deploy **failed** on _staging_", "Deploy failed on staging"),
        ("\n\n  # Heading\nsecond", "Heading"),
        ("see [the docs](https://e.com) now", "see the docs now"),
        ("<https://e.com/x>", "https://e.com/x"),
        ("x" * 300, "x" * 119 + "…"),
        ("\u200b\x00", ""),
        ("> quoted question?", "quoted question?"),
        ("why does snake_case_name fail", "why does snake_case_name fail"),
        # ordinary symbols stay; only leading markup (headings, quotes, bullets) and emphasis go
        ("C# build | notes v2 > v1", "C# build | notes v2 > v1"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("- [x] done * 2", "[x] done * 2"),
        ("> - ## nested `code` ~~old~~", "nested code old"),
        ("#general is #1", "#general is #1"),
        ("a\x1b[31mred\x07", "a[31mred"),
    ],
)
def test_clean_title(raw: str, expected: str) -> None:
    assert clean_title(raw) == expected


def test_render_is_linear_and_fast() -> None:
    renderer = PageRenderer("html", max_chars=5_000_000)
    small = make_thread(1000)
    big = make_thread(10_000)
    renderer.render(small, "warm up")
    # CPU time of this thread, not wall time: other work on a busy machine does not count against it.
    small_s = float("inf")
    for _ in range(3):
        start = time.thread_time()
        renderer.render(small, "t")
        small_s = min(small_s, time.thread_time() - start)
    start = time.thread_time()
    parts = renderer.render(big, "t")
    big_s = time.thread_time() - start
    assert sum(p.content.count("<strong>") for p in parts) >= 10_000
    assert big_s < 10 * small_s * 2.5 + 0.5  # linear, with slack for caches and allocation


def test_benchmark_runs() -> None:
    from benchmarks.bench_render import run

    result = run(messages=100, rounds=1)
    assert result["messages"] == 100 and result["html_chars"] > 0 and result["markdown_ms"] >= 0


@pytest.mark.parametrize(
    "line",
    [
        "Run `make` then **deploy** to [prod](https://e.com/x_y) ~~now~~ *ok*",
        "**Note**: bold first",
        "*i* then `code`",
        "a &amp; b &lt; c <https://e.com> \\*not\\*",
        "ends with two spaces  ",
        "x_y_z and __dunder__",
        "unclosed `code and [link](",
    ],
)
def test_inline_fast_path_matches_full_render(line: str) -> None:
    from kbbot.core.page_render import _markdown_it

    renderer = PageRenderer("html")
    assert renderer._body_html(line) == _markdown_it().render(line)


def test_hostile_sizes_in_names_and_attachments_stay_under_cap() -> None:
    from kbbot.core.models import Attachment as A

    names = [f'"{i}"' * 5_000 for i in range(30)]  # huge names full of characters that escaping expands
    messages = [
        msg("x", author=name, attachments=tuple(A(f"f{j}.txt", f"https://e.com/{j}") for j in range(300)))
        for name in names
    ]
    t = thread(*messages, channel_name="c" * 10_000, permalink="https://e.com/" + "p" * 5_000)
    for fmt in ("html", "markdown"):
        parts = PageRenderer(fmt, max_chars=20_000).render(t, "t" * 120)  # type: ignore[arg-type]
        assert all(len(p.content) <= 20_000 for p in parts)
        assert "and 250 more" in parts[0].content


def test_message_with_enormous_attachment_list_becomes_a_stub() -> None:
    from kbbot.core.models import Attachment as A

    links = tuple(A("f", "https://e.com/" + "x" * 1_900) for _ in range(50))
    parts = PageRenderer("html", max_chars=10_000).render(thread(msg("hi", attachments=links)), "t")
    assert all(len(p.content) <= 10_000 for p in parts)
    assert "message too long to show: 50 attachments" in parts[0].content


@pytest.mark.parametrize("title", ["C# build | notes v2 > v1", "<script>alert(1)</script>", "# [x](javascript:1) *a*"])
def test_titles_with_symbols_render_inert_in_both_formats(title: str) -> None:
    cleaned = clean_title(title)
    html_out = html_page(thread(msg("hi")), title=cleaned)
    assert "<script" not in html_out.lower() and html_out.count("<a ") == 1  # only the permalink
    assert f"<h1>{html.escape(cleaned, quote=True)}</h1>" in html_out
    heading = md_page(thread(msg("hi")), title=cleaned).splitlines()[2]
    assert heading.startswith("# ") and "<" not in heading
    assert not re.search(r"(?<!\\)[#|>\[\]*]", heading[2:])  # every Markdown symbol is backslash-escaped
