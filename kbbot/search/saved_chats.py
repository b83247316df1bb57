"""Saved chats in search results: a conversation kbbot saved never ranks above a page it quotes.

A saved chat holds the question *and* the answer, which quotes the wiki page the answer came from, so by word
counts it matches the same question better than the page itself. But the page is the source people should
read (and keep up to date); the chat is a copy that goes stale. So a saved chat is ranked just below the
best-ranked page it quotes (one whose title appears in it, as the answer's credit line and related pages name
them): that is the source for this question. A chat that quotes nothing that was found keeps its own rank.
(Below *every* page it quotes would bury a long chat under a page it quoted for another of its questions.)

What in a saved chat answers: what people replied. The question itself (asked again, or "+1, same here")
and kbbot's own "I couldn't find this" are on the page too, and by word counts they match the question best
— quoting them would make a chat saved *because* nobody knew answer its own question (:func:`not_an_answer`).
"""

from __future__ import annotations

import re
from typing import Any

from kbbot.core.page_block import BEGIN_PREFIX, END_PREFIX
from kbbot.search.query import matched_terms, plan_terms

#: ``(score, rowid, row)`` with the title at ``row[1]`` and the saved-chat flag at ``row[4]``.
Ranked = tuple[float, int, tuple[Any, ...]]


def is_saved_chat(content: str) -> bool:
    """True for a page that holds a thread kbbot saved (its block markers are on the page)."""
    return BEGIN_PREFIX in content or END_PREFIX in content


# kbbot's don't-know replies as they are saved: the search answer's and the Slack/Discord wording.
_DONT_KNOW = re.compile(r"I couldn['’]t find (?:this|anything about that) in the wiki\b")
# A sentence ends before whitespace after . ! or ?
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


def not_an_answer(block: str, question_stems: set[str]) -> bool:
    """Whether a block of a saved chat cannot answer the question: kbbot's own don't-know reply, a block made
    only of questions (a question does not answer a question), or one that adds no word to the question."""
    text = block.strip()
    if _DONT_KNOW.match(text):
        return True
    if not text.startswith("`") and all(s.endswith("?") for s in _SENTENCE_BREAK.split(text) if s):
        return True
    # (a compound is of words the block holds: "I set" adds "iset" to no question)
    return not any(not matched_terms(word, question_stems) for word, _, joins in plan_terms(text) if not joins)


def _quotes(body: str, title: str) -> bool:
    return bool(title.strip()) and re.search(rf"(?<!\w){re.escape(title.strip())}(?!\w)", body) is not None


def below_their_sources(scored: list[Ranked], chat_bodies: dict[int, str]) -> list[Ranked]:
    """``scored`` (best first) with each saved chat moved just below the best page it quotes."""
    if not chat_bodies:
        return scored
    pages = [item for item in scored if not item[2][4]]
    result = list(pages)
    for item in scored:
        if not item[2][4]:
            continue
        body = chat_bodies.get(item[1], "")
        quoted = [i for i, page in enumerate(result) if not page[2][4] and _quotes(body, str(page[2][1]))]
        source = result[quoted[0]] if quoted else None
        if source is not None and source[0] < item[0]:
            # Moved down, its score capped at the source's, so scores still read best first.
            result.insert(quoted[0] + 1, (source[0], item[1], item[2]))
            continue
        # Quotes nothing that was found, or already ranks below its source: its place by score.
        at = next((i for i, other in enumerate(result) if other[0] < item[0]), len(result))
        result.insert(at, item)
    return result
