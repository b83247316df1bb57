"""A KnowledgeBase double for index sync tests: pages in memory, versioned or not, every call recorded.

``versioned=True`` lists ``version``/``updated_at`` like MatHub and local folders; ``versioned=False`` lists
only id/title/tags like Perfect Wiki. Calls record their ``priority``, so tests can check what sync passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from kbbot.core.models import AiAnswer, ContentFormat, KbInfo, Page, PageChange, PageRef, PageSummary
from kbbot.core.ports import Priority
from kbbot.errors import NotFound, Unsupported


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class _Base:
    kind = "memory"
    supports_ai = False

    def __init__(
        self,
        *,
        content_format: ContentFormat = "markdown",
        versioned: bool = True,
        url_template: str | None = "https://wiki.example/{id}",
    ) -> None:
        self.content_format = content_format
        self.versioned = versioned
        self.url_template = url_template
        self.pages: dict[str, Page] = {}
        self.calls: list[Call] = []
        #: page id → exception raised by get_page (once per entry in the list, then normal again)
        self.failures: dict[str, list[BaseException]] = {}
        self._next_id = 1

    # --- test controls ----------------------------------------------------------------------
    def put(self, page_id: str, title: str, content: str, tags: tuple[str, ...] = (), slug: str | None = None) -> Page:
        old = self.pages.get(page_id)
        version = (old.version or 0) + 1 if old else 1
        page = Page(
            id=page_id,
            title=title,
            content=content,
            tags=tags,
            slug=slug,
            version=version,
            updated_at=f"2026-01-01T00:00:{version:02d}Z",
        )
        self.pages[page_id] = page
        return page

    def gets(self) -> list[str]:
        return [call.args[0] for call in self.calls if call.method == "get_page"]

    # --- protocol ---------------------------------------------------------------------------
    async def info(self) -> KbInfo:
        return KbInfo(name="Memory wiki")

    async def _list(self, **kwargs: Any) -> list[PageSummary]:
        self.calls.append(Call("list_pages", (), kwargs))
        return [
            PageSummary(
                id=p.id,
                title=p.title,
                tags=p.tags,
                slug=p.slug,
                version=p.version if self.versioned else None,
                updated_at=p.updated_at if self.versioned else None,
            )
            for p in self.pages.values()
        ]

    async def _get(self, page_id: str, **kwargs: Any) -> Page:
        self.calls.append(Call("get_page", (page_id,), kwargs))
        queued = self.failures.get(page_id)
        if queued:
            raise queued.pop(0)
        if page_id not in self.pages:
            raise NotFound("No such page.", status=404)
        page = self.pages[page_id]
        return page if self.versioned else replace(page, version=None, updated_at=None)

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        page_id = f"new{self._next_id}"
        self._next_id += 1
        self.put(page_id, title, content, tags)
        return PageRef(id=page_id, title=title, url=self.page_url(page_id, title))

    async def update_page(self, page_id: str, change: PageChange) -> None:
        page = self.pages[page_id]
        self.put(
            page_id,
            change.title or page.title,
            change.content or page.content,
            change.tags if change.tags is not None else page.tags,
        )

    async def delete_page(self, page_id: str) -> None:
        self.pages.pop(page_id)

    async def query(self, question: str) -> AiAnswer:
        raise Unsupported("no AI here")

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        return self.url_template.format(id=page_id) if self.url_template else None

    async def aclose(self) -> None:
        return None


class SyncKnowledgeBase(_Base):
    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        return await self._list(priority=priority)

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page:
        return await self._get(page_id, priority=priority)
