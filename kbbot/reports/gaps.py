"""Knowledge gaps: the questions the wiki failed to answer, near-duplicate phrasings grouped, most asked first.

"how do I book a meeting room", "How can I book a meeting room?" and "booking a meeting room" are one gap:
each question is reduced to its topic words (stopwords dropped, words stemmed the way the search index stems
them: "booking" → "book"), and two questions are the same gap when rapidfuzz's ``token_sort_ratio`` of those
words is at least :data:`SIMILARITY` (word order and small typos do not matter; a question with an extra topic
word is a different gap: "reset password" is not "reset VPN password").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rapidfuzz import fuzz, process

from kbbot.core.outcomes import GAP_KINDS, Kind, Outcome
from kbbot.search.query import STOPWORDS, stem

#: 0–100: the token_sort_ratio above which two questions' topic words are one gap.
SIMILARITY = 90
#: Distinct phrasings kept per gap.
MAX_EXAMPLES = 5
#: The order reasons are listed in.
REASON_ORDER = (Kind.EMPTY, Kind.DOWNVOTED, Kind.ERROR)

_WORD = re.compile(r"\w+")


def topic_key(question: str) -> str:
    """The words that say what ``question`` is about, stemmed and sorted; the casefolded text when it is all
    stopwords ("how?")."""
    words = [w for w in _WORD.findall(question.casefold()[:2000]) if w not in STOPWORDS and len(w) > 1]
    return " ".join(sorted({stem(w) for w in words})) or " ".join(_WORD.findall(question.casefold()))


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Gap:
    question: str
    count: int
    reasons: list[str]
    last_asked: float
    examples: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "count": self.count,
            "reasons": self.reasons,
            "last_asked": iso(self.last_asked),
            "examples": self.examples,
        }


@dataclass
class _Group:
    key: str
    phrasings: Counter[str] = field(default_factory=Counter)
    latest: dict[str, float] = field(default_factory=dict)
    reasons: set[Kind] = field(default_factory=set)
    count: int = 0
    last_asked: float = 0.0

    def add(self, text: str, outcome: Outcome) -> None:
        self.count += 1
        self.reasons.add(outcome.kind)
        self.last_asked = max(self.last_asked, outcome.at)
        self.phrasings[text] += 1
        self.latest[text] = max(self.latest.get(text, 0.0), outcome.at)

    def gap(self) -> Gap:
        # Most asked phrasing first; among equals the latest.
        ranked = sorted(self.phrasings, key=lambda p: (-self.phrasings[p], -self.latest[p], p))
        return Gap(
            question=ranked[0],
            count=self.count,
            reasons=[kind.value for kind in REASON_ORDER if kind in self.reasons],
            last_asked=self.last_asked,
            examples=ranked[:MAX_EXAMPLES],
        )


def find_gaps(outcomes: Iterable[Outcome], *, limit: int | None = None) -> list[Gap]:
    """Group the gap outcomes (empty, downvoted, error) among ``outcomes``; most asked first, then latest."""
    groups: list[_Group] = []
    by_key: dict[str, _Group] = {}
    for outcome in outcomes:
        if outcome.kind not in GAP_KINDS or not outcome.question or not outcome.question.strip():
            continue
        text = " ".join(outcome.question.split())
        key = topic_key(text)
        group = by_key.get(key)
        if group is None and groups:
            match = process.extractOne(key, [g.key for g in groups], scorer=fuzz.token_sort_ratio,
                                       score_cutoff=SIMILARITY)
            group = groups[match[2]] if match is not None else None
        if group is None:
            group = _Group(key)
            groups.append(group)
        by_key.setdefault(key, group)
        group.add(text, outcome)
    gaps = sorted((g.gap() for g in groups), key=lambda gap: (-gap.count, -gap.last_asked, gap.question))
    return gaps[:limit] if limit is not None else gaps


def report_json(gaps: list[Gap], *, since: float) -> dict[str, Any]:
    """The ``kbbot gaps --json`` contract."""
    return {"since": iso(since), "gaps": [gap.to_json() for gap in gaps]}
