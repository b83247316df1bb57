"""Code in indexed page text: kept as Markdown code (fences and backticks) so answers quote it verbatim.

Extraction (:mod:`kbbot.search.extract`) writes a page's code blocks as fenced blocks and its inline code in
backticks. Quoted back, ``./scripts/promote <service>`` is then code to every renderer: none reads
``<service>`` as an HTML tag or a ``# comment`` line as a heading, so nothing inside needs escaping. These
helpers keep a fence whole when the answerer cuts page text into passages.
"""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,})")


def fence(code: str) -> str:
    """``code`` as a fenced block (a longer fence than any backtick run inside it)."""
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=0)
    marker = "`" * max(3, longest + 1)
    return f"{marker}\n{code}\n{marker}"


def inline_code(code: str) -> str:
    """``code`` as a CommonMark code span, whatever backticks it contains."""
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=0)
    marker = "`" * (longest + 1)
    pad = " " if code.startswith("`") or code.endswith("`") else ""
    return f"{marker}{pad}{code}{pad}{marker}"


def _scan(text: str) -> tuple[list[tuple[str, bool]], str]:
    """The lines with their in-code flag, and the fence still open at the end ("" when none)."""
    out: list[tuple[str, bool]] = []
    open_marker = ""
    for line in text.split("\n"):
        match = _FENCE_LINE.match(line)
        if open_marker:
            out.append((line, True))
            if match and len(match.group(1)) >= len(open_marker) and not line[match.end() :].strip():
                open_marker = ""
        elif match and "`" not in line[match.end() :]:
            open_marker = match.group(1)
            out.append((line, True))
        else:
            out.append((line, False))
    return out, open_marker


def code_lines(text: str) -> list[tuple[str, bool]]:
    """Each line of ``text`` with True when it belongs to a fenced block (the fence lines included)."""
    return _scan(text)[0]


def blocks(text: str) -> list[str]:
    """``text`` split at blank lines, except inside a fenced block (code may contain blank lines)."""
    result: list[str] = []
    current: list[str] = []
    for line, in_code in code_lines(text):
        if line.strip() or in_code:
            current.append(line)
        elif current:
            result.append("\n".join(current))
            current = []
    if current:
        result.append("\n".join(current))
    return result


def close_open_fence(text: str) -> str:
    """``text`` with a fence that was left open (a passage cut inside a code block) closed again."""
    marker = _scan(text)[1]
    return f"{text}\n{marker}" if marker else text
