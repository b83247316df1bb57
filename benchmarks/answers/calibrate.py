"""Calibrates the don't-know threshold on the tuning half of the handbook set and checks it on the held-out
half: the set is indexed once and answered by the real answerer at each candidate threshold, and each run is
scored as ``python -m benchmarks.answers.handbook`` scores it (:mod:`benchmarks.answers.scoring`) — so the
shipped threshold's row is the benchmark's figures. Replaying one run's recorded relevance against other
thresholds would not be the bot's decision: the threshold also decides which of two close pages leads (a
page is promoted over the first only when that one answers too), and so which relevance is compared.

``--set NAME=V1,V2,…`` (repeatable) also sweeps one of the relevance's shares — the module constants of
:mod:`kbbot.search.query` and :mod:`kbbot.search.spelling`, e.g. ``TOPIC_WORD_SHARE``, ``REQUIRED_SHARE``,
``COMMON_ZIPF`` — answering the set once per combination and threshold and printing, for each combination,
the shipped threshold's figures and the threshold the tuning half would choose (most honest with at most 5 %
wrongly "don't know"). ``--engine tantivy`` ranks with ``SEARCH_ENGINE=tantivy``'s ranking instead of
SQLite's (the default).

    python -m benchmarks.answers.calibrate [-v] [--engine sqlite|tantivy] [--set TOPIC_WORD_SHARE=0.6,0.8,1.0 …]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.answers.handbook import EVAL_SET, indexed, outcomes
from benchmarks.answers.scoring import GOALS, Answering, Case, Outcome, evaluate, load, meets_goals, score
from kbbot.search import query, spelling
from kbbot.search.answerer import DEFAULT_MIN_RELEVANCE, SearchAnswerer
from kbbot.search.index import ENGINES

#: The modules whose constants ``--set`` may sweep.
TUNABLE: tuple[ModuleType, ...] = (query, spelling)
#: The most answerable questions the chosen threshold may tell "I couldn't find this" on the tuning half (%).
MAX_WRONG_PCT = GOALS["wrongly_dont_know_pct"]
#: The candidates, the shipped threshold among them.
THRESHOLDS = sorted({x / 100 for x in range(40, 81, 2)} | {DEFAULT_MIN_RELEVANCE})


@dataclass(frozen=True, slots=True)
class Row:
    """One threshold's :meth:`~benchmarks.answers.scoring.Score.figures`, per half."""

    threshold: float
    tune: dict[str, Any]
    holdout: dict[str, Any]


async def sweep(
    cases: Sequence[Case], answerer_at: Callable[[float], Answering], thresholds: Sequence[float]
) -> list[Row]:
    """Each threshold's row: ``cases`` answered by ``answerer_at(threshold)`` and scored."""
    rows = []
    for threshold in thresholds:
        results = await evaluate(cases, answerer_at(threshold))
        rows.append(Row(threshold, score(results, holdout=False).figures(), score(results, holdout=True).figures()))
    return rows


def chosen(rows: Sequence[Row]) -> Row:
    """The row the tuning half picks: the most honest with at most :data:`MAX_WRONG_PCT` wrongly "don't know",
    then the fewest wrong, then the lowest threshold."""
    allowed = [row for row in rows if _pct(row.tune, "wrongly_dont_know_pct") <= MAX_WRONG_PCT] or rows
    return max(
        allowed,
        key=lambda row: (
            _pct(row.tune, "honest_dont_know_pct"),
            -_pct(row.tune, "wrongly_dont_know_pct"),
            -row.threshold,
        ),
    )


def _pct(figures: dict[str, Any], key: str) -> float:
    value = figures[key]
    return 0.0 if value is None else float(value)


def parse_settings(items: list[str]) -> dict[str, list[float]]:
    """``NAME=V1,V2`` items as {NAME: [V1, V2]}; each NAME must be a numeric constant of :data:`TUNABLE`."""
    settings: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise ValueError(f"--set wants NAME=V1,V2,…, got {item!r}")
        if not any(isinstance(getattr(module, name, None), (int, float)) for module in TUNABLE):
            raise ValueError(f"{name} is no numeric constant of {', '.join(m.__name__ for m in TUNABLE)}")
        settings[name] = [float(value) for value in values.split(",")]
    return settings


@contextmanager
def patched(values: dict[str, float]) -> Iterator[None]:
    """The constants set to ``values`` for the block, then restored."""
    saved = []
    try:
        for name, value in values.items():
            for module in TUNABLE:
                if hasattr(module, name):
                    saved.append((module, name, getattr(module, name)))
                    setattr(module, name, value)
        yield
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


def answer_all(thresholds: Sequence[float], engine: str = "sqlite") -> list[Row]:
    """:func:`sweep` over the handbook set, indexed once in a temporary directory, ranked by ``engine``."""

    async def run(directory: Path) -> list[Row]:
        async with indexed(directory, engine) as index:
            return await sweep(load(EVAL_SET), lambda t: SearchAnswerer(index, min_relevance=t), thresholds)

    with tempfile.TemporaryDirectory(prefix="kbbot-calibrate-") as tmp:
        return asyncio.run(run(Path(tmp)))


def shipped_outcomes(engine: str = "sqlite") -> list[Outcome]:
    """The handbook set as the benchmark answers it, at the shipped threshold."""
    with tempfile.TemporaryDirectory(prefix="kbbot-calibrate-") as tmp:
        return asyncio.run(outcomes(Path(tmp), engine))


#: The figures each half shows per threshold, as the table's columns.
_COLUMNS = {
    "page@1": "page_at_1_pct",
    "fact": "fact_pct",
    "honest": "honest_dont_know_pct",
    "wrong": "wrongly_dont_know_pct",
}
_HEADER = f"threshold  tune: {' '.join(f'{n:>6}' for n in [*_COLUMNS, 'goals'])}  held out: " + " ".join(
    f"{n:>6}" for n in [*_COLUMNS, "goals"]
)


def _line(row: Row, label: str = "") -> str:
    def half(figures: dict[str, Any]) -> str:
        cells = [figures[key] for key in _COLUMNS.values()]
        met = "met" if meets_goals(figures) else "-"
        return " ".join(f"{'—' if c is None else f'{c:.1f}':>6}" for c in cells) + f" {met:>6}"

    return f"{label}{row.threshold:9.2f}        {half(row.tune)}            {half(row.holdout)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="every question's relevance")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2", help="a share to sweep")
    parser.add_argument("--engine", choices=ENGINES, default="sqlite", help="who ranks (SEARCH_ENGINE)")
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    if settings:
        print("setting  " + _HEADER)
        for combination in itertools.product(*settings.values()):
            values = dict(zip(settings, combination, strict=True))
            with patched(values):
                rows = answer_all(THRESHOLDS, args.engine)
            label = " ".join(f"{name}={value:g}" for name, value in values.items())
            default = next(row for row in rows if row.threshold == DEFAULT_MIN_RELEVANCE)
            for tag, row in (("shipped", default), ("chosen ", chosen(rows))):
                print(_line(row, f"{label}  {tag} "))
        return 0
    if args.verbose:
        print(f"each question's relevance and reply at the shipped threshold {DEFAULT_MIN_RELEVANCE:.2f}:")
        for o in sorted(shipped_outcomes(args.engine), key=lambda o: o.answer.relevance or 0.0):
            tag = "OOS" if not o.case.pages else ("ok " if o.page_at(1) else "P@1")
            reply = "don't know" if o.told_dont_know else "answers   "
            relevance = o.answer.relevance or 0.0
            print(f"{relevance:.3f} {tag} {'H' if o.case.holdout else ' '} {reply} {o.case.question}  → {o.ranked[:1]}")
    rows = answer_all(THRESHOLDS, args.engine)
    print(_HEADER)
    for row in rows:
        print(_line(row))
    pick = chosen(rows)
    print(
        f"shipped {DEFAULT_MIN_RELEVANCE:.2f}; the tuning half would choose {pick.threshold:.2f} "
        f"(goals: page@1 ≥ {GOALS['page_at_1_pct']:g}, fact ≥ {GOALS['fact_pct']:g}, "
        f"honest ≥ {GOALS['honest_dont_know_pct']:g}, wrong ≤ {GOALS['wrongly_dont_know_pct']:g} %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
