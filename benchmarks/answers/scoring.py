"""Scores the search answerer on an evaluation set: page@1, page@3, passage contains the fact, honest
"don't know" on out-of-scope questions, and answerable questions wrongly told "don't know".

An evaluation set is questions with the page ids that answer them and a fact the quoted passage must
contain. Every third question is held out: thresholds are calibrated on the rest (``tune``) and both halves
are reported, so an overfitted threshold shows as a gap between them. The benchmarks and the calibration
score through this module alone: "don't know" is what the answerer replied (``Answer.empty``), never a
threshold applied afterwards to a recorded relevance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from kbbot.core.models import Answer, PageRef

#: The answer-quality goals (percent): at least these page@1, fact and honest "don't know", at most this
#: wrongly "don't know".
GOALS = {"page_at_1_pct": 90.0, "fact_pct": 80.0, "honest_dont_know_pct": 90.0, "wrongly_dont_know_pct": 5.0}


@dataclass(frozen=True, slots=True)
class Case:
    question: str
    pages: tuple[str, ...]  # empty: out of scope
    facts: tuple[str, ...]
    holdout: bool


def load(path: Path) -> list[Case]:
    """The answerable and out-of-scope questions of a YAML evaluation set; every third one of each is held
    out."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for n, item in enumerate(data["answerable"]):
        facts = item["fact"] if isinstance(item["fact"], list) else [item["fact"]]
        cases.append(Case(item["q"], tuple(item["pages"]), tuple(facts), holdout=n % 3 == 2))
    for n, question in enumerate(data.get("out_of_scope") or []):
        cases.append(Case(question, (), (), holdout=n % 3 == 2))
    return cases


_QUOTE_MARK = re.compile(r"^>\s?", re.MULTILINE)
# The answerer's Markdown escape of a quoted line that would read as a heading or list item ("1\\. Get…").
_LINE_START_ESCAPE = re.compile(r"^(\s*\d{0,9})\\(?=[#.)*+-])", re.MULTILINE)


def normalized(text: str) -> str:
    """Casefolded, whitespace collapsed, quote marks, line-start escapes and zero-width spaces removed: how a
    fact is found."""
    unquoted = _LINE_START_ESCAPE.sub(r"\1", _QUOTE_MARK.sub("", text.replace("\u200b", "")))
    return " ".join(unquoted.casefold().split())


@dataclass
class Outcome:
    case: Case
    answer: Answer
    ranked: list[str]  # page ids the answer names, best first

    @property
    def told_dont_know(self) -> bool:
        return self.answer.empty

    @property
    def fact_quoted(self) -> bool:
        text = normalized(self.answer.text)
        return not self.answer.empty and any(normalized(fact) in text for fact in self.case.facts)

    def page_at(self, k: int) -> bool:
        return any(page in self.case.pages for page in self.ranked[:k])


@dataclass
class Score:
    answerable: int = 0
    out_of_scope: int = 0
    page_at_1: int = 0
    page_at_3: int = 0
    fact: int = 0
    wrongly_dont_know: int = 0
    #: Of those, how many still offered an answering page among the "maybe related" ones.
    dont_know_offered_page: int = 0
    honest_dont_know: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        case = outcome.case
        if not case.pages:
            self.out_of_scope += 1
            self.honest_dont_know += outcome.told_dont_know
            if not outcome.told_dont_know:
                self.misses.append(f"answered out-of-scope: {case.question!r} → {outcome.ranked[:1]}")
            return
        self.answerable += 1
        self.page_at_1 += outcome.page_at(1)
        self.page_at_3 += outcome.page_at(3)
        self.fact += outcome.fact_quoted
        self.wrongly_dont_know += outcome.told_dont_know
        if outcome.told_dont_know:
            self.dont_know_offered_page += any(page.id in case.pages for page in outcome.answer.related_pages)
            self.misses.append(f"don't know: {case.question!r} (wanted {case.pages[0]})")
        elif not outcome.page_at(1):
            self.misses.append(f"page@1: {case.question!r} → {outcome.ranked[:3]} (wanted {list(case.pages)})")
        elif not outcome.fact_quoted:
            self.misses.append(f"fact: {case.question!r} (wanted {case.facts[0]!r})")

    def figures(self) -> dict[str, Any]:
        def pct(n: int, d: int) -> float | None:
            return round(100 * n / d, 1) if d else None

        return {
            "answerable": self.answerable,
            "out_of_scope": self.out_of_scope,
            "page_at_1_pct": pct(self.page_at_1, self.answerable),
            "page_at_3_pct": pct(self.page_at_3, self.answerable),
            "fact_pct": pct(self.fact, self.answerable),
            "wrongly_dont_know_pct": pct(self.wrongly_dont_know, self.answerable),
            "fact_of_answered_pct": pct(self.fact, self.answerable - self.wrongly_dont_know),
            "dont_know_offered_page_pct": pct(self.dont_know_offered_page, self.wrongly_dont_know),
            "honest_dont_know_pct": pct(self.honest_dont_know, self.out_of_scope),
        }


class Answering(Protocol):
    async def answer(self, question: str, *, limit: int = 3) -> Answer: ...

    async def ranking(self, question: str) -> list[PageRef]: ...


async def evaluate(cases: Sequence[Case], answerer: Answering) -> list[Outcome]:
    """Each case answered; page@k is judged on the answerer's full ranking (the answer itself links only the
    pages that are about as relevant as the quoted one)."""
    outcomes = []
    for case in cases:
        result = await answerer.answer(case.question)
        ranked = [page.id for page in await answerer.ranking(case.question)]
        outcomes.append(Outcome(case, result, ranked))
    return outcomes


def page_at(cases: Sequence[Case], rankings: Sequence[Sequence[str]], k: int) -> float | None:
    """page@k in percent over the answerable ``cases``, for any ranker's page ids (e.g. a BM25 peer)."""
    pairs = [(case, ranked) for case, ranked in zip(cases, rankings, strict=True) if case.pages]
    if not pairs:
        return None
    return round(100 * sum(any(p in case.pages for p in ranked[:k]) for case, ranked in pairs) / len(pairs), 1)


def score(outcomes: Sequence[Outcome], *, holdout: bool | None = None) -> Score:
    """The figures over all outcomes, or over the held-out (``holdout=True``) or tuning half only."""
    total = Score()
    for outcome in outcomes:
        if holdout is None or outcome.case.holdout == holdout:
            total.add(outcome)
    return total


def figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """All figures, the tuning and held-out halves separately, and the misses (for -v)."""
    all_ = score(outcomes)
    return {
        **all_.figures(),
        "tune": score(outcomes, holdout=False).figures(),
        "holdout": score(outcomes, holdout=True).figures(),
        "misses": all_.misses,
    }


def meets_goals(figures_: dict[str, Any]) -> bool:
    """Whether one set of :meth:`Score.figures` meets every one of :data:`GOALS` (a figure with no questions
    behind it meets none)."""

    def at_least(key: str) -> bool:
        return figures_[key] is not None and figures_[key] >= GOALS[key]

    wrong = figures_["wrongly_dont_know_pct"]
    return (
        at_least("page_at_1_pct")
        and at_least("fact_pct")
        and at_least("honest_dont_know_pct")
        and wrong is not None
        and wrong <= GOALS["wrongly_dont_know_pct"]
    )
