"""Page content → plain text for the index: HTML (Perfect Wiki) via selectolax, Markdown (MatHub, local) via
markdown-it-py's token stream.

The text keeps paragraph breaks (blank lines) so the answerer can quote whole passages, keeps code as
Markdown code (fences, backticks: see :mod:`kbbot.search.fences`), and keeps ``$…$`` LaTeX verbatim so a formula
stays readable instead of being eaten as Markdown emphasis. kbbot's own marker lines on saved-thread pages are
bookkeeping, not content, and are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from selectolax.lexbor import LexborHTMLParser

from kbbot.core.page_block import strip_markers
from kbbot.search.fences import fence, inline_code

#: ``slug → title`` for MatHub-style ``[[slug]]`` links; returns None for an unknown slug.
LinkResolver = Callable[[str], str | None]

# Private-use characters mark the breaks we insert, so they survive the whitespace collapsing of HTML text.
_PARA = "\ue000"
_LINE = "\ue001"
_MATH = "\ue002"
_CELL = "\ue003"
_SPACE = "\ue004"  # a space inside <pre> that whitespace collapsing must keep (indentation)

_BLOCK_TAGS = (
    "p,div,h1,h2,h3,h4,h5,h6,blockquote,table,ul,ol,section,article,header,footer,aside,nav,figure,"
    "details,summary,dl,hr,main"
)
_LINE_TAGS = "li,tr,dt,dd,br"
_DROP_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "svg", "head"]

_WS = re.compile(r"[ \t\r\n\f\v]+")
_MANY_BREAKS = re.compile(r"\n{3,}")
_SPACE_AROUND_BREAK = re.compile(r" *\n *")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML page: blocks become paragraphs, list items lines, ``<pre>`` keeps
    lines."""
    if not html or not html.strip():
        return ""
    tree = LexborHTMLParser(html)
    root = tree.body or tree.root
    if root is None:
        return ""
    tree.strip_tags(_DROP_TAGS)
    for pre in root.css("pre"):
        code = fence(pre.text(deep=True).strip("\n"))
        pre.replace_with(_PARA + code.replace(" ", _SPACE).replace("\n", _LINE) + _PARA)
    for node in root.css(_LINE_TAGS):
        prefix = "- " if node.tag == "li" else ""
        node.insert_before(_LINE + prefix)
        if node.tag != "br":
            node.insert_after(_LINE)
    for node in root.css(_BLOCK_TAGS):
        node.insert_before(_PARA)
        node.insert_after(_PARA)
    for cell in root.css("td,th"):
        cell.insert_after(_CELL)
    text = root.text(deep=True, separator="")
    return _finish(_WS.sub(" ", text))


_BREAK_RUN = re.compile(f"[ {_PARA}{_LINE}{_CELL}]*[{_PARA}{_LINE}][ {_PARA}{_LINE}{_CELL}]*")
_TRAILING_CELL = re.compile(f" *{_CELL} *$")


def _finish(text: str) -> str:
    # A run of inserted breaks is one paragraph break if any block ended there, else one line break; a cell
    # separator at the end of a row is dropped.
    text = _BREAK_RUN.sub(lambda m: "\n\n" if _PARA in m.group(0) else "\n", text)
    text = _TRAILING_CELL.sub("", text).replace(_CELL, " | ")
    text = _SPACE_AROUND_BREAK.sub("\n", text).replace(_SPACE, " ")
    return _MANY_BREAKS.sub("\n\n", text).strip()


# Display math first, then inline math with pandoc's rule (no space inside the dollars, no digit after the
# closing one) so "$5 and $10" stays prose.
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]*?\S)\$(?![\d$])")
_WIKI_LINK = re.compile(r"\[\[([^\[\]|\n]{1,200})(?:\|([^\[\]\n]{1,200}))?\]\]")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.DOTALL)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough")


def markdown_to_text(markdown: str, *, resolve_link: LinkResolver | None = None) -> str:
    """Readable plain text of a Markdown (+ LaTeX) page.

    ``[[slug]]`` becomes the linked page's title (via ``resolve_link``) or the slug in words;
    ``[[slug|label]]`` becomes the label. A leading YAML front matter block is dropped (its title/tags are
    indexed separately).
    """
    if not markdown or not markdown.strip():
        return ""
    source = _FRONT_MATTER.sub("", markdown, count=1)

    def link_text(match: re.Match[str]) -> str:
        slug, label = match.group(1).strip(), match.group(2)
        if label:
            return label.strip()
        return (resolve_link(slug) if resolve_link else None) or slug.replace("-", " ").replace("_", " ")

    source = _WIKI_LINK.sub(link_text, source)
    maths: list[str] = []

    def protect(match: re.Match[str]) -> str:
        maths.append(match.group(0))
        return f"{_MATH}{len(maths) - 1}{_MATH}"

    source = _INLINE_MATH.sub(protect, _DISPLAY_MATH.sub(protect, source))
    text = _tokens_to_text(_markdown().parse(source))
    if maths:
        text = re.sub(f"{_MATH}(\\d+){_MATH}", lambda m: maths[int(m.group(1))], text)
    return text


def _tokens_to_text(tokens: list[Token]) -> str:
    out: list[str] = []
    for token in tokens:
        kind = token.type
        if kind == "inline":
            out.append(_inline_text(token.children or []))
        elif kind in ("fence", "code_block"):
            out.append("\n\n" + fence(token.content.strip("\n")) + "\n\n")
        elif kind == "html_block":
            out.append("\n\n" + html_to_text(token.content) + "\n\n")
        elif kind == "paragraph_close":
            # Tight list items hide their paragraphs: one line per item, not a blank line between.
            out.append("" if token.hidden else "\n\n")
        elif kind in ("heading_close", "blockquote_close", "table_close", "hr"):
            out.append("\n\n")
        elif kind == "list_item_open":
            out.append("\n- ")
        elif kind in ("bullet_list_close", "ordered_list_close"):
            out.append("\n\n")
        elif kind == "tr_close":
            out.append("\n")
        elif kind in ("th_close", "td_close"):
            out.append(" | ")
    text = "".join(out)
    lines = [line.rstrip(" |").rstrip() if " | " in line else line.rstrip() for line in text.split("\n")]
    return _MANY_BREAKS.sub("\n\n", "\n".join(lines)).strip()


def _inline_text(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        kind = child.type
        if kind == "text":
            parts.append(child.content)
        elif kind == "code_inline":
            parts.append(inline_code(child.content))
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "image":
            parts.append(child.content)
        elif kind == "html_inline" and child.content.lower().startswith("<br"):
            parts.append("\n")
    return "".join(parts)


def to_text(content: str, content_format: str, *, resolve_link: LinkResolver | None = None) -> str:
    """Plain text of ``content`` in a backend's ``content_format`` (``html`` or ``markdown``)."""
    content = strip_markers(content)
    if content_format == "html":
        return html_to_text(content)
    return markdown_to_text(content, resolve_link=resolve_link)
