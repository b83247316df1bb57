"""The one startup function: builds every part from Settings, opens and closes them in order.

Commands and adapters receive the :class:`Runtime` and never construct clients, stores or backends themselves,
so there is exactly one ``httpx.AsyncClient``, one rate limiter per token and one set of stores per process.
Opening the runtime makes no network call (a local knowledgebase is re-indexed from disk, which is cheap).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from kbbot import __version__
from kbbot.config import Settings
from kbbot.core.ask import AskService
from kbbot.core.ports import KnowledgeBase, MetricsSink, RateLimiter
from kbbot.core.threads import ThreadSaver
from kbbot.errors import ConfigError
from kbbot.ops.metrics import Metrics
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.index import SearchIndex, index_path
from kbbot.search.sync import IndexSyncer
from kbbot.store.ai_budget import LimitsAiBudget, parse_limit
from kbbot.store.datadir import describe_failure, prepare_data_dir, warn_if_old_default_left_behind
from kbbot.store.factory import Stores, build_stores
from kbbot.store.namespace import namespace_from_settings


@dataclass
class Runtime:
    """Everything a command or adapter needs, built once."""

    settings: Settings
    console: Console
    stores: Stores
    metrics: Metrics
    kb: KnowledgeBase
    index: SearchIndex
    syncer: IndexSyncer
    ask: AskService
    saver: ThreadSaver

    def configured_adapters(self) -> list[str]:
        s = self.settings
        adapters = []
        if s.slack_bot_token is not None:
            adapters.append("slack")
        if s.discord_bot_token is not None:
            adapters.append("discord")
        return adapters


def build_knowledgebase(
    settings: Settings, http: httpx.AsyncClient, stores: Stores, metrics: MetricsSink
) -> tuple[KnowledgeBase, RateLimiter | None]:
    """The backend ``settings.backend`` names (credentials were validated by Settings), and its token's
    rate limiter (one per process, on the shared storage when Redis is configured)."""
    backend = settings.backend
    if backend == "perfectwiki":
        from kbbot.backends.perfectwiki import PerfectWikiBackend

        limiter = stores.rate_limiter(settings)
        return PerfectWikiBackend.from_settings(settings, http, limiter=limiter, metrics=metrics), limiter
    if backend == "mathub":
        from kbbot.backends.mathub import MatHubBackend

        return (
            MatHubBackend.from_settings(settings, http, limiter_storage=stores.limiter_storage, metrics=metrics),
            None,
        )
    from kbbot.backends.local import LocalBackend

    return LocalBackend(settings.local_kb_dir, settings.kbbot_data_dir / "pages"), None


@asynccontextmanager
async def open_runtime(settings: Settings, *, console: Console | None = None) -> AsyncIterator[Runtime]:
    """Build and open every part; close them in reverse order on exit (also on errors and Ctrl-C)."""
    data = settings.kbbot_data_dir
    prepare_data_dir(data)  # owner-only, and a clear line now if it is full, read-only or not ours
    warn_if_old_default_left_behind(data, explicit="kbbot_data_dir" in settings.model_fields_set)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=settings.request_timeout_seconds,
                headers={"User-Agent": f"kbbot/{__version__}"},
                follow_redirects=False,
            )
        )
        metrics = Metrics()
        # Memory/SQLite, or Redis with REDIS_URL (then every replica shares them); pinged once when Redis.
        try:
            stores = await build_stores(settings, namespace=namespace_from_settings(settings))
        except sqlite3.DatabaseError as exc:
            raise describe_failure(data, exc) or _unusable_database(data, exc) from None
        stack.push_async_callback(stores.aclose)
        kb, limiter = build_knowledgebase(settings, http, stores, metrics)
        if limiter is not None:
            stack.push_async_callback(limiter.aclose)  # its own Redis connection, when REDIS_URL is set
        stack.push_async_callback(kb.aclose)

        index = await SearchIndex(index_path(data, settings.backend), engine=settings.search_engine).open()
        stack.push_async_callback(index.aclose)
        syncer = IndexSyncer(kb, index)
        if kb.kind == "local":
            # Reading a folder of Markdown is cheap and local: keep the index current on every start.
            await syncer.sync()

        budget = _ai_budget(settings, stores)
        if budget is not None:
            stack.push_async_callback(budget.aclose)
        ask = AskService(
            kb=kb,
            budget=budget,
            cache=stores.cache,
            flights=stores.flights,
            quota=stores.quota,
            fallback=SearchAnswerer(index, min_relevance=settings.search_min_relevance),
            limiter=limiter,
            max_chars=settings.question_max_chars,
            metrics=metrics,
        )
        saver = ThreadSaver(
            kb,
            stores.thread_map,
            stores.outbox,
            page_max_chars=settings.page_max_chars,
            default_tags=settings.save_default_tags,
            metrics=metrics,
        )
        yield Runtime(
            settings=settings,
            console=console or Console(),
            stores=stores,
            metrics=metrics,
            kb=kb,
            index=index,
            syncer=syncer,
            ask=ask,
            saver=saver,
        )


def _ai_budget(settings: Settings, stores: Stores) -> LimitsAiBudget | None:
    """Per-asker and per-channel limits on billed AI answers: only a Perfect Wiki token is billed. Counted per
    knowledgebase (one token, one quota), in Redis when REDIS_URL is set so replicas share the counts."""
    if settings.perfectwiki_api_token is None or settings.backend != "perfectwiki":
        return None
    user_limits = parse_limit(settings.ai_user_limit)
    if not user_limits and settings.ai_channel_daily_limit is None:
        return None
    return LimitsAiBudget(
        user_limits=user_limits,
        channel_per_day=settings.ai_channel_daily_limit,
        storage=stores.limiter_storage,
        namespace=namespace_from_settings(settings) + "ai-budget",
    )


def _unusable_database(data: Path, exc: sqlite3.DatabaseError) -> ConfigError:
    """A damaged, foreign or unwritable SQLite file under the data dir: one clear line instead of a traceback."""
    # Never "delete it" or "move it away": the file may hold queued saves.
    return ConfigError(f"a database file in KBBOT_DATA_DIR {data} cannot be used ({exc}); keep it and check it")
