"""An in-memory KnowledgeBase double for unit tests of the core (the wire-level fakes are the other modules).

It records every call, can fail the next N calls of a method with a given error, and can "crash" the caller
right after a successful create (raising ``SimulatedCrash`` after the page was stored), which is how the
saver's crash-between-create-and-map-update recovery is tested without killing a process.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from kbbot.core.models import AiAnswer, ContentFormat, KbInfo, Page, PageChange, PageRef, PageSummary
from kbbot.core.ports import Priority
from kbbot.errors import KbbotError, NotFound, Unsupported


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so no ``except Exception`` handler swallows it."""


@dataclass
class MemoryKnowledgeBase:
    content_format: ContentFormat = "html"
    kind: str = "memory"
    supports_ai: bool = False
    pages: dict[str, Page] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _failures: dict[str, list[BaseException]] = field(default_factory=lambda: defaultdict(list))
    _crash_after_create: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, method: str, error: BaseException, times: int = 1) -> None:
        self._failures[method].extend([error] * times)

    def crash_after_next_create(self) -> None:
        self._crash_after_create += 1

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        if self._failures[method]:
            raise self._failures[method].pop(0)

    def count(self, method: str) -> int:
        return self.calls.count(method)

    async def info(self) -> KbInfo:
        self._enter("info")
        return KbInfo(name="memory")

    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        self._enter("list_pages")
        return [PageSummary(p.id, p.title, p.tags) for p in self.pages.values()]

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page:
        self._enter("get_page")
        if page_id not in self.pages:
            raise NotFound("That page does not exist.", status=404)
        return self.pages[page_id]

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        self._enter("create_page")
        page_id = f"p{next(self._ids)}"
        self.pages[page_id] = Page(page_id, title, content, tuple(tags))
        if self._crash_after_create:
            self._crash_after_create -= 1
            raise SimulatedCrash()
        return PageRef(page_id, title, self.page_url(page_id, title))

    async def update_page(self, page_id: str, change: PageChange) -> None:
        self._enter("update_page")
        if page_id not in self.pages:
            raise NotFound("That page does not exist.", status=404)
        old = self.pages[page_id]
        content = change.content if change.content is not None else old.content
        if change.rewrite is not None:
            content = change.rewrite(old.content)
        self.pages[page_id] = Page(
            page_id,
            change.title if change.title is not None else old.title,
            content,
            change.tags if change.tags is not None else old.tags,
        )

    async def delete_page(self, page_id: str) -> None:
        self._enter("delete_page")
        if self.pages.pop(page_id, None) is None:
            raise NotFound("That page does not exist.", status=404)

    async def query(self, question: str) -> AiAnswer:
        raise Unsupported("no AI here")

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        return f"https://wiki.example.com/page/{page_id}"

    async def aclose(self) -> None:
        return None


__all__ = ["KbbotError", "MemoryKnowledgeBase", "SimulatedCrash"]
