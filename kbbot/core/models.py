"""Neutral models that every adapter and backend speaks: plain, immutable dataclasses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Source(StrEnum):
    """Where an answer came from. Shown to users, so they know whether an AI wrote it."""

    AI = "ai"
    CACHE = "cache"
    SEARCH = "search"


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asked: a platform user id and a display name."""

    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Question:
    """A question as an adapter hands it to the core.

    ``conversation_key`` identifies where the answer goes (e.g. Slack ``C1:1700000000.0001``); ``platform`` is
    ``slack``, ``discord``, ``terminal`` or ``cli`` and only labels metrics and logs. ``places`` are where it
    was asked, most specific first (Slack: the channel; Discord: channel, parent channel, server) and
    ``direct`` marks a direct message: they pick the knowledgebase when several are configured. ``earlier``
    are the questions kbbot already answered in the same thread, oldest first: a follow-up that leans on them
    goes upstream as a standalone question (:mod:`kbbot.core.followups`).
    """

    text: str
    asker: Asker | None = None
    conversation_key: str = ""
    platform: str = "cli"
    places: tuple[str, ...] = ()
    direct: bool = False
    earlier: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PageRef:
    """A link to a wiki page. ``url`` is None when no page URL template is configured."""

    id: str
    title: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "url": self.url}


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer in Markdown, with the pages it came from.

    ``empty`` mirrors the API's ``isEmptyResult`` (nothing in the wiki matched). ``notice`` is an extra line the
    adapters show above the answer, e.g. that AI answers are paused because the quota is used up.
    ``relevance`` (0–1) is how well a search answer's quote covers the question (None for AI answers): auto-answer
    channels answer only above their own, higher threshold (:meth:`confident`).
    """

    text: str
    related_pages: tuple[PageRef, ...] = ()
    source: Source = Source.AI
    empty: bool = False
    notice: str | None = None
    relevance: float | None = None
    #: The knowledgebase that answered, when several are configured (shown in the answer's context line).
    knowledgebase: str | None = None
    #: The standalone question the wiki was asked, when it differs from what was typed: a follow-up carrying
    #: its thread's topic (shown with the answer, so people see why it answered what it did).
    asked: str | None = None

    def confident(self, min_relevance: float) -> bool:
        """Worth saying unasked: not empty, and a search answer at least ``min_relevance`` relevant."""
        if self.empty or not self.text.strip():
            return False
        return self.relevance is None or self.relevance >= min_relevance

    def to_json(self) -> dict[str, Any]:
        """The ``kbbot ask --json`` contract: exactly these five keys (``notice``: null or the line shown to
        people above the answer, e.g. that AI answers are paused or that the wiki could not be searched)."""
        return {
            "answer": self.text,
            "related_pages": [page.to_json() for page in self.related_pages],
            "source": self.source.value,
            "empty": self.empty,
            "notice": self.notice,
        }


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a chat message, kept as a link."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """One chat message, its text already converted to the neutral Markdown dialect by the adapter.

    ``timestamp`` is a timezone-aware ISO 8601 string (UTC), so that rendering needs no platform knowledge.
    ``id`` is the platform's message id (Slack ``ts``, Discord snowflake) when known: merging imports of the
    same conversation keeps one copy of each message.
    """

    author_name: str
    author_id: str
    timestamp: str
    text: str
    attachments: tuple[Attachment, ...] = ()
    edited: bool = False
    deleted: bool = False
    id: str = ""


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation to save as a page.

    ``key`` is stable per conversation (Slack ``channel:thread_ts``, Discord thread id) and is what makes saving
    idempotent: saving the same key again updates the same page.
    """

    platform: str
    key: str
    messages: tuple[ThreadMessage, ...]
    permalink: str | None = None
    channel_name: str | None = None
    title_hint: str | None = None
    #: Where the thread is (as :attr:`Question.places`): its channel's knowledgebase keeps the page.
    places: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SavedPage:
    """The result of saving a thread. ``pending`` means it was queued in the outbox and will be retried."""

    id: str | None
    url: str | None
    created: bool
    pending: bool = False
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``kbbot save --json`` contract."""
        return {"id": self.id, "url": self.url, "created": self.created}


# --- pages, as backends list, return and change them ------------------------------------------------------

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
