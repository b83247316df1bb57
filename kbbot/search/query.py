"""Safe FTS5 queries from arbitrary user text.

FTS5 has its own query language (``"``, ``*``, ``NEAR(…)``, ``-``, ``:``, ``^``, ``AND``/``OR``/``NOT``,
parentheses); a question typed by a person must never be parsed as that language. We keep only word
characters, drop stopwords, and join the remaining terms as double-quoted strings with ``OR`` — a quoted
string is always a plain term to FTS5, whatever it contains.

The index stems (porter), so "deploying" finds "deploy". Only the *last* term is also matched as a prefix
(someone typing "how to install kube" means kubectl): a prefix term expands to every indexed word it starts,
and doing that for every term made searches over 10,000 pages several times slower for no better answers.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: More terms than this add noise and cost, not recall (a pasted 100 KB log is not a better question).
MAX_TERMS = 24
#: Scanning beyond this many characters of a question finds no better terms.
MAX_SCAN_CHARS = 4000
_MAX_TERM_CHARS = 40

_WORD = re.compile(r"\w+")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just let me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such
    than that the their theirs them themselves then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your yours yourself
    yourselves anyone anybody anything someone something get got getting need needs want wants please thanks
    thank hi hello hey tell know find use uses using used way ways also may might must shall us via vs
    """.split()  # noqa: SIM905 - a word list reads best as words
)


#: "set up" is also searched as "setup", "log in" as "login", "roll back" as "rollback": wikis title pages
#: with the compound while people ask with the phrasal verb.
_PARTICLES = frozenset(["up", "in", "out", "off", "down", "over", "back"])


def query_terms(text: str) -> list[str]:
    """The distinct search terms of ``text``, in order: casefolded words, stopwords and 1-letter words
    dropped, plus the compound of a word and a following particle ("set up" → "setup")."""
    terms: list[str] = []
    seen: set[str] = set()

    def add(word: str) -> None:
        if len(word) < 2 or len(word) > _MAX_TERM_CHARS or word in STOPWORDS or word in seen:
            return
        seen.add(word)
        terms.append(word)

    previous = ""
    for match in _WORD.finditer(text[:MAX_SCAN_CHARS].casefold()):
        word = match.group(0).strip("_")
        if word in _PARTICLES and previous and previous not in STOPWORDS and previous not in _PARTICLES:
            add(previous + word)
        add(word)
        previous = word
        if len(terms) >= MAX_TERMS:
            break
    return terms[:MAX_TERMS]


def build_match(terms: list[str]) -> str | None:
    """An FTS5 MATCH expression for ``terms``, or None when there is nothing to search for."""
    if not terms:
        return None
    parts = ['"' + term.replace('"', '""') + '"' for term in terms]
    if len(terms[-1]) >= 3:
        parts[-1] += "*"
    return " OR ".join(parts)


_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """A crude suffix strip for matching query terms against short texts in Python (titles, passages), where
    FTS5's porter stemmer is not at hand: enough to match "deploying" with "deploy"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def term_hits(text: str, stemmed_terms: set[str]) -> dict[str, int]:
    """How often each of ``stemmed_terms`` occurs in ``text`` (as a word, or as the start of one for terms of
    4+ letters); terms that do not occur are left out. Set lookups per word, so quoting passages stays
    cheap."""
    counts: dict[str, int] = {}
    if not stemmed_terms:
        return counts
    prefix_lengths = sorted({len(term) for term in stemmed_terms if len(term) >= 4})
    for raw in _WORD.findall(text.casefold()):
        word = stem(raw)
        if word in stemmed_terms:
            counts[word] = counts.get(word, 0) + 1
            continue
        for length in prefix_lengths:
            if length < len(word) and word[:length] in stemmed_terms:
                counts[word[:length]] = counts.get(word[:length], 0) + 1
                break
    return counts


def matched_terms(text: str, stemmed_terms: set[str]) -> set[str]:
    """Which of ``stemmed_terms`` occur in ``text`` (see :func:`term_hits`)."""
    return set(term_hits(text, stemmed_terms))
