"""Typo tolerance against the index's own vocabulary: "vacaton" → vacation, "reqest" → request.

Only words the index has never seen are corrected, so a word typed right always means itself and exact matches
rank as before; and only words that are not English words either: "passport" in a wiki without it is a question
about passports, not a typo of "password". English is the ~30,000 most frequent words of today's English
(wordfreq's small list, the same data :func:`specificity` reads): "wifi", "cryptocurrency", "Munich", "latest",
"passport". Rarer words ("bereavement", "postmortem") are not in it; a dictionary on top (GCIDE, a second
17 MB package) changed neither answer benchmark (benchmarks/answers: handbook, pydocs), and wordfreq's large
list cannot stand in for one: below the small list's frequencies it holds misspellings ("thier", "calender")
as often as rare words. The
vocabulary is the index's stems (FTS5's ``fts5vocab``) with how many pages hold each; the closest stem by
Damerau–Levenshtein distance wins (RapidFuzz), ties going to the more common word.

A word no page has and no correction explains is a topic the wiki may lack, and how surely depends on how
specific the word is in English (:func:`specificity`, from wordfreq's frequencies): "passport", "font" or
"projector" name a topic, "order", "latest" or "bad" could be in any question.
"""

from __future__ import annotations

import bisect
import gzip
import importlib.util
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgpack
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from kbbot.search.query import stem

#: Shorter words are left alone: at 4 letters one edit turns most words into another real one ("wifi" →
#: "wiki"), and a wrong guess is worse than none.
MIN_WORD_CHARS = 5


#: :meth:`Vocabulary.other_form` takes an indexed stem that is the word's stem and up to this many letters
#: more: "-or", "-ist", "-ment" ("counsel" → counsellor, "employ" → employment).
OTHER_FORM_SUFFIX_CHARS = 4


def max_edits(word: str) -> int:
    """Edits allowed for a word of this length: one up to 7 letters, two from 8."""
    return 1 if len(word) < 8 else 2


#: Zipf frequencies (log10 of occurrences per billion words): a word at least this common in English is no
#: topic of its own ("order" 5.5, "latest" 4.9); one this rare or rarer is one ("font" 3.8, "projector" 3.4;
#: "wifi" 3.9 and "typo" 3.3 too: specific words, even where the wiki says them differently). Words rarer than
#: the list's (under 3) are rarer still.
COMMON_ZIPF = 4.5
RARE_ZIPF = 4.0

_english: dict[str, float] | None = None  # stem → Zipf frequency of its most frequent form
_english_lock = threading.Lock()


def _english_stems() -> dict[str, float]:
    """The stems of English words with how frequent each is. The list is loaded on the first call (about
    0.1 s), i.e. only once someone types a word the wiki does not have."""
    global _english
    if _english is None:
        with _english_lock:
            if _english is None:
                stems: dict[str, float] = {}
                for word, zipf in _frequent_words():
                    if word.isalpha():
                        key = stem(word)
                        stems[key] = max(zipf, stems.get(key, 0.0))
                _english = stems
    return _english


def is_english(word: str) -> bool:
    """Whether ``word`` (or another form of it: same stem) is an English word."""
    return stem(word) in _english_stems()


def specificity(word: str) -> float:
    """How surely the English ``word`` names a topic, 0–1: 0 for words at least :data:`COMMON_ZIPF` frequent
    in English, 1 from :data:`RARE_ZIPF` down (and for words that are no English word), linear between."""
    zipf = _english_stems().get(stem(word), 0.0)
    return min(1.0, max(0.0, (COMMON_ZIPF - zipf) / (COMMON_ZIPF - RARE_ZIPF)))


def english_loaded() -> bool:
    """Whether :func:`is_english` has its word lists in memory (it reads them from disk on its first call)."""
    return _english is not None


def _frequent_words() -> list[tuple[str, float]]:
    """wordfreq's small English list with each word's Zipf frequency, read from the package's data file in
    its documented "cBpack" format (gzipped msgpack: a header, then one list of words per centibel of
    frequency, the most frequent first: list ``i`` holds the words of frequency 10^(-i/100), Zipf 9 - i/100).
    Importing wordfreq itself would load its text-cleaning libraries too: 14 MB more in every process that
    meets an unknown word."""
    spec = importlib.util.find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("wordfreq is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "small_en.msgpack.gz"
    with gzip.open(path, "rb") as data:
        header, *buckets = msgpack.load(data, raw=False)
    if not isinstance(header, dict) or header.get("format") != "cB":
        raise ValueError(f"unexpected wordfreq data in {path}: {header!r}")
    return [(word, 9 - n / 100) for n, bucket in enumerate(buckets) for word in bucket]


class Vocabulary:
    """The stems of an index with their page counts, bucketed by first letter and length: people rarely
    mistype the first letter, and only stems within reach in length are compared, so a lookup stays well
    under a millisecond even for a vocabulary of 100,000s."""

    def __init__(self, docs: Mapping[str, int]) -> None:
        self._docs = dict(docs)
        buckets: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
        for term in self._docs:
            if term.isalpha():  # numbers and codes are not words anyone misspells
                buckets[term[0], len(term)].append(term)
        self._buckets = dict(buckets)
        self._sorted = sorted(self._docs)  # for prefix_docs (fts5vocab lists them in order: sorting costs little)

    def __len__(self) -> int:
        return len(self._docs)

    def docs(self, stem_: str) -> int:
        return self._docs.get(stem_, 0)

    def prefix_docs(self, prefix: str) -> int:
        """The most pages any stem starting with ``prefix`` is on (0: none starts with it)."""
        start = bisect.bisect_left(self._sorted, prefix)
        end = bisect.bisect_left(self._sorted, prefix + "\U0010ffff", start)
        return max((self._docs[term] for term in self._sorted[start:end]), default=0)

    def correct(self, word: str) -> str | None:
        """The stem of the indexed word closest to ``word`` (a word the index lacks), or None when nothing
        is close enough or ``word`` is too short, not a word, or a number.

        The word and its stem are compared with the indexed stems; a stem may also match the start of the
        word, at one edit more: "vacaton" is 2 edits from "vacat" (the stem of "vacation"), but its first
        five letters are that stem."""
        if len(word) < MIN_WORD_CHARS or not word.isalpha() or is_english(word):
            return None
        limit = max_edits(word)
        found: list[tuple[int, int, str]] = []  # (distance, -docs, stem): the smallest wins
        for probe in {stem(word), word}:
            lengths = range(len(probe) - limit, len(probe) + limit + 1)
            found += self._closest(probe, self._candidates(probe[0], lengths), limit, 0)
        # The start of the word against stems as long as it: at most 3 letters left over.
        for length in range(max(MIN_WORD_CHARS, len(word) - 3), len(word)):
            found += self._closest(word[:length], self._candidates(word[0], [length]), limit - 1, 1)
        return min(found)[2] if found else None

    def other_form(self, word: str) -> str | None:
        """The stem of an indexed word that is another form of the English ``word`` — the same word up to
        its last letter or two, which Porter does not always reduce alike ("respond" → response), or the word
        with a suffix Porter keeps ("counselling" → counsellor) — or None. The most common one wins."""
        base = stem(word)
        if len(base) < MIN_WORD_CHARS or not base.isalpha():
            return None
        start = base[: max(MIN_WORD_CHARS, len(base) - 1)]
        lengths = range(len(start), len(base) + max(2, OTHER_FORM_SUFFIX_CHARS) + 1)
        forms = [
            t
            for t in self._candidates(base[0], lengths)
            if t != base
            and t.startswith(start)
            and len(t) - len(base) <= (OTHER_FORM_SUFFIX_CHARS if t.startswith(base) else 2)
        ]
        return max(forms, key=lambda t: (self._docs[t], t)) if forms else None

    def split(self, word: str) -> list[str]:
        """The stems of two indexed words that ``word`` runs together ("helpdesk" → help, desk; "401k" → 401),
        or [] when there are none. Each part has 3+ characters, except a lone letter after digits, which is
        dropped ("401k")."""
        if len(word) < 4:
            return []
        digits = len(word) - len(word.lstrip("0123456789"))
        if 0 < digits < len(word):
            head, tail = word[:digits], word[digits:]
            parts = [stem(part) for part in (head, tail) if len(part) > 1]
            return parts if parts and all(self._docs.get(part) for part in parts) else []
        if not word.isalpha() or len(word) < 6:
            return []
        best: list[str] = []
        best_docs = 0
        for cut in range(3, len(word) - 2):
            head, tail = stem(word[:cut]), stem(word[cut:])
            docs = min(self._docs.get(head, 0), self._docs.get(tail, 0))
            if docs > best_docs:
                best, best_docs = [head, tail], docs
        return best

    def _candidates(self, initial: str, lengths: Iterable[int]) -> list[str]:
        return [term for length in lengths for term in self._buckets.get((initial, length), ())]

    def _closest(self, probe: str, candidates: list[str], limit: int, penalty: int) -> list[tuple[int, int, str]]:
        if limit < 0 or not candidates:
            return []
        matches = process.extract(probe, candidates, scorer=DamerauLevenshtein.distance, score_cutoff=limit, limit=4)
        return [(int(distance) + penalty, -self._docs[term], term) for term, distance, _ in matches]
