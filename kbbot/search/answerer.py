"""Extractive answers from the index: the best passages of the best pages, quoted, with the pages linked.

Used when there is no AI to ask (MatHub, local folders) and when Perfect Wiki's AI quota is gone. The wording
is deliberately plain — "From the wiki:" and quotes — so nobody mistakes a search result for an AI answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kbbot.core.models import Answer, PageRef, Source
from kbbot.core.text import neutralize_mentions
from kbbot.search.fences import blocks, close_open_fence, code_lines
from kbbot.search.index import PageText, SearchIndex
from kbbot.search.query import matched_terms, query_terms, stem, term_hits

NOTHING_FOUND = (
    "I couldn't find anything about that in the wiki. Try other words — a product name, a tool or an error "
    "message usually works best."
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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
        terms = {stem(t) for t in query_terms(question)}
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
            return Answer(
                text=f"From the wiki: these pages look related: {titles}.",
                related_pages=related,
                source=Source.SEARCH,
            )
        parts = ["From the wiki:"]
        for passage in passages:
            quoted = _quote(neutralize_mentions(passage.text))
            parts.append(f"{quoted}\n\n— {_link(passage.page.title, passage.page.url)}")
        return Answer(text="\n\n".join(parts), related_pages=related, source=Source.SEARCH)

    def _best_passage(self, page: PageText, terms: set[str]) -> Passage | None:
        # Words of the question that the page title already matches say which page, not which passage:
        # "set up the VPN on linux" on the page "VPN setup" should quote the Linux steps, not the intro.
        focus = (terms - matched_terms(page.title, terms)) or terms
        best: Passage | None = None
        for paragraph in self._paragraphs(page.text):
            counts = term_hits(paragraph, terms)
            if not counts:
                continue
            focused = {term: n for term, n in counts.items() if term in focus}
            score = _score(focused, len(paragraph)) + 0.1 * _score(counts, len(paragraph))
            if best is None or score > best.score:
                best = Passage(page, paragraph, score)
        if best is None:
            return None
        return Passage(page, self._trim(best.text, terms), best.score)

    @staticmethod
    def _paragraphs(text: str) -> list[str]:
        """Paragraphs, with a heading-like line or a lead-in ending in ":" joined to the paragraph under it
        (a heading alone is no answer; "Sign your commits with your SSH key:" is nothing without the command
        that follows)."""
        raw = [p.strip() for p in blocks(text) if p.strip()]
        merged: list[str] = []
        carry = ""
        for paragraph in raw:
            heading = "\n" not in paragraph and len(paragraph) < 60 and not paragraph.endswith((".", "!", "?"))
            lead_in = len(paragraph) < 200 and paragraph.endswith(":")
            joined = f"{carry}\n{paragraph}" if carry else paragraph
            if (heading or lead_in) and len(joined) < 400:
                carry = joined
                continue
            merged.append(joined)
            carry = ""
        if carry:
            merged.append(carry)
        return merged

    def _trim(self, paragraph: str, terms: set[str]) -> str:
        """Cut a long paragraph to about ``max_passage_chars`` on line or sentence breaks, starting at the
        first line or sentence that mentions a query term. Lines stay lines (lists and code keep their
        shape)."""
        limit = self.max_passage_chars
        if len(paragraph) <= limit:
            return paragraph
        # (text, separator before it, the fence line that opened the code block it is inside, or "")
        units: list[tuple[str, str, str]] = []
        opener = ""
        for line_no, (line, in_code) in enumerate(code_lines(paragraph)):
            if not in_code:
                opener = ""
                sentences = [s for s in _SENTENCE_END.split(line) if s.strip()]
            else:
                sentences = [line]  # a code line is one unit: a command is never cut at a "." inside it
            for sentence_no, sentence in enumerate(sentences):
                units.append((sentence, "\n" if line_no and not sentence_no else " ", opener))
            if in_code:
                opener = "" if opener and line.strip().startswith("`") else (opener or line.strip())
        start = next((i for i, (unit, _, _) in enumerate(units) if term_hits(unit, terms)), 0)
        out = ""
        end = start
        for unit, sep, _ in units[start:]:
            piece = unit if not out else sep + unit
            if out and len(out) + len(piece) > limit:
                break
            out += piece
            end += 1
        if len(out) > limit:
            out = out[: limit - 1].rsplit(" ", 1)[0]
            end = -1
        # A passage that starts or ends inside a code block gets its fence back; next to a fence the ellipsis
        # goes on a line of its own (text on a fence line would break the fence).
        if units[start][2]:
            out = units[start][2] + "\n" + out
        out = close_open_fence(out)
        lines = code_lines(out)
        head = ("…\n" if lines[0][1] else "… ") if start > 0 else ""
        tail = ("\n…" if lines[-1][1] else " …") if end != len(units) else ""
        return head + out + tail


def _score(counts: dict[str, int], length: int) -> float:
    """Distinct query terms matched (squared, so covering more of the question wins), plus a little for
    repeats, minus a little for length."""
    if not counts:
        return 0.0
    return len(counts) ** 2 + min(sum(counts.values()), 6) * 0.25 - length / 4000


# Quoted page text stays verbatim — commands, paths and ``$…$`` LaTeX must read exactly as in the wiki, and
# each platform's renderer escapes for itself (backslash escapes would show up literally in Slack). Code sits in
# fences, untouched. Only a prose line starting with "#" gets an invisible zero-width space in front, so no
# Markdown renderer turns it into a heading.
_LINE_START_HASH = re.compile(r"^(\s*)#")


def _quote(text: str) -> str:
    """``text`` as a Markdown block quote: code lines as they are, prose lines ending in a hard break (two
    spaces, so each line of the page stays a line; Slack and Discord keep newlines anyway)."""
    out: list[str] = []
    for line, in_code in code_lines(text):
        if in_code:
            out.append(f"> {line}".rstrip() + "\n")
        elif line.strip():
            out.append("> " + _LINE_START_HASH.sub("\\1\u200b#", line.rstrip()) + "  \n")
        else:
            out.append(">\n")
    return "".join(out).rstrip(" \n")


def _link(title: str, url: str | None) -> str:
    """``[title](url)``, or ``**title**`` when the wiki has no web URL for the page.

    Only http(s) links: Markdown renderers and the page sanitizer refuse ``file:`` (the local backend's URLs)
    and other schemes and would show the raw link; the answer's related pages still carry every URL."""
    # Brackets would end the link text early; a title is one line.
    safe = neutralize_mentions(" ".join(title.split())).replace("[", "(").replace("]", ")") or "Untitled"
    if url and url.startswith(("https://", "http://")):
        # Percent-encode what would end or break a Markdown link destination.
        safe_url = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
        return f"[{safe}]({safe_url})"
    return f"**{safe}**"
