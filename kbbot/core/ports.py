"""The small protocols the core depends on. Implementations live in ``kbbot.backends`` (knowledgebases),
``kbbot.store`` (memory/SQLite/Redis) and ``kbbot.search``; the composition root picks one per protocol and hands
it in, so the core never branches on which one it got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from kbbot.core.models import (
    AiAnswer,
    Answer,
    ContentFormat,
    KbInfo,
    Page,
    PageChange,
    PageRef,
    PageSummary,
    Question,
    SavedPage,
    Thread,
)

if TYPE_CHECKING:
    from kbbot.core.ask import AskStatus, QueueListener

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """The answer cache's size and this process's hits and misses (counted per question by AskService)."""

    size: int
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class AnswerCache(Protocol):
    """Answers by normalized question, with a TTL and a size bound."""

    async def get(self, key: str) -> Answer | None: ...

    async def set(self, key: str, answer: Answer) -> None: ...

    async def size(self) -> int: ...

    async def aclose(self) -> None: ...


class SingleFlight(Protocol):
    """Runs ``fn`` once per key at a time; concurrent callers with the same key share its result."""

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T: ...


@dataclass(frozen=True, slots=True)
class QuotaState:
    paused: bool
    #: Unix time of the next allowed probe while paused.
    next_probe_at: float | None = None


class QuotaGate(Protocol):
    """The 402 breaker. After :meth:`trip`, :meth:`allow` is True for at most one probe per interval."""

    async def allow(self) -> bool: ...

    async def trip(self) -> None: ...

    async def reset(self) -> None: ...

    async def state(self) -> QuotaState: ...


class Priority(StrEnum):
    """Who waits for a request slot: a person (``live``) or the index sync (``background``), which gets at most
    half of a token's budget so live questions are never starved."""

    LIVE = "live"
    BACKGROUND = "background"


class RateLimiter(Protocol):
    """One token's request budget, shared by every caller (and, with Redis, every replica)."""

    def slot(self, priority: Priority) -> AbstractAsyncContextManager[None]:
        """``async with limiter.slot(priority): send`` — waits for room, and counts the request until its
        answer is back."""
        ...

    def observe(self, left_second: int | None, left_minute: int | None) -> None:
        """Server hint from a response's ``rateLimit``: slow down when the budget is nearly gone."""
        ...

    def queued(self) -> int:
        """How many callers are waiting for a slot right now."""
        ...

    def estimate_wait(self, position: int, ready: Sequence[float] = ()) -> float:
        """Seconds until the caller at ``position`` in the queue has its answer (an estimate). ``ready[i]``:
        seconds from now until the ``i+1``-th caller comes to the limiter (held up before it); the rest are
        here now."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class KnowledgeBase(Protocol):
    """A wiki the bot reads, answers from and writes to. Backends own their HTTP client use, retries and rate
    limiting, and translate every failure into ``kbbot.errors``. Page ``content`` is in ``content_format``."""

    #: ``perfectwiki`` | ``mathub`` | ``local``
    kind: str
    content_format: ContentFormat
    #: True when :meth:`query` asks the wiki's own (billed) AI; False → answers come from the search index.
    supports_ai: bool

    async def info(self) -> KbInfo: ...

    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        """Every page. ``priority`` says who waits for it when the backend rate-limits its reads."""
        ...

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page: ...

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


class Answerer(Protocol):
    """Answers without the AI (full-text search, title match). Used for no-AI backends and the 402 fallback."""

    async def answer(self, question: str, *, limit: int = 3) -> Answer: ...

    async def not_found(self, question: str) -> Answer:
        """The honest "I couldn't find this in the wiki" (``empty``), with the closest pages it knows: the
        reply when the knowledgebase's AI found nothing (Perfect Wiki's ``isEmptyResult``)."""
        ...


class Deduper(Protocol):
    """Remembers keys (e.g. Slack ``event_id``) for a while; shared across replicas with Redis."""

    async def first_seen(self, key: str, ttl_seconds: int = 3600) -> bool:
        """True the first time ``key`` is seen within ``ttl_seconds``; False for every repeat."""
        ...


# --- what the core offers the adapters ----------------------------------------------------------------


class Asking(Protocol):
    """What every adapter (Slack, Discord, terminal, CLI) uses of :class:`kbbot.core.ask.AskService`."""

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer: ...

    async def status(self) -> AskStatus: ...


class Saving(Protocol):
    """What every adapter uses of :class:`kbbot.core.threads.ThreadSaver`. ``announce=False`` (imports, the
    CLI): a save queued now is not announced in the conversation when it lands later."""

    async def save(
        self, thread: Thread, title: str | None = None, tags: Sequence[str] | None = None, *, announce: bool = True
    ) -> SavedPage: ...


# --- conversations (follow-ups) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversation:
    """What kbbot remembers of a thread it answered in (see :mod:`kbbot.core.conversations`)."""

    #: The questions kbbot answered there, oldest first (the last few): the topic of follow-ups.
    questions: tuple[str, ...] = ()
    #: kbbot's last answer there was empty or got a 👎: the next person to answer may know better.
    needs_help: bool = False
    #: "@kbbot stop" or 🛑: replies there are no longer follow-ups.
    stopped: bool = False
    #: kbbot offered to save the thread (once per thread, also across restarts).
    save_offered: bool = False


class ConversationStore(Protocol):
    """Threads kbbot answered in, by thread key (``platform:…``), and its answer messages' keys → their thread.
    Durable (SQLite) or shared by every replica (Redis); entries expire after ``ttl_seconds`` untouched."""

    async def get(self, key: str) -> Conversation | None: ...

    async def put(self, key: str, conversation: Conversation, ttl_seconds: int) -> None: ...

    async def link(self, message_key: str, key: str, ttl_seconds: int) -> None:
        """Remember that the message ``message_key`` (one of kbbot's answers) belongs to thread ``key``."""
        ...

    async def thread_of(self, message_key: str) -> str | None: ...

    async def aclose(self) -> None: ...


# --- saving threads -----------------------------------------------------------------------------------


class SavedThreadMap(Protocol):
    """Durable map from a thread's key (``platform:conversation key``) to the ids of its saved pages.

    A thread longer than one page is saved as several parts; ``page_ids[0]`` is part 1. SQLite in
    ``kbbot.store.sqlite_threads``; a Redis implementation shares it across replicas.
    """

    async def get(self, key: str) -> tuple[str, ...] | None: ...

    async def put(self, key: str, page_ids: Sequence[str]) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OutboxPart:
    """One rendered page of a queued save."""

    title: str
    content: str


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A save that is on its way to the wiki, written down before the first API call.

    ``attempts`` counts API attempts since the key's last success and survives re-queueing with new content:
    when it is above 1, an earlier attempt may have created pages it never recorded (a crash between the API's
    success and the map update), so the saver looks for them by marker before creating anything.
    """

    key: str
    platform: str
    conversation_key: str
    digest: str
    title: str
    tags: tuple[str, ...]
    parts: tuple[OutboxPart, ...]
    #: Whether an update replaces the page's tags. False when the tags are only the defaults: a re-save then
    #: keeps whatever tags the page has (people may have tagged it in the wiki); new pages get the defaults.
    retag: bool = True
    #: Whether the platform adapter posts the page's link in the conversation when a queued save lands. False
    #: for imports: nobody in that (possibly years-old) Slack thread asked for the save.
    announce: bool = True
    revision: int = 0
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    #: How many of those attempts failed unexpectedly (a bug, an unreadable entry; see ``release(failed=…)``),
    #: kept like ``attempts``. Only these give up on a save: a wiki that was down for a day costs none.
    failures: int = 0
    #: Unix time this content was queued (None: queued by a version that did not record it).
    queued_at: float | None = None
    #: Why the stored entry could not be read back (then only ``key`` and the bookkeeping are real): the
    #: saver counts attempts on it like on any failing save, and gives up on it in the end.
    unreadable: str | None = None


class Outbox(Protocol):
    """Durable queue of saves, one entry per thread key (a newer save of the same thread replaces the older).

    Times are Unix seconds passed in by the caller, so that tests control the clock.
    """

    async def add(self, item: OutboxItem, *, now: float) -> int:
        """Insert or replace the entry for ``item.key``, due at ``now``; keeps ``attempts`` and ``failures``.
        Returns the new revision."""
        ...

    async def claim(self, key: str, *, now: float, lease_seconds: float) -> OutboxItem | None:
        """Take the entry for one attempt: counts the attempt and leases it, so no other worker or process
        tries it at the same time. None when there is no entry or another holder's lease has not expired."""
        ...

    async def release(
        self, key: str, *, next_attempt_at: float, error: str | None, failed: bool = False
    ) -> None:
        """The attempt failed (or was superseded): drop the lease and schedule the next attempt. ``failed``:
        it failed unexpectedly, count it in ``failures``."""
        ...

    async def remove(self, key: str, revision: int) -> bool:
        """The attempt succeeded: delete the entry if it is still at ``revision`` (False when a newer save
        arrived meanwhile; that one stays queued)."""
        ...

    async def pending(self) -> list[OutboxItem]:
        """Every queued entry, earliest due first. An entry that cannot be read back is listed as
        ``unreadable`` (also by :meth:`claim`), never raised: it must not hide the others."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    """Why a billed AI answer was refused: ``scope`` is ``user`` (the asker's own limit) or ``channel`` (the
    channel's daily budget); ``limit`` says it in words ("5 a minute"); ``retry_after`` is in seconds."""

    scope: str
    limit: str
    retry_after: float


class AiBudget(Protocol):
    """How many billed AI calls each asker (and optionally each channel) may have: one spend per AI call
    made on their behalf, just before it is sent (never for an answer that costs no call). With Redis, every
    replica draws from the same counts."""

    async def check(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
        """Why one more AI call for ``asker`` and ``channel`` would be refused, or None; counts nothing."""
        ...

    async def spend(self, asker: str | None, channel: str | None) -> BudgetRefusal | None:
        """Count one AI call for ``asker`` and ``channel`` (None: not limited), or say why not. Atomic across
        replicas: concurrent spends never go past a limit."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    helpful: int
    not_helpful: int


class FeedbackStore(Protocol):
    """👍/👎 on answers, kept durably and counted (shown in status, exported as metrics)."""

    async def record(
        self, *, platform: str, question: str, user_id: str, helpful: bool, channel: str = ""
    ) -> None:
        """One vote per user per question: voting again replaces the earlier vote. ``channel`` (where the
        answer was shown) is for the outcome log, which keeps no user id."""
        ...

    async def counts(self) -> FeedbackCounts: ...


class MetricsSink(Protocol):
    """Hooks the core, backends and adapters call to count what happens; ``kbbot.ops.metrics`` exports them.

    Plain synchronous calls with plain values, so that nothing outside ``kbbot.ops`` imports prometheus.
    Label values must come from small fixed sets (platform names, endpoint names, status codes), never from
    user text.
    """

    def question(self, platform: str, source: str, seconds: float) -> None:
        """One answered question: ``source`` is ``ai`` | ``cache`` | ``search`` | ``error``."""
        ...

    def cache(self, hit: bool) -> None:
        """One answer-cache lookup."""
        ...

    def upstream(self, endpoint: str, status: int | str, seconds: float) -> None:
        """One knowledgebase API call: ``status`` is the HTTP status, or ``error``/``timeout`` without one."""
        ...

    def save(self, outcome: str, seconds: float | None = None) -> None:
        """One thread save: ``created`` | ``updated`` | ``queued`` | ``failed``."""
        ...

    def quota_paused(self, paused: bool) -> None:
        """The 402 breaker opened (True) or closed again (False)."""
        ...


class NullMetrics:
    """The default :class:`MetricsSink`: counts nothing, so metrics stay optional everywhere."""

    def question(self, platform: str, source: str, seconds: float) -> None:
        return None

    def cache(self, hit: bool) -> None:
        return None

    def upstream(self, endpoint: str, status: int | str, seconds: float) -> None:
        return None

    def save(self, outcome: str, seconds: float | None = None) -> None:
        return None

    def quota_paused(self, paused: bool) -> None:
        return None
