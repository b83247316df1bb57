"""Extractive answers from the index: the passage that answers the question, quoted, with its page linked —
or an honest "I couldn't find this in the wiki" with the pages that may be related.

Used when there is no AI to ask (MatHub, local folders) and when Perfect Wiki's AI quota is gone. The wording
is deliberately plain — "From the wiki:" and quotes — so nobody mistakes a search result for an AI answer.

Relevance is the share of the question the quoted passage and its page title hold, each word weighted by how
rare it is in the wiki (a word on every page says little; a word on no page — "wifi" in a wiki without it —
says the most, and counts against an answer by how specific it is in English: "font" much, "latest" little),
and the verb of "how do I <verb>…" counts against a page that never uses it (see :mod:`kbbot.search.query`).
Below ``min_relevance`` nothing is quoted: a confident quote of unrelated text is worse than no answer. The
defaults are calibrated on ``benchmarks/answers`` (``make bench`` prints the figures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kbbot.core.models import Answer, PageRef, Source
from kbbot.core.text import neutralize_mentions
from kbbot.search.fences import close_open_fence, code_lines
from kbbot.search.index import PageText, SearchHit, SearchIndex
from kbbot.search.passages import (
    Passage,
    asked_action,
    asks_quantity,
    best_passages,
    blocks,
    code_literals,
    is_how_to,
    literals,
)
from kbbot.search.query import QueryPlan, matched_terms

NOT_FOUND = "I couldn't find this in the wiki."
MAYBE_RELATED = "I couldn't find this in the wiki. These pages may be related."

#: Below this relevance (0–1) the answer is "I couldn't find this"; see the module docstring.
DEFAULT_MIN_RELEVANCE = 0.62
#: Auto-answer channels (nobody asked the bot) speak only above this.
DEFAULT_AUTO_MIN_RELEVANCE = 0.8
#: Pages at least this relevant are offered as "maybe related" when nothing answers.
MAYBE_RELATED_RELEVANCE = 0.25
#: Ranking mixes the index's bm25 (normalized to the best page) with relevance: bm25 knows how often and
#: where (title, tags) words occur; relevance knows whether one passage holds the question's words together.
BM25_SHARE = 0.5
#: …and with the share of the question the page's title and tags hold (a page titled with what was asked).
TITLE_SHARE = 0.1
#: Pages linked under an answer are at least this share as relevant as the quoted one, and rank as high.
RELATED_SHARE = 0.5
#: A second page is quoted only when it is about as relevant and ranks about as high as the first.
SECOND_PAGE_SHARE = 0.9
#: A second passage of the same page is quoted when it scores at least this share of the first.
SECOND_PASSAGE_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class _Candidate:
    hit: SearchHit
    page: PageText
    passages: list[Passage]
    relevance: float
    rank: float
    stems: frozenset[str]
    in_title: frozenset[str]


class SearchAnswerer:
    """Implements :class:`kbbot.core.ports.Answerer` over a :class:`SearchIndex`.

    ``min_relevance`` is the don't-know threshold; ``max_passage_chars`` bounds each quote (long paragraphs
    are cut around the first match); ``candidates`` is how many ranked pages are read to find the passage.
    """

    def __init__(
        self,
        index: SearchIndex,
        *,
        min_relevance: float = DEFAULT_MIN_RELEVANCE,
        max_passage_chars: int = 700,
        candidates: int = 8,
    ) -> None:
        self.index = index
        self.min_relevance = min_relevance
        self.max_passage_chars = max(80, max_passage_chars)
        self.candidates = max(1, candidates)

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        limit = max(1, limit)
        ranked = await self._rank(question)
        if not ranked or ranked[0].relevance < self.min_relevance:
            return _dont_know(ranked, relevance=ranked[0].relevance if ranked else 0.0)
        top = ranked[0]
        quotes = [(top.page, top.passages[0] if top.passages else None)]
        second = self._second(ranked)
        if second is not None:
            quotes.append(second)
        # Other pages are linked when they are about as relevant; a stray word is no reason to link a page.
        floor = max(MAYBE_RELATED_RELEVANCE, RELATED_SHARE * top.relevance)
        related = tuple(
            _ref(c) for c in ranked[:limit] if c is top or (c.relevance >= floor and c.rank >= RELATED_SHARE * top.rank)
        )
        stems = ranked[0].stems
        blocks_ = ["From the wiki:"]
        for n, (page, passage) in enumerate(quotes):
            if passage is None:
                text = trim(_opening(page), self.max_passage_chars, stems)
            else:
                body = trim(passage.text, self.max_passage_chars, stems)
                # The section heading says what the passage is about ("How to request leave", "Linux").
                text = f"{_heading_line(passage.heading)}\n{body}" if passage.heading else body
            # A page known by its title alone (never synced; the answer's notice says so) is named, not quoted.
            quote = f"{_quote(text)}\n\n" if text.strip() else ""
            # Each page is named once, under its last passage: two passages of one page are one source.
            if n + 1 < len(quotes) and quotes[n + 1][0].id == page.id:
                blocks_.append(quote.rstrip("\n"))
            else:
                blocks_.append(f"{quote}— {_link(page.title, page.url)}")
        return Answer(text="\n\n".join(blocks_), related_pages=related, source=Source.SEARCH, relevance=top.relevance)

    async def not_found(self, question: str) -> Answer:
        """The honest reply when another answerer (Perfect Wiki's AI) found nothing: "I couldn't find this",
        with the index's closest pages."""
        ranked = await self._rank(question)
        return _dont_know(ranked, relevance=0.0)

    async def ranking(self, question: str) -> list[PageRef]:
        """The candidate pages for ``question``, best first, as the answer ranks them (benchmarks compare
        this with other rankers)."""
        return [_ref(c) for c in await self._rank(question)]

    async def _rank(self, question: str) -> list[_Candidate]:
        # The candidates' texts come with the ranking: one trip to the index thread per answer.
        result = await self.index.query(question, limit=self.candidates, texts=self.candidates)
        if not result.hits:
            return []
        plan = result.plan
        hits = {hit.id: hit for hit in result.hits}
        pages = [hit.page_text() for hit in result.hits if hit.text is not None]
        how_to, quantity, exact = is_how_to(question), asks_quantity(question), literals(question)
        required = plan.required(asked_action(question))
        code = code_literals(exact)
        best_bm25 = max(hit.score for hit in result.hits) or 1.0
        ranked = []
        for page in pages:
            hit = hits[page.id]
            passages = best_passages(
                blocks(page.text, page.title),
                plan,
                title=page.title,
                how_to=how_to,
                max_chars=self.max_passage_chars,
                quantity=quantity,
                exact=exact,
                saved_chat=hit.saved_chat,
            )
            # A saved chat answers with what people replied, never with its title or header (the title is often
            # the question it was saved for): without such a passage it answers nothing.
            no_reply = hit.saved_chat and not passages
            passage = passages[0] if passages else None
            prose = _in_prose_only(plan, page, hit, code)
            relevance = 0.0 if no_reply else _relevance(plan, page, hit, passage, required, prose)
            in_title = frozenset(matched_terms(page.title + "\n" + " ".join(hit.tags), plan.stems))
            # A word typed as code ("--rollback") and found so names the page as surely as its title would.
            named = in_title | _as_code(plan, page, code)
            rank = (
                BM25_SHARE * hit.score / best_bm25
                + (1 - BM25_SHARE - TITLE_SHARE) * relevance
                + TITLE_SHARE * plan.coverage(named)
            )
            ranked.append(_Candidate(hit, page, passages, relevance, rank, frozenset(plan.stems), in_title))
        ranked.sort(key=lambda c: -c.rank)
        ranked = _pointed_to_first(_more_answering_first(ranked, plan, self.min_relevance))
        return _chats_below_sources(ranked, [hit.id for hit in result.hits])

    def _second(self, ranked: list[_Candidate]) -> tuple[PageText, Passage] | None:
        """A second quote, only when it holds words of the question the first lacks: from the next page when
        that page is as relevant and ranks about as high, else from the same page — where a passage that scores
        nearly as well as the first is quoted too."""
        top = ranked[0]
        if not top.passages:
            return None
        first = top.passages[0]
        covered = first.found | top.in_title
        for other in ranked[1:2]:
            if (
                other.passages
                and other.relevance >= self.min_relevance
                # …or ranked above it, and gave way to it (see _rank): both answer.
                and (other.relevance >= top.relevance or other.rank > top.rank)
                and other.rank >= SECOND_PAGE_SHARE * top.rank
                and other.passages[0].found - covered
            ):
                return other.page, other.passages[0]
        for passage in top.passages[1:]:
            # Another passage answers about as well ("Severity levels" has a rule and a table): both are quoted
            # rather than a guess between them.
            close = passage.score >= SECOND_PASSAGE_SHARE * first.score
            if (passage.found - covered or close) and not _overlap(first, passage):
                return top.page, passage
        return None


def _more_answering_first(ranked: list[_Candidate], plan: QueryPlan, floor: float) -> list[_Candidate]:
    """Of the two best pages, when they rank about as high and both answer (``floor``), the one whose passage
    holds more of the question leads ("who is on call this week": the on-call rotation, not the onboarding
    page titled "your first week") — unless that passage sends the reader to the other ("see Git workflow for
    branch names"). Only when the first answers too: a page ranked lower is no reason to answer what the
    first cannot."""
    if len(ranked) < 2 or not ranked[1].passages or ranked[1].rank < SECOND_PAGE_SHARE * ranked[0].rank:
        return ranked
    first, other = ranked[0], ranked[1]
    if other.relevance > first.relevance >= floor and not _names_page(other.passages[0], first, frozenset(plan.stems)):
        ranked[0], ranked[1] = other, first
    return ranked


def _pointed_to_first(ranked: list[_Candidate]) -> list[_Candidate]:
    """The first page's passage may only send the reader on ("Meals while travelling are covered up to the
    daily limit in Expenses and reimbursement." — a wiki link, shown as the page's title): when it is one
    sentence that names another of the pages by its title, and that page is related at all, that page is the
    one to quote, and comes first, as relevant as the passage that sent the reader there (that passage is
    quoted under it when it holds words the other lacks). A longer passage that mentions a page — "see Code
    review" in a step — answers itself."""
    top = ranked[0] if ranked else None
    if top is None or not top.passages or not _one_sentence(top.passages[0].text):
        return ranked
    for other in ranked[1:]:
        if other.relevance >= MAYBE_RELATED_RELEVANCE and _names_page(top.passages[0], other):
            ranked.remove(other)
            ranked.insert(0, replace(other, relevance=max(other.relevance, top.relevance)))
            break
    return ranked


def _names_page(passage: Passage, candidate: _Candidate, about: frozenset[str] = frozenset()) -> bool:
    """Whether ``passage`` names the candidate's page by its title (of two words or more: a wiki link); with
    ``about``, in a line or sentence that holds one of those stems besides ("see Git workflow for branch
    names", not "Work travel booked according to Business travel" in a list about meals)."""
    title = " ".join(candidate.page.title.casefold().split())
    if len(title.split()) < 2:
        return False
    if not about:
        return _names(" ".join(passage.text.casefold().split()), title)
    for line in passage.text.split("\n"):
        for sentence in _SENTENCE_END.split(line):
            text = " ".join(sentence.casefold().split())
            if _names(text, title) and matched_terms(text.replace(title, " "), set(about)):
                return True
    return False


def _one_sentence(text: str) -> bool:
    return "\n" not in text.strip() and len(_SENTENCE_END.split(text.strip())) == 1


def _names(text: str, title: str) -> bool:
    """Whether ``text`` holds ``title`` as whole words."""
    return re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text) is not None


def _overlap(a: Passage, b: Passage) -> bool:
    """Whether two passages share a block (a window of blocks and one block of it)."""
    blocks_a, blocks_b = set(a.text.split("\n\n")), set(b.text.split("\n\n"))
    return bool(blocks_a & blocks_b)


def _chats_below_sources(ranked: list[_Candidate], order: list[str]) -> list[_Candidate]:
    """The index ranks a saved chat just below the page it quotes (the source people should read): keep it
    below that page (the nearest page above it in the index's order) however the passages score."""
    by_id = {c.hit.id: c for c in ranked}
    for n, page_id in enumerate(order):
        chat = by_id.get(page_id)
        if chat is None or not chat.hit.saved_chat:
            continue
        source = next((by_id[p] for p in reversed(order[:n]) if p in by_id and not by_id[p].hit.saved_chat), None)
        if source is not None and ranked.index(chat) < ranked.index(source):
            ranked.remove(chat)
            ranked.insert(ranked.index(source) + 1, chat)
    return ranked


def _relevance(
    plan: QueryPlan,
    page: PageText,
    hit: SearchHit,
    passage: Passage | None,
    required: frozenset[str],
    prose: frozenset[str] = frozenset(),
) -> float:
    """The share of the question (by weight) that the quoted passage, its heading and the page's title and
    tags hold; ``required`` stems the page lacks count fully against it (the verb of "how do I…"), and
    ``prose`` stems (:func:`_in_prose_only`) count only as words found elsewhere on the page."""
    stems = plan.stems
    found = matched_terms(page.title + "\n" + " ".join(hit.tags), stems)
    if passage is not None:
        found |= passage.found
    found -= prose
    return plan.coverage(found, matched_terms(page.text, stems - found), required)


def _in_prose_only(plan: QueryPlan, page: PageText, hit: SearchHit, code: frozenset[str]) -> frozenset[str]:
    """The stems of words the question typed as code (:func:`~kbbot.search.passages.code_literals`) that the
    page never writes so: "--rollback" is an option of a command, and a page saying "rollback" in prose is not
    about it."""
    if not code:
        return frozenset()
    text = "\n".join([page.title, page.text, *hit.tags]).casefold()
    return _stems_of(plan, [lit for lit in code if lit not in text])


def _as_code(plan: QueryPlan, page: PageText, code: frozenset[str]) -> frozenset[str]:
    """The stems of words the question typed as code that the page's text holds exactly so."""
    if not code:
        return frozenset()
    text = page.text.casefold()
    return _stems_of(plan, [lit for lit in code if lit in text])


def _stems_of(plan: QueryPlan, literals_: list[str]) -> frozenset[str]:
    return frozenset(t.stem for t in plan.terms for lit in literals_ if t.docs and not t.compound and t.word in lit)


def _dont_know(ranked: list[_Candidate], *, relevance: float) -> Answer:
    maybe = tuple(_ref(c) for c in ranked if c.relevance >= MAYBE_RELATED_RELEVANCE)[:3]
    return Answer(
        text=MAYBE_RELATED if maybe else NOT_FOUND,
        related_pages=maybe,
        source=Source.SEARCH,
        empty=True,
        relevance=relevance,
    )


def _ref(candidate: _Candidate) -> PageRef:
    return PageRef(id=candidate.hit.id, title=candidate.hit.title, url=candidate.hit.url)


def _opening(page: PageText) -> str:
    """How the page begins: for a page found by its title or tags alone."""
    first = blocks(page.text, page.title)
    return first[0].text if first else page.text.strip()


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def trim(passage: str, limit: int, stems: frozenset[str] | set[str]) -> str:
    """Cut a long passage to about ``limit`` characters on line or sentence breaks, starting at the first
    line or sentence that mentions one of ``stems``. Lines stay lines (lists and code keep their shape), a code
    line is never cut, and a cut inside a code block gets its fence back."""
    if len(passage) <= limit:
        return passage
    # (text, separator before it, the fence line that opened the code block it is inside, or "")
    units: list[tuple[str, str, str]] = []
    opener = ""
    for line_no, (line, in_code) in enumerate(code_lines(passage)):
        if not in_code:
            opener = ""
            sentences = [s for s in _SENTENCE_END.split(line) if s.strip()]
        else:
            sentences = [line]  # a code line is one unit: a command is never cut at a "." inside it
        for sentence_no, sentence in enumerate(sentences):
            units.append((sentence, "\n" if line_no and not sentence_no else " ", opener))
        if in_code:
            opener = "" if opener and line.strip().startswith("`") else (opener or line.strip())
    wanted = set(stems)
    start = next((i for i, (unit, _, _) in enumerate(units) if matched_terms(unit, wanted)), 0)
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
    # A passage that starts or ends inside a code block gets its fence back; next to a fence the ellipsis goes
    # on a line of its own (text on a fence line would break the fence).
    if units[start][2]:
        out = units[start][2] + "\n" + out
    out = close_open_fence(out)
    lines = code_lines(out)
    head = ("…\n" if lines[0][1] else "… ") if start > 0 else ""
    tail = ("\n…" if lines[-1][1] else " …") if end != len(units) else ""
    return head + out + tail


# Quoted page text stays verbatim — commands, paths and ``$…$`` LaTeX must read exactly as in the wiki, and
# each platform's renderer converts for itself. Code sits in fences, untouched. Only a prose line that Markdown
# would read as a heading or a list item gets Markdown's own backslash escape ("\\#", "1\\."), so the answer
# is plain CommonMark for every reader (``kbbot ask --json``, saved pages); Slack's mrkdwn, which has no
# escapes, drops it (:func:`kbbot.adapters.slack.rendering.markdown_to_mrkdwn`).
_LINE_START_HASH = re.compile(r"^(\s*)#")


# A numbered heading ("## 1. Get your configuration") quoted above its steps would read as step 1 of them, and
# renderers would renumber the real steps 2, 3, 4: escaped, it stays a line of its own.
_LIST_MARKER = re.compile(r"^(\d{0,9})((?<=\d)[.)]|(?<!\d)[-*+])(?=\s|$)")


def _heading_line(heading: str) -> str:
    return _LIST_MARKER.sub(r"\1\\\2", heading, count=1)


def _quote(text: str) -> str:
    """``text`` as a Markdown block quote: code lines as they are, prose lines ending in a hard break (two
    spaces, so each line of the page stays a line; Slack and Discord keep newlines anyway)."""
    out: list[str] = []
    for line, in_code in code_lines(neutralize_mentions(text)):
        if in_code:
            out.append(f"> {line}".rstrip() + "\n")
        elif line.strip():
            out.append("> " + _LINE_START_HASH.sub(r"\1\\#", line.rstrip()) + "  \n")
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
