"""Text helpers shared by every adapter: question normalization, mention neutralizing, safe splitting."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

from kbbot.errors import InvalidQuestion

DEFAULT_MAX_CHARS = 2000

# C0/C1 control characters except tab/newline, plus zero-width and bidi-override characters that make two
# identical-looking questions differ or hide text, plus lone surrogates (an undecodable byte in a CLI argument,
# a broken "\ud83d" in chat JSON), which UTF-8 cannot encode for the request upstream.
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)
# Terminal colour and title sequences (a question pasted from coloured output): only their ESC is a control
# character, so "\x1b[31mvpn" would reach the search as the word "31mvpn".
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_SPACES = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n\"'`“”‘’«»()[]{}<>.,;:!?¿¡…-–—*_~"


def strip_invisible(text: str) -> str:
    """``text`` without terminal escape sequences and invisible characters (controls but tab and newline,
    zero-width, bidi overrides). Questions are cleaned with it, and whatever the CLI prints of a page: page text
    must not retitle or clear the reader's terminal, move its cursor or reorder what they read."""
    return _INVISIBLE.sub("", _ANSI.sub("", text))


def clean_question(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The question as it will be sent upstream: invisible characters removed, whitespace collapsed.

    Raises :class:`InvalidQuestion` with a message fit to show the asker when it is empty or too long.
    """
    cleaned = _SPACES.sub(" ", strip_invisible(unicodedata.normalize("NFC", text or ""))).strip()
    if not cleaned.strip(_EDGE_PUNCT):
        raise InvalidQuestion("Please type a question, e.g. “How do I set up the VPN?”")
    if len(cleaned) > max_chars:
        raise InvalidQuestion(
            f"That question is {len(cleaned):,} characters long; please keep it to {max_chars:,} at most."
        )
    return cleaned


def normalize_question(text: str) -> str:
    """The cache key: case-folded, whitespace collapsed, surrounding punctuation and trailing ``?`` dropped.

    "  How do I reset my PASSWORD?? " and "how do i reset my password" share one key (and one billed query).
    """
    folded = _SPACES.sub(" ", strip_invisible(unicodedata.normalize("NFKC", text))).casefold()
    return folded.strip(_EDGE_PUNCT).strip()


# Slack broadcast/special mentions and user/group mentions, Discord @everyone/@here and <@id>/<@&id> pings.
_SLACK_SPECIAL = re.compile(r"<!(channel|here|everyone|subteam\^[A-Z0-9]+)(\|[^>]*)?>", re.IGNORECASE)
_SLACK_USER = re.compile(r"<@([UW][A-Z0-9]+)(\|[^>]*)?>")
_DISCORD_PING = re.compile(r"<@[!&]?(\d+)>")
# Code: a closed ``` fence (may span lines) or a one-line inline span.
_CODE = re.compile(r"```[\s\S]*?```|`[^`\n]+`")
_TEX_MATH = re.compile(r"\$\$[\s\S]+?\$\$|\$(?=\S)[^$\n]+?(?<=\S)\$")
_AT_BROADCAST = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
_ZWSP = "\u200b"


def neutralize_mentions(text: str) -> str:
    """Make every mention inert while keeping it readable.

    ``<!channel>`` → ``@channel`` with a zero-width space after the ``@`` so no platform parses it; the same for
    ``@everyone``/``@here`` and user/role pings. Adapters also send with mentions disabled; this is the belt
    to those braces, and it protects quoted content that the platform would otherwise expand.
    """
    text = _SLACK_SPECIAL.sub(lambda m: "@" + _ZWSP + m.group(1).split("^")[0].lower(), text)
    text = _SLACK_USER.sub(lambda m: "@" + _ZWSP + (m.group(2) or "|" + m.group(1))[1:], text)
    text = _DISCORD_PING.sub(lambda m: "@" + _ZWSP + m.group(1), text)
    return _AT_BROADCAST.sub(lambda m: "@" + _ZWSP + m.group(1), text)


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, preferring paragraph, line, then word breaks.

    Fenced code blocks cut in two are closed at the end of one chunk and reopened at the start of the next, so
    each chunk renders on its own. Linear in the length of ``text``.
    """
    if limit < 16:
        raise ValueError("limit too small to split sensibly")
    chunks: list[str] = []
    rest = text
    reopen = ""
    while rest:
        budget = limit - len(reopen)
        if len(rest) <= budget:
            chunks.append(reopen + rest)
            break
        window = rest[: budget - 4]  # room to close an open fence
        cut = max(window.rfind("\n\n"), -1)
        if cut < budget // 2:
            cut = window.rfind("\n")
        if cut < budget // 2:
            cut = window.rfind(" ")
        if cut < budget // 2:
            cut = len(window)
        piece = reopen + rest[:cut]
        open_fence = piece.count("```") % 2 == 1
        if open_fence:
            piece = piece.rstrip("\n") + "\n```"
        chunks.append(piece)
        rest = rest[cut:].lstrip("\n")
        reopen = "```\n" if open_fence else ""
    return chunks


def outside_code(text: str, prose: Callable[[str], str], code: Callable[[str], str] = lambda span: span) -> str:
    """Apply ``prose`` to Markdown text outside code spans and fenced blocks and ``code`` to each of those
    (verbatim by default): mentions, emoji and emphasis are never rewritten inside code."""
    return _around(_CODE, text, prose, code)


def outside_math(text: str, prose: Callable[[str], str], math: Callable[[str], str] = lambda span: span) -> str:
    """Apply ``prose`` to text outside TeX math (``$…$``, ``$$…$$``: the spans the wiki renders) and ``math`` to
    each of those (verbatim by default): "$1:100:1000$" is a ratio, not an emoji."""
    return _around(_TEX_MATH, text, prose, math)


def _around(pattern: re.Pattern[str], text: str, outside: Callable[[str], str], inside: Callable[[str], str]) -> str:
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        out.append(outside(text[pos : match.start()]))
        out.append(inside(match.group(0)))
        pos = match.end()
    out.append(outside(text[pos:]))
    return "".join(out)


_TAG_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Longer tags are cut: a tag is a label, not a sentence.
MAX_TAG_CHARS = 50


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """The one tag cleaner: trimmed, control characters and a leading ``#`` dropped, at most
    :data:`MAX_TAG_CHARS` each, no empty ones, no duplicates, order kept."""
    seen: dict[str, None] = {}
    for raw in tags:
        tag = _TAG_CONTROL.sub(" ", raw).strip().lstrip("#").strip()[:MAX_TAG_CHARS].strip()
        if tag:
            seen.setdefault(tag, None)
    return tuple(seen)


def parse_tags(raw: str) -> tuple[str, ...]:
    """``"a, b,,#c "`` → ``("a", "b", "c")``: tags typed as a comma (or line) separated list, cleaned."""
    return clean_tags(raw.replace("\n", ",").split(","))


def count_messages(count: int, adjective: str = "") -> str:
    """"1 message", "3 earlier messages": the count people read in save and import replies."""
    return f"{count} {adjective}message{'' if count == 1 else 's'}"


def how_long(seconds: float) -> str:
    """"5 min", "3 h", "2 days": an age people read ("as indexed 3 h ago", "queued 5 min ago")."""
    if seconds < 90 * 60:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"
