"""Irregular word forms and hyphenated compounds (kbbot.search.word_forms), and that the question side
(kbbot.search.query) and the index side agree on them."""

from __future__ import annotations

import pytest

from kbbot.search.query import MAX_TERMS, plan_terms, query_terms, stem, term_hits, word_stems
from kbbot.search.word_forms import base_form, compounds, generate, index_text


@pytest.mark.parametrize(
    ("form", "base"),
    [("kept", "keep"), ("paid", "pay"), ("went", "go"), ("written", "write"), ("children", "child"), ("mice", "mouse")],
)
def test_an_irregular_form_is_its_base_form(form: str, base: str) -> None:
    assert base_form(form) == base
    assert stem(form) == stem(base)
    assert stem(form.upper()) == stem(base)  # casefolded first


@pytest.mark.parametrize(
    "word",
    [
        "left",  # also the side (an adjective and a noun): not "leave"
        "found",  # also to found a company
        "saw",  # also the tool
        "felt",  # also the fabric
        "data",  # data or datum
        "better",  # good, well, or to better
        "policies",  # regular: the stemmer already agrees with "policy"
        "keep",  # a base form
        "kubectl",  # not in the dictionary
        "401k",
        "x",
        "",
        "café",
        "行った",
    ],
)
def test_ambiguous_regular_unknown_and_non_english_words_are_left_alone(word: str) -> None:
    assert base_form(word) == word


def test_stem_keeps_leave_and_left_apart() -> None:
    assert stem("left") != stem("leave")
    assert stem("kept") == stem("keeping") == stem("keeps")


def test_the_index_text_adds_the_base_forms_and_keeps_the_text() -> None:
    text = "Messages: Kept for 2 years; we paid, kept."
    assert index_text(text) == text + "\nkeep pay keep"
    assert index_text("") == ""
    html = "<script>alert(1)</script> @everyone <!channel> plain words"
    assert index_text(html) == html
    assert index_text("a\x00b kept \x03") == "a\x00b kept \x03\nkeep"
    # Words are split at spaces and the usual punctuation only (cheap): a form next to a rare mark keeps only
    # its own form, as before base forms.
    assert index_text("\x02kept\x03 “kept”") == "\x02kept\x03 “kept”"


def test_the_table_is_what_lemminflect_generates() -> None:
    # kbbot/search/word_forms.tsv is generated (python -m kbbot.search.word_forms): stale, it must be regenerated.
    from kbbot.search.word_forms import _forms

    assert _forms() == generate()


def test_compounds_join_hyphenated_words_that_hold_a_dropped_word() -> None:
    text = "The On-call rota, e-mail, follow-up, Wi-Fi, end-to-end, 2026-12-01, a-"
    # "on" and "to" are stopwords, "e" a single letter, "up" a particle stopword; "wi-fi" has none.
    assert compounds(text) == ["oncall", "email", "followup", "endtoend"]
    assert compounds("") == []
    assert compounds("-" * 10_000) == []


def test_the_index_text_holds_the_compounds_after_the_words() -> None:
    assert index_text("the On-call week") == "the On-call week\noncall"


def _compounds_planned(text: str) -> list[str]:
    return [word for word, _, joins in plan_terms(text) if joins]


def test_a_question_joins_a_dropped_word_to_the_next_as_the_index_does() -> None:
    assert ("oncall", "oncal", "call") in plan_terms("who is on call right now")
    assert "oncall" in _compounds_planned("who is on-call right now")
    assert "email" in _compounds_planned("how do I set up e-mail")
    # Guesses are for the index to keep where a page has them: not the question's own terms.
    assert query_terms("who is on call") == ["call"]


@pytest.mark.parametrize(
    "text",
    [
        "is it on",  # two dropped words
        "on 25",  # a number
        "on, call",  # punctuation between
        "I shouldn't ask",  # "t ask" is not "task"
        "I set it",  # a single letter joins only with a hyphen ("e-mail")
        "",
        "-on- -call-",
    ],
)
def test_no_compound_guess(text: str) -> None:
    assert _compounds_planned(text) == []


def test_passages_see_the_compounds_of_their_text() -> None:
    assert "oncal" in word_stems("On-call handover")
    assert term_hits("The on-call engineer", {stem("oncall"), stem("engineer")}) == {"oncal": 1, "engin": 1}
    assert term_hits("on call", {stem("oncall")}) == {}  # written apart, the words are found one by one


def test_huge_input_stays_bounded() -> None:
    text = "kept-on-call " * 50_000
    assert index_text(text).count("keep") == 50_000
    assert len(query_terms(text)) <= MAX_TERMS
    # Every stopword before every word: at most MAX_TERMS words and MAX_TERMS compound guesses.
    words = [f"w{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}" for n in range(2000)]
    flood = " ".join(f"{stop} {word}" for word in words for stop in ("on", "in"))
    assert len(plan_terms(flood)) <= 2 * MAX_TERMS


def test_the_table_ships_with_the_package() -> None:
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert "search/word_forms.tsv" in pyproject["tool"]["setuptools"]["package-data"]["kbbot"]
