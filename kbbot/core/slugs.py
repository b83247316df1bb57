"""The one slug function: URL-safe page slugs from titles (MatHub, local files) and page tags from channel
names, plus the ``-2``, ``-3`` … suffixes that make slugs unique.

Pure functions: titles and channel names come from chat users, so any string (empty, emoji only, ``../``,
thousands of characters) must give a short, safe slug.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

#: Slugs longer than this are cut at a hyphen: a URL is not the place for a 1,000-character title.
MAX_SLUG_LENGTH = 80
#: What a title with nothing ASCII-foldable in it (emoji only, punctuation only, empty) becomes.
FALLBACK_SLUG = "page"

# Letters that NFKD does not decompose into ASCII but that have an obvious ASCII spelling.
_FOLD = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "œ": "oe", "Œ": "oe", "đ": "d", "Đ": "d",
     "ł": "l", "Ł": "l", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d", "ı": "i"}
)  # fmt: skip
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_NOT_WORD = re.compile(r"[\W_]+")


def slugify(
    title: str, *, max_length: int = MAX_SLUG_LENGTH, fallback: str = FALLBACK_SLUG, keep_unicode: bool = False
) -> str:
    """``"Eilenberg–MacLane Spaces: K(G, n)"`` → ``"eilenberg-maclane-spaces-k-g-n"``.

    Lowercase, accents folded to ASCII, every other run of characters becomes one hyphen (so ``/`` and ``..``
    can never survive into a URL path), cut to ``max_length`` at a word boundary when possible.
    ``keep_unicode`` keeps letters of every script (``#Équipe_été`` → ``équipe-été``): for tags, where a
    non-English channel name should keep its meaning.
    """
    if keep_unicode:
        slug = _NOT_WORD.sub("-", unicodedata.normalize("NFKC", title).casefold()).strip("-")
        return _cut(slug, max_length) or fallback
    # Drop only the combining accents NFKD splits off (é → e); any other non-ASCII character (dashes, emoji,
    # other scripts) separates words, so "Eilenberg–MacLane" keeps its hyphen.
    decomposed = unicodedata.normalize("NFKD", title.translate(_FOLD))
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    slug = _NOT_SLUG.sub("-", folded.lower()).strip("-")
    return _cut(slug, max_length) or fallback


def _cut(slug: str, max_length: int) -> str:
    """``slug`` shortened to ``max_length``, at a hyphen when there is one to cut at."""
    if len(slug) <= max_length:
        return slug
    head = slug[: max_length + 1]
    if "-" in head[1:]:
        return head.rsplit("-", 1)[0].strip("-")
    return head[:max_length].strip("-")


def with_suffix(slug: str, n: int, *, max_length: int = MAX_SLUG_LENGTH) -> str:
    """The ``n``-th candidate: ``slug`` itself for 1, then ``slug-2``, ``slug-3`` … (cut to fit)."""
    if n <= 1:
        return slug
    suffix = f"-{n}"
    return (_cut(slug, max_length - len(suffix)) or "page") + suffix


def unique_slug(slug: str, taken: Container[str], *, max_tries: int = 100) -> str | None:
    """The first of ``slug``, ``slug-2`` … ``slug-<max_tries>`` not in ``taken``; None when all are taken."""
    for n in range(1, max_tries + 1):
        candidate = with_suffix(slug, n)
        if candidate not in taken:
            return candidate
    return None
