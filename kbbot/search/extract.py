"""Page content → plain text for the index: HTML (Perfect Wiki) via selectolax, Markdown (MatHub, local) via
the syntax tree of markdown-it-pyrs (markdown-it's Rust port, by markdown-it-py's authors).

Markdown went through markdown-it-py's token stream before; that pure-Python parser was two thirds of a full
index build. The Rust port parses the same CommonMark (tables and strikethrough included) into a tree of the
same node kinds, and walking it costs a third of what markdown-it-py's parse did, for the same text.

The text keeps paragraph breaks (blank lines) so the answerer can quote whole passages, keeps code as
Markdown code (fences, backticks: see :mod:`kbbot.search.fences`), and keeps ``$…$`` LaTeX verbatim so a formula
stays readable instead of being eaten as Markdown emphasis. kbbot's own marker lines on saved-thread pages are
bookkeeping, not content, and are dropped. A list stays one block, one line per item: bullets as ``- ``,
numbered steps as ``1. ``, ``2. `` (the numbers are what makes "how do I…" steps readable), with code and
paragraphs inside an item as lines of that block.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it_pyrs import MarkdownIt
from markdown_it_pyrs import Node as MarkdownNode
from selectolax.lexbor import LexborHTMLParser
from selectolax.lexbor import LexborNode as Node

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
_ITEM = "\ue005"  # a list item's marker follows: breaks right after it are dropped

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
        # Inside a list item a code sample is lines of the item, not a paragraph that would end the list.
        brk = _LINE if _in_list_item(pre) else _PARA
        pre.replace_with(brk + code.replace(" ", _SPACE).replace("\n", _LINE) + brk)
    markers = _item_markers(root)
    for node in root.css(_LINE_TAGS):
        item = node.tag == "li" and node.text(deep=True).strip()
        node.insert_before(_LINE + (_ITEM + markers.get(node.mem_id, "- ") if item else ""))
        if node.tag != "br":
            node.insert_after(_LINE)
    for node in root.css(_BLOCK_TAGS):
        brk = _LINE if _in_list_item(node) else _PARA
        node.insert_before(brk)
        node.insert_after(brk)
    for cell in root.css("td,th"):
        cell.insert_after(_CELL)
    text = root.text(deep=True, separator="")
    return _finish(_WS.sub(" ", text))


def _in_list_item(node: Node) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == "li":
            return True
        parent = parent.parent
    return False


def _item_markers(root: Node) -> dict[int, str]:
    """``3. `` for the third item of an ``<ol>`` (honouring ``start``), by node; other items are bullets."""
    markers: dict[int, str] = {}
    for ol in root.css("ol"):
        try:
            number = int(ol.attributes.get("start") or 1)
        except ValueError:
            number = 1
        child = ol.child
        while child is not None:
            if child.tag == "li":
                markers[child.mem_id] = f"{number}. "
                number += 1
            child = child.next
    return markers


_BREAK_RUN = re.compile(f"[ {_PARA}{_LINE}{_CELL}]*[{_PARA}{_LINE}][ {_PARA}{_LINE}{_CELL}]*")
_TRAILING_CELL = re.compile(f" *{_CELL} *$")


_AFTER_MARKER = re.compile(f"{_ITEM}(\\d+\\. |- )[ {_PARA}{_LINE}]*")


def _finish(text: str) -> str:
    # The first block inside a list item starts on the marker's line ("1. Open it", not "1.\nOpen it").
    text = _AFTER_MARKER.sub(r"\1", text)
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
    text = _tree_text(_MARKDOWN.tree(source), source)
    if maths:
        text = re.sub(f"{_MATH}(\\d+){_MATH}", lambda m: maths[int(m.group(1))], text)
    return text


def _tree_text(root: MarkdownNode, source: str) -> str:
    walk = _Walk(source)
    walk.node(root)
    text = _LINE_RUN.sub("\n", "".join(walk.out))
    lines = [line.rstrip(" |").rstrip() if " | " in line else line.rstrip() for line in text.split("\n")]
    return _MANY_BREAKS.sub("\n\n", "\n".join(lines)).strip()


_LINE_RUN = re.compile(f"{_LINE}(?:[ \n]*{_LINE})*")
_ITEM_NUMBER = re.compile(rb"\s*(\d+)")
_BLOCK_CLOSE = frozenset(["heading", "lheading", "blockquote", "table", "hr"])
#: Text, and text that stands for itself (an entity, an escaped character, an autolink's address).
_TEXT = frozenset(["text", "text_special"])


class _Walk:
    """The page's text from its Markdown tree. (Tight list items have no paragraph node: one line each.)"""

    def __init__(self, source: str) -> None:
        self.out: list[str] = []
        self.lists = 0  # open lists: inside one, blocks are lines of the item and the list stays one paragraph
        self._source = source
        self._bytes: bytes | None = None  # node positions are byte offsets; encoded for numbered lists only

    def node(self, node: MarkdownNode) -> None:
        kind, out = node.name, self.out
        # Inside a list every break is a line break (the _LINE mark, runs of which become one "\n").
        block_end = _LINE if self.lists else "\n\n"
        if kind in _TEXT:
            out.append(node.meta["content"])
        elif kind == "code_inline":
            out.append(inline_code("".join(child.meta.get("content", "") for child in node.children)))
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "html_inline":
            if node.meta["content"].lower().startswith("<br"):
                out.append("\n")
        elif kind in ("fence", "code_block"):
            out.append(block_end + fence(node.meta["content"].strip("\n")) + block_end)
        elif kind == "html_block":
            out.append(block_end + html_to_text(node.meta["content"]) + block_end)
        elif kind in ("bullet_list", "ordered_list"):
            self.lists += 1
            for item in node.children:
                marker = self._number(item) if kind == "ordered_list" else "- "
                out.append(_LINE + "  " * (self.lists - 1) + marker)
                self.children(item)
            self.lists -= 1
            out.append(_LINE if self.lists else "\n\n")
        else:
            self.children(node)
            if kind == "paragraph" or kind in _BLOCK_CLOSE:
                out.append(block_end)
            elif kind == "trow":
                out.append("\n")
            elif kind == "tcell":
                out.append(" | ")

    def children(self, node: MarkdownNode) -> None:
        for child in node.children:
            self.node(child)

    def _number(self, item: MarkdownNode) -> str:
        """A numbered item's marker with its number as written ("1. 1. 1." stays so, like markdown-it-py)."""
        if self._bytes is None:  # the tree's positions are byte offsets
            self._bytes = self._source.encode("utf-8", "surrogatepass")
        number = _ITEM_NUMBER.match(self._bytes, item.srcmap[0]) if item.srcmap else None
        return f"{number.group(1).decode()}. " if number else "- "


def to_text(content: str, content_format: str, *, resolve_link: LinkResolver | None = None) -> str:
    """Plain text of ``content`` in a backend's ``content_format`` (``html`` or ``markdown``)."""
    content = strip_markers(content)
    if content_format == "html":
        return html_to_text(content)
    return markdown_to_text(content, resolve_link=resolve_link)
