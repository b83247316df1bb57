"""A page's text as passages to quote — paragraphs, bullet lists, numbered steps, code and tables, each with the
heading of its section — and which of them answers a question best.

The text comes from :mod:`kbbot.search.extract`: blocks are separated by blank lines, a list is one block with
one line per item (``- `` or ``1. ``), and a heading is a short line of its own. A passage is one to three
consecutive blocks of one section (a lead-in "Sign your commits with your SSH key:" is nothing without the
command under it; a command is clearer with the sentence after it), scored by the question's words it holds,
weighted by how rare they are in the wiki.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kbbot.search.fences import blocks as fenced_blocks
from kbbot.search.query import QueryPlan, matched_terms, term_hits
from kbbot.search.saved_chats import not_an_answer

Kind = Literal["steps", "list", "lines", "table", "paragraph"]

#: At most this many consecutive blocks make one passage.
MAX_BLOCKS = 3
#: Words of the question that the page title already holds say which page, not which passage: they count
#: this much in a passage ("set up the VPN on linux" on "VPN setup" should quote the Linux steps, not the
#: intro that says "VPN" five times).
TITLE_TERM_WEIGHT = 0.35
#: A word found only in the section heading counts this much (the heading is shown with the passage); a word
#: in both the heading and the passage this much more (the section is about it).
HEADING_TERM_WEIGHT = 0.75
HEADING_BONUS = 0.5
#: For "how do I…" questions, numbered steps and command lines are what answers.
HOW_TO_BONUS: dict[Kind, float] = {"steps": 1.3, "lines": 1.15}

_HOW_TO = re.compile(
    r"\bhow\s+(?:do|can|should|would|to)\b|\bhow\s+\w+\s+i\b|\bsteps?\b|\bset\s*up\b|\binstall|\bconfigur"
    r"|\bwhat\s+(?:do|should|can)\s+i\s+do\b|\bwhat\s+now\b",
    re.IGNORECASE,
)
#: "how long / much / many / often…" asks for an amount, a duration or a frequency: a passage that states one
#: holds what is asked as surely as one more word of the question would (see :func:`best_passages`).
_QUANTITY_QUESTION = re.compile(
    r"\bhow\s+(?:long|much|many|often|soon|far|big|quickly|fast|old|large|small)\b", re.IGNORECASE
)
_QUANTITY = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|once|twice|every|daily|weekly"
    r"|monthly|quarterly|yearly|annually|hourly)\b",
    re.IGNORECASE,
)
#: A word typed with its symbols ("@channel", "--rollback", "sev-2", "gpg.format"): a passage holding it
#: exactly counts the word twice.
_LITERAL = re.compile(r"(?<!\S)[@#$~./-]*\w[\w@#./:+-]*[@#./:+-][\w@#./:+-]*\w|(?<!\S)(?:--?|[@#])\w[\w-]*")
#: "how do I <verb>", "how can we <verb>", "how to <verb>": the verb names the procedure asked for.
_ACTION = re.compile(r"\bhow\s+(?:(?:do|can|should|would|could|will)\s+(?:i|we|you|one)|to)\s+(\w+)", re.IGNORECASE)
_STEP_LINE = re.compile(r"\s*\d{1,3}[.)]\s")
_SENTENCE_END = (".", "!", "?", ":", ";", ",")
_CODE_CHARS = re.compile(r"[/\\<>=$`{}|~@#_*\[\]]| --?\w")


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    kind: Kind
    heading: str | None  # the heading of its section


@dataclass(frozen=True, slots=True)
class Passage:
    """Consecutive blocks of one section, with how well they answer (``score``) and which of the question's
    stems they — with their heading — hold (``found``)."""

    heading: str | None
    text: str
    kind: Kind
    score: float
    found: frozenset[str]


def is_how_to(question: str) -> bool:
    """A question asking for a procedure ("how do I…", "steps to…", "set up…")."""
    return bool(_HOW_TO.search(question))


def asks_quantity(question: str) -> bool:
    """A question asking how long, how much, how many, how often…"""
    return bool(_QUANTITY_QUESTION.search(question))


def asked_action(question: str) -> str | None:
    """The verb of a "how do I <verb>…" question, casefolded ("how do I order business cards" → "order"), or
    None. A page that never uses it (in any form the index knows) describes no such procedure."""
    match = _ACTION.search(question[:4000])
    return match.group(1).casefold() if match else None


def literals(question: str) -> frozenset[str]:
    """The question's words typed with symbols in them ("@channel", "--rollback"), casefolded."""
    return frozenset(m.group(0).casefold() for m in _LITERAL.finditer(question[:4000]))


_HYPHENATED = re.compile(r"\w+(?:-\w+)+")


def code_literals(literals_: frozenset[str]) -> frozenset[str]:
    """Those of :func:`literals` that are code — an option, a mention, a path, a setting ("--rollback",
    "@channel", "gpg.format") — rather than words joined by hyphens ("take-home", "on-call")."""
    return frozenset(lit for lit in literals_ if not _HYPHENATED.fullmatch(lit))


def blocks(text: str, title: str = "") -> list[Block]:
    """The page's blocks in order, each with the heading above it; headings themselves are not blocks."""
    out: list[Block] = []
    heading: str | None = None
    for raw in fenced_blocks(text):  # a code block with blank lines inside stays one block
        block = raw.strip("\n")
        if not block.strip():
            continue
        if _is_heading(block):
            # The page's own title repeated as its first heading is no section.
            heading = None if block.strip().casefold() == title.strip().casefold() else block.strip()
            continue
        out.append(Block(block, _kind(block), heading))
    return out


def _is_heading(block: str) -> bool:
    """A short line of its own that starts like a title and reads like no command ("./scripts/promote …")."""
    line = block.strip()
    return (
        "\n" not in line
        and len(line) <= 80
        and (line[:1].isupper() or line[:1].isdigit())
        and not line.endswith(_SENTENCE_END)
        and not _CODE_CHARS.search(line)
        and any(c.isalpha() for c in line)
    )


def _kind(block: str) -> Kind:
    lines = block.split("\n")
    if _STEP_LINE.match(lines[0]) and sum(bool(_STEP_LINE.match(line)) for line in lines) >= 2:
        return "steps"
    if lines[0].startswith("- "):
        return "list"
    if sum(" | " in line for line in lines) >= 2:
        return "table"
    if len(lines) > 1:
        return "lines"  # code, an address, a poem: keep the lines
    return "paragraph"


def best_passages(
    page_blocks: list[Block],
    plan: QueryPlan,
    *,
    title: str,
    how_to: bool,
    max_chars: int,
    quantity: bool = False,
    exact: frozenset[str] = frozenset(),
    saved_chat: bool = False,
) -> list[Passage]:
    """Every candidate passage of the page that holds at least one of the question's words, best first.

    ``quantity``: the question asks for an amount (:func:`asks_quantity`); a passage stating one scores as if
    it held one more word of average weight. ``exact``: the question's :func:`literals`; a passage holding
    one exactly scores its words again. ``saved_chat``: the page is a thread kbbot saved, where the question
    and kbbot's don't-know hold no answer (:func:`~kbbot.search.saved_chats.not_an_answer`): they count no
    words."""
    stems = plan.stems
    if not stems or not page_blocks:
        return []
    known = [plan.weight(t) for t in plan.terms if t.docs and not t.compound]
    average_weight = sum(known) / len(known) if known else 0.0
    answer_type_weight = average_weight if quantity else 0.0
    # A literal of a stopword ("--from", "@here") holds no search term: it weighs as an average word.
    literal_weight = {
        lit: sum(plan.weight(t) for t in plan.terms if t.docs and t.word in lit) or average_weight for lit in exact
    }
    in_title = matched_terms(title, stems)
    focus = stems - in_title
    weights = {t.stem: plan.weight(t) for t in plan.terms if t.docs}
    for term in in_title:
        if focus:
            weights[term] *= TITLE_TERM_WEIGHT
    heading_hits: dict[str | None, set[str]] = {}
    block_hits = [
        {} if saved_chat and not_an_answer(block.text, stems) else term_hits(block.text, stems) for block in page_blocks
    ]
    candidates: list[Passage] = []
    for start, first in enumerate(page_blocks):
        previous = page_blocks[start - 1] if start else None
        if previous is not None and previous.heading == first.heading and previous.text.endswith(":"):
            continue  # a list without the lead-in that says what it lists ("Report immediately:")
        text = ""
        found: dict[str, int] = {}
        for end in range(start, min(start + MAX_BLOCKS, len(page_blocks))):
            block = page_blocks[end]
            if block.heading != first.heading or (text and len(text) + len(block.text) > max_chars):
                break
            text = f"{text}\n\n{block.text}" if text else block.text
            for term, count in block_hits[end].items():
                found[term] = found.get(term, 0) + count
            if first.heading not in heading_hits:
                heading_hits[first.heading] = matched_terms(first.heading or "", stems)
            if text.endswith(":") and end + 1 < len(page_blocks) and page_blocks[end + 1].heading == first.heading:
                continue  # "Promote to production:" is nothing without the command under it
            in_heading = heading_hits[first.heading] - found.keys()
            if not found and not in_heading:
                continue
            score = sum(weights[t] for t in found) + HEADING_TERM_WEIGHT * sum(weights[t] for t in in_heading)
            score += HEADING_BONUS * sum(weights[t] for t in heading_hits[first.heading] & found.keys())
            # A little for repeats, a little against length: of two passages with the same words, the
            # shorter one says it more plainly.
            score += 0.03 * min(sum(found.values()), 8) - len(text) / 3000
            if answer_type_weight and _QUANTITY.search(text):
                score += answer_type_weight
            if literal_weight:
                folded = text.casefold()
                score += sum(w for lit, w in literal_weight.items() if lit in folded)
            kind = block.kind if start == end else _window_kind(page_blocks[start : end + 1])
            if how_to:
                score *= HOW_TO_BONUS.get(kind, 1.0)
            candidates.append(Passage(first.heading, text, kind, score, frozenset(found.keys() | in_heading)))
    candidates.sort(key=lambda p: -p.score)
    return candidates


def _window_kind(window: list[Block]) -> Kind:
    kinds = [block.kind for block in window]
    for kind in ("steps", "lines"):
        if kind in kinds:
            return kind
    return kinds[0]
