"""Safe FTS5 queries from arbitrary user text, and the words of a question as the index sees them.

FTS5 has its own query language (``"``, ``*``, ``NEAR(…)``, ``-``, ``:``, ``^``, ``AND``/``OR``/``NOT``,
parentheses); a question typed by a person must never be parsed as that language. We keep only word
characters, drop stopwords, and join the remaining terms as double-quoted strings with ``OR`` — a quoted
string is always a plain term to FTS5, whatever it contains.

The index stems with FTS5's ``porter`` tokenizer, so "deploying" finds "deploy". :func:`stem` is the same
Porter algorithm (Snowball's, via PyStemmer) for matching in Python — titles, passages, the index's vocabulary —
so both sides agree on what a word is. Only the *last* term is also matched as a prefix (someone typing "how to
install kube" means kubectl): a prefix term expands to every indexed word it starts, and doing that for every
term made searches over 10,000 pages several times slower for no better answers.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise

import Stemmer
from rapidfuzz.distance import OSA, Indel

from kbbot.core.stopwords import STOPWORDS
from kbbot.search.word_forms import base_form, compounds, dropped

#: More terms than this add noise and cost, not recall (a pasted 100 KB log is not a better question).
MAX_TERMS = 24
#: Scanning beyond this many characters of a question finds no better terms.
MAX_SCAN_CHARS = 4000
_MAX_TERM_CHARS = 40

_WORD = re.compile(r"\w+")


#: Stopwords that are something else in capitals: "IT" (the department), "US" (the country).
_ACRONYMS = frozenset(["IT", "US"])

#: "how long", "how much", "how many"… ask for a kind of answer; the second word is not the topic ("how long
#: does a password have to be" is about passwords, not about things that are long).
_HOW_WORDS = frozenset(["long", "much", "many", "often", "soon", "far", "big", "quickly", "fast", "old"])


#: "set up" is also searched as "setup", "log in" as "login", "roll back" as "rollback": wikis title pages
#: with the compound while people ask with the phrasal verb.
PARTICLES = ("up", "in", "out", "off", "down", "over", "back")


def query_terms(text: str) -> list[str]:
    """The distinct search terms of ``text``, in order: casefolded words, stopwords and 1-letter words
    dropped, plus the compound of a word and a following particle ("set up" → "setup"). :func:`plan_terms`
    also has the compounds of a dropped word and the next ("on call" → "oncall", "e-mail" → "email"; see
    :func:`~kbbot.search.word_forms.compounds`), which the index keeps only where a page has them."""
    return [word for word, _, guess in _terms(text) if not guess]


def _terms(text: str) -> list[tuple[str, str, bool]]:
    """(term, the word a compound joins — "set" for "setup" — or "", whether it is a compound of a dropped
    word: a guess, searched only where a page has it) triples; see :func:`query_terms`."""
    terms: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    guesses = 0  # compounds with a dropped word ("oncall"): most are no word ("thevpn"), so they do not count

    def add(word: str, joins: str = "", acronym: bool = False, guess: bool = False) -> None:
        nonlocal guesses
        if len(word) < 2 or len(word) > _MAX_TERM_CHARS or (word in STOPWORDS and not acronym) or word in seen:
            return
        if (guesses < MAX_TERMS) if guess else (len(terms) - guesses < MAX_TERMS):
            seen.add(word)
            terms.append((word, joins, guess))
            guesses += guess

    previous, previous_end = "", 0
    scanned = text[:MAX_SCAN_CHARS]
    shouting = scanned.isupper()  # "HOW DO I…": capitals say nothing about one word
    for match in _WORD.finditer(scanned):
        typed = match.group(0).strip("_")
        word = typed.casefold()
        # A compound is written apart with a space or a hyphen, not across punctuation ("on, call").
        # A single letter only before a hyphen ("e-mail"): "I set", "t ask" of "shouldn't ask" are no compounds.
        apart = scanned[previous_end : match.start()] in ("-" if len(previous) == 1 else (" ", "-"))
        previous_end = match.end()
        if word in PARTICLES and len(previous) > 1 and previous not in STOPWORDS and previous not in PARTICLES:
            add(previous + word, joins=previous)
            if stem(previous) != previous:  # "rolling back" → "rollback" too
                add(stem(previous) + word, joins=previous)
        elif apart and dropped(previous) and previous.isalpha() and word.isalpha() and not dropped(word):
            # "on call" → "oncall" too, as the index holds "on-call" (a word no page has is left out of the search)
            add(previous + word, joins=word, guess=True)
        if not (previous == "how" and word in _HOW_WORDS):
            add(word, acronym=not shouting and typed in _ACRONYMS)
        previous = word
        if len(terms) - guesses >= MAX_TERMS:
            break
    return terms


def build_match(terms: list[str]) -> str | None:
    """An FTS5 MATCH expression for ``terms``, or None when there is nothing to search for."""
    if not terms:
        return None
    parts = [_quoted(term) for term in terms]
    if len(terms[-1]) >= 3:
        parts[-1] += "*"
    return " OR ".join(parts)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


# PyStemmer's Stemmer objects must not be shared between threads (the index thread stems as well).
_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer: Stemmer.Stemmer | None = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("porter")
    return stemmer


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The index's form of ``word``: casefolded, diacritics removed (FTS5's ``remove_diacritics 2``), an
    irregular form in its base form (:func:`~kbbot.search.word_forms.base_form`: the index is fed the same),
    Porter stemmed. "Deploying" → "deploi", "policies" → "polici", "café" → "cafe", "kept" → "keep"."""
    word = word.casefold()
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    word = base_form(word)
    if len(word) < 3:
        return word  # FTS5's porter leaves tokens under 3 characters alone ("us" stays "us", not "u")
    result: str = _stemmer().stemWord(word)
    return result


def text_words(text: str) -> list[str]:
    """The words of ``text`` as the index holds them: casefolded, in order, then its hyphenated compounds
    written as one (:func:`~kbbot.search.word_forms.compounds`: "on-call" → "oncall")."""
    folded = text.casefold()
    words = _WORD.findall(folded)
    if "-" in folded:
        words += compounds(folded)
    return words


def word_stems(text: str) -> list[str]:
    """The stems of ``text``'s words, in order, as :func:`term_hits` reads them."""
    return [stem(raw) for raw in text_words(text)]


def term_hits(text: str, stemmed_terms: set[str]) -> dict[str, int]:
    """How often each of ``stemmed_terms`` occurs in ``text`` (as a word, or as the start of one for terms of
    4+ letters); terms that do not occur are left out. Set lookups per word, so quoting passages stays
    cheap."""
    if not stemmed_terms:
        return {}
    return TermCounter(stemmed_terms).hits(map(stem, text_words(text)))


class TermCounter:
    """:func:`term_hits` for many texts already split into stems (:func:`word_stems`), ``terms`` read once."""

    def __init__(self, terms: set[str]) -> None:
        self.terms = terms
        # For matched: in the words joined by spaces (stems hold none), " term" finds a word that is a term
        # of 4+ letters or starts with it, " term " one that is a shorter term: a substring search each, a
        # third of the per-word loop's time (the title boost counts 10-20 titles per search). Exact unless a
        # term of 4+ letters starts another term (a word then counts only the shorter one): those use the loop.
        ordered = sorted(terms)  # a term that starts others sorts just before them
        nested = any(map(str.startswith, ordered[1:], ordered)) and any(
            len(a) >= 4 and b.startswith(a) for a, b in pairwise(ordered)
        )
        nested = nested or "" in terms or " " in "".join(terms)
        self._marks = None if nested else [f" {t}" if len(t) >= 4 else f" {t} " for t in terms]

    @cached_property
    def _prefix_lengths(self) -> list[int]:  # (made when used: matched uses it only for nested terms)
        return sorted({len(term) for term in self.terms if len(term) >= 4})

    def hits(self, words: Iterable[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        terms, prefix_lengths = self.terms, self._prefix_lengths
        for word in words:
            if word in terms:
                counts[word] = counts.get(word, 0) + 1
                continue
            for length in prefix_lengths:
                if length < len(word) and word[:length] in terms:
                    counts[word[:length]] = counts.get(word[:length], 0) + 1
                    break
        return counts

    def matched(self, words: Sequence[str]) -> int:
        """How many of the terms ``words`` holds: ``len(self.hits(words))``, without counting each."""
        marks = self._marks
        if marks is not None:
            joined = f" {' '.join(words)} "
            count = 0
            for mark in marks:
                if mark in joined:
                    count += 1
            return count
        terms, prefix_lengths = self.terms, self._prefix_lengths
        found = terms.intersection(words)
        if prefix_lengths:
            for word in words:
                if word in terms:
                    continue
                size = len(word)
                for length in prefix_lengths:  # shortest first: none after one as long as the word fits
                    if length >= size:
                        break
                    if word[:length] in terms:
                        found.add(word[:length])
                        break
        return len(found)


def matched_terms(text: str, stemmed_terms: set[str]) -> set[str]:
    """Which of ``stemmed_terms`` occur in ``text`` (see :func:`term_hits`)."""
    return set(term_hits(text, stemmed_terms))


# --- the question as the index sees it ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """One word of a question. ``stem`` is what is looked for: the word's own stem, or — for a word the index
    has never seen (``corrected``) — the stem of the closest word it has. ``docs`` is how many pages hold
    ``stem`` (0: none, the word cannot match; the last word counts as a prefix too). ``joins`` is set on a
    "set up" → "setup" extra term: the stem of the word it joins with its particle ("set")."""

    word: str
    stem: str
    docs: int
    corrected: bool = False
    joins: str = ""
    #: For a word no page has: whether it is an English word (the wiki lacks the topic) rather than a typo
    #: nobody could correct or a code ("401k"), and how surely it names a topic, 0–1
    #: (:func:`~kbbot.search.spelling.specificity`: "font" 1, "latest" 0).
    english: bool = False
    specificity: float = 0.0

    @property
    def compound(self) -> bool:
        return bool(self.joins)


#: A typo-corrected word counts this much of a word typed right: the guess may be wrong.
CORRECTED_WEIGHT = 0.6
#: In :meth:`QueryPlan.coverage` the answer must be in the passage: a word no page has counts this share of its
#: weight against it (a typo or a code — "401k" — a little; a common English word a little more: it may be
#: the topic the wiki lacks but as often a word the wiki says differently — "latest", "bad"; a specific English
#: word up to ``TOPIC_WORD_SHARE``: the question is about something no page mentions — "font", "passport" —
#: unless the rest of the question is held strongly enough), a word the wiki has but the passage's page lacks
#: this share, and a word the page has in another section counts fully, this share of it in favour (the page
#: treats it apart: "parking" in the US section, "Berlin office" in another). Calibrated on the tuning half of
#: benchmarks/answers (``python -m benchmarks.answers.calibrate --set NAME=V1,V2``; the held-out half agrees).
UNKNOWN_SHARE = 0.2
UNKNOWN_WORD_SHARE = 0.3
TOPIC_WORD_SHARE = 0.8
#: A word the answer cannot do without — the verb of "how do I <verb>…" — counts this share of its weight
#: against an answer whose page lacks it (instead of ``MISSING_SHARE`` or the unknown shares): "how do I order
#: business cards" is not answered by a page about business travel and company cards that never says "order".
REQUIRED_SHARE = 0.75
MISSING_SHARE = 0.5
ON_PAGE_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """The searchable words of a question, with how many of the index's ``total_docs`` pages hold each."""

    terms: tuple[Term, ...]
    total_docs: int

    @property
    def stems(self) -> set[str]:
        """The stems to look for in titles and passages (words the index lacks are left out)."""
        return {term.stem for term in self.terms if term.docs}

    def match(self) -> str | None:
        """The FTS5 MATCH expression: every word the index holds; the last word typed also as a prefix.
        A corrected word is matched through its stem as a prefix (FTS5 stems a prefix too, so the stem
        itself finds the pages)."""
        parts: list[str] = []
        for n, term in enumerate(self.terms):
            if not term.docs:
                continue  # no page has it
            word = base_form(term.word)  # as the index holds it: "kept" as "keep"
            if term.corrected:
                parts.append(_quoted(_prefix_for(term.stem)) + "*")
            elif n == len(self.terms) - 1 and len(word) >= 3:
                parts.append(_quoted(word) + "*")  # it may be a word still being typed: "kube"
            else:
                parts.append(_quoted(word))
        return " OR ".join(parts) or None

    def weight(self, term: Term) -> float:
        """How much ``term`` says about what was asked: its inverse page frequency (a word on every page says
        little; a word on no page says the most), less for a corrected guess."""
        idf = math.log(1 + (self.total_docs + 1) / (term.docs + 0.5))
        return idf * (CORRECTED_WEIGHT if term.corrected else 1.0)

    def coverage(
        self,
        found: set[str] | frozenset[str],
        on_page: set[str] | frozenset[str] = frozenset(),
        required: set[str] | frozenset[str] = frozenset(),
    ) -> float:
        """How much of the question ``found`` (the stems of a passage and its page title) holds, 0–1: the
        weight found over the weight asked, where words no page has and words found only elsewhere on the
        page (``on_page``) count in part (see :data:`UNKNOWN_SHARE`), and ``required`` stems (see
        :data:`REQUIRED_SHARE`) the page lacks count fully against it. A compound ("setup") counts only when
        found: "set up" is also asked by whoever writes "set" and "up"."""
        # A compound found ("setup" on "VPN setup") answers for the word it joins ("set"), even where no page
        # has that word alone (a wiki of titles); on the page, too.
        joined = {t.joins for t in self.terms if t.joins and t.docs and t.stem in found}
        found = set(found) | joined
        on_page = set(on_page) | {t.joins for t in self.terms if t.joins and t.docs and t.stem in on_page}
        asked = got = 0.0
        for term in self.terms:
            weight = self.weight(term)
            if term.stem in found and (term.docs or term.stem in joined):
                asked += weight
                got += weight
            elif term.compound:
                continue
            elif term.docs and term.stem in on_page:
                asked += weight
                got += ON_PAGE_SHARE * weight
            elif term.stem in required:
                asked += max(REQUIRED_SHARE, _unknown_share(term) if not term.docs else MISSING_SHARE) * weight
            elif not term.docs:
                asked += _unknown_share(term) * weight
            else:
                asked += MISSING_SHARE * weight
        return got / asked if asked else 0.0

    def required(self, word: str | None) -> frozenset[str]:
        """The stems that stand for ``word`` of the question (:func:`~kbbot.search.passages.asked_action`):
        its own or corrected stem ("reqest" → request), and a compound it starts ("set" up → setup)."""
        if not word:
            return frozenset()
        own = [t for t in self.terms if t.word == word and not t.compound]
        compounds = [t.stem for t in self.terms if t.compound and own and t.joins == own[0].stem]
        return frozenset([t.stem for t in own] + compounds)


def _unknown_share(term: Term) -> float:
    """The share of its weight a word no page has counts against an answer (see :data:`UNKNOWN_SHARE`); a
    mistyped stopword ("wat", "teh") none."""
    if mistyped_stopword(term.word):
        return 0.0
    if not term.english:
        return UNKNOWN_SHARE
    return UNKNOWN_WORD_SHARE + (TOPIC_WORD_SHARE - UNKNOWN_WORD_SHARE) * term.specificity


#: Stopwords long enough that one letter dropped, added or swapped is still recognisably them.
_TYPO_STOPWORDS = sorted(word for word in STOPWORDS if len(word) >= 3)


@lru_cache(maxsize=4096)
def mistyped_stopword(word: str) -> bool:
    """Whether ``word`` is a stopword with one letter dropped, added or two swapped ("wat" → what, "teh" → the,
    "abot" → about): a word of the question that says no more than the stopword would. Called only for words
    no page has (a word the wiki uses means itself); the first letter must agree, as people rarely mistype it,
    and a changed letter is not enough ("fee" is no "few")."""
    if len(word) < 2 or word in STOPWORDS:
        return False
    for stopword in _TYPO_STOPWORDS:
        if stopword[0] != word[0] or abs(len(stopword) - len(word)) > 1:
            continue
        if Indel.distance(word, stopword) <= 1:
            return True
        if len(word) == len(stopword) and sorted(word) == sorted(stopword) and OSA.distance(word, stopword) == 1:
            return True
    return False


def _prefix_for(stem_: str) -> str:
    """The longest start of ``stem_`` that FTS5 (stemming it again) keeps as is, so ``"…"*`` finds
    ``stem_``: a stem re-stemmed can lose letters ("reimburs" → "reimbur") or change them ("deploy" →
    "deploi")."""
    prefix = stem_
    while len(prefix) > 3 and not stem_.startswith(stem(prefix)):
        prefix = prefix[:-1]
    return prefix


def plan_terms(text: str) -> list[tuple[str, str, str]]:
    """(word, stem, the stem a compound joins or "") for each search term of ``text``; the index adds page
    counts."""
    return [(word, stem(word), stem(joins) if joins else "") for word, joins, _ in _terms(text)]
