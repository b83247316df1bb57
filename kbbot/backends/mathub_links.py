"""Page URLs from ``MATHUB_PAGE_URL_TEMPLATE`` (``{slug}``, ``{id}``), for the MatHub backend's ``page_url``.

(``[[slug]]`` links in page text are the search index's business: it indexes them as the linked page's title.)
"""

from __future__ import annotations

import string
from urllib.parse import quote


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
