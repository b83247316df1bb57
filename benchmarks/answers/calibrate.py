"""Calibrates the don't-know threshold on the tuning half of the handbook set and checks it on the held-out
half: every question is answered once with no threshold, then each candidate threshold is applied to the
recorded relevance.

``--set NAME=V1,V2,…`` (repeatable) also sweeps one of the relevance's shares — the module constants of
:mod:`kbbot.search.query` and :mod:`kbbot.search.spelling`, e.g. ``TOPIC_WORD_SHARE``, ``REQUIRED_SHARE``,
``COMMON_ZIPF`` — answering the set once per combination and printing, for each, the default threshold's
figures and the threshold the tuning half would choose (most honest with at most 5 % wrongly "don't know").

    python -m benchmarks.answers.calibrate [-v] [--set TOPIC_WORD_SHARE=0.6,0.8,1.0 --set REQUIRED_SHARE=0,0.75]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from benchmarks.answers.handbook import outcomes
from benchmarks.answers.scoring import Outcome
from kbbot.search import query, spelling
from kbbot.search.answerer import DEFAULT_MIN_RELEVANCE

#: The modules whose constants ``--set`` may sweep.
TUNABLE: tuple[ModuleType, ...] = (query, spelling)
#: The most answerable questions the chosen threshold may tell "I couldn't find this" on the tuning half (%).
MAX_WRONG_PCT = 5.0
THRESHOLDS = [x / 100 for x in range(40, 81, 2)]


def sweep(results: list[Outcome], thresholds: list[float]) -> list[tuple[float, float, float, float, float]]:
    """(threshold, tune honest %, tune wrong %, holdout honest %, holdout wrong %) for each threshold."""
    rows = []
    for threshold in thresholds:
        figures = []
        for holdout in (False, True):
            part = [o for o in results if o.case.holdout == holdout]
            oos = [o for o in part if not o.case.pages]
            ans = [o for o in part if o.case.pages]
            honest = sum(_relevance(o) < threshold for o in oos) / max(1, len(oos))
            wrong = sum(_relevance(o) < threshold for o in ans) / max(1, len(ans))
            figures += [100 * honest, 100 * wrong]
        rows.append((threshold, *figures))  # type: ignore[arg-type]
    return rows  # type: ignore[return-value]


def chosen(rows: list[tuple[float, float, float, float, float]]) -> tuple[float, float, float, float, float]:
    """The row the tuning half picks: the most honest with at most :data:`MAX_WRONG_PCT` wrongly "don't know",
    then the fewest wrong, then the lowest threshold."""
    allowed = [row for row in rows if row[2] <= MAX_WRONG_PCT] or rows
    return max(allowed, key=lambda row: (row[1], -row[2], -row[0]))


def _relevance(outcome: Outcome) -> float:
    return outcome.answer.relevance or 0.0


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


def answer_all(**answerer_options: float) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="kbbot-calibrate-") as tmp:
        return asyncio.run(outcomes(Path(tmp), **answerer_options))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="every question's relevance")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2", help="a share to sweep")
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    if settings:
        print("setting  threshold  tune: honest  wrong   holdout: honest  wrong")
        for combination in itertools.product(*settings.values()):
            values = dict(zip(settings, combination, strict=True))
            with patched(values):
                rows = sweep(answer_all(min_relevance=0.0), THRESHOLDS)
            label = " ".join(f"{name}={value:g}" for name, value in values.items())
            default = min(rows, key=lambda row: abs(row[0] - DEFAULT_MIN_RELEVANCE))
            for tag, (threshold, th, tw, hh, hw) in (("default", default), ("chosen ", chosen(rows))):
                print(f"{label}  {tag} {threshold:.2f}  {th:12.1f}  {tw:5.1f}   {hh:15.1f}  {hw:5.1f}")
        return 0
    results = answer_all(min_relevance=0.0)
    if args.verbose:
        for o in sorted(results, key=_relevance):
            tag = "OOS" if not o.case.pages else ("ok " if o.page_at(1) else "P@1")
            print(f"{_relevance(o):.3f} {tag} {'H' if o.case.holdout else ' '} {o.case.question}  → {o.ranked[:1]}")
    print("threshold  tune: honest  wrong   holdout: honest  wrong")
    for threshold, th, tw, hh, hw in sweep(results, THRESHOLDS):
        print(f"{threshold:9.2f}  {th:12.1f}  {tw:5.1f}   {hh:15.1f}  {hw:5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
