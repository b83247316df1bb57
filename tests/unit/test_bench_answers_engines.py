"""The answer benchmarks run with either ranking (``--engine``, as ``SEARCH_ENGINE`` chooses it): the index is
built by ``SearchIndex(..., engine=...)`` as the bot builds it, sqlite by default, and `make bench` reports
both engines against the same goals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_answers
from benchmarks.answers import calibrate, handbook, pydocs
from benchmarks.answers.scoring import GOALS, Case, load
from kbbot.search.answerer import DEFAULT_MIN_RELEVANCE
from kbbot.search.index import IndexedPage, SearchIndex


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine of every SearchIndex made."""
    made: list[str] = []
    original = SearchIndex.__init__

    def spy(self: SearchIndex, path: Path, *args: Any, **kwargs: Any) -> None:
        original(self, path, *args, **kwargs)
        made.append(self.engine)

    monkeypatch.setattr(SearchIndex, "__init__", spy)
    return made


@pytest.fixture
def few_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handbook set cut to a few tuning questions, answerable and not: these tests check which engine
    ranks, not the figures (the whole set's figures are checked in test_bench_answers_calibrate)."""

    def few(path: Path) -> list[Case]:
        cases = [case for case in load(path) if not case.holdout]
        return [case for case in cases if case.pages][:3] + [case for case in cases if not case.pages][:1]

    for module in (handbook, calibrate):
        monkeypatch.setattr(module, "load", few)


@pytest.mark.parametrize(("argv", "engine"), [([], "sqlite"), (["--engine", "tantivy"], "tantivy")])
@pytest.mark.usefixtures("few_cases")
def test_the_handbook_is_indexed_with_the_engine_asked(
    argv: list[str], engine: str, engines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert handbook.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert engines == [engine]
    assert printed["answerable"] > 0 and printed["page_at_1_pct"] is not None


def test_an_unknown_engine_is_refused_by_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for main in (handbook.main, pydocs.main, calibrate.main):
        with pytest.raises(SystemExit) as exited:
            main(["--engine", "lucene"])
        assert exited.value.code == 2
        assert "invalid choice: 'lucene'" in capsys.readouterr().err


def _corpus() -> pydocs.Corpus:
    pages = [
        IndexedPage(id="os", title="os — Miscellaneous operating system interfaces", text="os.walk walks a tree."),
        IndexedPage(id="json", title="json — JSON encoder and decoder", text="json.dumps encodes an object."),
    ]
    cases = [
        Case("walk a directory tree", ("os",), ("walks a tree",), holdout=False),
        Case("encode an object as json", ("json",), ("encodes an object",), holdout=True),
        Case("install numpy with conda", (), (), holdout=False),
    ]
    return pydocs.Corpus(Path("/docs"), pages, cases, 0.5, {"page_at_1_pct": 50.0, "page_at_3_pct": 100.0})


@pytest.mark.parametrize("engine", ["sqlite", "tantivy"])
def test_the_python_docs_are_indexed_with_the_engine_asked_from_one_prepared_corpus(
    engine: str, engines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_second_conversion() -> None:
        raise AssertionError("the corpus given is used, not converted again")

    monkeypatch.setattr(pydocs, "prepare", no_second_conversion)
    result = pydocs.run(engine, _corpus())
    assert engines == [engine]
    assert (result["pages"], result["answerable"], result["out_of_scope"]) == (2, 2, 1)
    assert result["page_at_1_pct"] == 100.0
    assert result["bm25"] == {"page_at_1_pct": 50.0, "page_at_3_pct": 100.0}


@pytest.mark.usefixtures("few_cases")
def test_the_calibration_sweeps_the_engine_asked(engines: list[str]) -> None:
    (row,) = calibrate.answer_all([DEFAULT_MIN_RELEVANCE], "tantivy")
    assert engines == ["tantivy"]
    assert row.tune["answerable"] > 0


def _figures(page_at_1: float) -> dict[str, Any]:
    half = {**GOALS, "page_at_1_pct": page_at_1, "page_at_3_pct": 99.0}
    return {**half, "tune": half, "holdout": half, "misses": ["…"]}


def _docs(page_at_3: float) -> dict[str, Any]:
    return {
        "pages": 2,
        "page_at_1_pct": 80.0,
        "page_at_3_pct": page_at_3,
        "fact_pct": 60.0,
        "honest_dont_know_pct": 70.0,
        "wrongly_dont_know_pct": 0.0,
        "bm25": {"page_at_1_pct": 80.0, "page_at_3_pct": 90.0},
        "misses": [],
    }


def test_make_bench_reports_both_engines_against_the_same_goals(monkeypatch: pytest.MonkeyPatch) -> None:
    prepared: list[str] = []
    corpus = _corpus()

    def prepare() -> pydocs.Corpus:
        prepared.append("once")
        return corpus

    def docs_run(engine: str, given: pydocs.Corpus | None = None) -> dict[str, Any]:
        assert given is corpus
        return _docs({"sqlite": 92.0, "tantivy": 88.0}[engine])  # tantivy's page@3 below the peer's 90

    monkeypatch.setattr(pydocs, "prepare", prepare)
    monkeypatch.setattr(pydocs, "run", docs_run)
    monkeypatch.setattr(handbook, "run", lambda engine: _figures({"sqlite": 92.0, "tantivy": 89.9}[engine]))
    result = bench_answers.run()
    assert prepared == ["once"]
    assert (result["sqlite"]["ok"], result["tantivy"]["ok"], result["ok"]) == (True, False, False)
    assert "misses" not in result["tantivy"]["handbook"] and "misses" not in result["tantivy"]["pydocs"]
    rows = {what: (value, goal, ok) for what, value, goal, ok in bench_answers.rows(result)}
    assert rows["handbook page@1, SEARCH_ENGINE=sqlite"] == ("92.0 % (tune 92.0 / held out 92.0)", "≥ 90 %", True)
    assert rows["handbook page@1, SEARCH_ENGINE=tantivy"] == ("89.9 % (tune 89.9 / held out 89.9)", "≥ 90 %", False)
    assert rows["handbook wrongly don't-know, SEARCH_ENGINE=tantivy"][1:] == ("≤ 5 %", True)
    assert rows["python docs BM25 peer page@1 / @3 (vs SEARCH_ENGINE=tantivy)"][1:] == ("page@3 ≤ ours", False)
    assert rows["python docs BM25 peer page@1 / @3 (vs SEARCH_ENGINE=sqlite)"][1:] == ("page@3 ≤ ours", True)


def test_without_tantivy_make_bench_says_so_and_checks_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_answers, "tantivy_available", lambda: False)
    monkeypatch.setattr(pydocs, "prepare", lambda: None)
    monkeypatch.setattr(pydocs, "run", lambda engine, corpus=None: {"skipped": "no python3-doc"})
    asked: list[str] = []
    monkeypatch.setattr(handbook, "run", lambda engine: asked.append(engine) or _figures(92.0))
    result = bench_answers.run()
    assert asked == ["sqlite"] and result["ok"] is True
    rows = {what: value for what, value, _goal, _ok in bench_answers.rows(result)}
    assert rows["answer quality, SEARCH_ENGINE=tantivy"] == (
        "skipped: tantivy is not installed (pip install 'kbbot[tantivy]')"
    )
    assert rows["python docs, SEARCH_ENGINE=sqlite"] == "skipped: no python3-doc"
