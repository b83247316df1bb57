"""The follow-up rules: acknowledgements, questions, and the standalone question sent upstream."""

from __future__ import annotations

import pytest

from kbbot.core.followups import MAX_CARRIED, is_acknowledgement, is_question, leans_on_context, standalone_question

VPN = "How do I set up the VPN?"


@pytest.mark.parametrize(
    "text",
    [
        "thanks!", "Thanks", "ok", "OK.", "okay", "got it, thanks", "perfect, that worked", "that worked, thank you",
        "thx", "ty 🙏", "👍", "🙏🙏", "🎉 🎉", "!!!", "", "   ", ":+1:", ":pray::skin-tone-2:",
        "Thank you so much!! :pray:",
        "cool, makes sense", "awesome, that did the trick", "great, it works now", "yep", "np", "all good, solved",
    ],
)
def test_acknowledgements_need_no_answer(text: str) -> None:
    assert is_acknowledgement(text)


@pytest.mark.parametrize(
    "text",
    [
        "and on a Mac?", "thanks, but how do I do it on Linux", "ok?", "what about Windows", "ok so why does it fail",
        "thanks! where is the config", "which profile", "I still get error 809", "can I use it offline",
        "perfect, that worked on Windows, and on a Mac", "？", "ok, and the printer", "<script>alert(1)</script>",
    ],
)
def test_questions_and_statements_are_not_acknowledgements(text: str) -> None:
    assert not is_acknowledgement(text)


@pytest.mark.parametrize("text", ["ok?", "why", "thanks. Who owns it", "Can I keep it", "is it safe", "and the fee？"])
def test_a_question_mark_or_question_word_always_makes_a_question(text: str) -> None:
    assert is_question(text)


@pytest.mark.parametrize("text", ["thanks!", "I still get error 809", "perfect, that worked"])
def test_statements_are_not_questions(text: str) -> None:
    assert not is_question(text)


def test_short_follow_up_carries_the_topic_words() -> None:
    assert standalone_question("and on a Mac?", [VPN]) == "and on a Mac (set up VPN)?"
    assert standalone_question("Mac?", [VPN]) == "Mac (set up VPN)?"


@pytest.mark.parametrize("text", ["does it work offline?", "what about Windows?", "And that costs what", "it fails"])
def test_pronoun_led_follow_ups_lean_on_context(text: str) -> None:
    assert leans_on_context(text)
    assert "(set up VPN)" in standalone_question(text, [VPN])


def test_a_question_that_stands_on_its_own_goes_unchanged() -> None:
    assert standalone_question("How do I submit my expenses?", [VPN]) == "How do I submit my expenses?"
    assert standalone_question("and on a Mac?", []) == "and on a Mac?"


def test_the_topic_is_the_latest_question_that_stood_on_its_own() -> None:
    # "what about Windows?" after "and on a Mac?" is about the VPN, not about Macs.
    earlier = ["Where are the expense forms?", VPN, "and on a Mac?"]
    assert standalone_question("what about Windows?", earlier) == "what about Windows (set up VPN)?"


def test_words_already_there_are_not_repeated_and_the_carry_is_bounded() -> None:
    assert standalone_question("and the VPN on a Mac?", [VPN]) == "and the VPN on a Mac (set up)?"
    long_topic = "Configure " + " ".join(f"word{i}" for i in range(40)) + " please"
    carried = standalone_question("and then?", [long_topic]).rpartition("(")[2].rstrip(")?").split()
    assert len(carried) == MAX_CARRIED


def test_deterministic_and_unicode_safe() -> None:
    earlier = ["Wie richte ich das VPN für München ein?"]
    assert standalone_question("und auf dem Mac?", earlier) == standalone_question("und auf dem Mac?", earlier)
    assert "München" in standalone_question("Mac?", earlier)
    assert standalone_question("🙂?", ["?!"]) == "🙂?"  # nothing to carry
