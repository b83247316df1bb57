"""Page content → plain text for the index: HTML (Perfect Wiki) via selectolax, Markdown (MatHub, local) via
the syntax tree of markdown-it-pyrs (markdown-it's Rust port, by markdown-it-py's authors).

The Markdown went through markdown-it-py's token stream before; being pure Python, its parser was two thirds of
a full index build. The Rust port parses the same CommonMark (tables and strikethrough included) to a tree
with the same node kinds, and walking it is several times cheaper than markdown-it-py's parse.

The text keeps paragraph breaks (blank lines) so the answerer can quote whole passages, keeps code as
Markdown code (fences, backticks: see :mod:`kbbot.search.fences`), and keeps ``$…$`` LaTeX verbatim so a formula
stays readable instead of being eaten as Markdown emphasis. kbbot's own marker lines on saved-thread pages are
bookkeeping, not content, and are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it_pyrs import MarkdownIt, Node
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


#: One parser for every thread: it keeps no state between documents.
_MARKDOWN = MarkdownIt("commonmark").enable_many(["table", "strikethrough"])


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
    text = _tree_text(_MARKDOWN.tree(source))
    if maths:
        text = re.sub(f"{_MATH}(\\d+){_MATH}", lambda m: maths[int(m.group(1))], text)
    return text


#: After these blocks comes a paragraph break. (Tight list items have no paragraph node: one line each.)
_BLOCK_ENDS = frozenset(["paragraph", "heading", "blockquote", "table", "hr", "bullet_list", "ordered_list"])


def _tree_text(root: Node) -> str:
    out: list[str] = []
    _walk(root, out)
    text = "".join(out)
    lines = [line.rstrip(" |").rstrip() if " | " in line else line.rstrip() for line in text.split("\n")]
    return _MANY_BREAKS.sub("\n\n", "\n".join(lines)).strip()


def _walk(node: Node, out: list[str]) -> None:
    kind = node.name
    if kind == "text":
        out.append(node.meta["content"])
        return
    if kind == "code_inline":
        out.append(inline_code("".join(child.meta.get("content", "") for child in node.children)))
        return
    if kind in ("fence", "code_block"):
        out.append("\n\n" + fence(node.meta["content"].strip("\n")) + "\n\n")
        return
    if kind == "html_block":
        out.append("\n\n" + html_to_text(node.meta["content"]) + "\n\n")
        return
    if kind == "html_inline":
        if node.meta["content"].lower().startswith("<br"):
            out.append("\n")
        return
    if kind == "softbreak":
        out.append(" ")
        return
    if kind == "hardbreak":
        out.append("\n")
        return
    if kind == "list_item":
        out.append("\n- ")
    for child in node.children:
        _walk(child, out)
    if kind in _BLOCK_ENDS:
        out.append("\n\n")
    elif kind == "trow":
        out.append("\n")
    elif kind == "tcell":
        out.append(" | ")


def to_text(content: str, content_format: str, *, resolve_link: LinkResolver | None = None) -> str:
    """Plain text of ``content`` in a backend's ``content_format`` (``html`` or ``markdown``)."""
    content = strip_markers(content)
    if content_format == "html":
        return html_to_text(content)
    return markdown_to_text(content, resolve_link=resolve_link)
