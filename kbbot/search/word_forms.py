"""Irregular word forms to their base form ("kept" → keep, "paid" → pay, "children" → child), and hyphenated
compounds ("on-call" → oncall): what a word is, the same for a question and a page.

Porter stemming strips regular endings ("keeping" → keep) but cannot know that "kept" is "keep" or "paid" is
"pay", so "how long do we keep slack messages" missed the page that says how long messages are *kept*. The
forms are lemminflect's (a well-kept English lemmatizer): a form is mapped only when its dictionary knows
exactly one base form for it, other than itself, under every part of speech: "left" (also the side), "found"
(also to found a company), "saw" (the tool) or "felt" (the fabric) keep their meaning; and only where the
stems differ (the stemmer already makes "policies" "policy"). The table (``word_forms.tsv``, 2,700 forms) is
generated from lemminflect once (``python -m kbbot.search.word_forms``; a unit test checks it is current):
loading lemminflect at run time cost the index build three times its CPU (a Python call per word) and
50 MB (numpy and its whole dictionary) for the same answers.

Both sides apply it: :func:`~kbbot.search.query.stem` (questions, titles, passages, the tantivy ranking) and
the SQLite index, whose FTS5 tokenizer is fed :func:`index_text` of each page's text (see
:mod:`kbbot.search.index`).
"""

from __future__ import annotations

import hashlib
import re
import sys
from functools import lru_cache
from pathlib import Path

from kbbot.core.stopwords import STOPWORDS

_TABLE = Path(__file__).with_name("word_forms.tsv")
# Letters only: "2026-12-01" is a date, not a compound. Searched from the hyphen (a pattern that starts with a
# literal is found at C speed; one that starts with a letter is tried at every letter of the text: a tenth of
# the index build).
_HYPHENATED = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+")
_INNER_HYPHEN = re.compile(r"-(?<=[^\W\d_]-)(?=[^\W\d_])")
_WORD_BEFORE = re.compile(r"[^\W\d_]{1,40}\Z")
#: The punctuation that most often ends a word: replaced by spaces before the words are looked up.
_ENDS = "-.,;:!?()[]\"'*`|"


def table_digest() -> str:
    """A short digest of the table: part of the index's schema version, so an index made with another table
    (whose FTS5 rows hold other base forms) is rebuilt rather than searched with words it does not hold. A
    change to :func:`index_text` itself needs a new ``SCHEMA_VERSION`` in :mod:`kbbot.search.index`."""
    return hashlib.sha256(_TABLE.read_bytes()).hexdigest()[:12]


@lru_cache(maxsize=1)
def _forms() -> dict[str, str]:
    lines = _TABLE.read_text(encoding="utf-8").splitlines()
    return dict(line.split("\t", 1) for line in lines if line and not line.startswith("#"))


def base_form(word: str) -> str:
    """``word`` (casefolded) in its base form when it is an irregular form of exactly one word ("kept" →
    "keep", "went" → "go", "mice" → "mouse"), else ``word`` itself."""
    return _forms().get(word, word)


def dropped(word: str) -> bool:
    """Whether ``word`` (casefolded) is not searched for itself: a stopword or a single letter."""
    return len(word) == 1 or word in STOPWORDS


def compounds(text: str) -> list[str]:
    """The hyphenated words of ``text`` that hold a word the search drops (a stopword or a single letter),
    written as one ("on-call" → "oncall", "e-mail" → "email"): the index holds them besides their parts, so
    "on call" finds "on-call" though "on" alone is not searched (see :func:`~kbbot.search.query.plan_terms`,
    which joins the same words). Others ("wi-fi") are found by their parts, as before."""
    found: list[str] = []
    end = 0
    for hyphen in _INNER_HYPHEN.finditer(text):
        if hyphen.start() < end:
            continue  # in the compound found last ("end-to-end")
        before = _WORD_BEFORE.search(text, max(0, hyphen.start() - 40), hyphen.start())
        match = _HYPHENATED.match(text, before.start()) if before else None
        if match is None:
            continue
        end = match.end()
        parts = match.group(0).casefold().split("-")
        if any(dropped(part) for part in parts):
            found.append("".join(parts))
    return found


def index_text(text: str) -> str:
    """What the SQLite index tokenizes of ``text``: the text, then the base form of each irregular form in it
    (once per occurrence, so word counts stay right) and its :func:`compounds`. The forms themselves stay too
    (no question searches them: :func:`~kbbot.search.query.stem` maps them first).

    Cheap, as it runs on every page written: words are split at spaces and the usual punctuation (C string
    methods; the index build grew 10 %), not as FTS5 splits them (a regular expression over every word: 20 %,
    a Python call per word: 150 %), so a form next to rarer punctuation ("kept…") only lacks its base form."""
    forms = _forms()
    folded = text.casefold()
    joined = compounds(folded) if "-" in folded else []
    for mark in _ENDS:
        if mark in folded:
            folded = folded.replace(mark, " ")
    words = folded.split()
    extra = [] if forms.keys().isdisjoint(words) else [forms[word] for word in words if word in forms]
    extra += joined
    return text + "\n" + " ".join(extra) if extra else text


def generate() -> dict[str, str]:
    """The table from lemminflect's dictionary (a development dependency: ``pip install -e '.[dev]'``)."""
    import Stemmer
    from lemminflect import getAllLemmas
    from lemminflect.core.Lemmatizer import Lemmatizer

    porter = Stemmer.Stemmer("porter")
    table: dict[str, str] = {}
    for word in Lemmatizer()._getLemmaDict():  # every form it knows (no public listing)
        if len(word) < 3 or not (word.isascii() and word.isalpha() and word.islower()) or word in STOPWORDS:
            continue  # English words only; under 3 letters FTS5's porter leaves alone; stopwords never searched
        bases = {base.casefold() for bases in getAllLemmas(word).values() for base in bases}
        if len(bases) != 1:
            continue  # ambiguous: "left" (leave, or the side), "found" (find, or to found)
        (base,) = bases
        if base != word and base.isalpha() and porter.stemWord(base) != porter.stemWord(word):
            table[word] = base
    return dict(sorted(table.items()))


def _write(table: dict[str, str]) -> None:
    header = "# form\tbase form: generated from lemminflect by `python -m kbbot.search.word_forms`; do not edit\n"
    _TABLE.write_text(header + "".join(f"{form}\t{base}\n" for form, base in table.items()), encoding="utf-8")


if __name__ == "__main__":
    _write(generate())
    sys.exit(0)
