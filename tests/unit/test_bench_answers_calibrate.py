"""The calibration tool: it scores the answerer's own replies at each threshold (as the benchmark does, so
both report the same figures at the shipped threshold), which constants its share sweep may set, that it puts
them back, which row it picks."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.answers import calibrate, handbook
from benchmarks.answers.scoring import Case, evaluate, score
from kbbot.core.models import Answer, PageRef, Source
from kbbot.search import query, spelling
from kbbot.search.answerer import DEFAULT_MIN_RELEVANCE

CASES = [
    Case("how do I request leave", ("leave",), ("form",), holdout=False),
    Case("is there parking in Berlin", (), (), holdout=False),
    Case("password for the guest wifi", (), (), holdout=True),
]


class PromotingAnswerer:
    """Like the search answerer, the threshold also picks the page whose relevance is compared: at a low one
    a more relevant second page leads (and answers), at a higher one the first page leads and says "don't
    know" while the answer still carries a relevance above the threshold it was told."""

    def __init__(self, min_relevance: float) -> None:
        self.min_relevance = min_relevance

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        if question.startswith("how do I"):
            return Answer(
                "From the wiki:\n> Fill in the form.", (PageRef("leave", "Leave"),), Source.SEARCH, relevance=0.9
            )
        promoted = self.min_relevance < 0.6
        relevance = 0.75 if promoted else 0.55
        if relevance < self.min_relevance:
            return Answer("I couldn't find this in the wiki.", source=Source.SEARCH, empty=True, relevance=relevance)
        return Answer("From the wiki:\n> Parking …", (PageRef("office", "Office"),), Source.SEARCH, relevance=relevance)

    async def ranking(self, question: str) -> list[PageRef]:
        return [PageRef("leave", "Leave")] if question.startswith("how do I") else [PageRef("office", "Office")]


async def test_each_threshold_is_scored_on_what_the_answerer_replied_there() -> None:
    rows = await calibrate.sweep(CASES, PromotingAnswerer, [0.5, 0.6, 0.8])
    # Replaying the 0.5 run's relevance (0.75) would call 0.8 honest and 0.6 not: the replies say otherwise.
    assert [row.tune["honest_dont_know_pct"] for row in rows] == [0.0, 100.0, 100.0]
    assert [row.holdout["honest_dont_know_pct"] for row in rows] == [0.0, 100.0, 100.0]
    assert [row.tune["wrongly_dont_know_pct"] for row in rows] == [0.0, 0.0, 0.0]
    for row in rows:  # the very figures the benchmark's scoring gives for that threshold
        results = await evaluate(CASES, PromotingAnswerer(row.threshold))
        assert row.tune == score(results, holdout=False).figures()
        assert row.holdout == score(results, holdout=True).figures()


def test_the_calibration_reports_the_benchmarks_figures_at_the_shipped_threshold() -> None:
    assert DEFAULT_MIN_RELEVANCE in calibrate.THRESHOLDS
    (row,) = calibrate.answer_all([DEFAULT_MIN_RELEVANCE])
    benchmark = handbook.run()
    assert (row.tune, row.holdout) == (benchmark["tune"], benchmark["holdout"])


def test_settings_are_parsed_and_must_name_a_numeric_constant() -> None:
    assert calibrate.parse_settings(["TOPIC_WORD_SHARE=0.6,0.8", "COMMON_ZIPF=4.5"]) == {
        "TOPIC_WORD_SHARE": [0.6, 0.8],
        "COMMON_ZIPF": [4.5],
    }
    for bad in ["TOPIC_WORD_SHARE", "TOPIC_WORD_SHARE=", "NO_SUCH=1", "STOPWORDS=1", "stem=1", "=1"]:
        with pytest.raises(ValueError):
            calibrate.parse_settings([bad])
    with pytest.raises(ValueError):
        calibrate.parse_settings(["TOPIC_WORD_SHARE=high"])


def test_patched_constants_are_restored_even_on_error() -> None:
    before = (query.TOPIC_WORD_SHARE, query.REQUIRED_SHARE, spelling.RARE_ZIPF)
    with pytest.raises(RuntimeError), calibrate.patched({"TOPIC_WORD_SHARE": 5.0, "RARE_ZIPF": 1.0}):
        assert (query.TOPIC_WORD_SHARE, spelling.RARE_ZIPF) == (5.0, 1.0)
        raise RuntimeError
    assert before == (query.TOPIC_WORD_SHARE, query.REQUIRED_SHARE, spelling.RARE_ZIPF)


def _row(threshold: float, honest: float, wrong: float, held_out: dict[str, Any] | None = None) -> calibrate.Row:
    return calibrate.Row(threshold, {"honest_dont_know_pct": honest, "wrongly_dont_know_pct": wrong}, held_out or {})


def test_the_tuning_half_picks_the_most_honest_threshold_within_the_wrong_budget() -> None:
    rows = [
        _row(0.60, 80.0, 2.0),
        _row(0.62, 90.0, 4.0),
        _row(0.64, 90.0, 3.0),  # as honest with fewer wrong: chosen
        _row(0.66, 95.0, 8.0, {"honest_dont_know_pct": 100.0, "wrongly_dont_know_pct": 0.0}),  # over the budget
        _row(0.68, 99.0, 5.1),  # just over it
    ]
    assert calibrate.chosen(rows).threshold == 0.64
    assert calibrate.chosen([*rows, _row(0.70, 95.0, 5.0)]).threshold == 0.70  # the budget itself is allowed
    assert calibrate.chosen([_row(0.7, 50.0, 9.0), _row(0.8, 60.0, 12.0)]).threshold == 0.8  # none within: best
