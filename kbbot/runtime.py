"""The one startup function: builds every part from Settings, opens and closes them in order.

Commands and adapters receive the :class:`Runtime` and never construct clients, stores or backends themselves,
so there is exactly one ``httpx.AsyncClient``, one rate limiter per token and one set of stores per process.
Opening the runtime makes no network call (a local knowledgebase is re-indexed from disk, which is cheap).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from rich.console import Console

from kbbot import __version__
from kbbot.backends.base import KnowledgeBase
from kbbot.config import Settings
from kbbot.core.ask import AskService
from kbbot.core.ports import Deduper, FeedbackStore, RateLimiter
from kbbot.core.threads import ThreadSaver
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.index import SearchIndex, index_path
from kbbot.search.sync import IndexSyncer
from kbbot.store.limiter import TokenRateLimiter
from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryQuotaGate, TTLAnswerCache
from kbbot.store.sqlite_feedback import SqliteFeedbackStore
from kbbot.store.sqlite_threads import DEFAULT_FILENAME, SqliteOutbox, SqliteSavedThreadMap

FEEDBACK_FILENAME = "feedback.sqlite3"


@dataclass
class Runtime:
    """Everything a command or adapter needs, built once."""

    settings: Settings
    console: Console
    http: httpx.AsyncClient
    kb: KnowledgeBase
    limiter: RateLimiter | None
    index: SearchIndex
    syncer: IndexSyncer
    ask: AskService
    saver: ThreadSaver
    feedback: FeedbackStore
    deduper: Deduper

    def configured_adapters(self) -> list[str]:
        s = self.settings
        adapters = []
        if s.slack_bot_token is not None:
            adapters.append("slack")
        if s.discord_bot_token is not None:
            adapters.append("discord")
        return adapters


def build_knowledgebase(settings: Settings, http: httpx.AsyncClient, limiter: RateLimiter | None) -> KnowledgeBase:
    """The backend ``settings.backend`` names (credentials were validated by Settings)."""
    backend = settings.backend
    if backend == "perfectwiki":
        from kbbot.backends.perfectwiki import PerfectWikiBackend

        assert limiter is not None
        return PerfectWikiBackend.from_settings(settings, http, limiter=limiter)
    if backend == "mathub":
        from kbbot.backends.mathub import MatHubBackend

        return MatHubBackend.from_settings(settings, http)
    from kbbot.backends.local import LocalBackend

    return LocalBackend(settings.local_kb_dir, settings.kbbot_data_dir / "pages")


@asynccontextmanager
async def open_runtime(settings: Settings, *, console: Console | None = None) -> AsyncIterator[Runtime]:
    """Build and open every part; close them in reverse order on exit (also on errors and Ctrl-C)."""
    data = settings.kbbot_data_dir
    data.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=settings.request_timeout_seconds,
                headers={"User-Agent": f"kbbot/{__version__}"},
                follow_redirects=False,
            )
        )
        limiter = TokenRateLimiter.from_settings(settings) if settings.backend == "perfectwiki" else None
        kb = build_knowledgebase(settings, http, limiter)
        stack.push_async_callback(kb.aclose)

        index = await SearchIndex(index_path(data, settings.backend)).open()
        stack.push_async_callback(index.aclose)
        syncer = IndexSyncer(kb, index)
        if kb.kind == "local":
            # Reading a folder of Markdown is cheap and local: keep the index current on every start.
            await syncer.sync()

        cache = TTLAnswerCache(ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries)
        ask = AskService(
            kb=kb,
            cache=cache,
            flights=LocalSingleFlight(),
            quota=MemoryQuotaGate(probe_seconds=settings.quota_probe_seconds),
            fallback=SearchAnswerer(index),
            limiter=limiter,
            max_chars=settings.question_max_chars,
        )
        thread_map = SqliteSavedThreadMap(data / DEFAULT_FILENAME)
        stack.push_async_callback(thread_map.aclose)
        outbox = SqliteOutbox(data / DEFAULT_FILENAME)
        stack.push_async_callback(outbox.aclose)
        saver = ThreadSaver(
            kb,
            thread_map,
            outbox,
            page_max_chars=settings.page_max_chars,
            default_tags=settings.save_default_tags,
        )
        feedback = SqliteFeedbackStore(data / FEEDBACK_FILENAME)
        stack.push_async_callback(feedback.aclose)

        yield Runtime(
            settings=settings,
            console=console or Console(),
            http=http,
            kb=kb,
            limiter=limiter,
            index=index,
            syncer=syncer,
            ask=ask,
            saver=saver,
            feedback=feedback,
            deduper=MemoryDeduper(),
        )
