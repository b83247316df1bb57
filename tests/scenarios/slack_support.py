"""The Slack scenario rig: the bot as `kbbot run` composes it (``open_runtime`` + ``open_slack``), served over
real HTTP on 127.0.0.1, talking to the fake Slack Web API and the fake Perfect Wiki.

Everything is the real thing: AskService, the Perfect Wiki backend, the search index (synced at start, for the
402 fallback), the ThreadSaver with SQLite map and outbox in the test's tmp dir. The rig only records what the
adapter hands the saver, and can script an answer the fake wiki cannot produce.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from kbbot.adapters.slack import SlackBot, SlackOptions
from kbbot.backends.http import RetryPolicy
from kbbot.config import Settings
from kbbot.core.ask import AskService, QueueListener
from kbbot.core.models import Answer, Question, SavedPage, Thread
from kbbot.core.ports import FeedbackStore, RateLimiter
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.runtime import open_runtime, open_slack
from kbbot.store.limiter import TokenRateLimiter
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


class RecordingSaver:
    """The real ThreadSaver, remembering each Thread it was handed so tests can inspect what Slack produced."""

    def __init__(self, saver: ThreadSaver) -> None:
        self.inner = saver
        self.saved: list[Thread] = []

    async def save(self, thread: Thread, title: str | None = None, tags: Sequence[str] | None = None) -> SavedPage:
        self.saved.append(thread)
        return await self.inner.save(thread, title=title, tags=tags)


class ScriptedAsk:
    """An AskService stand-in for answers the fake wiki cannot produce (e.g. 20,000 characters), or an error
    every question raises."""

    def __init__(self, real: AskService, answer: Answer | Exception) -> None:
        self._real = real
        self.answer = answer
        self.questions: list[Question] = []

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        self.questions.append(question)
        if isinstance(self.answer, Exception):
            raise self.answer
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
    feedback: FeedbackStore
    ask: AskService
    saver: RecordingSaver
    limiter: RateLimiter
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

    async def quiet(self) -> None:
        """Wait until the work the test started is done: the listeners Bolt runs after its ack (a few loop
        turns let those just created start), then the adapter's drain of everything in flight. "Nothing else
        happened" is then a fact, not a hope after a sleep."""
        for _ in range(20):
            await asyncio.sleep(0)
        await self.bot.drain()

    async def wait_responses(self, url: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.slack.wait_responses, url, count, timeout)


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


@functools.cache
def _certificates() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def loopback_client(timeout: float = 30) -> httpx.AsyncClient:
    """The test's own HTTP client (to the bot's endpoint on 127.0.0.1). One certificate store for all of
    them: loading it is most of a client's cost, and these talk plain HTTP anyway."""
    return httpx.AsyncClient(timeout=timeout, verify=_certificates())


#: Retry queued saves within a fraction of a second in tests.
FAST_RETRY = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, poll_interval=0.05, lease_seconds=30)
#: Retry the wiki's 5xx after a millisecond, not production's half second and more (the attempts are the same).
FAST_HTTP_RETRY = RetryPolicy(backoff_base=0.001, backoff_max=0.01)


@asynccontextmanager
async def serve_events(routes: Iterable[web.AbstractRouteDef]) -> AsyncIterator[str]:
    """The adapter's HTTP routes served on a free loopback port; yields the Events API URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def slack_rig(
    *,
    options: SlackOptions | None = None,
    scripted: Answer | Exception | None = None,
    data_dir: Path | None = None,
    limiter: TokenRateLimiter | None = None,
) -> AsyncIterator[Rig]:
    """``limiter`` replaces the (practically unlimited) budget from the settings, e.g. to make questions queue."""
    with FakeSlack() as slack, FakePerfectWiki() as pw:
        seed_workspace(slack)
        seed_wiki(pw)
        settings = Settings(
            perfectwiki_api_token=pw.token, perfectwiki_base_url=pw.url,
            perfectwiki_page_url_template="https://wiki.example/page/{id}",
            perfectwiki_rate_per_second=1000, perfectwiki_rate_per_minute=100_000,
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
            # The autouse clean_env fixture runs each test in its own tmp dir, so the default lands there.
            kbbot_data_dir=data_dir or Path.cwd() / ".kbbot", save_default_tags=("slack",), cache_ttl_seconds=600,
        )
        async with (
            open_runtime(settings, limiter=limiter, save_retry=FAST_RETRY, http_retry=FAST_HTTP_RETRY) as rt,
            loopback_client() as http,
        ):
            await rt.syncer.sync()
            saver = RecordingSaver(rt.saver)
            ask = ScriptedAsk(rt.ask, scripted) if scripted is not None else rt.ask
            async with open_slack(rt, ask=ask, saver=saver, options=options) as service, rt.saver:
                assert rt.stack.limiter is not None
                async with serve_events(service.routes) as events_url:
                    yield Rig(slack=slack, pw=pw, bot=service.bot, events_url=events_url,
                              http=http, feedback=rt.stores.feedback, ask=rt.ask, saver=saver,
                              limiter=rt.stack.limiter)
                    await service.drain()
