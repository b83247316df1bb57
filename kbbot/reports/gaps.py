"""Knowledge gaps: the questions the wiki failed to answer, near-duplicate phrasings grouped, most asked first.

"how do I book a meeting room", "How can I book a meeting room?" and "booking a meeting room" are one gap:
each question is reduced to its topic words (stopwords dropped, words stemmed the way the search index stems
them: "booking" → "book"), and two questions are the same gap when they have as many topic words and each word
has a partner in the other question: the same stem, or a typo of the word as typed (rapidfuzz ``ratio`` ≥
:data:`WORD_SIMILARITY`, words of 3+ letters: "pasword" ~ "password", "rom" ~ "room", but "ssh" ≁ "ssl").
Word order and small typos do not matter; an extra or different topic word makes another gap: "reset password"
is not "reset VPN password", "reset the cloud account" is not "request the cloud account", "mentor" is not
"monitor". rapidfuzz's ``token_sort_ratio`` picks the few candidate gaps to compare with. On
``benchmarks/bench_gaps.py`` (400 topics × 5 phrasings) this finds 420 gaps with no two topics merged.
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
from kbbot.core.stopwords import STOPWORDS
from kbbot.search.query import stem

#: 0–100: candidates are the gaps whose topic words' token_sort_ratio is at least this.
CANDIDATE_SIMILARITY = 70
#: 0–100: two words (4+ letters) are one word with a typo from this rapidfuzz ratio ("pasword" ~ "password").
WORD_SIMILARITY = 80
#: Distinct phrasings kept per gap.
MAX_EXAMPLES = 5
#: The order reasons are listed in.
REASON_ORDER = (Kind.EMPTY, Kind.DOWNVOTED, Kind.ERROR)

_WORD = re.compile(r"\w+")


def topic_words(question: str) -> dict[str, str]:
    """The words that say what ``question`` is about, stem → the word as typed; all its words when they are
    all stopwords ("how?")."""
    words = [w for w in _WORD.findall(question.casefold()[:2000]) if w not in STOPWORDS and len(w) > 1]
    topic = {stem(w): w for w in words}
    return topic or {w: w for w in _WORD.findall(question.casefold()[:2000])}


def same_topic(a: dict[str, str], b: dict[str, str]) -> bool:
    """Topics (see :func:`topic_words`) that name the same thing: as many words, each paired with the same stem
    or a close typo of it as typed."""
    if len(a) != len(b):
        return False
    unpaired = {s: w for s, w in b.items() if s not in a}
    for stemmed, word in a.items():
        if stemmed in b:
            continue
        match = None
        if len(word) >= 3:
            candidates = {s: w for s, w in unpaired.items() if len(w) >= 3}
            match = process.extractOne(word, candidates, scorer=fuzz.ratio, score_cutoff=WORD_SIMILARITY)
        if match is None:
            return False
        del unpaired[match[2]]
    return True


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
    words: dict[str, str]
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
        words = topic_words(text)
        key = " ".join(sorted(words))
        group = by_key.get(key)
        if group is None and groups:
            keys = [g.key for g in groups]
            candidates = process.extract(key, keys, scorer=fuzz.token_sort_ratio, score_cutoff=CANDIDATE_SIMILARITY,
                                         limit=8)
            group = next((groups[i] for _, _, i in candidates if same_topic(words, groups[i].words)), None)
        if group is None:
            group = _Group(key, words)
            groups.append(group)
        by_key.setdefault(key, group)
        group.add(text, outcome)
    gaps = sorted((g.gap() for g in groups), key=lambda gap: (-gap.count, -gap.last_asked, gap.question))
    return gaps[:limit] if limit is not None else gaps


def report_json(gaps: list[Gap], *, since: float) -> dict[str, Any]:
    """The ``kbbot gaps --json`` contract."""
    return {"since": iso(since), "gaps": [gap.to_json() for gap in gaps]}
