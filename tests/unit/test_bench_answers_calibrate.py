"""The calibration tool's share sweep: which constants it may set, that it puts them back, which row it picks."""

from __future__ import annotations

import pytest

from benchmarks.answers import calibrate
from kbbot.search import query, spelling


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


def test_the_tuning_half_picks_the_most_honest_threshold_within_the_wrong_budget() -> None:
    rows = [
        (0.60, 80.0, 2.0, 90.0, 3.0),
        (0.62, 90.0, 4.0, 90.0, 6.0),
        (0.64, 90.0, 3.0, 100.0, 6.0),  # as honest with fewer wrong: chosen
        (0.66, 95.0, 8.0, 100.0, 9.0),  # more honest, but over the budget on the tuning half
    ]
    assert calibrate.chosen(rows)[0] == 0.64
    assert calibrate.chosen([(0.7, 50.0, 9.0, 0, 0), (0.8, 60.0, 12.0, 0, 0)])[0] == 0.8  # none within: best
