"""Discord scenarios: the real discord.py client against the fake Discord (gateway websocket + REST).

Each test connects a client built by ``build_discord_client`` to ``tests/fakes/discord_api.py`` over
127.0.0.1 (HELLO → IDENTIFY → READY → GUILD_CREATE), injects real-shaped MESSAGE_CREATE / INTERACTION_CREATE
dispatches, and asserts on the REST calls the client made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import httpx
import pytest
from limits.aio.storage import MemoryStorage

from kbbot.adapters.discord import build_discord_client, run_discord_client, saved_poster
from kbbot.adapters.discord.feedback import DOWN_ID, UP_ID
from kbbot.adapters.discord.handlers import NO_HISTORY_ACCESS, NOT_IN_THREAD
from kbbot.adapters.discord.render import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    MESSAGE_EMBED_TOTAL,
    NOT_FOUND_LABEL,
    SEARCH_COLOUR,
)
from kbbot.adapters.services import ChatServices
from kbbot.backends.http import RetryPolicy
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.config import Settings
from kbbot.core.ask import QUOTA_NOTICE, AskService, QueueListener, QueuePosition
from kbbot.core.models import AiAnswer, Answer, PageRef, Question, SavedPage, Source, Thread
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.errors import ConfigError, QuotaExceeded, SaveError, Unauthorized, Unavailable
from kbbot.ops.shutdown import TaskTracker
from kbbot.runtime import discord_options
from kbbot.store.limiter import TokenRateLimiter
from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryFeedbackStore, MemoryQuotaGate, TTLAnswerCache
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.discord_api import GUILD_FORUM, MESSAGE_CONTENT, Call, FakeDiscord, discord_pointed_at
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.limiting import FakeLimiter, SimClock, settle, take

ZWSP = "\u200b"


# --------------------------------------------------------------------------------------------- doubles


@dataclass
class ScriptedAsk:
    """Stands in for AskService where the scenario is about Discord, not the pipeline."""

    answer: Answer = field(
        default_factory=lambda: Answer(
            text="Use the VPN portal.", related_pages=(PageRef("p1", "VPN setup", "https://wiki.example/p1"),)
        )
    )
    #: When given, every answer waits until it is set: a wiki exactly as slow as the test needs.
    held: asyncio.Event | None = None
    error: Exception | None = None
    #: Reported to ``on_queued`` twice (a noisy core): the adapter must still show it once.
    queue: QueuePosition | None = None
    questions: list[Question] = field(default_factory=list)

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        self.questions.append(question)
        if self.queue is not None and on_queued is not None:
            await on_queued(self.queue)
            await on_queued(self.queue)
        if self.held is not None:
            await self.held.wait()
        if self.error is not None:
            raise self.error
        return self.answer

    async def not_found(self, question: str) -> Answer:
        """As the search answerer's fallback: the reply when the wiki's AI found nothing."""
        return Answer(text="I couldn't find this in the wiki.", related_pages=self.answer.related_pages, empty=True)


@dataclass
class RecordingSaver:
    threads: list[Thread] = field(default_factory=list)
    calls: list[tuple[str | None, Sequence[str] | None]] = field(default_factory=list)

    async def save(
        self, thread: Thread, title: str | None = None, tags: Sequence[str] | None = None
    ) -> SavedPage:
        self.threads.append(thread)
        self.calls.append((title, tags))
        return SavedPage(
            id="42", url="https://wiki.example/42", created=True, title=title or thread.title_hint or ""
        )


# --------------------------------------------------------------------------------------------- harness


@dataclass
class World:
    fake: FakeDiscord
    guild: dict[str, Any]
    general: dict[str, Any]
    forum: dict[str, Any]
    ana: dict[str, Any]  # member who owns the threads
    bob: dict[str, Any]  # plain member
    kim: dict[str, Any]  # member with the "wiki-editors" role
    thread: dict[str, Any]
    post: dict[str, Any]  # forum post


@pytest.fixture
def world() -> Iterator[World]:
    with FakeDiscord() as fake, discord_pointed_at(fake):
        guild = fake.add_guild(name="Acme")
        editors = fake.add_role(guild, "wiki-editors")
        general = fake.add_channel(guild, "general")
        forum = fake.add_channel(guild, "help", kind=GUILD_FORUM)
        ana = fake.add_member(guild, "Ana", nick="Ana B.")
        bob = fake.add_member(guild, "Bob")
        kim = fake.add_member(guild, "Kim", roles=[editors])
        thread = fake.add_thread(guild, general, "VPN trouble", owner=ana)
        post = fake.add_thread(guild, forum, "How to deploy?", owner=ana)
        yield World(fake, guild, general, forum, ana, bob, kim, thread, post)


def services(*, ask: Any = None, saver: Any = None, feedback: Any = None, **optional: Any) -> ChatServices:
    """What the composition root would hand the adapter: a scripted knowledgebase, a recording saver."""
    return ChatServices(
        ask=ask or ScriptedAsk(), saver=saver or RecordingSaver(), feedback=feedback or MemoryFeedbackStore(),
        deduper=MemoryDeduper(), **optional,
    )


@contextlib.asynccontextmanager
async def running(
    world: World,
    *,
    ask: Any = None,
    saver: Any = None,
    feedback: Any = None,
    data_dir: Path,
    before_start: Callable[[discord.Client], None] | None = None,
    tracker: TaskTracker | None = None,
    gaps: Any = None,
    conversations: Any = None,
    **settings: Any,
) -> AsyncIterator[discord.Client]:
    client = build_discord_client(
        services(
            ask=ask, saver=saver, feedback=feedback, gaps=gaps, conversations=conversations,
            in_flight=tracker.work if tracker is not None else None,
        ),
        options=discord_options(Settings(**settings, kbbot_data_dir=data_dir)),
        client_options={"guild_ready_timeout": 0.05},
    )

    async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between shard IDENTIFYs (Discord's rate); the fake has no such limit."""

    client.before_identify_hook = identify_at_once  # type: ignore[method-assign]
    if before_start is not None:
        before_start(client)
    task = asyncio.create_task(client.start(world.fake.token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # startup failed: raise its error instead of timing out
        assert ready.done(), "client did not become ready"
        yield client
    finally:
        ready.cancel()
        await client.close()
        await asyncio.wait_for(task, 10)


def message_posts(fake: FakeDiscord, channel: dict[str, Any]) -> list[Call]:
    return fake.calls_to("POST", f"/channels/{channel['id']}/messages")


def callbacks(fake: FakeDiscord, interaction: dict[str, Any]) -> list[Call]:
    return fake.calls_to("POST", f"/interactions/{interaction['id']}/")


def followups(fake: FakeDiscord, interaction: dict[str, Any]) -> list[Call]:
    return fake.calls_to("POST", f"/webhooks/{fake.app_id}/{interaction['token']}")


def assert_no_ping(body: dict[str, Any]) -> None:
    assert body["allowed_mentions"]["parse"] == []
    assert body["allowed_mentions"].get("replied_user") in (False, None)
    wire = repr(body)
    assert "@everyone" not in wire and "@here" not in wire


# --------------------------------------------------------------------------------------------- asking


async def test_mention_in_channel_is_answered_as_a_reply(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk()
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general,
            world.ana,
            f"<@{fake.app_id}> how do I set up the <@{world.bob['user']['id']}> VPN?",
            mentions=[fake.bot_user, world.bob],
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))

    body = post.body
    assert body["message_reference"]["message_id"] == int(msg["id"])
    assert_no_ping(body)
    [embed] = body["embeds"]
    assert embed["description"] == "Use the VPN portal."
    assert "[VPN setup](https://wiki.example/p1)" in embed["fields"][0]["value"]
    assert embed["footer"]["text"] == "Answered by the wiki's AI"
    custom_ids = [c["custom_id"] for row in body["components"] for c in row["components"]]
    assert custom_ids == [UP_ID, DOWN_ID]
    # The question reached the core without the bot mention and with the other mention as a name.
    assert ask.questions[0].text == "how do I set up the @Bob VPN?"
    assert ask.questions[0].platform == "discord"
    assert fake.calls_to("POST", f"/channels/{world.general['id']}/typing"), "typing indicator while working"


async def test_stopping_bot_finishes_answers_in_flight_and_refuses_new_ones(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk(held=asyncio.Event())
    tracker = TaskTracker()
    async with running(world, ask=ask, data_dir=tmp_path, tracker=tracker):
        first = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", first)
        await fake.await_for(lambda: ask.questions)  # …and its answer is held at the wiki
        tracker.close()  # SIGTERM: no new work from here on
        late = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> wiki?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", late)
        await fake.await_for(lambda: message_posts(fake, world.general))  # refused while the first is in flight
        draining = asyncio.create_task(tracker.drain(5))
        await asyncio.sleep(0)  # the drain has begun before the wiki answers
        ask.held.set()
        assert await draining == 0  # the answer in flight finished; nothing was cut off
        await fake.await_for(lambda: len(message_posts(fake, world.general)) >= 2)
    posts = message_posts(fake, world.general)
    by_reply = {p.body["message_reference"]["message_id"]: p.body for p in posts}
    assert by_reply[int(first["id"])]["embeds"][0]["description"] == "Use the VPN portal."
    assert "restarting" in by_reply[int(late["id"])]["content"]
    assert len(ask.questions) == 1
    for body in by_reply.values():
        assert_no_ping(body)


async def test_mention_of_someone_with_backslashes_in_their_name_is_answered(world: World, tmp_path: Path) -> None:
    # Display names are chosen by users: a backslash in one (here a regex group reference and a trailing
    # backslash) must neither crash the answer nor change the name the wiki AI sees.
    fake = world.fake
    ask = ScriptedAsk()
    odd = fake.add_member(world.guild, "Odd", nick="C:\\new\\1 \\g<0> \\")
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general,
            world.ana,
            f"<@{fake.app_id}> what did <@{odd['user']['id']}> set up?",
            mentions=[fake.bot_user, odd],
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))

    assert_no_ping(post.body)
    assert ask.questions[0].text == "what did @C:\\new\\1 \\g<0> \\ set up?"


async def test_mention_of_the_bots_managed_role_counts_as_a_mention(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk()
    role = fake.bot_role(world.guild)
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(world.general, world.ana, f"<@&{role['id']}> where are the docs?")
        msg["mention_roles"] = [role["id"]]
        fake.dispatch("MESSAGE_CREATE", msg)
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))
    assert [q.text for q in ask.questions] == ["where are the docs?"]
    assert_no_ping(post.body)


async def test_plain_channel_message_without_mention_is_ignored(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk()
    async with running(world, ask=ask, data_dir=tmp_path):
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(world.general, world.ana, "how do I vpn?"))
        # A DM afterwards proves the first dispatch was processed (events are handled in order).
        dm = fake.dm_channel(world.bob["user"])
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, world.bob["user"], "ping?"))
        await fake.await_for(lambda: message_posts(fake, dm))
    assert [q.text for q in ask.questions] == ["ping?"]
    assert message_posts(fake, world.general) == []


async def test_dm_is_answered_in_the_dm(world: World, tmp_path: Path) -> None:
    fake = world.fake
    dm = fake.dm_channel(world.bob["user"])
    async with running(world, data_dir=tmp_path):
        msg = fake.message_payload(dm, world.bob["user"], "where is the holiday calendar?")
        fake.dispatch("MESSAGE_CREATE", msg)
        [post] = await fake.await_for(lambda: message_posts(fake, dm))
    assert post.body["message_reference"]["message_id"] == int(msg["id"])
    assert post.body["embeds"][0]["title"] == "where is the holiday calendar?"
    assert_no_ping(post.body)


async def test_bots_and_own_messages_are_ignored(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk()
    other_bot = fake.user_payload(fake.snowflake(), "otherbot", bot=True)
    dm = fake.dm_channel(world.bob["user"])
    async with running(world, ask=ask, data_dir=tmp_path):
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, other_bot, f"<@{fake.app_id}> hi?"))
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, fake.bot_user, "my own answer"))
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, world.bob["user"], "real question?"))
        await fake.await_for(lambda: message_posts(fake, dm))
    assert [q.text for q in ask.questions] == ["real question?"]


async def test_slash_ask_defers_within_3s_then_follows_up(world: World, tmp_path: Path) -> None:
    fake = world.fake
    # Discord wants the callback within 3 s; the wiki's AI may be slower. Here it answers only when released,
    # so a callback that comes before that cannot have waited for it.
    ask = ScriptedAsk(held=asyncio.Event())
    async with running(world, ask=ask, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="What is our VPN?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [callback] = await fake.await_for(lambda: callbacks(fake, interaction))
        assert followups(fake, interaction) == []  # the answer is still held
        ask.held.set()
        [follow] = await fake.await_for(lambda: followups(fake, interaction))
    assert callback.body["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE ("thinking…")
    assert fake.dispatched_at[interaction["id"]] < callback.at < follow.at
    assert follow.body["embeds"][0]["description"] == "Use the VPN portal."
    assert [c["custom_id"] for row in follow.body["components"] for c in row["components"]] == [UP_ID, DOWN_ID]
    assert_no_ping(follow.body)
    assert ask.questions[0].text == "What is our VPN?"
    assert ask.questions[0].asker is not None and ask.questions[0].asker.id == world.ana["user"]["id"]


async def test_mention_in_thread_and_forum_post_answers_in_it(world: World, tmp_path: Path) -> None:
    fake = world.fake
    async with running(world, data_dir=tmp_path):
        for channel in (world.thread, world.post):
            msg = fake.message_payload(
                channel, world.bob, f"<@{fake.app_id}> any docs?", mentions=[fake.bot_user]
            )
            fake.dispatch("MESSAGE_CREATE", msg)
            await fake.await_for(lambda ch=channel: message_posts(fake, ch))
        interaction = fake.interaction_payload(
            channel=world.post, member=world.bob, data=fake.slash("ask", question="x?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        await fake.await_for(lambda: followups(fake, interaction))
    assert message_posts(fake, world.general) == []
    for channel in (world.thread, world.post):
        [post] = message_posts(fake, channel)
        assert post.body["message_reference"]["channel_id"] == int(channel["id"])


async def test_feedback_buttons_are_recorded_and_counted_after_a_restart(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    store = MemoryFeedbackStore()
    async with running(world, feedback=store, data_dir=tmp_path) as client:
        for n in range(5):
            msg = fake.message_payload(
                world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user]
            )
            fake.dispatch("MESSAGE_CREATE", msg)
            await fake.await_for(lambda n=n: len(message_posts(fake, world.general)) == n + 1)
        answer = fake.channel_messages(world.general["id"])[-1]
        assert answer["author"]["id"] == str(fake.app_id)
        # One registered view serves every answer: nothing is kept per sent message.
        assert len(client.persistent_views) == 1
        click = fake.interaction_payload(
            channel=world.general,
            member=world.kim,
            kind=3,
            message=answer,
            data={"custom_id": UP_ID, "component_type": 2},
        )
        fake.dispatch("INTERACTION_CREATE", click)
        await fake.await_for(lambda: callbacks(fake, click))
    assert (await store.counts()).helpful == 1

    # A fresh client (a restart): the persistent view still routes clicks on the old answer.
    async with running(world, feedback=store, data_dir=tmp_path):
        votes = [(world.ana, UP_ID), (world.bob, UP_ID), (world.kim, DOWN_ID), (world.bob, UP_ID)]
        clicks = []
        for member, custom_id in votes:
            click = fake.interaction_payload(
                channel=world.general,
                member=member,
                kind=3,
                message=answer,
                data={"custom_id": custom_id, "component_type": 2},
            )
            clicks.append(click)
            fake.dispatch("INTERACTION_CREATE", click)
            await fake.await_for(lambda c=click: callbacks(fake, c))
    for click in clicks:
        [callback] = callbacks(fake, click)
        assert callback.body["type"] == 4
        assert callback.body["data"]["flags"] & 64  # ephemeral thanks
    counts = await store.counts()
    assert (counts.helpful, counts.not_helpful) == (
        2,
        1,
    )  # Kim's 👎 replaced her 👍; Bob's second 👍 his first


# --------------------------------------------------------------------------------------------- queue position


class SlowKB:
    kind = "perfectwiki"
    supports_ai = True

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def query(self, question: str) -> AiAnswer:
        await asyncio.sleep(self.delay)
        return AiAnswer(text="Use the VPN portal.", related_pages=(), empty=False)


def busy_service(limiter: Any, kb: Any = None) -> AskService:
    return AskService(
        kb=kb or SlowKB(),
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=3600),
        fallback=ScriptedAsk(),  # type: ignore[arg-type]  # reached only when the wiki's AI finds nothing
        limiter=limiter,
    )


def original_edits(fake: FakeDiscord, interaction: dict[str, Any]) -> list[Call]:
    return fake.calls_to("PATCH", f"/webhooks/{fake.app_id}/{interaction['token']}/messages/@original")


async def test_slash_ask_shows_the_queue_position_then_the_answer_replaces_it(
    world: World, tmp_path: Path
) -> None:
    """The real limiter, the real backend and the fake Perfect Wiki: the token's budget is used up and another
    caller is already waiting, so the asker is #2 in line."""
    fake = world.fake
    clock = SimClock()  # the windows on simulated time, which stands still while the asker is in line
    limiter = TokenRateLimiter(
        "queue-test", per_second=2, per_minute=2, headroom=1, second_window=0.25, minute_window=0.5,
        clock=clock, sleep=clock.sleep,
    )
    async with perfect_wiki(tmp_path, limiter=limiter) as (wiki, backend, _saver):
        service = busy_service(limiter, backend)
        async with running(world, ask=service, data_dir=tmp_path):
            await take(limiter)  # another question just used the budget…
            clock.hold()
            other = asyncio.create_task(take(limiter))  # …and one more is already waiting for it
            await settle(lambda: limiter.queued() == 1)
            interaction = fake.interaction_payload(
                channel=world.general, member=world.ana, data=fake.slash("ask", question="What is our VPN?")
            )
            fake.dispatch("INTERACTION_CREATE", interaction)
            await fake.await_for(lambda: original_edits(fake, interaction))  # the notice, while still in line
            assert wiki.stats().queries == 0
            clock.release()
            edits = await fake.await_for(
                lambda: (found := original_edits(fake, interaction)) and len(found) >= 2 and found, timeout=10
            )
            await other
        assert wiki.stats().queries == 1
    [callback] = callbacks(fake, interaction)
    assert callback.body["type"] == 5
    notice, answer = edits
    assert notice.body["content"] == "⏳ Lots of questions right now: you're #2 in line, about 1 s."
    assert notice.body["allowed_mentions"]["parse"] == []
    assert callback.at < notice.at < answer.at
    # The answer replaces the notice (which would otherwise linger above it); nothing else is sent.
    assert answer.body["content"] is None
    # The fake wiki has no pages, so its AI finds nothing (isEmptyResult): an honest "don't know".
    assert answer.body["embeds"][0]["footer"]["text"] == NOT_FOUND_LABEL
    assert [c["custom_id"] for row in answer.body["components"] for c in row["components"]] == [UP_ID, DOWN_ID]
    assert_no_ping(answer.body)
    assert followups(fake, interaction) == []


async def test_the_ais_dont_know_is_shown_as_one_with_the_closest_pages_not_as_an_ai_answer(
    world: World, tmp_path: Path
) -> None:
    """The real backend against the fake Perfect Wiki, whose AI answers isEmptyResult; the fallback's
    not_found gives the closest pages (as the search answerer does)."""
    fake = world.fake
    async with perfect_wiki(tmp_path) as (wiki, backend, _saver):
        wiki.ai_cannot_answer("on linux")
        async with running(world, ask=busy_service(None, backend), data_dir=tmp_path):
            ask = fake.message_payload(world.general, world.ana,
                                       f"<@{fake.app_id}> how do I set up the VPN on Linux?", mentions=[fake.bot_user])
            fake.dispatch("MESSAGE_CREATE", ask)
            [post] = await fake.await_for(lambda: message_posts(fake, world.general))
            # The handler is done when its 👀 is taken off again.
            await fake.await_for(lambda: fake.calls_to(
                "DELETE", f"/channels/{world.general['id']}/messages/{ask['id']}/reactions/"))
        assert wiki.stats().queries == 1
    [embed] = post.body["embeds"]
    assert embed["description"] == "I couldn't find this in the wiki."
    assert "[VPN setup](https://wiki.example/p1)" in embed["fields"][0]["value"]
    assert embed["footer"]["text"] == NOT_FOUND_LABEL  # not "Answered by the wiki's AI"
    assert embed["color"] == SEARCH_COLOUR  # not the AI answers' colour


async def test_slash_ask_with_a_queue_and_a_long_answer_continues_in_follow_ups(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    long_answer = Answer(text=("word " * 300 + "\n\n") * 10)
    tracker = TaskTracker()
    ask = ScriptedAsk(answer=long_answer, queue=QueuePosition(3, 2.0))
    async with running(world, ask=ask, data_dir=tmp_path, tracker=tracker):
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="everything?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        follows = await fake.await_for(lambda: followups(fake, interaction))
        await tracker.idle(10)  # the command's work is done: nothing more will be sent
    notice, first = original_edits(fake, interaction)
    assert "#3 in line, about 2 s" in notice.body["content"]  # told once, although the core said it twice
    assert first.body["embeds"] and first.body.get("components", []) == []  # the buttons go on the last part
    [*_, last] = followups(fake, interaction)
    assert [c["custom_id"] for row in last.body["components"] for c in row["components"]] == [UP_ID, DOWN_ID]
    assert len(follows) >= 1


async def test_slash_ask_error_after_a_queue_notice_replaces_the_notice(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk(error=Unavailable("wiki down"), queue=QueuePosition(2, 1.0))
    async with running(world, ask=ask, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="vpn?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        edits = await fake.await_for(
            lambda: (found := original_edits(fake, interaction)) and len(found) >= 2 and found
        )
    notice, error = edits
    assert "#2 in line" in notice.body["content"]
    assert "in line" not in error.body["content"] and error.body["content"]
    assert error.body["embeds"] == [] and error.body["allowed_mentions"]["parse"] == []
    assert followups(fake, interaction) == []


async def test_mention_and_dm_get_one_short_queue_reply_before_the_answer(world: World, tmp_path: Path) -> None:
    fake = world.fake
    service = busy_service(FakeLimiter(waiting=4))
    dm = fake.dm_channel(world.bob["user"])
    tracker = TaskTracker()
    async with running(world, ask=service, data_dir=tmp_path, tracker=tracker):
        msg = fake.message_payload(
            world.general, world.ana, f"<@{fake.app_id}> vpn? @everyone", mentions=[fake.bot_user]
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, world.bob["user"], "expenses?"))
        await fake.await_for(lambda: len(message_posts(fake, world.general)) >= 2 and len(message_posts(fake, dm)) >= 2)
        await tracker.idle(10)  # both answers are done: nothing more will be sent
    notices = []
    for channel, replied_to in ((world.general, msg["id"]), (dm, None)):
        notice, answer = message_posts(fake, channel)
        notices.append(notice.body["content"])
        assert_no_ping(notice.body)
        assert notice.body.get("embeds") in (None, [])
        assert answer.body["embeds"][0]["description"] == "Use the VPN portal."
        if replied_to is not None:
            assert notice.body["message_reference"]["message_id"] == int(replied_to)
    # Four wait at the limiter; the two questions go one after the other (whichever was asked first is #5).
    assert sorted(notices) == [f"⏳ Lots of questions right now: you're #{n} in line, about {n} s." for n in (5, 6)]


async def test_no_queue_notice_when_nobody_waits_or_the_answer_is_cached(world: World, tmp_path: Path) -> None:
    fake = world.fake
    limiter = FakeLimiter(waiting=0)
    service = busy_service(limiter)
    async with running(world, ask=service, data_dir=tmp_path):
        for n, waiting in enumerate((0, 3)):  # the second ask is a cache hit: it never waits for the budget
            limiter.waiting = waiting
            interaction = fake.interaction_payload(
                channel=world.general, member=world.ana, data=fake.slash("ask", question="vpn?")
            )
            fake.dispatch("INTERACTION_CREATE", interaction)
            await fake.await_for(lambda i=interaction: followups(fake, i))
            assert original_edits(fake, interaction) == [], n


async def test_a_failing_queue_notice_does_not_stop_the_answer(world: World, tmp_path: Path) -> None:
    fake = world.fake
    service = busy_service(FakeLimiter(waiting=1))
    fake.fail_next(f"POST /channels/{world.general['id']}/messages", status=403,
                   body={"message": "Missing Permissions", "code": 50013})
    async with running(world, ask=service, data_dir=tmp_path):
        msg = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", msg)
        await fake.await_for(lambda: len(message_posts(fake, world.general)) >= 2)
    refused, answer = message_posts(fake, world.general)
    assert "in line" in refused.body["content"]
    assert answer.body["embeds"][0]["description"] == "Use the VPN portal."


# --------------------------------------------------------------------------------------------- answers


async def test_402_fallback_shows_notice_and_search_source(world: World, tmp_path: Path) -> None:
    fake = world.fake

    class QuotaKB:
        kind = "perfectwiki"
        supports_ai = True

        async def query(self, question: str) -> Any:
            raise QuotaExceeded("quota", status=402)

    class Search:
        async def answer(self, question: str, *, limit: int = 3) -> Answer:
            return Answer(
                text="From the page *VPN setup*: open the portal.",
                source=Source.SEARCH,
                related_pages=(PageRef("p1", "VPN setup", "https://wiki.example/p1"),),
            )

    service = AskService(
        kb=QuotaKB(),  # type: ignore[arg-type]
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=3600),
        fallback=Search(),
    )
    async with running(world, ask=service, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="vpn?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [follow] = await fake.await_for(lambda: followups(fake, interaction))
    assert QUOTA_NOTICE in follow.body["content"]
    assert follow.body["embeds"][0]["footer"]["text"] == "From a wiki search (no AI)"
    assert "open the portal" in follow.body["embeds"][0]["description"]


async def test_long_answer_is_split_within_discord_limits(world: World, tmp_path: Path) -> None:
    fake = world.fake
    paragraphs = [f"Paragraph {i}: " + "word " * 180 for i in range(40)]  # ~36k characters
    ask = ScriptedAsk(answer=Answer(text="\n\n".join(paragraphs), notice="x" * 3000))
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general, world.ana, f"<@{fake.app_id}> everything?", mentions=[fake.bot_user]
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        # The buttons ride on the last part, so a post with components means every part has been sent.
        posts = await fake.await_for(
            lambda: (
                any(p.body["components"] for p in message_posts(fake, world.general))
                and message_posts(fake, world.general)
            )
        )
    assert len(posts) > 1
    text = ""
    for index, post in enumerate(posts):
        body = post.body
        assert_no_ping(body)
        assert len(body.get("content") or "") <= CONTENT_LIMIT
        assert len(body["embeds"]) <= 10
        total = 0
        for embed in body["embeds"]:
            assert len(embed.get("description", "")) <= DESCRIPTION_LIMIT
            total += (
                len(embed.get("title", ""))
                + len(embed.get("description", ""))
                + len(embed.get("footer", {}).get("text", ""))
            )
            text += embed.get("description", "") + "\n\n"
        assert total <= MESSAGE_EMBED_TOTAL
        assert ("message_reference" in body) == (index == 0)  # the first part replies, the rest follow
        assert bool(body["components"]) == (index == len(posts) - 1)  # buttons once, under the last part
    for paragraph in paragraphs:
        assert paragraph.strip() in text  # nothing lost, in order
    assert text.index("Paragraph 39") > text.index("Paragraph 1:")


async def test_everyone_in_an_answer_never_pings(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk(
        answer=Answer(
            text="Tell @everyone and @here, or <@&123> and <@456>.",
            related_pages=(PageRef("p", "@everyone guide", "https://wiki.example/p"),),
            notice="@here quota",
        )
    )
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general, world.ana, f"<@{fake.app_id}> @everyone?", mentions=[fake.bot_user]
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="@everyone hi")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))
        [follow] = await fake.await_for(lambda: followups(fake, interaction))
    for body in (post.body, follow.body):
        assert body["allowed_mentions"] == {"parse": []} or body["allowed_mentions"] == {
            "parse": [],
            "replied_user": False,
        }
        assert_no_ping(body)
        assert f"@{ZWSP}everyone" in body["embeds"][0]["description"]
        assert "<@&123>" not in repr(body) and "<@456>" not in repr(body)


async def test_backend_error_becomes_a_short_reply(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = ScriptedAsk(error=Unavailable("connect timeout to https://api… token=secret"))
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user]
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="vpn?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))
        # The error takes the deferred "thinking…" placeholder's place (what a first follow-up would do).
        [edit] = await fake.await_for(lambda: original_edits(fake, interaction))
    for body in (post.body, edit.body):
        assert body["content"] == "The knowledgebase isn't reachable right now. Please try again shortly."
        assert_no_ping(body)
    assert followups(fake, interaction) == []


async def test_empty_mention_gets_the_invalid_question_message(world: World, tmp_path: Path) -> None:
    fake = world.fake
    service = AskService(
        kb=None,  # type: ignore[arg-type]  — never reached: the question is rejected first
        cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
        flights=LocalSingleFlight(),
        quota=MemoryQuotaGate(probe_seconds=3600),
        fallback=None,  # type: ignore[arg-type]
    )
    async with running(world, ask=service, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general, world.ana, f"<@{fake.app_id}>  \u200b ", mentions=[fake.bot_user]
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))
    assert post.body["content"].startswith("Please type a question")


# --------------------------------------------------------------------------------------------- saving


def seed_thread(world: World, channel: dict[str, Any], count: int) -> list[dict[str, Any]]:
    people = [world.ana, world.bob, world.kim]
    return [
        world.fake.message_payload(
            channel,
            people[i % 3],
            f"message {i:03d} from <@{people[(i + 1) % 3]['user']['id']}>",
            mentions=[people[(i + 1) % 3]],
        )
        for i in range(count)
    ]


async def test_save_thread_reads_all_history_in_pages_and_links_the_page(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    seeded = seed_thread(world, world.thread, 250)
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.thread,
            member=world.ana,
            data=fake.slash("save-thread", title="VPN fixes", tags="vpn, network"),
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [follow] = await fake.await_for(lambda: followups(fake, interaction), timeout=10)
    [callback] = callbacks(fake, interaction)
    assert callback.body["type"] == 5
    assert callback.at - fake.dispatched_at[interaction["id"]] < 3.0
    pages = fake.calls_to("GET", f"/channels/{world.thread['id']}/messages")
    assert len(pages) == 3 and all(p.query["limit"] == "100" for p in pages)
    assert "after" in pages[0].query  # oldest first
    [thread] = saver.threads
    assert thread.key == world.thread["id"] and thread.platform == "discord"
    assert [m.text.split(" from ")[0] for m in thread.messages] == [f"message {i:03d}" for i in range(250)]
    assert thread.messages[0].author_name == "Ana B."  # display name (nick)
    assert thread.messages[0].text == "message 000 from @Bob"  # mention → display name
    assert thread.title_hint == "VPN trouble" and thread.channel_name == "general"
    assert saver.calls == [("VPN fixes", ("vpn", "network"))]
    assert "https://wiki.example/42" in follow.body["content"]
    assert "250 messages" in follow.body["content"]
    assert_no_ping(follow.body)
    assert len(seeded) == 250


async def test_context_menu_saves_a_forum_post(world: World, tmp_path: Path) -> None:
    fake = world.fake
    seeded = seed_thread(world, world.post, 5)
    seeded.append(
        fake.message_payload(
            world.post,
            world.bob,
            "see attached",
            attachments=[
                {
                    "id": "9",
                    "filename": "log.txt",
                    "size": 3,
                    "url": "https://cdn.example/log.txt",
                    "proxy_url": "https://cdn.example/log.txt",
                }
            ],
            embeds=[
                {
                    "type": "link",
                    "title": "Runbook",
                    "url": "https://runbooks.example/vpn",
                    "description": "Steps",
                }
            ],
        )
    )
    long_answer = "Deploy with `make ship`. " * 60  # ~1,500 characters: a bot's answer is kept whole
    seeded.append(
        fake.message_payload(
            world.post,
            fake.bot_user,
            "",
            embeds=[{"type": "rich", "title": "How to deploy?", "description": long_answer.strip()}],
        )
    )
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.post, member=world.ana, data=fake.message_command("Save thread to wiki", seeded[2])
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [follow] = await fake.await_for(lambda: followups(fake, interaction))
    [thread] = saver.threads
    assert len(thread.messages) == 7
    assert long_answer.strip() in thread.messages[-1].text
    assert thread.messages[-1].author_name == "kbbot"
    last = thread.messages[-2]
    assert [(a.name, a.url) for a in last.attachments] == [("log.txt", "https://cdn.example/log.txt")]
    assert "Runbook" in last.text and "https://runbooks.example/vpn" in last.text
    assert thread.channel_name == "help"
    assert saver.calls == [(None, None)]
    assert "https://wiki.example/42" in follow.body["content"]


async def test_save_outside_a_thread_is_a_clear_ephemeral_message(world: World, tmp_path: Path) -> None:
    fake = world.fake
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("save-thread")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [callback] = await fake.await_for(lambda: callbacks(fake, interaction))
    assert callback.body["type"] == 4
    assert callback.body["data"]["flags"] & 64
    assert callback.body["data"]["content"] == NOT_IN_THREAD
    assert saver.threads == []
    assert fake.calls_to("GET", f"/channels/{world.general['id']}/messages") == []


async def test_save_permissions_owner_manager_role_and_others(world: World, tmp_path: Path) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 3)
    saver = RecordingSaver()
    manage_threads = str(1024 | 2048 | 65536 | (1 << 34))
    async with running(world, saver=saver, data_dir=tmp_path, discord_save_roles="Wiki-Editors"):
        denied = fake.interaction_payload(
            channel=world.thread, member=world.bob, data=fake.slash("save-thread")
        )
        fake.dispatch("INTERACTION_CREATE", denied)
        [callback] = await fake.await_for(lambda: callbacks(fake, denied))
        assert callback.body["type"] == 4 and callback.body["data"]["flags"] & 64
        assert "Only the thread's creator" in callback.body["data"]["content"]
        assert saver.threads == []

        for member, permissions in ((world.kim, None), (world.bob, manage_threads)):
            kwargs = {"permissions": permissions} if permissions else {}
            allowed = fake.interaction_payload(
                channel=world.thread, member=member, data=fake.slash("save-thread"), **kwargs
            )
            fake.dispatch("INTERACTION_CREATE", allowed)
            await fake.await_for(lambda a=allowed: followups(fake, a))
    assert len(saver.threads) == 2


# --------------------------------------------------------------------------------------------- setup


async def test_commands_sync_only_when_changed(world: World, tmp_path: Path) -> None:
    fake = world.fake
    async with running(world, data_dir=tmp_path):
        pass
    async with running(world, data_dir=tmp_path):
        pass
    puts = fake.calls_to("PUT", f"/applications/{fake.app_id}/commands")
    assert len(puts) == 1
    names = {c["name"] for c in fake.commands("global")}
    assert names == {"ask", "save-thread", "Save thread to wiki"}

    gid = world.guild["id"]
    async with running(world, data_dir=tmp_path, discord_guild_ids=gid):
        pass
    async with running(world, data_dir=tmp_path, discord_guild_ids=gid):
        pass
    guild_puts = fake.calls_to("PUT", f"/applications/{fake.app_id}/guilds/{gid}/commands")
    assert len(guild_puts) == 1
    # The global set synced by the first runs would show twice next to the guild's: cleared once, after the
    # guild sync, and not again on the next start.
    global_puts = fake.calls_to("PUT", f"/applications/{fake.app_id}/commands")
    assert len(global_puts) == 2
    assert global_puts[1].body == [] and global_puts[1].at > guild_puts[0].at
    assert fake.commands("global") == []
    assert {c["name"] for c in fake.commands(f"guild:{gid}")} == {"ask", "save-thread", "Save thread to wiki"}

    # Back to global commands (guild ids unset): the global set is synced again, as it is no longer there.
    async with running(world, data_dir=tmp_path):
        pass
    assert len(fake.calls_to("PUT", f"/applications/{fake.app_id}/commands")) == 3
    assert {c["name"] for c in fake.commands("global")} == {"ask", "save-thread", "Save thread to wiki"}


async def test_global_commands_are_left_alone_when_we_never_synced_them(world: World, tmp_path: Path) -> None:
    fake = world.fake
    gid = world.guild["id"]
    async with running(world, data_dir=tmp_path, discord_guild_ids=gid):
        pass
    assert fake.calls_to("PUT", f"/applications/{fake.app_id}/guilds/{gid}/commands")
    assert fake.calls_to("PUT", f"/applications/{fake.app_id}/commands") == []  # not ours to clear


async def test_stale_global_commands_are_kept_while_a_guild_sync_fails(world: World, tmp_path: Path) -> None:
    fake = world.fake
    gid = world.guild["id"]
    async with running(world, data_dir=tmp_path):
        pass
    # 403 Missing Access: the bot was added to the guild without the applications.commands scope.
    fake.fail_next(
        f"PUT /applications/{fake.app_id}/guilds/{gid}/commands",
        status=403,
        body={"message": "Missing Access", "code": 50001},
    )
    async with running(world, data_dir=tmp_path, discord_guild_ids=gid):
        pass
    # The guild has no commands yet, so clearing the global ones would leave users with none.
    assert len(fake.calls_to("PUT", f"/applications/{fake.app_id}/commands")) == 1
    assert fake.commands("global")
    async with running(world, data_dir=tmp_path, discord_guild_ids=gid):
        pass
    assert fake.commands("global") == [] and fake.commands(f"guild:{gid}")


async def test_intents_and_auto_answer_channels(world: World, tmp_path: Path) -> None:
    fake = world.fake
    message_content = 1 << 15
    ask = ScriptedAsk()
    async with running(world, data_dir=tmp_path, discord_save_threads=False):
        pass
    assert not fake.identifies[-1]["intents"] & message_content  # answering by mention/DM/slash needs no intent
    assert [c["name"] for c in fake.commands("global")] == ["ask"]  # no save commands when saving is off
    async with running(world, data_dir=tmp_path):
        pass
    assert fake.identifies[-1]["intents"] & message_content  # saving (on by default) needs the text of messages
    async with running(
        world, ask=ask, data_dir=tmp_path, discord_auto_channels=world.forum["id"], discord_save_threads=False
    ):
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(world.post, world.bob, "thanks, all good"))
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(world.post, world.bob, "how do I deploy?"))
        [post] = await fake.await_for(lambda: message_posts(fake, world.post))
    assert fake.identifies[-1]["intents"] & message_content
    assert [q.text for q in ask.questions] == ["how do I deploy?"]
    assert_no_ping(post.body)


@dataclass
class RelevanceAsk(ScriptedAsk):
    """Search answers whose relevance the question names ("weak" ones below the auto threshold)."""

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        self.questions.append(question)
        relevance = 0.5 if "weak" in question.text else 0.95
        return Answer(text=f"From the wiki: {relevance}", source=Source.SEARCH, relevance=relevance)


async def test_auto_answer_channels_answer_only_above_their_threshold(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = RelevanceAsk()
    async with running(
        world,
        ask=ask,
        data_dir=tmp_path,
        discord_auto_channels=world.forum["id"],
        discord_save_threads=False,
        auto_answer_min_relevance=0.8,
    ):
        weak = fake.message_payload(world.post, world.bob, "weak: what is the wifi password?")
        fake.dispatch("MESSAGE_CREATE", weak)
        # The handler is done when its 👀 is taken off again.
        done = f"/channels/{world.post['id']}/messages/{weak['id']}/reactions/"
        await fake.await_for(lambda: fake.calls_to("DELETE", done))
        assert [q.text for q in ask.questions] == ["weak: what is the wifi password?"]
        assert message_posts(fake, world.post) == []  # nobody asked the bot, and it had nothing good: quiet
        # Asked by mention, the same weak answer is given; unasked, a confident one is too.
        mention = f"<@{fake.app_id}> weak: and the guest network?"
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(world.post, world.bob, mention, mentions=[fake.bot_user]))
        await fake.await_for(lambda: len(message_posts(fake, world.post)) == 1)
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(world.post, world.bob, "how do I deploy?"))
        await fake.await_for(lambda: len(message_posts(fake, world.post)) == 2)
    first, second = (post.body["embeds"][0]["description"] for post in message_posts(fake, world.post))
    assert (first, second) == ("From the wiki: 0.5", "From the wiki: 0.95")


async def test_sharded_client_connects_every_shard(world: World, tmp_path: Path) -> None:
    fake = world.fake
    async with running(world, data_dir=tmp_path, discord_shard_count=2) as client:
        assert isinstance(client, discord.AutoShardedClient)
        assert fake.connected_shards() == [0, 1]
        dm = fake.dm_channel(world.bob["user"])
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, world.bob["user"], "sharded?"), shard_id=1)
        await fake.await_for(lambda: message_posts(fake, dm))
    assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]


# --------------------------------------------------------------------------------------------- with the real wiki


@contextlib.asynccontextmanager
async def perfect_wiki(
    data_dir: Path,
    *,
    retry: SaveRetryPolicy | None = None,
    limiter: TokenRateLimiter | None = None,
    **fake_options: Any,
) -> AsyncIterator[tuple[FakePerfectWiki, Any, Any]]:
    """The fake Perfect Wiki, the real PerfectWikiBackend (httpx) and a real ThreadSaver with SQLite stores.

    ``limiter`` is built against the fake's token when None; ``retry`` times the saver's outbox worker."""
    with FakePerfectWiki(**fake_options) as wiki:
        async with httpx.AsyncClient(timeout=5.0) as http:
            backend = PerfectWikiBackend(
                http,
                wiki.token,
                limiter=limiter or TokenRateLimiter(wiki.token, storage=MemoryStorage()),
                base_url=wiki.url,
                page_url_template="https://wiki.example/pages/{id}",
                retry=RetryPolicy(backoff_base=0.001, backoff_max=0.01),
            )
            path = data_dir / "threads.sqlite"
            thread_map, outbox = SqliteSavedThreadMap(path), SqliteOutbox(path)
            saver = ThreadSaver(backend, thread_map, outbox, retry=retry)
            try:
                yield wiki, backend, saver
            finally:
                await thread_map.aclose()
                await outbox.aclose()
                await backend.aclose()


async def test_save_thread_creates_the_page_in_perfect_wiki_with_all_250_messages(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 250)
    async with perfect_wiki(tmp_path) as (wiki, _backend, saver):
        async with running(world, saver=saver, data_dir=tmp_path):
            interaction = fake.interaction_payload(
                channel=world.thread, member=world.ana, data=fake.slash("save-thread", title="VPN fixes")
            )
            fake.dispatch("INTERACTION_CREATE", interaction)
            [follow] = await fake.await_for(lambda: followups(fake, interaction), timeout=15)
        [page] = wiki.pages()
    assert len(fake.calls_to("GET", f"/channels/{world.thread['id']}/messages")) == 3
    assert page["title"] == "VPN fixes"
    positions = [page["content"].find(f"message {i:03d}") for i in range(250)]
    assert all(p >= 0 for p in positions), "every message is on the page"
    assert positions == sorted(positions), "in order, oldest first"
    assert "Ana B." in page["content"] and "&lt;@" not in page["content"] and "<@" not in page["content"]
    assert f"https://wiki.example/pages/{page['id']}" in follow.body["content"]
    assert_no_ping(follow.body)


async def test_402_from_perfect_wiki_falls_back_to_search(world: World, tmp_path: Path) -> None:
    fake = world.fake

    class Search:
        async def answer(self, question: str, *, limit: int = 3) -> Answer:
            return Answer(text="From the page *VPN setup*: open the portal.", source=Source.SEARCH)

    async with perfect_wiki(tmp_path, ai_quota=0) as (wiki, backend, _saver):
        service = AskService(
            kb=backend,
            cache=TTLAnswerCache(ttl_seconds=60, max_entries=10),
            flights=LocalSingleFlight(),
            quota=MemoryQuotaGate(probe_seconds=3600),
            fallback=Search(),
        )
        async with running(world, ask=service, data_dir=tmp_path):
            msg = fake.message_payload(
                world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user]
            )
            fake.dispatch("MESSAGE_CREATE", msg)
            [post] = await fake.await_for(lambda: message_posts(fake, world.general))
        assert wiki.stats().quota_exceeded == 1
    assert QUOTA_NOTICE in post.body["content"]
    assert post.body["embeds"][0]["footer"]["text"] == "From a wiki search (no AI)"
    assert_no_ping(post.body)


async def test_save_without_history_access_explains_the_missing_permission(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 3)
    fake.fail_routes[f"GET /channels/{world.thread['id']}/messages"] = (
        403,
        {"message": "Missing Access", "code": 50001},
    )
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.thread, member=world.ana, data=fake.slash("save-thread")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [follow] = await fake.await_for(lambda: followups(fake, interaction))
    assert follow.body["content"] == NO_HISTORY_ACCESS
    assert saver.threads == []


async def test_thread_started_from_a_channel_message_keeps_the_starter(world: World, tmp_path: Path) -> None:
    fake = world.fake
    starter = fake.message_payload(world.general, world.bob, "Why is the VPN down?", store=False)
    marker = fake.message_payload(world.thread, world.bob, "")
    marker.update(
        type=21,
        message_reference={
            "message_id": starter["id"],
            "channel_id": starter["channel_id"],
            "guild_id": world.guild["id"],
        },
        referenced_message=starter,
    )
    fake.message_payload(world.thread, world.ana, "<@&{}> it is back".format(world.guild["id"]))[
        "mention_roles"
    ] = [world.guild["id"]]
    fake.message_payload(world.thread, world.bob, "", store=True)["type"] = 7  # a join: noise, skipped
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=world.thread, member=world.ana, data=fake.slash("save-thread")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        await fake.await_for(lambda: followups(fake, interaction))
    [thread] = saver.threads
    assert [m.text for m in thread.messages][:1] == ["Why is the VPN down?"]
    assert len(thread.messages) == 2
    assert "everyone" in thread.messages[1].text and "@everyone" not in thread.messages[1].text  # made inert


async def test_slash_commands_in_a_dm(world: World, tmp_path: Path) -> None:
    fake = world.fake
    dm = fake.dm_channel(world.bob["user"])
    async with running(world, data_dir=tmp_path):
        ask = fake.interaction_payload(channel=dm, member=world.bob, data=fake.slash("ask", question="hi?"))
        save = fake.interaction_payload(channel=dm, member=world.bob, data=fake.slash("save-thread"))
        fake.dispatch("INTERACTION_CREATE", ask)
        fake.dispatch("INTERACTION_CREATE", save)
        [follow] = await fake.await_for(lambda: followups(fake, ask))
        [callback] = await fake.await_for(lambda: callbacks(fake, save))
    assert follow.body["embeds"][0]["title"] == "hi?"
    assert callback.body["data"]["content"] == NOT_IN_THREAD and callback.body["data"]["flags"] & 64


async def test_discord_api_url_setting_points_rest_and_gateway_at_the_fake(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import discord.gateway
    import discord.http
    import yarl

    fake = world.fake
    # Unpoint discord.py (at a closed loopback port, so a failure can never reach the internet).
    monkeypatch.setattr(discord.http.Route, "BASE", "http://127.0.0.1:9/api/v10")
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL("ws://127.0.0.1:9/"))
    async with running(world, data_dir=tmp_path, discord_api_url=fake.api_url):
        dm = fake.dm_channel(world.bob["user"])
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, world.bob["user"], "configured?"))
        await fake.await_for(lambda: message_posts(fake, dm))
    assert fake.calls_to("GET", "/gateway/bot")


async def test_save_in_an_archived_thread_the_client_never_cached(world: World, tmp_path: Path) -> None:
    fake = world.fake
    archived = fake.add_thread(world.guild, world.general, "Old incident", owner=world.ana)
    archived["thread_metadata"]["archived"] = True
    world.guild["threads"].remove(archived)  # GUILD_CREATE only lists active threads
    seed_thread(world, archived, 4)
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        interaction = fake.interaction_payload(
            channel=archived, member=world.ana, data=fake.slash("save-thread")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [follow] = await fake.await_for(lambda: followups(fake, interaction))
    [thread] = saver.threads
    assert thread.key == archived["id"] and len(thread.messages) == 4
    assert thread.title_hint == "Old incident" and thread.channel_name == "general"
    assert "https://wiki.example/42" in follow.body["content"]


async def test_save_while_the_wiki_is_down_is_queued_and_says_so(world: World, tmp_path: Path) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 5)
    async with perfect_wiki(tmp_path) as (wiki, _backend, saver):
        wiki.fail_next(50, status=503)
        async with running(world, saver=saver, data_dir=tmp_path):
            interaction = fake.interaction_payload(
                channel=world.thread, member=world.ana, data=fake.slash("save-thread")
            )
            fake.dispatch("INTERACTION_CREATE", interaction)
            [follow] = await fake.await_for(lambda: followups(fake, interaction), timeout=10)
        assert wiki.pages() == []
    assert "queued this thread (5 messages)" in follow.body["content"]
    assert "saved automatically" in follow.body["content"]


async def test_resave_keeps_the_conversation_and_kbbots_answer_not_its_save_notes(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    fake.message_payload(world.thread, world.ana, "Anyone know the VPN setup?")
    async with perfect_wiki(tmp_path) as (wiki, _backend, saver):
        async with running(world, saver=saver, data_dir=tmp_path):
            ask = fake.message_payload(world.thread, world.ana, f"<@{fake.app_id}> how do I set up the VPN?",
                                       mentions=[fake.bot_user])
            fake.dispatch("MESSAGE_CREATE", ask)
            await fake.await_for(lambda: message_posts(fake, world.thread))
            replies = []
            for text in ("Worked for me, thanks", "Note: use the EU gateway"):
                fake.message_payload(world.thread, world.bob, text)
                interaction = fake.interaction_payload(
                    channel=world.thread, member=world.ana, data=fake.slash("save-thread", title="VPN how-to")
                )
                fake.dispatch("INTERACTION_CREATE", interaction)
                [follow] = await fake.await_for(lambda i=interaction: followups(fake, i), timeout=10)
                replies.append(follow.body["content"].split(" to the wiki")[0])
        [page] = wiki.pages()
    assert replies == ["Saved 4 messages", "Updated 5 messages"]  # the first save's note is not a message
    content = page["content"]
    assert "Anyone know the VPN setup?" in content and "Note: use the EU gateway" in content
    assert "Use the VPN portal." in content.split("Worked for me")[0]  # kbbot's answer stays, where it was said
    assert "to the wiki" not in content
    # …as what it said (the embed's title, text and source), not as an "Embed:" quote.
    assert "Embed:" not in content and "<blockquote>" not in content
    assert "<p><strong>how do I set up the VPN?</strong></p>\n<p>Use the VPN portal.</p>" in content
    assert "<em>Answered by the wiki's AI</em>" in content


async def test_queued_save_posts_the_link_into_the_thread_when_the_retry_lands(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 5)
    fast = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, jitter=0.0, poll_interval=0.05, lease_seconds=30)
    async with perfect_wiki(tmp_path, retry=fast) as (wiki, _backend, saver):
        wiki.set_failure_rate(1.0, status=503)  # the wiki is down
        async with saver, running(world, saver=saver, data_dir=tmp_path) as client:
            saver.listen("discord", saved_poster(client))
            interaction = fake.interaction_payload(
                channel=world.thread, member=world.ana, data=fake.slash("save-thread", title="VPN @everyone")
            )
            fake.dispatch("INTERACTION_CREATE", interaction)
            [follow] = await fake.await_for(lambda: followups(fake, interaction), timeout=10)
            assert "saved automatically" in follow.body["content"]
            assert "post the link in this thread" in follow.body["content"]
            # The worker keeps retrying while the wiki is down (its next attempt reaches the wiki): no page, no
            # link yet.
            asked = wiki.stats().total_requests
            await fake.await_for(lambda: wiki.stats().total_requests > asked, timeout=10)
            assert wiki.pages() == [] and message_posts(fake, world.thread) == []

            wiki.clear_faults()  # the wiki is back; the outbox worker's next retry goes through
            [post] = await fake.await_for(lambda: message_posts(fake, world.thread), timeout=10)
            [page] = wiki.pages()
            for _ in range(2):  # and the link is posted once, not on every later pass over the outbox
                await saver.retry_due()
            assert await saver.queued() == 0
        assert len(message_posts(fake, world.thread)) == 1
    assert post.body["content"].startswith("Saved: ")
    assert f"https://wiki.example/pages/{page['id']}" in post.body["content"]
    assert_no_ping(post.body)
    assert all(f"message {i:03d}" in page["content"] for i in range(5))


async def test_saved_poster_ignores_bad_keys_and_survives_refusals(world: World, tmp_path: Path) -> None:
    fake = world.fake
    saved = SavedPage(id="7", url="https://wiki.example/7", created=True, title="T")
    async with running(world, data_dir=tmp_path) as client:
        post = saved_poster(client)
        await post("not-a-thread-id", saved)
        fake.fail_next(f"POST /channels/{world.thread['id']}/messages", status=403,
                       body={"message": "Missing Access", "code": 50001})
        await post(world.thread["id"], saved)  # logged, not raised: the save itself succeeded
        await post(world.thread["id"], saved)
    [_refused, ok] = message_posts(fake, world.thread)
    assert ok.body["content"] == "Saved: [T](https://wiki.example/7) — the wiki is back and this thread is now a page."


async def test_saved_poster_reports_a_queued_save_the_wiki_refused(world: World, tmp_path: Path) -> None:
    fake = world.fake
    refused = SaveError("The queued save of “VPN @everyone” failed. The wiki refused the page: HTTP 400")
    async with running(world, data_dir=tmp_path) as client:
        await saved_poster(client)(world.thread["id"], refused)
    [post] = message_posts(fake, world.thread)
    assert post.body["content"] == (
        "⚠️ The queued save of “VPN @\u200beveryone” failed. The wiki refused the page: HTTP 400"
    )
    assert_no_ping(post.body)


async def test_a_save_that_lands_before_discord_is_connected_is_linked_once_it_is(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    saved = SavedPage(id="9", url="https://wiki.example/9", created=True, title="Early")
    early: list[asyncio.Task[None]] = []

    def save_lands_now(client: discord.Client) -> None:
        # The outbox worker starts with the process: its first retry can finish before the client logs in.
        early.append(asyncio.create_task(saved_poster(client, ready_timeout=10)(world.thread["id"], saved)))

    async with running(world, data_dir=tmp_path, before_start=save_lands_now):
        await asyncio.wait_for(early[0], 10)
    [post] = message_posts(fake, world.thread)
    assert "https://wiki.example/9" in post.body["content"]


async def test_saved_poster_gives_up_quietly_when_discord_never_connects(world: World, tmp_path: Path) -> None:
    client = build_discord_client(services(), options=discord_options(Settings(kbbot_data_dir=tmp_path)))
    saved = SavedPage(id="9", url="https://wiki.example/9", created=True, title="Early")
    await asyncio.wait_for(saved_poster(client, ready_timeout=0.2)(world.thread["id"], saved), 5)
    assert message_posts(world.fake, world.thread) == []


async def test_discord_429_on_reply_is_waited_out_and_the_answer_still_arrives(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    fake.fail_next(f"POST /channels/{world.general['id']}/messages", status=429, count=2)
    async with running(world, data_dir=tmp_path):
        msg = fake.message_payload(
            world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user]
        )
        fake.dispatch("MESSAGE_CREATE", msg)
        await fake.await_for(
            lambda: fake.channel_messages(world.general["id"])[-1]["author"]["id"] == str(fake.app_id)
        )
    posts = message_posts(fake, world.general)
    assert len(posts) == 3  # two 429s, then the answer
    assert posts[0].body == posts[2].body  # the same message re-sent, not a different one


async def test_setup_mistakes_become_clear_config_errors(world: World, tmp_path: Path) -> None:
    fake = world.fake

    def client(**settings: Any) -> discord.Client:
        return build_discord_client(services(), options=discord_options(Settings(**settings, kbbot_data_dir=tmp_path)))

    with pytest.raises(Unauthorized, match="DISCORD_BOT_TOKEN was rejected") as rejected:
        await asyncio.wait_for(run_discord_client(client(), "wrong-token"), 10)
    assert "wrong-token" not in str(rejected.value)

    fake.privileged_intents = 0  # Message Content not enabled in the portal
    with pytest.raises(ConfigError) as refused:
        await asyncio.wait_for(
            run_discord_client(client(discord_require_message_content="true"), fake.token), 10
        )
    line = str(refused.value)
    assert "\n" not in line and "Privileged Gateway Intents → MESSAGE CONTENT INTENT" in line
    assert "DISCORD_SAVE_THREADS" in line and fake.identifies == []  # refused before connecting


async def test_close_code_4014_falls_back_or_is_one_line_naming_the_portal_switch(
    world: World, tmp_path: Path
) -> None:
    # The application's flags said the switch is on, but the gateway refuses the intent anyway (the switch was
    # turned off in between): by default the bot connects again without it; when it is required, close code
    # 4014 becomes the same one line.
    fake = world.fake
    fake.privileged_intents = 0

    def client(**settings: Any) -> discord.Client:
        built = build_discord_client(
            services(), options=discord_options(Settings(**settings, kbbot_data_dir=tmp_path)),
            client_options={"guild_ready_timeout": 0.05},
        )
        built.setup_hook = _no_setup  # type: ignore[method-assign]  # skip the flag check: straight to IDENTIFY
        return built

    with pytest.raises(ConfigError, match="MESSAGE CONTENT INTENT"):
        await asyncio.wait_for(run_discord_client(client(discord_require_message_content=True), fake.token), 10)
    assert fake.identifies[-1]["intents"] & MESSAGE_CONTENT

    fallback = client()
    running_task = asyncio.create_task(run_discord_client(fallback, fake.token))
    try:
        await asyncio.wait_for(fallback.wait_until_ready(), 10)
        refused, accepted = fake.identifies[-2:]
        assert refused["intents"] & MESSAGE_CONTENT and not accepted["intents"] & MESSAGE_CONTENT
        assert not fallback.intents.message_content  # saves now get the "saving is off" reply
    finally:
        await fallback.close()
        await asyncio.wait_for(running_task, 10)


async def _no_setup() -> None:
    return None
