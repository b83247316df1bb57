"""The Slack scenario rig: the real Bolt app served over real HTTP on 127.0.0.1, talking to the fake Slack Web
API and — through the real AskService and Perfect Wiki backend — to the fake Perfect Wiki.

Saving goes through the real ThreadSaver (SQLite map and outbox in the test's tmp dir). Only the search index's
answerer (the 402 fallback) is a stand-in: a title match over the fake's pages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from kbbot.adapters.slack import SlackBot, SlackOptions, build_slack, slack_web_app, slack_web_client
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.config import Settings
from kbbot.core.ask import AskService, QueueListener
from kbbot.core.models import Answer, PageRef, Question, SavedPage, Source, Thread
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.store.limiter import TokenRateLimiter
from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryFeedbackStore, MemoryQuotaGate, TTLAnswerCache
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    SlackSigner,
    command_payload,
    event_envelope,
)

ALICE, BOB, MALLORY = "U0ALICE01", "U0BOB0001", "U0MALLORY"
GENERAL, SECRET, DM = "C0GENERAL", "G0SECRET1", "D0ALICE01"


class TitleSearch:
    """Stand-in for the search index's answerer (the 402 fallback): pages whose title shares a word."""

    def __init__(self, kb: PerfectWikiBackend) -> None:
        self._kb = kb

    async def answer(self, question: str, *, limit: int = 3) -> Answer:
        words = {w.strip("?.,!").lower() for w in question.split() if len(w) > 3}
        pages = [p for p in await self._kb.list_pages() if words & {w.lower() for w in p.title.split()}][:limit]
        if not pages:
            return Answer(text="", source=Source.SEARCH, empty=True)
        refs = tuple(PageRef(p.id, p.title, self._kb.page_url(p.id, p.title)) for p in pages)
        return Answer(text=f"These pages may help: {pages[0].title}", related_pages=refs, source=Source.SEARCH)

    async def not_found(self, question: str) -> Answer:
        related = (await self.answer(question)).related_pages
        return Answer(text="I couldn't find this in the wiki.", related_pages=related, empty=True)


class RecordingSaver:
    """The real ThreadSaver, remembering each Thread it was handed so tests can inspect what Slack produced."""

    def __init__(self, saver: ThreadSaver) -> None:
        self.inner = saver
        self.saved: list[Thread] = []

    async def save(self, thread: Thread, title: str | None = None, tags: Sequence[str] | None = None) -> SavedPage:
        self.saved.append(thread)
        return await self.inner.save(thread, title=title, tags=tags)


class ScriptedAsk:
    """An AskService stand-in for answers the fake wiki cannot produce (e.g. 20,000 characters)."""

    def __init__(self, real: AskService, answer: Answer) -> None:
        self._real = real
        self.answer = answer
        self.questions: list[Question] = []

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        self.questions.append(question)
        return self.answer

    async def status(self) -> Any:
        return await self._real.status()


@dataclass
class Rig:
    slack: FakeSlack
    pw: FakePerfectWiki
    bot: SlackBot
    events_url: str
    http: httpx.AsyncClient
    feedback: MemoryFeedbackStore
    ask: AskService
    saver: RecordingSaver
    limiter: TokenRateLimiter
    signer: SlackSigner = field(default_factory=SlackSigner)

    async def event(self, event: dict[str, Any], *, event_id: str | None = None,
                    retry_num: int | None = None) -> httpx.Response:
        body, headers = self.signer.event(event_envelope(event, event_id=event_id), retry_num=retry_num)
        return await self.http.post(self.events_url, content=body, headers=headers)

    async def command(self, text: str, *, user: str = ALICE, channel: str = GENERAL) -> tuple[httpx.Response, str]:
        response_url = self.slack.response_url()
        payload = command_payload(text, user=user, channel=channel, response_url=response_url)
        body, headers = self.signer.command(payload)
        return await self.http.post(self.events_url, content=body, headers=headers), response_url

    async def interaction(self, payload: dict[str, Any]) -> httpx.Response:
        body, headers = self.signer.interaction(payload)
        return await self.http.post(self.events_url, content=body, headers=headers)

    async def wait_responses(self, url: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.slack.responses(url)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} responses at {url}, wanted {count}")
            await asyncio.sleep(0.02)


def seed_workspace(slack: FakeSlack) -> None:
    slack.add_user(ALICE, "alice", real_name="Alice Adams")
    slack.add_user(BOB, "bob", real_name="Bob Brown")
    slack.add_user(MALLORY, "mallory", real_name="Mallory M")
    slack.add_channel(GENERAL, "general", members=[ALICE, BOB, MALLORY])
    slack.add_channel(SECRET, "secret-project", private=True, members=[ALICE, BOB])
    slack.add_channel(DM, "", im_user=ALICE)


def seed_wiki(pw: FakePerfectWiki) -> None:
    pw.seed_pages([
        {"title": "VPN setup", "content": "<p>Install WireGuard and import the **company** profile. Then connect.</p>",
         "tags": ["it"]},
        {"title": "Expense policy", "content": "<p>Submit receipts within 30 days.</p>", "tags": ["finance"]},
    ])


#: Retry queued saves within a fraction of a second in tests.
FAST_RETRY = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, poll_interval=0.05, lease_seconds=30)


@asynccontextmanager
async def slack_rig(
    *,
    options: SlackOptions | None = None,
    scripted: Answer | None = None,
    data_dir: Path | None = None,
    limiter: TokenRateLimiter | None = None,
) -> AsyncIterator[Rig]:
    """``limiter`` replaces the (practically unlimited) default budget, e.g. to make questions queue."""
    # The autouse clean_env fixture runs each test in its own tmp dir, so the default lands there.
    db = (data_dir or Path.cwd()) / "slack-threads.sqlite3"
    with FakeSlack() as slack, FakePerfectWiki() as pw:
        seed_workspace(slack)
        seed_wiki(pw)
        async with httpx.AsyncClient(timeout=30) as http:
            limiter = limiter or TokenRateLimiter(pw.token, per_second=1000, per_minute=100_000)
            kb = PerfectWikiBackend(http, pw.token, limiter=limiter, base_url=pw.url,
                                    page_url_template="https://wiki.example/page/{id}")
            ask = AskService(
                kb=kb, cache=TTLAnswerCache(ttl_seconds=600, max_entries=100), flights=LocalSingleFlight(),
                quota=MemoryQuotaGate(probe_seconds=3600), fallback=TitleSearch(kb), limiter=limiter,
            )
            thread_map, outbox = SqliteSavedThreadMap(db), SqliteOutbox(db)
            thread_saver = ThreadSaver(kb, thread_map, outbox, retry=FAST_RETRY, default_tags=("slack",))
            saver = RecordingSaver(thread_saver)
            feedback = MemoryFeedbackStore()
            client = slack_web_client(Settings(slack_bot_token=BOT_TOKEN, slack_api_url=slack.api_url))
            bot = build_slack(
                client=client, ask=ScriptedAsk(ask, scripted) if scripted else ask, saver=saver,
                feedback=feedback, deduper=MemoryDeduper(),
                options=options or SlackOptions(),
            )
            thread_saver.on_saved = bot.on_saved
            thread_saver.start()
            runner = web.AppRunner(slack_web_app(bot.app, signing_secret=SIGNING_SECRET), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            try:
                yield Rig(slack=slack, pw=pw, bot=bot, events_url=f"http://127.0.0.1:{port}/slack/events",
                          http=http, feedback=feedback, ask=ask, saver=saver, limiter=limiter)
                await bot.drain()
            finally:
                await runner.cleanup()
                await thread_saver.stop()
                await thread_map.aclose()
                await outbox.aclose()
