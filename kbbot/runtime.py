"""The composition root: the one place that turns :class:`Settings` into running parts.

`kbbot run`, every CLI command and the test rigs open the bot here. Settings are read here (and by the stores'
factory) and nowhere else: backends, limiters and adapters get plain values. Everything opened is pushed on one
``AsyncExitStack``, so it is closed exactly once, last opened first, also on errors and Ctrl-C::

    Settings ─▶ httpx client · metrics · stores ─▶ KnowledgebaseStack ─▶ adapters (Slack, Discord), on demand
                                                  (backend + its token's limiter, index, syncer, AskService,
                                                   ThreadSaver)

The environment names one knowledgebase; a ``KBBOT_CONFIG`` file (:mod:`kbbot.knowledgebases`) several: then
each gets its own :func:`open_stack` — and its own HTTP client and stores (cache, saved-thread map, outbox,
Redis namespace) — reporting to the one metrics, and the adapters talk to a :class:`KnowledgebaseRouter`.
What is upstream's per token is one per token: knowledgebases on one token share its rate limiter, its
monthly AI quota count and its 402 breaker.
Opening the runtime makes no network call (a local knowledgebase is re-indexed from disk, which is cheap).
Backends and adapters are imported only when configured.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from rich.console import Console

from kbbot import __version__
from kbbot.config import Settings
from kbbot.core.ask import AskService
from kbbot.core.conversations import Conversations
from kbbot.core.fairness import AskerQueue, pacer
from kbbot.core.outcomes import OutcomeRecorder, RecordingFeedback
from kbbot.core.ports import Asking, KnowledgeBase, MetricsSink, QuotaGate, RateLimiter, Saving
from kbbot.core.routing import ChoiceStore, KnowledgebaseRouter
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.errors import ConfigError
from kbbot.knowledgebases import Knowledgebases, single
from kbbot.ops.metrics import Metrics
from kbbot.reports.digest import GapsReport
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.fallback import IndexFallback
from kbbot.search.index import SearchIndex, index_path
from kbbot.search.sync import IndexSyncer
from kbbot.store.ai_budget import LimitsAiBudget, parse_limit
from kbbot.store.datadir import describe_failure, prepare_data_dir, warn_if_old_default_left_behind
from kbbot.store.factory import Stores, build_stores
from kbbot.store.namespace import namespace_from_settings

if TYPE_CHECKING:
    import discord
    import httpx

    from kbbot.adapters.discord.client import DiscordOptions
    from kbbot.adapters.services import ChatServices
    from kbbot.adapters.slack import SlackCredentials, SlackOptions, SlackService
    from kbbot.backends.http import RetryPolicy
    from kbbot.ops.dashboard import Dashboard
    from kbbot.ops.shutdown import InFlight


@dataclass(frozen=True, slots=True)
class KnowledgebaseStack:
    """One knowledgebase and everything that serves it."""

    kb: KnowledgeBase
    #: The token's request budget (None: the backend has no rate limit worth queueing for).
    limiter: RateLimiter | None
    index: SearchIndex
    syncer: IndexSyncer
    ask: AskService
    saver: ThreadSaver
    #: What became of its questions, its billed AI calls and quota forecast (``kbbot gaps``, ``/admin``).
    outcomes: OutcomeRecorder
    #: Its configured name (``default`` for the environment's one knowledgebase), its settings and stores.
    name: str
    settings: Settings
    stores: Stores


@dataclass(frozen=True)
class Runtime:
    """Everything a command or adapter needs, built once by :func:`open_runtime`.

    ``stack`` (and ``settings``, ``stores``) are the knowledgebase a command works on: ``--kb NAME``, else the
    default route. ``stacks`` are all of them; adapters ask and save through ``router``.
    """

    settings: Settings
    console: Console
    stores: Stores
    metrics: Metrics
    stack: KnowledgebaseStack
    stacks: dict[str, KnowledgebaseStack]
    router: KnowledgebaseRouter
    knowledgebases: Knowledgebases

    @property
    def all_stacks(self) -> list[KnowledgebaseStack]:
        return list(self.stacks.values())

    @property
    def asking(self) -> Asking:
        """What adapters ask: the router when several knowledgebases are configured."""
        return self.router if len(self.stacks) > 1 else self.stack.ask

    @property
    def saving(self) -> Saving:
        return self.router if len(self.stacks) > 1 else self.stack.saver

    @property
    def kb(self) -> KnowledgeBase:
        return self.stack.kb

    @property
    def index(self) -> SearchIndex:
        return self.stack.index

    @property
    def syncer(self) -> IndexSyncer:
        return self.stack.syncer

    @property
    def ask(self) -> AskService:
        return self.stack.ask

    @property
    def saver(self) -> ThreadSaver:
        return self.stack.saver

    def conversations(self) -> Conversations:
        """The threads kbbot answered in (follow-ups), in the stores of this runtime's knowledgebase."""
        return Conversations(self.stores.conversations, self.stores.deduper)

    def chat_services(
        self, in_flight: InFlight | None = None, *, ask: Asking | None = None, saver: Saving | None = None
    ) -> ChatServices:
        """What the chat adapters serve people with; ``ask``/``saver`` let a test rig put a recorder in between."""
        from kbbot.adapters.services import ChatServices

        return ChatServices(
            ask=ask or self.asking, saver=saver or self.saving, feedback=self.stores.feedback,
            deduper=self.stores.deduper, in_flight=in_flight, router=self.router, gaps=self.gaps(),
            conversations=self.conversations(),
        )

    @property
    def outcomes(self) -> OutcomeRecorder:
        return self.stack.outcomes

    def gaps(self) -> GapsReport:
        """The questions no knowledgebase could answer, over all of them (``/kb gaps``, the weekly digest)."""
        return GapsReport(*(stack.outcomes for stack in self.all_stacks))

    def dashboards(self) -> dict[str, Dashboard]:
        """What ``GET /admin`` shows, one per knowledgebase (the default first)."""
        from kbbot.ops.dashboard import Dashboard

        stacks = [self.stack, *(s for s in self.all_stacks if s is not self.stack)]
        return {
            stack.name: Dashboard(
                outcomes=stack.outcomes, feedback=stack.stores.feedback,
                saves=self.metrics.save_counts,
                title=f"kbbot ({stack.kb.kind})" if len(stacks) == 1 else f"kbbot: {stack.name} ({stack.kb.kind})",
            )
            for stack in stacks
        }

    def configured_adapters(self) -> list[str]:
        s = self.settings
        adapters = []
        if s.slack_bot_token is not None:
            adapters.append("slack")
        if s.discord_bot_token is not None:
            adapters.append("discord")
        return adapters


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    console: Console | None = None,
    limiter: RateLimiter | None = None,
    save_retry: SaveRetryPolicy | None = None,
    http_retry: RetryPolicy | None = None,
    knowledgebases: Knowledgebases | None = None,
    kb: str | None = None,
    quota_clock: Callable[[], float] = time.time,
) -> AsyncIterator[Runtime]:
    """Build and open every part; close them in reverse order on exit (also on errors and Ctrl-C).

    ``knowledgebases`` (default: the environment's one) are all opened; ``kb`` names the one a command works
    on (``--kb``; default: the default route). ``limiter``, ``save_retry`` and ``http_retry`` are for test rigs: a
    budget with windows of a fraction of a second (for the selected knowledgebase), saves and wiki requests
    retried within one; ``quota_clock`` is the in-process 402 breaker's wall clock (its probe interval).
    """
    kbs = knowledgebases or single(settings)
    selected = kbs.pick(kb)
    data = settings.kbbot_data_dir
    prepare_data_dir(data)  # owner-only, and a clear line now if it is full, read-only or not ours
    warn_if_old_default_left_behind(data, explicit="kbbot_data_dir" in settings.model_fields_set)
    async with AsyncExitStack() as exit_stack:
        # The default first: the scrape-time refresh of the shared 402 state is the default's.
        names = tuple(dict.fromkeys([kbs.routes.default, *kbs.settings]))
        metrics = Metrics(knowledgebases=names if kbs.named else ())
        stacks: dict[str, KnowledgebaseStack] = {}
        limiters: dict[tuple[str, str], RateLimiter] = {}
        breakers: dict[tuple[str, str], QuotaGate] = {}
        tls: ssl.SSLContext | None = None
        for name, kb_settings in kbs.settings.items():
            kb_data = kb_settings.kbbot_data_dir
            if kb_data != data:
                prepare_data_dir(kb_data)
            # Each wiki its own HTTP client (connection pool), so one slow wiki cannot hold the connections the
            # others need; a local folder needs none (making one is a third of `kbbot ask`'s start-up).
            http = None
            if kb_settings.backend != "local":
                tls = tls or _tls_context()
                http = await exit_stack.enter_async_context(_http_client(kb_settings, tls))
            # Memory/SQLite, or Redis with REDIS_URL (then every replica shares them); pinged once when Redis.
            try:
                stores = await build_stores(
                    kb_settings, namespace=namespace_from_settings(kb_settings), quota_clock=quota_clock
                )
            except sqlite3.DatabaseError as exc:
                raise describe_failure(kb_data, exc) or _unusable_database(kb_data, exc) from None
            exit_stack.push_async_callback(stores.aclose)
            _share_breaker(kb_settings, stores, breakers)
            stacks[name] = await open_stack(
                kb_settings, exit_stack, http=http, stores=stores, metrics=metrics.for_kb(name),
                limiter=limiter if name == selected else None, save_retry=save_retry, name=name, limiters=limiters,
                http_retry=http_retry,
                named=kbs.named,
            )
            # Every adapter's 👎 also lands in the outcome log as "downvoted".
            stores.feedback = RecordingFeedback(stores.feedback, stacks[name].outcomes, stores.deduper)
        _share_quotas(stacks.values())
        choices = await _choices(settings, kbs, exit_stack) if len(stacks) > 1 else None
        router = KnowledgebaseRouter(
            {name: s.ask for name, s in stacks.items()},
            {name: s.saver for name, s in stacks.items()},
            default=kbs.routes.default,
            routes={"slack": kbs.routes.slack, "discord": kbs.routes.discord},
            choices=choices,
            named=kbs.named,
        )
        stack = stacks[selected]
        yield Runtime(
            settings=stack.settings, console=console or Console(), stores=stack.stores, metrics=metrics,
            stack=stack, stacks=stacks, router=router, knowledgebases=kbs,
        )


async def _choices(settings: Settings, kbs: Knowledgebases, exit_stack: AsyncExitStack) -> ChoiceStore:
    """Where people's `/kb use` choices live: Redis when REDIS_URL is set (every replica), else SQLite."""
    import hashlib
    import json

    from kbbot.store import choices

    store: ChoiceStore
    if settings.redis_url is not None and settings.redis_url.get_secret_value():
        from kbbot.store.namespace import ROOT
        from kbbot.store.redis_store import connect_redis

        # One hash per set of knowledgebases (a name means something only within its file).
        identity = json.dumps([namespace_from_settings(s) for s in kbs.settings.values()])
        key = f"{ROOT}routes-{hashlib.sha256(identity.encode()).hexdigest()[:16]}:choices"
        from kbbot.store.failover import FailoverChoices, RedisHealth

        client = await connect_redis(settings.redis_url.get_secret_value())
        store = FailoverChoices(choices.RedisChoices(client, key), RedisHealth())  # a DM is answered in an outage
    else:
        store = choices.SqliteChoices(settings.kbbot_data_dir / choices.FILENAME)
    exit_stack.push_async_callback(store.aclose)
    return store


def _tls_context() -> ssl.SSLContext:
    """What every httpx client verifies servers with by default (certifi; SSL_CERT_FILE/SSL_CERT_DIR honoured).
    Loaded once per process and those two settings: a process that opens several runtimes (the test suite)
    would otherwise pay a certificate store load (~40 ms) for each."""
    return _tls_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def _http_client(settings: Settings, tls: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """``tls``: one certificate store for every client (loading it is most of a client's cost)."""
    import httpx

    return httpx.AsyncClient(
        verify=tls if tls is not None else True,
        timeout=settings.request_timeout_seconds,
        headers={"User-Agent": f"kbbot/{__version__}"},
        follow_redirects=False,
    )


async def open_stack(
    settings: Settings,
    exit_stack: AsyncExitStack,
    *,
    http: httpx.AsyncClient | None,
    stores: Stores,
    metrics: MetricsSink,
    limiter: RateLimiter | None = None,
    save_retry: SaveRetryPolicy | None = None,
    http_retry: RetryPolicy | None = None,
    name: str = "default",
    limiters: dict[tuple[str, str], RateLimiter] | None = None,
    named: bool = False,
) -> KnowledgebaseStack:
    """The backend ``settings.backend`` names (credentials were validated by Settings) and what serves it;
    each part's close goes on ``exit_stack``. ``limiters`` are shared by the stacks of one runtime: two
    knowledgebases with one token share that token's one budget."""
    limiters = {} if limiters is None else limiters
    token_key = _token_key(settings)
    shared = limiters.get(token_key) if token_key is not None and limiter is None else None
    kb, limiter = _knowledgebase(settings, http, stores, metrics, limiter or shared, http_retry)
    if limiter is not None and shared is None:
        exit_stack.push_async_callback(limiter.aclose)  # its own Redis connection, when REDIS_URL is set
        if token_key is not None:
            limiters[token_key] = limiter
    exit_stack.push_async_callback(kb.aclose)
    index = await SearchIndex(
        index_path(settings.kbbot_data_dir, settings.backend), engine=settings.search_engine
    ).open()
    exit_stack.push_async_callback(index.aclose)
    syncer = IndexSyncer(kb, index)
    if kb.kind == "local":
        # Reading a folder of Markdown is cheap and local: keep the index current on every start.
        await syncer.sync()
    budget = _ai_budget(settings, stores)
    if budget is not None:
        exit_stack.push_async_callback(budget.aclose)
    outcomes = OutcomeRecorder(
        stores.outcomes,
        # The configured name when KBBOT_CONFIG names knowledgebases; else the one knowledgebase's identity.
        knowledgebase=name if named else namespace_from_settings(settings).removeprefix("kbbot:").rstrip(":"),
        retention_days=settings.gaps_retention_days,
        quota_monthly=settings.perfectwiki_ai_quota_monthly if kb.supports_ai else None,
    )
    rate_second, rate_minute = settings.perfectwiki_rate_per_second, settings.perfectwiki_rate_per_minute
    ask = AskService(
        kb=kb,
        budget=budget,
        # Turns paced to the token's live budget (the limiter keeps a request of headroom per window): a
        # second's worth at once, the rest of the minute spread evenly (the choice: kbbot.core.fairness).
        turns=AskerQueue(pace=pacer(rate_minute - 1, min(rate_second - 1, (rate_minute - 1) // 2))),
        cache=stores.cache,
        flights=stores.flights,
        quota=stores.quota,
        fallback=IndexFallback(
            SearchAnswerer(index, min_relevance=settings.search_min_relevance), index, syncer, kind=kb.kind
        ),
        limiter=limiter if kb.supports_ai else None,
        max_chars=settings.question_max_chars,
        metrics=metrics,
        outcomes=outcomes,
    )
    saver = ThreadSaver(
        kb,
        stores.thread_map,
        stores.outbox,
        page_max_chars=settings.page_max_chars,
        default_tags=settings.save_default_tags,
        retry=save_retry,
        metrics=metrics,
    )
    return KnowledgebaseStack(
        kb=kb, limiter=limiter, index=index, syncer=syncer, ask=ask, saver=saver, outcomes=outcomes, name=name,
        settings=settings, stores=stores,
    )


def _token_key(settings: Settings) -> tuple[str, str] | None:
    """What a rate budget belongs to: the backend and its token."""
    from kbbot.store.namespace import fingerprint

    if settings.backend == "perfectwiki":
        return ("perfectwiki", fingerprint(settings.perfectwiki_api_token))
    if settings.backend == "mathub":
        return ("mathub", fingerprint(settings.mathub_api_key))
    return None


def _share_breaker(
    settings: Settings, stores: Stores, breakers: dict[tuple[str, str], QuotaGate]
) -> None:
    """A 402 says the token's monthly AI quota is gone, for every knowledgebase on that token: they all use
    the first one's breaker (in memory, or in Redis under its namespace: every replica opens the file's tables
    in the same order, so all find the same keys). One 402 pauses them all, one probe per interval asks for
    them all, and the probe that gets an answer resumes AI for them all."""
    key = _token_key(settings)
    if key is not None and settings.backend == "perfectwiki":
        stores.quota = breakers.setdefault(key, stores.quota)


def _share_quotas(stacks: Iterable[KnowledgebaseStack]) -> None:
    """Knowledgebases on one Perfect Wiki token draw on its one monthly AI quota (as on its one rate budget):
    each one's forecast counts the billed calls of all of them, each Redis namespace once (two tables of one
    token and URL share a namespace, so its count already holds both)."""
    by_token: dict[tuple[str, str], list[KnowledgebaseStack]] = {}
    for stack in stacks:
        key = _token_key(stack.settings)
        if key is not None and stack.kb.supports_ai:
            by_token.setdefault(key, []).append(stack)
    for group in by_token.values():
        for stack in group:
            seen, others = {stack.stores.namespace}, []
            for other in group:
                space = other.stores.namespace
                if other is not stack and (space is None or space not in seen):
                    others.append(other.outcomes)
                    seen.add(space)
            stack.outcomes.share_quota(*others)


def _knowledgebase(
    settings: Settings,
    http: httpx.AsyncClient | None,
    stores: Stores,
    metrics: MetricsSink,
    limiter: RateLimiter | None,
    retry: RetryPolicy | None = None,
) -> tuple[KnowledgeBase, RateLimiter | None]:
    """The backend and its token's one rate limiter, on the shared storage when Redis is configured."""
    if settings.backend == "perfectwiki":
        from kbbot.backends.perfectwiki import PerfectWikiBackend
        from kbbot.store.limiter import TokenRateLimiter

        assert http is not None  # every backend but a local folder has the client

        assert settings.perfectwiki_api_token is not None  # Settings checked the backend's credentials
        token = settings.perfectwiki_api_token.get_secret_value()
        limiter = limiter or TokenRateLimiter(
            token,
            per_second=settings.perfectwiki_rate_per_second,
            per_minute=settings.perfectwiki_rate_per_minute,
            storage=stores.limiter_storage,
        )
        kb = PerfectWikiBackend(
            http,
            token,
            limiter=limiter,
            base_url=settings.perfectwiki_base_url,
            page_url_template=settings.perfectwiki_page_url_template,
            timeout=settings.request_timeout_seconds,
            metrics=metrics,
            retry=retry,
        )
        return kb, limiter
    if settings.backend == "mathub":
        from kbbot.backends.mathub import MatHubBackend, build_write_limiter

        assert http is not None

        assert settings.mathub_api_key is not None and settings.mathub_base_url and settings.mathub_project
        api_key = settings.mathub_api_key.get_secret_value()
        limiter = limiter or build_write_limiter(
            api_key, settings.mathub_writes_per_minute, storage=stores.limiter_storage
        )
        mathub = MatHubBackend(
            http,
            api_key=api_key,
            base_url=settings.mathub_base_url,
            project=settings.mathub_project,
            page_url_template=settings.mathub_page_url_template,
            write_limiter=limiter,
            metrics=metrics,
        )
        return mathub, limiter
    from kbbot.backends.local import LocalBackend

    return LocalBackend(settings.local_kb_dir, settings.kbbot_data_dir / "pages"), None


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


# --- adapters -------------------------------------------------------------------------------------------------


def slack_credentials(settings: Settings) -> SlackCredentials:
    """How to reach Slack, as plain values: tokens, mode, API URL, timeout."""
    from kbbot.adapters.slack import SlackCredentials

    def secret(value: SecretStr | None) -> str:
        return value.get_secret_value() if value is not None else ""

    return SlackCredentials(
        bot_token=secret(settings.slack_bot_token),
        app_token=secret(settings.slack_app_token),
        signing_secret=secret(settings.slack_signing_secret),
        api_url=settings.slack_api_url,
        timeout_seconds=settings.request_timeout_seconds,
    )


def slack_options(settings: Settings) -> SlackOptions:
    from kbbot.adapters.slack import SlackOptions

    return SlackOptions(
        default_tags=tuple(settings.save_default_tags), question_max_chars=settings.question_max_chars,
        admin_users=tuple(settings.slack_admin_users),
    )


@asynccontextmanager
async def open_slack(
    rt: Runtime,
    *,
    ask: Asking | None = None,
    saver: Saving | None = None,
    options: SlackOptions | None = None,
    in_flight: InFlight | None = None,
) -> AsyncIterator[SlackService]:
    """The Slack adapter over ``rt``'s stack, in Socket Mode or HTTP mode; saved pages get their link posted.
    ``in_flight`` tracks every answer for the shutdown drain; ``ask``/``saver``/``options`` let a test rig put
    a recorder in between."""
    from kbbot.adapters.slack import slack_service

    async with slack_service(
        slack_credentials(rt.settings), rt.chat_services(in_flight, ask=ask, saver=saver),
        options=options or slack_options(rt.settings),
    ) as slack:
        for stack in rt.all_stacks:
            stack.saver.listen("slack", slack.bot.handlers.on_saved)
        yield slack


def discord_options(settings: Settings) -> DiscordOptions:
    """The Discord adapter's settings as plain values."""
    from kbbot.adapters.discord.client import DiscordOptions

    return DiscordOptions(
        data_dir=settings.kbbot_data_dir,
        guild_ids=settings.discord_guild_ids,
        guild_allowlist=settings.discord_guild_allowlist,
        save_roles=settings.discord_save_roles,
        save_threads=settings.discord_save_threads,
        auto_channels=settings.discord_auto_channels,
        auto_min_relevance=settings.auto_answer_min_relevance,
        require_message_content=settings.discord_require_message_content,
        shard_count=settings.discord_shard_count,
        api_url=settings.discord_api_url,
    )


def discord_client(
    rt: Runtime, *, in_flight: InFlight, client_options: Mapping[str, object] | None = None
) -> discord.Client:
    """The Discord adapter over ``rt``'s stack, ready for ``run_discord_client``; saved pages get their link
    posted. ``client_options`` go to the discord.py client (test rigs shrink ``guild_ready_timeout``)."""
    from kbbot.adapters.discord import build_discord_client, saved_poster

    client = build_discord_client(
        rt.chat_services(in_flight), options=discord_options(rt.settings), client_options=client_options
    )
    poster = saved_poster(client)
    for stack in rt.all_stacks:
        stack.saver.listen("discord", poster)
    return client
