from __future__ import annotations

import time

import pytest

from kbbot.adapters.markup import discord_to_markdown, slack_to_markdown

Z = "\u200b"
USERS = {"U1": "Ada Lovelace", "U2": "Bob"}
CHANNELS = {"C1": "general", "C9": "random"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("", ""),
        ("<@U1> hi", "@Ada Lovelace hi"),
        ("<@U1|ada> hi", "@Ada Lovelace hi"),
        ("<@U7|carol> hi", "@carol hi"),
        ("<@U7>", "@U7"),
        ("see <#C1|general>", "see #general"),
        ("see <#C9>", "see #random"),
        ("see <#C5|ops>", "see #ops"),
        ("<https://example.com|the docs>", "[the docs](https://example.com)"),
        ("<https://example.com>", "<https://example.com>"),
        ("<https://example.com/a_b_c|x>", "[x](https://example.com/a_b_c)"),
        ("<https://e.com/?a=1&amp;b=2|q&amp;a>", "[q&a](https://e.com/?a=1&b=2)"),
        ("<mailto:a@b.c|a@b.c>", "[a@b.c](mailto:a@b.c)"),
        ("<https://e.com|[x] y>", "[\\[x\\] y](https://e.com)"),
        ("*bold*", "**bold**"),
        ("_ital_", "*ital*"),
        ("~gone~", "~~gone~~"),
        ("*bold* and _it_ and ~st~", "**bold** and *it* and ~~st~~"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("2*3*4", "2*3*4"),
        ("* not bold *", "* not bold *"),
        ("`*code*` and *b*", "`*code*` and **b**"),
        ("`a &lt; b`", "`a < b`"),
        ("```<@U1> *x* _y_ :tada:```", "```\n<@U1> *x* _y_ :tada:\n```"),
        ("before```x = 1\ny = 2```after", "before\n```\nx = 1\ny = 2\n```\nafter"),
        ("&gt; quoted\nnot", "> quoted\nnot"),
        ("• one\n• two\n    ◦ nested", "- one\n- two\n    - nested"),
        ("a &amp; b &lt;c&gt;", "a & b <c>"),
        ("&amp;lt;", "&lt;"),
        (":tada: done :thumbsup:", "🎉 done 👍"),
        (":partyparrot:", ":partyparrot:"),
        (":+1::skin-tone-3: ok", "👍 ok"),
        ("at 10:30:45 sharp", "at 10:30:45 sharp"),
        ("<!channel> look", f"@{Z}channel look"),
        ("<!here|here>", f"@{Z}here"),
        ("<!everyone>", f"@{Z}everyone"),
        ("<!subteam^S1|@devs> ping", f"@{Z}devs ping"),
        ("<!date^1700000000^{date}|Nov 14>", "Nov 14"),
        ("hey @channel and @here", f"hey @{Z}channel and @{Z}here"),
        ("# not a heading", "\\# not a heading"),
        ("*<https://e.com|bold link>*", "**[bold link](https://e.com)**"),
        ("unclosed ```fence", "unclosed ```fence"),
        ("nul\x00byte", "nulbyte"),
        ("日本語 *太字*", "日本語 **太字**"),
    ],
)
def test_slack_to_markdown(raw: str, expected: str) -> None:
    assert slack_to_markdown(raw, users=USERS, channels=CHANNELS) == expected


def test_slack_code_with_triple_backticks_inside_uses_longer_fence() -> None:
    # Not reachable from Slack itself, but the fence builder must never produce an early close.
    out = slack_to_markdown("```a``b```")
    assert out == "```\na``b\n```"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("<@1> hi", "@Ada hi"),
        ("<@!1> hi", "@Ada hi"),
        ("<@42>", "@42"),
        ("<@&7> team", "@Mods team"),
        ("<@&8>", f"@{Z}everyone"),
        ("in <#5>", "in #general"),
        ("in <#6>", "in #6"),
        ("<:blobcat:1234> <a:dance:99>", ":blobcat: :dance:"),
        ("<t:0:f>", "1970-01-01 00:00 UTC"),
        ("<t:1700000000>", "2023-11-14 22:13 UTC"),
        ("<t:1700000000:D>", "2023-11-14"),
        ("<t:1700000000:T>", "22:13:20 UTC"),
        ("<t:1700000000:R>", "2023-11-14 22:13 UTC"),
        ("<t:9999999999999:f>", "<t:9999999999999>"),
        ("||secret|| ok", "(spoiler: secret) ok"),
        ("@everyone look", f"@{Z}everyone look"),
        ("@here", f"@{Z}here"),
        ("mail@everyone.com", "mail@everyone.com"),
        ("`<@1> @everyone`", "`<@1> @everyone`"),
        ("```py\nprint('<@1>')\n```", "```py\nprint('<@1>')\n```"),
        ("```one line```", "```\none line\n```"),
        ("**b** *i* ~~s~~ __u__", "**b** *i* ~~s~~ __u__"),
        ("[docs](https://e.com)", "[docs](https://e.com)"),
        ("<https://e.com/x>", "<https://e.com/x>"),
        ("> one line", "> one line"),
        ("intro\n>>> a\nb", "intro\n> a\n> b"),
        ("-# small print", "small print"),
        (":tada:", "🎉"),
        ("</deploy:123>", "/deploy"),
        ("", ""),
    ],
)
def test_discord_to_markdown(raw: str, expected: str) -> None:
    got = discord_to_markdown(
        raw, users={"1": "Ada"}, roles={"7": "Mods", "8": "@everyone"}, channels={"5": "general"}
    )
    assert got == expected


@pytest.mark.parametrize("convert", [slack_to_markdown, discord_to_markdown])
def test_converters_are_linear_on_huge_and_pathological_input(convert: object) -> None:
    assert callable(convert)
    samples = [
        "a" * 1_000_000,
        "*_~" * 200_000,
        "<" * 200_000,
        "`" * 200_001,
        "```" + "x\n" * 200_000,  # unclosed fence
        "||" * 200_000,
        ":" * 300_000,
    ]
    for sample in samples:
        start = time.thread_time()  # CPU time: a busy machine's other work does not count against it
        out = convert(sample)
        assert isinstance(out, str)
        assert time.thread_time() - start < 3.0, sample[:10]
