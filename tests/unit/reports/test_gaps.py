"""Grouping near-duplicate questions into gaps (rapidfuzz over stemmed topic words)."""

from __future__ import annotations

from kbbot.core.outcomes import Kind, Outcome
from kbbot.reports.gaps import find_gaps, report_json, topic_words


def outcomes(*questions: str, kind: Kind = Kind.EMPTY, start: float = 1000.0) -> list[Outcome]:
    return [Outcome(start + n, "slack", "C1", "kb", kind, None, q) for n, q in enumerate(questions)]


def test_the_issue_phrasings_are_one_gap() -> None:
    [gap] = find_gaps(outcomes("how do I book a meeting room", "How can I book a meeting room?",
                               "booking a meeting room"))
    assert gap.count == 3 and len(gap.examples) == 3


def test_typos_and_word_order_join_an_extra_topic_word_does_not() -> None:
    gaps = find_gaps(outcomes("reset password", "how do I reset my pasword", "password reset?",
                              "reset VPN password", "where is the parking"))
    assert [(g.count, g.question) for g in gaps] == [(3, "password reset?"), (1, "where is the parking"),
                                                     (1, "reset VPN password")]


def test_reasons_counts_order_and_most_asked_phrasing() -> None:
    got = find_gaps(
        outcomes("vpn on linux?", "vpn on linux?")
        + outcomes("VPN on Linux", kind=Kind.DOWNVOTED, start=2000)
        + outcomes("parking", kind=Kind.ERROR, start=3000)
        + outcomes("answered one", kind=Kind.ANSWERED, start=4000)
    )
    assert [(g.question, g.count, g.reasons) for g in got] == [
        ("vpn on linux?", 3, ["empty", "downvoted"]),
        ("parking", 1, ["error"]),
    ]
    assert got[0].examples == ["vpn on linux?", "VPN on Linux"] and got[0].last_asked == 2000


def test_hostile_and_degenerate_questions() -> None:
    weird = ["", "   ", "how?", "how?", "<script>alert(1)</script>", "@everyone <!channel>", "x" * 50_000,
             "🤖🤖", "\x00\x1b[31mred", "вопрос про отпуск", "質問"]
    gaps = find_gaps(outcomes(*weird))
    texts = {g.question for g in gaps}
    assert "" not in texts and "how?" in texts and "<script>alert(1)</script>" in texts
    assert sum(g.count for g in gaps) == len(weird) - 2  # blank ones are no question
    assert topic_words("how?") == {"how": "how"}


def test_report_shape_and_limit() -> None:
    gaps = find_gaps(outcomes("a b c", "d e f", "g h i"), limit=2)
    report = report_json(gaps, since=0)
    assert report["since"] == "1970-01-01T00:00:00Z" and len(report["gaps"]) == 2
    assert report["gaps"][0]["last_asked"].endswith("Z")


def test_similar_words_that_are_different_things_stay_apart() -> None:
    gaps = find_gaps(outcomes(
        "how do I reset the cloud account", "how do I request the cloud account",
        "share the mentor", "share the monitor", "rotate the ssh key", "rotate the ssl key",
        "book a meeting rom", "book a meeting room",
    ))
    assert sorted(g.count for g in gaps) == [1, 1, 1, 1, 1, 1, 2]
    [joined] = [g for g in gaps if g.count == 2]
    assert set(joined.examples) == {"book a meeting rom", "book a meeting room"}
