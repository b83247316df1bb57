"""The part of a wiki page kbbot owns: a block between two marker lines, and how a re-save replaces only it.

A saved-thread page is a *block* that kbbot generates, and people may write around it (notes above, a
"Resolution" paragraph below) or edit the page while kbbot saves it. The block is delimited by two visible
lines that name the thread (a digest of its key, see ``page_render.thread_digest``) and the part number::

    kbbot-thread-begin: 3f2a…-1        ← first line of the block
    # Title / header / messages …
    ---
    kbbot-thread: 3f2a…-1              ← last line of the block (the crash-recovery marker)

Why plain visible text and not an HTML comment or a ``data-`` attribute: nh3 (and the wikis' own sanitizers)
drop comments and unknown attributes, and Markdown has neither; a short line of text survives every sanitizer,
every Markdown renderer and copy-paste between editors. In HTML each marker is its own
``<p><small>…</small></p>``; when locating a block, the tags wrapped directly around a marker belong to it, so a
wiki that re-serializes the HTML (other tags, attributes, no newlines) does not break the match.

The renderer makes user text unable to contain a marker (a zero-width space goes into ``kbbot-thread`` wherever
a message, name or title has it), so inside a block the markers are exactly the two kbbot wrote.

:func:`replace_block` is what a re-save applies to the page's *latest* content (``PageChange.rewrite``):

- the block is found → only it is replaced; everything before and after stays byte for byte;
- the block is not found (a person deleted or edited a marker line, emptied the page, or the page was saved
  by an older kbbot that wrote only the end marker) → **nothing is dropped**: the new block goes on top and
  the page's whole previous content follows under a one-line note saying why it was kept. The next re-save
  finds the new block's markers and replaces only that, so this happens at most once per damage. We chose
  keeping over refusing: a refused save would leave the wiki stale until someone repaired markers they may
  not know exist; a duplicate old copy is visible and easy to delete.
"""

from __future__ import annotations

import re

__all__ = [
    "BEGIN_PREFIX",
    "END_PREFIX",
    "begin_marker_text",
    "find_marker",
    "locate_block",
    "marker_text",
    "neutralize_markers",
    "replace_block",
    "strip_markers",
]

BEGIN_PREFIX = "kbbot-thread-begin: "
END_PREFIX = "kbbot-thread: "
_MARKER_ROOT = "kbbot-thread"
_MARKER_ROOT_INERT = "kbbot-\u200bthread"
_MARKER_TAIL = 2_000
_NOT_PART_OF_ID = r"(?![\w-])"
# Only the inline/paragraph tags a wiki may wrap a marker line in; never a void element such as a person's <hr>.
_WRAPPERS = r"(?:p|small|span|div|em|i|strong|b|font|section)"
_CLOSING_TAGS = re.compile(rf"(?:[ \t\r\n]*</{_WRAPPERS}[ \t]*>)*\r?\n?", re.I)
_OPENING_TAG = re.compile(rf"<{_WRAPPERS}(?:\s[^<>]*)?>[ \t\r\n]*", re.I)
_MAX_WRAPPING_TAGS = 8
# A marker as it appears anywhere: in page content, in indexed text, or quoted back by the wiki's AI.
_ANY_MARKER = re.compile(r"kbbot-thread(?:-begin)?: [0-9a-f]{6,64}-\d+(?![\w-])")
_EMPTY_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def marker_text(digest: str, part: int) -> str:
    """The block's last line: ``kbbot-thread: <digest>-<part>``."""
    return f"{END_PREFIX}{digest}-{part}"


def begin_marker_text(digest: str, part: int) -> str:
    """The block's first line: ``kbbot-thread-begin: <digest>-<part>``."""
    return f"{BEGIN_PREFIX}{digest}-{part}"


def neutralize_markers(text: str) -> str:
    """User text that cannot be mistaken for a marker (a zero-width space after ``kbbot-``)."""
    return text.replace(_MARKER_ROOT, _MARKER_ROOT_INERT) if _MARKER_ROOT in text else text


def strip_markers(text: str) -> str:
    """``text`` without kbbot's marker lines: they are bookkeeping for re-saves, never something to show in an
    answer or to index (the block's content between them stays)."""
    if _MARKER_ROOT not in text:
        return text
    return _EMPTY_LINES.sub("\n\n", _ANY_MARKER.sub("", text))


def find_marker(content: str, digest: str, part: int) -> bool:
    """True when ``content`` holds this thread's block for ``part`` (how a crash retry recognises its page).

    Either a whole block (begin and end markers, in order; people may have written around it), or, for pages
    saved before the begin marker existed, the end marker as the last marker near the end of the page — only
    the last one counts, so a message quoting some marker cannot make a page look like another thread's.
    """
    if locate_block(content, digest, part) is not None:
        return True
    tail = content[-_MARKER_TAIL:]
    start = tail.rfind(END_PREFIX)
    if start < 0:
        return False
    return re.match(re.escape(marker_text(digest, part)) + _NOT_PART_OF_ID, tail[start:]) is not None


def locate_block(content: str, digest: str, part: int) -> tuple[int, int] | None:
    """``(start, end)`` of this thread's block for ``part`` in ``content``, wrapping tags included; or None.

    The first begin marker, and the first end marker after it; the markup wrapped directly around each marker
    (``<p><small>`` before, ``</small></p>`` and one newline after) is part of the block.
    """
    begin = re.search(re.escape(begin_marker_text(digest, part)) + _NOT_PART_OF_ID, content)
    if begin is None:
        return None
    end = re.compile(re.escape(marker_text(digest, part)) + _NOT_PART_OF_ID).search(content, begin.end())
    if end is None:
        return None
    start = begin.start()
    for _ in range(_MAX_WRAPPING_TAGS):  # back over the opening tags right before the begin marker
        tag_start = content.rfind("<", max(0, start - 500), start)
        if tag_start < 0 or _OPENING_TAG.fullmatch(content, tag_start, start) is None:
            break
        start = tag_start
    closing = _CLOSING_TAGS.match(content, end.end())
    return start, closing.end() if closing else end.end()


def replace_block(content: str, block: str, digest: str, part: int, *, kept_note: str) -> str:
    """``content`` with this thread's block replaced by ``block`` (see the module doc for the fallback).

    ``kept_note`` is the one-line note (in the page's format) put above the previous content when the block
    was not found and everything that was on the page is kept below the new block.
    """
    span = locate_block(content, digest, part)
    if span is not None:
        start, end = span
        return content[:start] + block + content[end:]
    if not content.strip():
        return block
    return block + "\n" + kept_note + content.lstrip("\r\n")
