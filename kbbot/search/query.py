"""Safe FTS5 queries from arbitrary user text.

FTS5 has its own query language (``"``, ``*``, ``NEAR(…)``, ``-``, ``:``, ``^``, ``AND``/``OR``/``NOT``,
parentheses); a question typed by a person must never be parsed as that language. We keep only word characters,
drop stopwords, and join the remaining terms as double-quoted strings with ``OR`` — a quoted string is always a
plain term to FTS5, whatever it contains.

The index stems (porter), so "deploying" finds "deploy". Only the *last* term is also matched as a prefix
(someone typing "how to install kube" means kubectl): a prefix term expands to every indexed word it starts,
and doing that for every term made searches over 10,000 pages several times slower for no better answers.
"""

from __future__ import annotations

import re

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
    here hers herself him himself his how i if in into is it its itself just let me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself yourselves
    anyone anybody anything someone something get got getting need needs want wants please thanks thank hi hello
    hey tell know find use uses using used way ways also may might must shall us via vs
    """.split()
)


def query_terms(text: str) -> list[str]:
    """The distinct search terms of ``text``, in order: casefolded words, stopwords and 1-letter words dropped."""
    terms: list[str] = []
    seen: set[str] = set()
    for match in _WORD.finditer(text[:MAX_SCAN_CHARS].casefold()):
        word = match.group(0).strip("_")
        if len(word) < 2 or len(word) > _MAX_TERM_CHARS or word in STOPWORDS or word in seen:
            continue
        seen.add(word)
        terms.append(word)
        if len(terms) >= MAX_TERMS:
            break
    return terms


def build_match(terms: list[str]) -> str | None:
    """An FTS5 MATCH expression for ``terms``, or None when there is nothing to search for."""
    if not terms:
        return None
    parts = ['"' + term.replace('"', '""') + '"' for term in terms]
    if len(terms[-1]) >= 3:
        parts[-1] += "*"
    return " OR ".join(parts)
