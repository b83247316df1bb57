"""The KnowledgeBase protocol every backend implements, and the page models they return.

Backends own their HTTP client use, retries and rate limiting, and translate every failure into
``kbbot.errors``. Page ``content`` is in the backend's native format (``content_format``): HTML for Perfect Wiki,
Markdown (+ LaTeX) for MatHub and local folders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from kbbot.core.models import PageRef

ContentFormat = Literal["html", "markdown"]


@dataclass(frozen=True, slots=True)
class PageSummary:
    """A page as listed. MatHub and local pages also carry ``version``/``updated_at``/``slug``."""

    id: str
    title: str
    tags: tuple[str, ...] = ()
    slug: str | None = None
    version: int | None = None
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A page with its full content in the backend's ``content_format``."""

    id: str
    title: str
    content: str
    tags: tuple[str, ...] = ()
    slug: str | None = None
    version: int | None = None
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class PageChange:
    """A partial update. Fields left None stay as they are.

    ``rewrite`` (instead of ``content``) computes new content from the page's latest content; backends with
    optimistic locking re-fetch and re-apply it after a version conflict, so another editor's text is kept.
    """

    title: str | None = None
    content: str | None = None
    tags: tuple[str, ...] | None = None
    rewrite: Callable[[str], str] | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class AiAnswer:
    """The knowledgebase's own AI answer (Perfect Wiki ``aiBotResponse``)."""

    text: str
    related_pages: tuple[PageRef, ...]
    empty: bool


@dataclass(frozen=True, slots=True)
class KbInfo:
    """What ``kbbot check`` shows: the knowledgebase name and the rate budget left, when the API says."""

    name: str
    requests_left_second: int | None = None
    requests_left_minute: int | None = None


@runtime_checkable
class KnowledgeBase(Protocol):
    """A wiki the bot reads, answers from and writes to."""

    #: ``perfectwiki`` | ``mathub`` | ``local``
    kind: str
    content_format: ContentFormat
    #: True when :meth:`query` asks the wiki's own (billed) AI; False → answers come from the search index.
    supports_ai: bool

    async def info(self) -> KbInfo: ...

    async def list_pages(self) -> list[PageSummary]: ...

    async def get_page(self, page_id: str) -> Page: ...

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef: ...

    async def update_page(self, page_id: str, change: PageChange) -> None: ...

    async def delete_page(self, page_id: str) -> None: ...

    async def query(self, question: str) -> AiAnswer:
        """Ask the wiki's AI. Raises ``Unsupported`` when ``supports_ai`` is False."""
        ...

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        """The page's web URL from the configured template, or None when no template is set."""
        ...

    async def aclose(self) -> None: ...
