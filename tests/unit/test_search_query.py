from __future__ import annotations

import pytest

from kbbot.search.query import MAX_TERMS, build_match, matched_terms, query_terms, stem, term_hits


def test_terms_drop_stopwords_punctuation_and_duplicates() -> None:
    assert query_terms("How do I set up the VPN? The VPN!") == ["set", "setup", "vpn"]
    assert query_terms("log in, roll back") == ["log", "login", "roll", "rollback", "back"]


@pytest.mark.parametrize("text", ["", "   ", "?!", "how do I", "🤖🚀", '"*:^()-'])
def test_no_terms(text: str) -> None:
    assert query_terms(text) == []
    assert build_match(query_terms(text)) is None


def test_syntax_characters_never_reach_the_query() -> None:
    match = build_match(query_terms('NEAR(deploy rollback) title:vpn -foo "bar* AND OR NOT ^x'))
    assert match == '"near" OR "deploy" OR "rollback" OR "title" OR "vpn" OR "foo" OR "bar"*'


def test_only_the_last_term_is_a_prefix_and_short_terms_are_exact() -> None:
    assert build_match(["deploy", "kube"]) == '"deploy" OR "kube"*'
    assert build_match(["deploy", "ci"]) == '"deploy" OR "ci"'


def test_huge_questions_are_bounded() -> None:
    words = " ".join(f"word{n}" for n in range(50_000))
    assert len(query_terms(words)) <= MAX_TERMS
    assert query_terms("x" * 100_000) == []  # one absurd "word" is not a search term


def test_term_hits_stem_and_prefix() -> None:
    # The same Porter stems as FTS5's porter tokenizer (y → i included), diacritics removed like unicode61's.
    assert stem("deploying") == stem("deploys") == "deploi" and stem("policies") == "polici"
    assert stem("ssh") == "ssh" and stem("Café") == "cafe"
    counts = term_hits("Deploying deploys; kubectl and kube, not ku.", {"deploi", "kube", "ku"})
    assert counts == {"deploi": 2, "kube": 2, "ku": 1}
    assert matched_terms("VPN setup", {"vpn", "linux"}) == {"vpn"}
    assert term_hits("anything", set()) == {}


def test_plan_weights_rare_words_and_counts_compounds_only_when_found() -> None:
    from kbbot.search.query import QueryPlan, Term

    plan = QueryPlan(
        (
            Term("set", "set", 40),
            Term("setup", "setup", 0, joins="set"),
            Term("vpn", "vpn", 2),
            Term("vacaton", "vacat", 2, corrected=True),
        ),
        total_docs=100,
    )
    set_, _setup, vpn, vacaton = plan.terms
    assert plan.weight(vpn) > plan.weight(set_)  # a rare word says more about the question
    assert plan.weight(vacaton) < plan.weight(vpn)  # a corrected guess counts less than a word typed right
    assert plan.stems == {"set", "vpn", "vacat"}
    assert plan.coverage({"set", "vpn", "vacat"}) == 1.0  # the unfound compound is not held against it
    assert 0 < plan.coverage({"set"}) < plan.coverage({"vpn"}) < 1.0
    assert plan.match() == '"set" OR "vpn" OR "vacat"*'
    assert QueryPlan((Term("zzzqqq", "zzzqqq", 0),), 10).match() is None  # nothing to look for


def test_short_words_keep_their_form_as_fts5_porter_does() -> None:
    # FTS5's porter tokenizer leaves tokens under 3 characters alone: "US" is indexed as "us".
    assert stem("US") == "us" and stem("is") == "is" and stem("buses") == stem("bus") == "bu"


def test_contraction_fragments_are_no_search_terms() -> None:
    assert query_terms("the secondary isn't answering, I shouldn't ask") == ["secondary", "answering", "ask"]


def test_a_word_elsewhere_on_the_page_is_no_answer() -> None:
    from kbbot.search.query import QueryPlan, Term

    # "is there parking at the Berlin office" on a 20-page wiki: the passage has "Berlin office", the page has
    # "parking" only in another section (commuter benefits in the US).
    plan = QueryPlan((Term("parking", "park", 2), Term("berlin", "berlin", 9), Term("office", "offic", 10)), 20)
    in_passage = {"berlin", "offic"}
    assert plan.coverage(in_passage | {"park"}) == 1.0
    assert plan.coverage(in_passage, on_page={"park"}) < 0.62  # below the default don't-know threshold
    # …and lower than with "parking" on no page of the wiki's at all: the page has a place for it, elsewhere.
    assert plan.coverage(in_passage, on_page={"park"}) < plan.coverage(in_passage)


def test_term_counter_matches_term_hits() -> None:
    # The title boost counts with TermCounter.matched; passages with term_hits: the same words must match.
    from kbbot.search.query import TermCounter, term_hits, word_stems

    # (matched searches the joined words for each term, unless a term starts another: then word by word)
    titles = ["Deployment guide", "Configuring the VPN", "config", "Kubernetes kubectl", "", "Ünïcode café setup"]
    titles += ["VPN for us", "us-east deployments", "Kube vpns"]
    for terms in (
        {"deploy", "vpn"},
        {"config", "configur"},
        {"kube", "kubectl"},
        {"cafe", "set"},
        {"us", "kube", "vpn"},
        {"east", "useast", "deploy"},
        set(),
    ):
        for title in titles:
            assert TermCounter(terms).matched(word_stems(title)) == len(term_hits(title, terms))


def test_a_topic_word_the_wiki_lacks_counts_against_the_answer_by_how_specific_it_is() -> None:
    from kbbot.search.query import QueryPlan, Term

    # "which font should I use in release notes" on a 20-page wiki that never says "font": the passage holds
    # "release notes", and the question is about something else.
    def plan(unknown: Term) -> QueryPlan:
        return QueryPlan((unknown, Term("release", "releas", 4), Term("notes", "note", 1)), 20)

    held = {"releas", "note"}
    topic = plan(Term("font", "font", 0, english=True, specificity=1.0))
    common = plan(Term("latest", "latest", 0, english=True, specificity=0.0))
    code = plan(Term("zq7", "zq7", 0))  # no English word: a code or a typo nobody could correct
    assert topic.coverage(held) < 0.62 <= common.coverage(held)  # the default don't-know threshold between
    assert code.coverage(held) > common.coverage(held) > topic.coverage(held)
    assert topic.coverage(held | {"font"}) < 1.0  # a word no page has is never found, whatever is passed
    # Adversarial: nothing held, only unknown words, no words at all.
    assert topic.coverage(set()) == 0.0
    assert QueryPlan((Term("font", "font", 0, english=True, specificity=1.0),), 20).coverage(set()) == 0.0
    assert QueryPlan((), 0).coverage(set()) == 0.0


def test_the_verb_of_a_how_to_question_is_required_on_the_page() -> None:
    from kbbot.search.query import QueryPlan, Term

    # "how do I order business cards" on a 20-page wiki: a passage about company cards on "Business travel".
    plan = QueryPlan(
        (Term("order", "order", 3), Term("business", "busi", 4), Term("cards", "card", 2)),
        20,
    )
    held = {"busi", "card"}
    required = plan.required("order")
    assert required == {"order"}
    # Missing from the page, the verb counts more against the answer than another missing word would…
    assert plan.coverage(held, required=required) < plan.coverage(held)
    # …on the page in another section it counts as any word there does, and in the passage it is found.
    assert plan.coverage(held, on_page={"order"}, required=required) == plan.coverage(held, on_page={"order"})
    assert plan.coverage(held | {"order"}, required=required) == 1.0
    # A verb no page has ("order" in a wiki without it) is required too.
    unknown = QueryPlan((Term("order", "order", 0, english=True), *plan.terms[1:]), 20)
    assert unknown.coverage(held, required=unknown.required("order")) < unknown.coverage(held)


def test_the_required_verb_is_the_word_as_the_index_read_it() -> None:
    from kbbot.search.query import QueryPlan, Term

    plan = QueryPlan(
        (
            Term("set", "set", 40),
            Term("setup", "setup", 3, joins="set"),
            Term("reqest", "request", 5, corrected=True),
            Term("vpn", "vpn", 2),
        ),
        100,
    )
    assert plan.required("set") == {"set", "setup"}  # "set up" is found as "setup" too
    held = {"vpn", "request"}
    assert plan.coverage(held | {"setup"}, required=plan.required("set")) == 1.0
    assert plan.coverage(held, required=plan.required("set")) < plan.coverage(held)
    assert plan.required("reqest") == {"request"}  # the correction, not the typo
    # Adversarial: no verb, a stopword or a word the question lacks require nothing.
    assert plan.required(None) == plan.required("") == plan.required("how") == plan.required("zzz") == frozenset()
    assert QueryPlan((), 0).required("order") == frozenset()


def test_a_compound_found_answers_for_a_word_no_page_has_alone() -> None:
    from kbbot.search.query import QueryPlan, Term

    # A fresh install indexes titles only: "VPN setup" has "setup", no page has "set" on its own.
    plan = QueryPlan(
        (Term("set", "set", 0, english=True), Term("setup", "setup", 1, joins="set"), Term("vpn", "vpn", 1)), 2
    )
    assert plan.coverage({"setup", "vpn"}) == 1.0
    assert plan.coverage({"setup", "vpn"}, required=plan.required("set")) == 1.0
    assert plan.coverage({"vpn"}, required=plan.required("set")) < plan.coverage({"vpn"})


@pytest.mark.parametrize("word", ["wat", "teh", "waht", "abot", "wen", "yuo"])
def test_a_mistyped_stopword_counts_nothing_against_an_answer(word: str) -> None:
    from kbbot.search.query import QueryPlan, Term, mistyped_stopword

    # "wat is the expnse limit for meals": "wat" is on no page and rare in English, so it counted as a topic the
    # wiki lacks (most of its weight against every answer), when it is "what" mistyped.
    assert mistyped_stopword(word)
    plan = QueryPlan((Term(word, word, 0, english=True, specificity=1.0), Term("meals", "meal", 3)), 20)
    assert plan.coverage({"meal"}) == 1.0


@pytest.mark.parametrize("word", ["what", "fee", "font", "wifi", "dog", "pasta", "x", "", "🤖", "w" * 5000])
def test_words_that_are_no_mistyped_stopword(word: str) -> None:
    from kbbot.search.query import mistyped_stopword

    # A stopword itself, a changed letter ("fee" is no "few"), topic words, nothing, huge.
    assert not mistyped_stopword(word)
