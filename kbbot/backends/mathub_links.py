"""MatHub ``[[slug]]`` wiki links → Markdown links, and page URLs from ``MATHUB_PAGE_URL_TEMPLATE``.

Pure functions, used by the MatHub backend (``page_url``), by the search index when it extracts text from
MatHub pages, and by answers/snippets, so a user in Slack or Discord gets a clickable link instead of
``[[serre-spectral-sequence]]``.

LaTeX (``$K(G, n)$``, ``$$…$$``) is deliberately left exactly as written: it is readable as-is in every chat,
and wrapping it in inline code would break on ``$`` signs that are not math (prices) and on ``$$`` blocks that
span lines. Code spans and fenced code blocks are left untouched too: ``[[x]]`` inside code is code.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import quote

from kbbot.core.slugs import SLUG_PATTERN

# ``[[slug]]`` or ``[[slug|label]]``; the slug must look like a slug so nothing else (``[[../x]]``,
# ``[[javascript:…]]``) is ever turned into a link.
_WIKI_LINK = re.compile(r"\[\[\s*(" + SLUG_PATTERN + r")\s*(?:\|([^\[\]\n|]{1,200}))?\]\]", re.IGNORECASE)
# Fenced blocks (``` or ~~~) and inline code spans: split out so links inside code stay literal.
_CODE = re.compile(
    r"(^(?P<fence>```|~~~)[^\n]*\n.*?(?:^(?P=fence)[^\n]*$|\Z)|`[^`\n]+`)", re.DOTALL | re.MULTILINE
)
_MD_LABEL_SPECIAL = re.compile(r"([\\\[\]*_`<>])")


def page_url(template: str | None, *, page_id: str = "", slug: str | None = None) -> str | None:
    """``template`` with ``{slug}`` and ``{id}`` filled in (URL-quoted), or None.

    None when no template is set, or when it needs a value we do not have (a ``{slug}`` template for a page
    whose slug is unknown), so callers show the title without a broken link.
    """
    if not template:
        return None
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    values = {"slug": quote(slug or "", safe=""), "id": quote(page_id, safe="")}
    if any(name not in values or not values[name] for name in fields):
        return None
    return template.format(**values)


def render_wiki_links(
    text: str,
    url_template: str | None,
    *,
    titles: Mapping[str, str] | None = None,
    ids: Mapping[str, str] | None = None,
) -> str:
    """Turn every ``[[slug]]`` outside code into ``[Title](url)``.

    ``titles``/``ids`` map slugs to page titles/ids when the caller knows them (the index does), so the link
    reads "Serre Spectral Sequence" and ``{id}`` templates work. Without a usable URL the link becomes its
    label as plain text: still readable, never a dead link.
    """
    titles = titles or {}
    ids = ids or {}

    def replace(match: re.Match[str]) -> str:
        slug = match.group(1).lower()
        label = (match.group(2) or "").strip() or titles.get(slug) or slug
        label = _MD_LABEL_SPECIAL.sub(r"\\\1", label)
        url = page_url(url_template, page_id=ids.get(slug, ""), slug=slug)
        return f"[{label}]({url})" if url else label

    out: list[str] = []
    last = 0
    for code in _CODE.finditer(text):
        out.append(_WIKI_LINK.sub(replace, text[last : code.start()]))
        out.append(code.group(0))
        last = code.end()
    out.append(_WIKI_LINK.sub(replace, text[last:]))
    return "".join(out)


def linked_slugs(text: str) -> list[str]:
    """Every slug that ``text`` links to with ``[[…]]``, in order, without duplicates."""
    seen: dict[str, None] = {}
    for match in _WIKI_LINK.finditer(_CODE.sub("", text)):
        seen.setdefault(match.group(1).lower(), None)
    return list(seen)
