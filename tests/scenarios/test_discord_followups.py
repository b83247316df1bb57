"""Discord follow-ups: the real discord.py client against the fake Discord (gateway + REST).

A follow-up is a reply to kbbot's answer (``message_reference``, type 19 REPLY) or a message in a thread where
kbbot answered, without a mention; it needs the Message Content intent. Payload shapes: the fake's
MESSAGE_CREATE (discord-api-docs developers/resources/message.mdx, "Message Reference Structure" for the
reply) and MESSAGE_REACTION_ADD (developers/events/gateway-events.mdx, "Message Reaction Add").

Nothing sleeps: where silence is expected, a later question (the "sentinel") is answered first — discord.py
starts event handlers in the order the gateway sent them — and then every tracked handler is waited for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kbbot.adapters.discord.feedback import DOWN_ID
from kbbot.adapters.discord.handlers import FOLLOW_UP_HINT, SAVE_OFFER
from kbbot.core.ask import AskService
from kbbot.core.conversations import Conversations
from kbbot.core.models import Answer
from kbbot.ops.shutdown import TaskTracker
from kbbot.store.conversations import SqliteConversations
from kbbot.store.memory import LocalSingleFlight, MemoryDeduper, MemoryQuotaGate, TTLAnswerCache
from tests.scenarios import test_discord
from tests.scenarios.test_discord import ScriptedAsk, World, message_posts, perfect_wiki, running

world = test_discord.world  # the fake Discord server with a guild, channels, members and threads

VPN_Q = "How do I set up the VPN?"
REPLY = 19  # MessageType REPLY


@asynccontextmanager
async def memory(tmp_path: Path) -> AsyncIterator[Conversations]:
    store = SqliteConversations(tmp_path / "conversations.sqlite3")
    try:
        yield Conversations(store, MemoryDeduper())
    finally:
        await store.aclose()


@asynccontextmanager
async def bot(world: World, tmp_path: Path, ask: Any, tracker: TaskTracker, **settings: Any) -> AsyncIterator[Any]:
    """The Discord adapter with follow-ups on (conversations in SQLite under ``tmp_path``)."""
    async with memory(tmp_path) as conversations, running(
        world, ask=ask, data_dir=tmp_path, tracker=tracker, conversations=conversations, **settings
    ) as client:
        yield client


def mention(world: World, channel: dict[str, Any], text: str, author: dict[str, Any] | None = None) -> dict[str, Any]:
    fake = world.fake
    return fake.message_payload(channel, author or world.ana, f"<@{fake.app_id}> {text}", mentions=[fake.bot_user])


def reply_to(
    world: World, channel: dict[str, Any], author: dict[str, Any], text: str, answer: dict[str, Any]
) -> dict[str, Any]:
    message = world.fake.message_payload(channel, author, text)
    message["type"] = REPLY
    message["message_reference"] = {
        "type": 0, "message_id": answer["id"], "channel_id": channel["id"], "guild_id": channel["guild_id"],
    }
    message["referenced_message"] = answer
    return message


def answers_in(world: World, channel: dict[str, Any]) -> list[dict[str, Any]]:
    """kbbot's messages in ``channel``, as the fake stored them."""
    bot = world.fake.bot_user["id"]
    return [m for m in world.fake.channel_messages(channel["id"]) if m["author"]["id"] == bot]


async def ask_and_wait(world: World, channel: dict[str, Any], message: dict[str, Any], tracker: TaskTracker) -> None:
    before = len(message_posts(world.fake, channel))
    world.fake.dispatch("MESSAGE_CREATE", message)
    await world.fake.await_for(lambda: len(message_posts(world.fake, channel)) > before)
    await tracker.idle(10)  # the conversation is remembered once the handler is done


async def settle(world: World, tracker: TaskTracker) -> None:
    """Every message dispatched so far has been handled (see the module doc)."""
    await ask_and_wait(world, world.general, mention(world, world.general, "sentinel question?"), tracker)


async def test_reply_to_the_answer_goes_upstream_with_the_topic(world: World, tmp_path: Path) -> None:
    fake, tracker = world.fake, TaskTracker()
    async with perfect_wiki(tmp_path) as (wiki, backend, _saver):
        wiki.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard. On a Mac use the app.</p>"}])
        service = AskService(
            kb=backend, cache=TTLAnswerCache(ttl_seconds=60, max_entries=10), flights=LocalSingleFlight(),
            quota=MemoryQuotaGate(probe_seconds=3600), fallback=ScriptedAsk(),  # type: ignore[arg-type]
        )
        async with bot(world, tmp_path, service, tracker):
            await ask_and_wait(world, world.general, mention(world, world.general, VPN_Q), tracker)
            [answer] = answers_in(world, world.general)
            follow_up = reply_to(world, world.general, world.bob, "and on a Mac?", answer)
            await ask_and_wait(world, world.general, follow_up, tracker)
        assert wiki.asked() == [VPN_Q, "and on a Mac (set up VPN)?"]
    second = message_posts(fake, world.general)[-1].body
    assert second["message_reference"]["message_id"] != int(answer["id"])  # a reply to the follow-up
    assert "asked the wiki: “and on a Mac (set up VPN)?”" in second["embeds"][-1]["footer"]["text"]


async def test_message_in_a_thread_kbbot_answered_is_a_follow_up(world: World, tmp_path: Path) -> None:
    ask, tracker = ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        follow_up = world.fake.message_payload(world.thread, world.bob, "does it work offline?")
        await ask_and_wait(world, world.thread, follow_up, tracker)
    assert [q.text for q in ask.questions] == [VPN_Q, "does it work offline?"]
    assert ask.questions[1].earlier == (VPN_Q,)
    [footer] = {p.body["embeds"][-1]["footer"]["text"] for p in message_posts(world.fake, world.thread)}
    assert FOLLOW_UP_HINT not in footer  # the intent is granted: no need to mention


async def test_acknowledgements_and_foreign_threads_get_nothing(world: World, tmp_path: Path) -> None:
    ask, tracker = ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        for text in ("thanks!", "got it, thanks", "perfect, that worked", "👍"):
            world.fake.dispatch("MESSAGE_CREATE", world.fake.message_payload(world.thread, world.bob, text))
        # A forum post kbbot never answered in, and a plain channel message.
        world.fake.dispatch("MESSAGE_CREATE", world.fake.message_payload(world.post, world.bob, "and on a Mac?"))
        world.fake.dispatch("MESSAGE_CREATE", world.fake.message_payload(world.general, world.bob, "vpn on mac?"))
        await settle(world, tracker)
    assert [q.text for q in ask.questions] == [VPN_Q, "sentinel question?"]
    assert len(message_posts(world.fake, world.thread)) == 1
    assert message_posts(world.fake, world.post) == []


async def test_without_message_content_the_answer_says_to_mention(world: World, tmp_path: Path) -> None:
    ask, tracker = ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker, discord_save_threads=False) as client:
        assert not client.intents.message_content
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        # Discord sends this one without its text: nothing to answer.
        world.fake.dispatch("MESSAGE_CREATE", world.fake.message_payload(world.thread, world.bob, "and on a Mac?"))
        await settle(world, tracker)
    [post] = message_posts(world.fake, world.thread)
    assert post.body["embeds"][-1]["footer"]["text"].endswith(FOLLOW_UP_HINT)
    assert [q.text for q in ask.questions] == [VPN_Q, "sentinel question?"]


async def test_a_mention_in_the_thread_is_asked_with_the_topic(world: World, tmp_path: Path) -> None:
    ask, tracker = ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        await ask_and_wait(world, world.thread, mention(world, world.thread, "and on a Mac?", world.bob), tracker)
    assert ask.questions[1].text == "and on a Mac?" and ask.questions[1].earlier == (VPN_Q,)
    assert len(message_posts(world.fake, world.thread)) == 2


async def test_after_an_empty_answer_a_person_answering_gets_one_save_hint(world: World, tmp_path: Path) -> None:
    ask = ScriptedAsk(answer=Answer(text="", empty=True))
    tracker = TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.thread, mention(world, world.thread, "Where is the printer?"), tracker)
        answer = world.fake.message_payload(world.thread, world.bob, "Third floor, next to the kitchen")
        await ask_and_wait(world, world.thread, answer, tracker)
        world.fake.dispatch(
            "MESSAGE_CREATE", world.fake.message_payload(world.thread, world.kim, "And you need a badge")
        )
        await settle(world, tracker)
    posts = message_posts(world.fake, world.thread)
    assert len(posts) == 2 and posts[1].body["content"] == SAVE_OFFER
    assert posts[1].body["allowed_mentions"]["parse"] == []
    assert [q.text for q in ask.questions] == ["Where is the printer?", "sentinel question?"]


async def test_stop_reaction_and_stop_mention_end_follow_ups(world: World, tmp_path: Path) -> None:
    fake, ask, tracker = world.fake, ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.general, mention(world, world.general, VPN_Q), tracker)
        [answer] = answers_in(world, world.general)
        fake.dispatch("MESSAGE_REACTION_ADD", {
            "user_id": world.ana["user"]["id"], "channel_id": world.general["id"], "message_id": answer["id"],
            "guild_id": world.guild["id"], "member": {**world.ana}, "emoji": {"id": None, "name": "🛑"},
            "message_author_id": fake.bot_user["id"], "burst": False, "burst_colors": [], "type": 0,
        })
        await settle(world, tracker)  # the reaction was handled before the sentinel's answer
        fake.dispatch("MESSAGE_CREATE", reply_to(world, world.general, world.bob, "and on a Mac?", answer))
        # In a thread: "@kbbot stop".
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        await ask_and_wait(world, world.thread, mention(world, world.thread, "stop", world.bob), tracker)
        fake.dispatch("MESSAGE_CREATE", fake.message_payload(world.thread, world.bob, "and on a Mac?"))
        await settle(world, tracker)
    assert [q.text for q in ask.questions] == [VPN_Q, "sentinel question?", VPN_Q, "sentinel question?"]
    stopped = message_posts(fake, world.thread)[-1].body
    assert "stop answering" in stopped["content"]


async def test_bots_are_never_follow_ups(world: World, tmp_path: Path) -> None:
    ask, tracker = ScriptedAsk(), TaskTracker()
    other_bot = world.fake.user_payload(world.fake.snowflake(), "otherbot", bot=True)
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        world.fake.dispatch("MESSAGE_CREATE", world.fake.message_payload(world.thread, other_bot, "and on a Mac?"))
        await settle(world, tracker)
    assert [q.text for q in ask.questions] == [VPN_Q, "sentinel question?"]


async def test_after_a_thumbs_down_a_person_answering_gets_the_save_hint(world: World, tmp_path: Path) -> None:
    fake, ask, tracker = world.fake, ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.thread, mention(world, world.thread, VPN_Q), tracker)
        [answer] = answers_in(world, world.thread)
        click = fake.interaction_payload(
            channel=world.thread, member=world.ana, kind=3, message=answer,
            data={"custom_id": DOWN_ID, "component_type": 2},
        )
        fake.dispatch("INTERACTION_CREATE", click)
        # Answered once the vote has taken effect (see VoteButton.callback).
        await fake.await_for(lambda: fake.calls_to("POST", f"/interactions/{click['id']}/"))
        correction = fake.message_payload(world.thread, world.bob, "That page is old: use the new portal")
        await ask_and_wait(world, world.thread, correction, tracker)
    assert message_posts(fake, world.thread)[-1].body["content"] == SAVE_OFFER
    assert [q.text for q in ask.questions] == [VPN_Q]


async def test_stop_where_kbbot_is_not_following_says_so(world: World, tmp_path: Path) -> None:
    ask, tracker = ScriptedAsk(), TaskTracker()
    async with bot(world, tmp_path, ask, tracker):
        await ask_and_wait(world, world.general, mention(world, world.general, "stop"), tracker)
    assert "not following" in message_posts(world.fake, world.general)[-1].body["content"]
    assert ask.questions == []
