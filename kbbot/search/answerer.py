"""Extractive answers from the index: the best passages of the best pages, quoted, with the pages linked.

Used when there is no AI to ask (MatHub, local folders) and when Perfect Wiki's AI quota is gone. The wording is
deliberately plain — "From the wiki:" and quotes — so nobody mistakes a search result for an AI answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kbbot.core.models import Answer, PageRef, Source
from kbbot.core.text import neutralize_mentions
from kbbot.search.index import PageText, SearchIndex
from kbbot.search.query import query_terms

NOTHING_FOUND = (
    "I couldn't find anything about that in the wiki. Try other words — a product name, a tool or an error "
    "message usually works best."
)

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


def _stem(word: str) -> str:
    """A crude suffix strip, enough to match "deploying" with "deploy" when choosing passages."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True, slots=True)
class Passage:
    page: PageText
    text: str
    score: float


class SearchAnswerer:
    """Implements :class:`kbbot.core.ports.Answerer` over a :class:`SearchIndex`.

    ``max_passage_chars`` bounds each quote (long paragraphs are cut around the first match);
    ``candidates`` is how many ranked pages are considered before the best ``limit`` are quoted;
    pages scoring below ``min_relative_score`` times the best page's score are left out.
    """

    def __init__(
        self,
        index: SearchIndex,
        *,
        max_passage_chars: int = 500,
        candidates: int = 5,
        min_relative_score: float = 0.3,
    ) -> None:
        self.index = index
        self.min_relative_score = min_relative_score
        self.max_passage_chars = max(80, max_passage_chars)
        self.candidates = max(1, candidates)

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        limit = max(1, limit)
        hits = await self.index.search(question, limit=max(limit, self.candidates))
        if not hits:
            return Answer(text=NOTHING_FOUND, source=Source.SEARCH, empty=True)
        # Pages far below the best one matched a stray word; quoting them adds noise, not answers.
        hits = [hit for hit in hits if hit.score >= hits[0].score * self.min_relative_score]
        terms = {_stem(t) for t in query_terms(question)}
        pages = await self.index.texts([hit.id for hit in hits[:limit]])
        passages = [p for p in (self._best_passage(page, terms) for page in pages) if p is not None]
        if not passages and pages:
            # The words matched only titles or tags: quote how the top page begins.
            first = self._paragraphs(pages[0].text)
            if first:
                passages = [Passage(pages[0], self._trim(first[0], terms), 0.0)]
        related = tuple(PageRef(id=h.id, title=h.title, url=h.url) for h in hits[:limit])
        if not passages:
            titles = ", ".join(_link(ref.title, ref.url) for ref in related)
            return Answer(text=f"From the wiki: these pages look related: {titles}.", related_pages=related,
                          source=Source.SEARCH)
        blocks = ["From the wiki:"]
        for passage in passages:
            quoted = "\n".join("> " + line if line.strip() else ">" for line in passage.text.split("\n"))
            blocks.append(f"{quoted}\n— {_link(passage.page.title, passage.page.url)}")
        return Answer(
            text=neutralize_mentions("\n\n".join(blocks)),
            related_pages=related,
            source=Source.SEARCH,
        )

    def _best_passage(self, page: PageText, terms: set[str]) -> Passage | None:
        best: Passage | None = None
        for paragraph in self._paragraphs(page.text):
            score = _score(paragraph, terms)
            if score > 0 and (best is None or score > best.score):
                best = Passage(page, paragraph, score)
        if best is None:
            return None
        return Passage(page, self._trim(best.text, terms), best.score)

    @staticmethod
    def _paragraphs(text: str) -> list[str]:
        """Paragraphs, with a short heading-like line joined to the paragraph under it (a heading alone is no
        answer, and the paragraph alone loses its context)."""
        raw = [p.strip() for p in text.split("\n\n") if p.strip()]
        merged: list[str] = []
        carry = ""
        for paragraph in raw:
            if "\n" not in paragraph and len(paragraph) < 60 and not paragraph.endswith((".", ":", "!", "?")):
                carry = f"{carry}\n{paragraph}" if carry else paragraph
                continue
            merged.append(f"{carry}\n{paragraph}" if carry else paragraph)
            carry = ""
        if carry:
            merged.append(carry)
        return merged

    def _trim(self, paragraph: str, terms: set[str]) -> str:
        """Cut a long paragraph to about ``max_passage_chars`` on line or sentence breaks, starting at the first
        line or sentence that mentions a query term. Lines stay lines (lists and code keep their shape)."""
        limit = self.max_passage_chars
        if len(paragraph) <= limit:
            return paragraph
        units: list[tuple[str, str]] = []  # (text, separator before it)
        for line_no, line in enumerate(paragraph.split("\n")):
            for sentence_no, sentence in enumerate(s for s in _SENTENCE_END.split(line) if s.strip()):
                units.append((sentence, "\n" if line_no and not sentence_no else " "))
        start = next((i for i, (unit, _) in enumerate(units) if _score(unit, terms) > 0), 0)
        out = ""
        end = start
        for unit, sep in units[start:]:
            piece = unit if not out else sep + unit
            if out and len(out) + len(piece) > limit:
                break
            out += piece
            end += 1
        if len(out) > limit:
            out = out[: limit - 1].rsplit(" ", 1)[0]
            end = -1
        return ("… " if start > 0 else "") + out + (" …" if end != len(units) else "")


def _score(text: str, terms: set[str]) -> float:
    """Distinct query terms matched (squared, so covering more of the question wins), plus a little for
    repeats, minus a little for length."""
    if not terms:
        return 0.0
    words = [_stem(w) for w in _WORD.findall(text.casefold())]
    matched: set[str] = set()
    hits = 0
    for word in words:
        for term in terms:
            if word == term or (len(term) >= 4 and word.startswith(term)):
                matched.add(term)
                hits += 1
                break
    if not matched:
        return 0.0
    return len(matched) ** 2 + min(hits, 6) * 0.25 - len(text) / 4000


def _link(title: str, url: str | None) -> str:
    """``[title](url)`` or ``**title**`` when the wiki has no page URLs configured."""
    safe = title.replace("[", "(").replace("]", ")").strip() or "Untitled"
    return f"[{safe}]({url})" if url else f"**{safe}**"
