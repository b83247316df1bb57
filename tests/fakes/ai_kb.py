"""An in-memory KnowledgeBase double whose only real method is the AI ``query``.

For the ask path (unit tests of :class:`kbbot.core.ask.AskService` and the core benchmark): it records every
question it was asked (so tests and benchmarks count billed upstream calls), answers after ``delay`` seconds,
and can answer empty or fail with a given error. The page methods are out of scope; the page-store doubles
are :mod:`tests.fakes.memory_kb` and :mod:`tests.fakes.sync_kb`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from kbbot.core.models import AiAnswer, KbInfo, Page, PageChange, PageRef, PageSummary
from kbbot.core.ports import Priority


@dataclass
class AiKnowledgeBase:
    """Counts AI queries; behaviour switched per test."""

    supports_ai: bool = True
    kind: str = "fake"
    content_format: str = "html"
    delay: float = 0.0
    fail_with: Exception | None = None
    empty: bool = False
    queries: list[str] = field(default_factory=list)

    async def query(self, question: str) -> AiAnswer:
        self.queries.append(question)
        # Always a real await (sleep(0) too): concurrent callers interleave here as with a network call.
        await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        return AiAnswer(
            text="" if self.empty else f"Answer to {question}",
            related_pages=(PageRef("p1", "Passwords", "https://wiki/p1"),),
            empty=self.empty,
        )

    async def info(self) -> KbInfo:
        return KbInfo(name="Engineering Docs")

    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        return []

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page:
        raise NotImplementedError

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        raise NotImplementedError

    async def update_page(self, page_id: str, change: PageChange) -> None:
        raise NotImplementedError

    async def delete_page(self, page_id: str) -> None:
        raise NotImplementedError

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        return None

    async def aclose(self) -> None:
        return None
