from __future__ import annotations

import pytest

from kbbot.core.text import (
    clean_question,
    neutralize_mentions,
    normalize_question,
    outside_code,
    outside_math,
    split_text,
    strip_invisible,
)
from kbbot.errors import InvalidQuestion


@pytest.mark.parametrize(
    "variant",
    [
        "How do I reset my password?",
        "  how do i RESET my password?? ",
        "How do I reset my password",
        "“How do I reset my password?”",
    ],
)
def test_normalize_question_folds_variants(variant: str) -> None:
    assert normalize_question(variant) == "how do i reset my password"


@pytest.mark.parametrize("text", ["", "   ", "???", "\x00\x01\u200b", "\n\t"])
def test_clean_question_rejects_empty(text: str) -> None:
    with pytest.raises(InvalidQuestion, match="type a question"):
        clean_question(text)


def test_clean_question_rejects_huge_with_size_in_message() -> None:
    with pytest.raises(InvalidQuestion, match="102,400 characters"):
        clean_question("x" * 102_400)


def test_clean_question_limit_is_inclusive_and_says_so() -> None:
    # The limit is accepted; the message once said "keep it under 10", which 10 characters are not.
    assert clean_question("x" * 10, max_chars=10) == "x" * 10
    with pytest.raises(InvalidQuestion, match=r"11 characters long; please keep it to 10 at most\.$"):
        clean_question("x" * 11, max_chars=10)


def test_clean_question_strips_control_characters() -> None:
    assert clean_question("what\x00 is\x1b the\u202e VPN?") == "what is the VPN?"


def test_terminal_colour_and_title_sequences_are_dropped_whole() -> None:
    # Pasted from coloured terminal output: dropping only the ESC left "[31mvpn", a word no page has.
    coloured = "\x1b[1;31mvpn\x1b[0m setup\x1b]0;title\x07?"
    assert clean_question(coloured) == "vpn setup?"
    assert normalize_question(coloured) == normalize_question("vpn setup")


@pytest.mark.parametrize(
    ("raw", "forbidden"),
    [
        ("<!channel> look", "<!channel>"),
        ("<!here|here> now", "<!here"),
        ("<!everyone>", "<!everyone>"),
        ("<!subteam^S0123|devs>", "<!subteam"),
        ("ping <@U12345>", "<@U12345>"),
        ("@everyone hello", "@everyone"),
        ("@here hello", "@here"),
        ("<@!1234> <@&99>", "<@"),
    ],
)
def test_neutralize_mentions(raw: str, forbidden: str) -> None:
    out = neutralize_mentions(raw)
    assert forbidden not in out


def test_split_text_respects_limit_and_keeps_everything() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 50 for i in range(40))
    chunks = split_text(text, 500)
    assert all(len(c) <= 500 for c in chunks)
    assert "".join(chunks).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")


def test_split_text_reopens_code_fences() -> None:
    text = "intro\n\n```\n" + "line of code\n" * 100 + "```\nafter"
    chunks = split_text(text, 300)
    assert len(chunks) > 1
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert all(len(c) <= 300 for c in chunks)


def test_clean_question_drops_lone_surrogates() -> None:
    # An undecodable byte in a CLI argument arrives as a lone surrogate (surrogateescape), and JSON from chat
    # platforms may carry one ("\ud83d"): UTF-8 cannot encode them, so the request upstream used to crash.
    cleaned = clean_question("vpn \udcff setup \ud83d?")
    assert cleaned == "vpn setup ?"
    cleaned.encode("utf-8")
    assert normalize_question("vpn \ud83d setup") == "vpn setup"
    with pytest.raises(InvalidQuestion):
        clean_question("\udcff\ud800")


def test_strip_invisible_leaves_page_text_inert_for_a_terminal() -> None:
    hostile = "a\x1b]0;pwned\x07b\x1b[2Jc\rd\u202ee\u202c\u2066f\u2069\x9bg\x1b]8;;http://x\x1b\\h\tline\nnext"
    assert strip_invisible(hostile) == "abcdefgh\tline\nnext"


def test_outside_code_and_math_rewrite_only_the_prose_between_the_spans() -> None:
    upper, mark = str.upper, lambda span: f"[{span}]"
    assert outside_code("a `b` c\n```\nd\n``` e", upper) == "A `b` C\n```\nd\n``` E"
    assert outside_math("x $1:2$ y $$z$$", upper, mark) == "X [$1:2$] Y [$$z$$]"
    # Not math: a lone dollar, and dollars with space inside ("$ 5 and $").
    assert outside_math("costs $5, or $ 5 and $", upper) == "COSTS $5, OR $ 5 AND $"
    assert outside_math("", upper) == "" and outside_code("`x`", upper, mark) == "[`x`]"
