"""Typo tolerance: words the index lacks are corrected to its closest word; words it has are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbbot.search.index import IndexedPage, SearchIndex
from kbbot.search.query import stem
from kbbot.search.spelling import Vocabulary, is_english, specificity

WORDS = ["vacation", "request", "reimbursement", "expense", "password", "laptop", "onboarding", "security"]
WORDS += ["benefits", "wiki", "deploy", "incident"]


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary({stem(word): 3 for word in WORDS} | {"2024": 5, "wiki": 9})


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("vacaton", "vacation"),  # 2 edits from the stem "vacat", but it starts with it
        ("vaccation", "vacation"),
        ("reqest", "request"),
        ("expence", "expense"),
        ("paswword", "password"),
        ("pasword", "password"),
        ("laptp", "laptop"),
        ("onbording", "onboarding"),
        ("benifits", "benefits"),
        ("secuirty", "security"),  # a transposition is one edit
        ("incidnet", "incident"),
    ],
)
def test_typos_are_corrected_to_the_indexed_stem(vocabulary: Vocabulary, typed: str, meant: str) -> None:
    assert vocabulary.correct(typed) == stem(meant)


@pytest.mark.parametrize(
    "typed",
    [
        "wifi",  # 4 letters: one edit from "wiki", too short to guess
        "zzzqqq",
        "parking",  # nothing within reach
        "2025",  # numbers are not misspelled words
        "wacation",  # the first letter is trusted
        "passport",  # an English word the wiki lacks is no typo of "password"
        "",
    ],
)
def test_no_guess_when_nothing_is_close(vocabulary: Vocabulary, typed: str) -> None:
    assert vocabulary.correct(typed) is None


def test_ties_go_to_the_more_common_word() -> None:
    vocabulary = Vocabulary({"plonts": 1, "plonds": 7})  # made-up words: a real one ("carbs") is not corrected
    assert vocabulary.correct("plonxs") == "plonds"


async def test_the_index_finds_pages_through_a_typo_and_keeps_exact_words(tmp_path: Path) -> None:
    pages = [
        IndexedPage(id="leave", title="Leave", text="Request vacation in HRbox before you go."),
        IndexedPage(id="laptop", title="Laptop", text="Every laptop is encrypted."),
        # "reqest" is a real word here (a ticket field): it must find this page, not be "corrected".
        IndexedPage(id="forms", title="Ticket fields", text="The reqest field holds the ticket number."),
    ]
    async with SearchIndex(tmp_path / "index.sqlite3") as index:
        await index.upsert_many(pages)
        result = await index.query("how do i reqest vacaton")
        assert {h.id for h in result.hits} == {"forms", "leave"}
        reqest, vacaton = result.plan.terms
        assert (reqest.corrected, reqest.stem) == (False, "reqest")
        assert (vacaton.corrected, vacaton.stem, vacaton.docs) == (True, "vacat", 1)
        # Corrected words are found in passages through their stem.
        assert "vacat" in result.plan.stems
        assert [h.id for h in await index.search("laptpo encrypted")] == ["laptop"]
        # The vocabulary follows the index: a new page's words are corrected to at once.
        await index.upsert(IndexedPage(id="kb", title="Kubernetes", text="Clusters and namespaces."))
        assert [h.id for h in await index.search("namespacs")] == ["kb"]


async def test_unknown_words_stay_in_the_plan_with_no_pages(tmp_path: Path) -> None:
    async with SearchIndex(tmp_path / "index.sqlite3") as index:
        await index.upsert(IndexedPage(id="pw", title="Password reset", text="Reset your password in Okta."))
        result = await index.query("wifi password")
        assert [(t.word, t.docs, t.corrected) for t in result.plan.terms] == [
            ("wifi", 0, False),
            ("password", 1, False),
        ]
        assert [h.id for h in result.hits] == ["pw"]
        assert result.plan.total_docs == 1
        # "wifi" is what the question is about and no page has it: the answer covers only part of it.
        assert result.plan.coverage({stem("password")}) < 0.8


def test_another_form_of_an_english_word() -> None:
    # Porter stems "response" to "respons" but "respond" to "respond": the same word up to its last letter.
    vocabulary = Vocabulary({stem("response"): 2, stem("responsible"): 1, stem("password"): 5})
    assert vocabulary.other_form("respond") == stem("response")
    assert vocabulary.other_form("passport") is None  # "pass…" is too short a common start
    assert vocabulary.other_form("dog") is None


def test_another_form_with_a_suffix_porter_keeps() -> None:
    # "counselling" stems to "counsel", the wiki's "counsellor" to "counsellor": the same word and a suffix.
    vocabulary = Vocabulary({stem("counsellor"): 1, stem("session"): 3})
    assert vocabulary.other_form("counselling") == stem("counsellor")
    # …but only a short suffix: a stem five letters longer is another word.
    assert Vocabulary({"counselworth": 1}).other_form("counselling") is None


@pytest.mark.parametrize("word", ["font", "projector", "passport", "emoji", "gripper"])
def test_specific_words_name_a_topic(word: str) -> None:
    assert specificity(word) >= 0.8


@pytest.mark.parametrize("word", ["order", "latest", "bad", "number", "picture"])
def test_common_words_name_no_topic(word: str) -> None:
    assert specificity(word) == 0.0


def test_specificity_is_between_and_follows_frequency() -> None:
    # "deadline" is rarer than "therapy", which is rarer than "order": the ramp is monotone.
    assert 0.0 < specificity("deadline") < 1.0
    assert specificity("deadline") >= specificity("therapy") >= specificity("order")
    assert specificity("Font") == specificity("fonts") == specificity("font")  # casefolded, by stem


@pytest.mark.parametrize("word", ["", "🤖", "\x00", "zzzqqq", "Ünïcödé" * 50])
def test_specificity_of_anything_is_a_share(word: str) -> None:
    assert 0.0 <= specificity(word) <= 1.0


@pytest.mark.parametrize("word", ["wifi", "cryptocurrency", "munich", "latest", "passport", "reimbursement"])
def test_english_knows_todays_words(word: str) -> None:
    assert is_english(word)


@pytest.mark.parametrize("word", ["vacaton", "reqest", "zzzqqq", "deploymnet"])
def test_typos_are_not_english(word: str) -> None:
    assert not is_english(word)


async def test_an_english_word_is_not_split_into_two_indexed_words(tmp_path: Path) -> None:
    pages = [
        IndexedPage(id="vpn", title="VPN", text="Pass the port number to the client."),
        IndexedPage(id="oncall", title="On-call", text="Hand over the pager on Mondays. The help desk helps."),
    ]
    async with SearchIndex(tmp_path / "index.sqlite3") as index:
        await index.upsert_many(pages)
        passport = (await index.query("renew my passport")).plan.terms[-1]
        assert (passport.stem, passport.docs, passport.english) == ("passport", 0, True)
        # …unless it ends in a particle: "handover" is asked by whoever means "hand over".
        handover = (await index.query("handover")).plan.terms
        assert [t.stem for t in handover] == ["hand", "over"]
        assert [t.stem for t in (await index.query("helpdesk")).plan.terms] == ["help", "desk"]
        respond = (await index.query("respond")).plan.terms
        assert [(t.stem, t.corrected) for t in respond] == [("respond", False)] or respond[0].docs == 0


def test_prefix_docs_is_the_most_pages_of_a_stem_with_that_start() -> None:
    # As the index's SQL (max(doc) of the terms >= prefix and < prefix + U+10FFFF) counts it.
    vocabulary = Vocabulary({"deploi": 7, "deploy": 3, "dep": 9, "depth": 2, "kube": 1, "kubectl": 4, "é": 5})
    assert vocabulary.prefix_docs("deplo") == 7
    assert vocabulary.prefix_docs("kube") == 4
    assert vocabulary.prefix_docs("zzz") == 0 and vocabulary.prefix_docs("") == 9
    assert vocabulary.prefix_docs("\U0010ffff") == 0 and vocabulary.prefix_docs("é") == 5


async def test_an_unknown_word_carries_its_specificity(tmp_path: Path) -> None:
    pages = [IndexedPage(id="rel", title="Release notes", text="Write the release notes in plain language.")]
    async with SearchIndex(tmp_path / "index.sqlite3") as index:
        await index.upsert_many(pages)
        font = (await index.query("which font in release notes")).plan.terms[0]
        assert (font.word, font.docs, font.english, font.specificity) == ("font", 0, True, specificity("font"))
        typo = (await index.query("reqest release notes")).plan.terms[0]
        assert typo.specificity == 0.0  # no English word: neither a topic nor corrected here
