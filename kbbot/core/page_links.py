"""Which link targets may reach a saved page, and how the others are shown: as their plain text.

A saved thread quotes whatever people and the bot wrote, including links the wiki must not get: ``javascript:``,
``data:``, ``vbscript:`` (script), and ``file://`` (the local backend's page URLs in the bot's own answers, dead
for anyone reading the wiki). Such a link becomes its text — ``[Shell tips](file:///kb/shell.md)`` reads
"Shell tips" — rather than a link to a placeholder anchor.

Only ``http``, ``https`` and ``mailto`` targets, and relative ones (no scheme), stay links. A target is judged
the way a Markdown renderer and then a browser would read it: backslash escapes and HTML entities decoded
(``&#106;avascript&colon;`` is ``javascript:``), then tabs, newlines, control and zero-width characters dropped
(browsers ignore them inside URLs). Anything that looks like another scheme is refused, known or not.

For Markdown pages (MatHub, local) :func:`flatten_markdown_links` rewrites the text in two linear passes:

1. every autolink ``<file:///x>`` with a refused target becomes its target as text; every inline link or
   image ``[text](target "title")`` / ``![alt](target)`` with a refused target becomes ``text``
   (link text cannot hold an unescaped bracket here, so nested brackets are left to pass 2);
2. a backstop for what pass 1 could not take apart (nested brackets, very long targets, reference
   definitions ``[id]: target``): a ``](`` or ``]:`` followed by a refused target gets a backslash
   (``]\\(``, ``]\\:``), which no CommonMark renderer reads as a link or a definition; the text stays visible.
   A target padded past what the backstop reads (4,000 characters before its scheme could end) is treated as
   refused.

Both passes are linear (possessive quantifiers, bounded reads), so a 1 MB hostile message stays cheap.

For HTML pages the renderer (markdown-it) lets every link through its parser and drops the ``<a>`` of a
refused target when rendering (see ``page_render``); nh3 then re-checks the schemes of whatever is left.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

__all__ = ["ALLOWED_SCHEMES", "flatten_markdown_links", "is_allowed_url"]

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
# Browsers drop these anywhere in a URL (tabs, newlines) or at its edges (controls, spaces); zero-width ones
# are invisible, so a scheme hidden by them must not count as "no scheme".
_URL_JUNK = re.compile(r"[\x00-\x20\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\u2060-\u2064\ufeff]")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")

# Possessive quantifiers (``*+``, ``{m,n}+``) everywhere: no piece can give back what it matched, so a long run
# of spaces or brackets costs one pass, not a backtracking search (a 1 MB message must stay cheap).
_LINK = re.compile(
    r"(!?)\[((?:[^\[\]\\]|\\[\s\S]){0,2000}+)\]\([ \t]*+\n?+[ \t]*+"
    r"(<[^<>\n]{0,4000}+>|(?:[^\s()\\]|\\\S|\((?:[^\s()\\]|\\\S){0,4000}+\)){0,4000}+)"
    r"(?:\s++(?:\"(?:[^\"\\]|\\[\s\S]){0,2000}+\"|'(?:[^'\\]|\\[\s\S]){0,2000}+'|\((?:[^()\\]|\\[\s\S]){0,2000}+\)))?"
    r"[ \t]*+\n?+[ \t]*+\)"
)
_LINK_OPENER = re.compile(r"\](?=\(|:)")
# What may follow ``](`` / ``]:`` up to where a scheme must have ended: a scheme is letters, digits and ``+.-``
# (here possibly as entities or escapes), never whitespace, brackets or parentheses. Stopping there keeps the
# backstop linear on input like ``](](](…``, and no padding can push the colon out of sight.
_MAX_HEAD = 4000
_TARGET_HEAD = re.compile(rf"[ \t]*+\n?+[ \t]*+<?+([^\s()<>\[\]]{{0,{_MAX_HEAD}}}+)")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]{0,4000})>")


def is_allowed_url(url: str, *, markdown: bool = True, percent: bool = False) -> bool:
    """True for http/https/mailto and relative targets; False for any other scheme.

    ``markdown`` decodes Markdown escapes and entities first (a raw link target); ``percent`` also
    percent-decodes (an href that went through a URL normalizer), so a refused scheme cannot hide either way.
    """
    if markdown:
        url = html.unescape(_ESCAPED.sub(r"\1", url))
    if percent:
        url = unquote(url)
    url = _URL_JUNK.sub("", url).lstrip("<").lower()
    match = _SCHEME.match(url)
    return match is None or match.group(1) in ALLOWED_SCHEMES


def flatten_markdown_links(text: str) -> str:
    """Markdown ``text`` with every link to a refused target turned into plain text (see the module doc)."""
    if "<" in text and ":" in text:
        text = _AUTOLINK.sub(lambda m: m.group(0) if is_allowed_url(m.group(1)) else m.group(1), text)
    if "]" not in text:
        return text
    if "](" in text:
        text = _LINK.sub(_flatten_one, text)
    return _LINK_OPENER.sub(lambda m: _backstop(text, m), text)


def _flatten_one(match: re.Match[str]) -> str:
    target = match.group(3)
    if target.startswith("<"):
        target = target[1:-1]
    return match.group(0) if is_allowed_url(target) else match.group(2)


def _backstop(text: str, match: re.Match[str]) -> str:
    head = _TARGET_HEAD.match(text, match.end() + 1)  # past the "(" or ":"; always matches
    target = head.group(1) if head else ""
    if len(target) >= _MAX_HEAD:  # padded beyond what we read: assume the worst (a backslash costs nothing)
        return "]\\"
    if ":" not in target and "&" not in target:  # no scheme, not even an encoded one: the common case
        return "]"
    return "]" if is_allowed_url(target) else "]\\"
