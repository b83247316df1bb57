"""Calibrates the don't-know threshold on the tuning half of the handbook set and checks it on the held-out
half: every question is answered once with no threshold, then each candidate threshold is applied to the
recorded relevance.

    python -m benchmarks.answers.calibrate [-v]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from benchmarks.answers.handbook import outcomes
from benchmarks.answers.scoring import Outcome


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


def _relevance(outcome: Outcome) -> float:
    return outcome.answer.relevance or 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="every question's relevance")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kbbot-calibrate-") as tmp:
        results = asyncio.run(outcomes(Path(tmp), min_relevance=0.0))
    if args.verbose:
        for o in sorted(results, key=_relevance):
            tag = "OOS" if not o.case.pages else ("ok " if o.page_at(1) else "P@1")
            print(f"{_relevance(o):.3f} {tag} {'H' if o.case.holdout else ' '} {o.case.question}  → {o.ranked[:1]}")
    print("threshold  tune: honest  wrong   holdout: honest  wrong")
    for threshold, th, tw, hh, hw in sweep(results, [x / 100 for x in range(40, 81, 2)]):
        print(f"{threshold:9.2f}  {th:12.1f}  {tw:5.1f}   {hh:15.1f}  {hw:5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
