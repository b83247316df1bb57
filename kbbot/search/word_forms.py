"""Irregular word forms to their base form ("kept" → keep, "paid" → pay, "children" → child), before stemming.

Porter stemming strips regular endings ("keeping" → keep) but cannot know that "kept" is "keep" or "paid" is
"pay", so "how long do we keep slack messages" missed the page that says how long messages are *kept*. The
forms come from lemminflect's dictionary (a well-kept English lemmatizer); a form is mapped only when the
dictionary knows exactly one base form for it, other than itself, under every part of speech: "left" (also an
adjective: the left side), "found" (also a verb: to found a company), "saw" (the tool) or "felt" (the fabric)
keep their meaning. Regular forms are left to the stemmer ("policies" and "policy" stem alike already).

Both sides apply it: :func:`~kbbot.search.query.stem` (questions, titles, passages, the tantivy ranking) and
the SQLite index, whose FTS5 tokenizer is fed :func:`base_forms` of each page's text (see
:mod:`kbbot.search.index`), so a question and a page agree on what a word is.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from lemminflect import getAllLemmas

from kbbot.core.stopwords import STOPWORDS

# FTS5's unicode61 tokenizer: letters and digits; everything else (the underscore too) separates words.
_WORDS = re.compile(r"[^\W_]+")

@lru_cache(maxsize=65536)
def base_form(word: str) -> str:
    """``word`` (casefolded) in its base form when it is an irregular form of exactly one word ("kept" →
    "keep", "went" → "go", "mice" → "mouse"), else ``word`` itself."""
    if not word.isascii() or not word.isalpha() or len(word) < 2:
        return word  # the dictionary is English words: no codes, numbers or other scripts
    forms = {lemma.casefold() for lemmas in getAllLemmas(word).values() for lemma in lemmas}
    if len(forms) != 1:
        return word  # unknown, or ambiguous: "left" (leave, or the side), "found" (find, or to found)
    (lemma,) = forms
    if lemma == word or not lemma.isalpha() or not _stems_differ(word, lemma):
        return word  # a base form already, or a regular one the stemmer handles ("policies")
    return lemma


def _stems_differ(word: str, lemma: str) -> bool:
    stemmer = Stemmer.Stemmer("porter")  # a Stemmer must not be shared between threads; this runs once a word
    result: bool = stemmer.stemWord(word) != stemmer.stemWord(lemma)
    return result


# Letters only: "2026-12-01" is a date, not a compound.
_HYPHENATED = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+")


def compounds(text: str) -> list[str]:
    """The hyphenated words of ``text`` that hold a word the search drops (a stopword or a single letter),
    written as one ("on-call" → "oncall", "e-mail" → "email"): the index holds them besides their parts, so
    "on call" finds "on-call" though "on" alone is not searched (see :func:`~kbbot.search.query.query_terms`,
    which joins the same words). Others ("wi-fi") are found by their parts as before."""
    found = []
    for match in _HYPHENATED.finditer(text):
        parts = match.group(0).casefold().split("-")
        if any(dropped(part) for part in parts):
            found.append("".join(parts))
    return found


def dropped(word: str) -> bool:
    """Whether ``word`` (casefolded) is not searched for itself: a stopword or a single letter."""
    return len(word) == 1 or word in STOPWORDS


def base_forms(text: str) -> str:
    """What the SQLite index tokenizes of ``text``: each irregular word form replaced by its base form (see
    :func:`base_form`; other words, spacing and punctuation kept as they are), then its :func:`compounds`."""
    joined = compounds(text)
    text = _WORDS.sub(_replace, text)
    return text + "\n" + " ".join(joined) if joined else text


def _replace(match: re.Match[str]) -> str:
    word = match.group(0)
    folded = word.casefold()
    base = base_form(folded)
    return word if base == folded else base
