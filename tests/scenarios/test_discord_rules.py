"""Discord as it really behaves: the Message Content intent, server allowlist, save permissions, forwarded
messages, nicknames, deleted questions, the working reaction.

The real discord.py client against the fake Discord (tests/fakes/discord_api.py), whose payloads follow the
examples in discord/discord-api-docs (developers/resources/message.mdx, developers/interactions/
application-commands.mdx, developers/resources/channel.mdx, developers/resources/guild.mdx) and which applies
Discord's documented rules (see the fake's docstring; the rules themselves are tested in
test_discord_fake_rules.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kbbot.adapters.discord.guilds import REFUSED
from kbbot.adapters.discord.handlers import ADD_BOT_TO_THREAD, SAVING_OFF, USER_CANNOT_READ
from kbbot.core.ask import QueueListener
from kbbot.core.models import Answer, Question
from tests.fakes.discord_api import ADD_REACTIONS, MESSAGE_CONTENT, READ_MESSAGE_HISTORY
from tests.scenarios import test_discord
from tests.scenarios.test_discord import (
    RecordingSaver,
    ScriptedAsk,
    World,
    assert_no_ping,
    callbacks,
    followups,
    message_posts,
    perfect_wiki,
    running,
    seed_thread,
)

world = test_discord.world  # the same fixture: one guild with a channel, a forum, members and threads


def save_in(world: World, channel: dict, member: dict | None = None) -> dict:
    return world.fake.interaction_payload(
        channel=channel, member=member or world.ana, data=world.fake.slash("save-thread")
    )


# --------------------------------------------------------------------------------------------- Message Content


async def test_portal_switch_off_runs_without_saving_and_says_which_switch(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    fake.privileged_intents = 0  # the README used to say no privileged intent is needed
    seed_thread(world, world.thread, 3)
    saver, ask = RecordingSaver(), ScriptedAsk()
    with caplog.at_level(logging.WARNING, logger="kbbot"):
        async with running(world, saver=saver, ask=ask, data_dir=tmp_path):
            assert not fake.identifies[-1]["intents"] & MESSAGE_CONTENT  # no 4014: connected without it
            mention = fake.message_payload(
                world.general, world.bob, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user]
            )
            fake.dispatch("MESSAGE_CREATE", mention)
            await fake.await_for(lambda: message_posts(fake, world.general))  # asking by mention still works
            save = save_in(world, world.thread)
            fake.dispatch("INTERACTION_CREATE", save)
            [callback] = await fake.await_for(lambda: callbacks(fake, save))
    assert callback.body["data"]["content"] == SAVING_OFF and callback.body["data"]["flags"] & 64
    assert saver.threads == [] and ask.questions[0].text == "vpn?"
    [startup] = [r.getMessage() for r in caplog.records if "MESSAGE CONTENT INTENT" in r.getMessage()]
    assert "\n" not in startup and "Bot → Privileged Gateway Intents" in startup
    assert any("save refused" in r.getMessage() for r in caplog.records)


async def test_blank_history_is_refused_and_with_the_intent_the_page_is_complete(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 8)
    async with perfect_wiki(tmp_path) as (wiki, _backend, saver):
        async with running(world, saver=saver, data_dir=tmp_path):
            # The switch is turned off after the bot connected: REST history now comes back blank.
            fake.privileged_intents = 0
            blank = save_in(world, world.thread)
            fake.dispatch("INTERACTION_CREATE", blank)
            [refusal] = await fake.await_for(lambda: followups(fake, blank))
            assert wiki.pages() == []  # never a blank page reported as saved

            fake.privileged_intents = MESSAGE_CONTENT
            full = save_in(world, world.thread)
            fake.dispatch("INTERACTION_CREATE", full)
            [saved] = await fake.await_for(lambda: followups(fake, full))
        [page] = wiki.pages()
    assert refusal.body["content"].startswith("Not saved: Discord sent 8 of these messages without their text")
    assert "Message Content intent" in refusal.body["content"]
    assert any("save of thread" in r.getMessage() and "8 of 8" in r.getMessage() for r in caplog.records)
    assert "Saved 8 messages" in saved.body["content"]  # the 8; the bot's own "Not saved" note is no message
    assert all(f"message {i:03d}" in page["content"] for i in range(8))


async def test_the_context_menu_target_keeps_its_content_without_the_intent(world: World, tmp_path: Path) -> None:
    fake = world.fake
    question = fake.message_payload(world.post, world.ana, "How do I deploy the API?")
    fake.message_payload(world.post, world.bob, f"<@{fake.app_id}> answer this", mentions=[fake.bot_user])
    fake.message_payload(world.post, fake.bot_user, "", embeds=[{"description": "Run `make ship`."}])  # an answer
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        fake.privileged_intents = 0  # REST blanks Ana's question; the interaction's resolved copy has it
        menu = fake.interaction_payload(
            channel=world.post, member=world.ana, data=fake.message_command("Save thread to wiki", question)
        )
        assert menu["data"]["resolved"]["messages"][question["id"]]["content"] == "How do I deploy the API?"
        fake.dispatch("INTERACTION_CREATE", menu)
        [follow] = await fake.await_for(lambda: followups(fake, menu))
    [thread] = saver.threads
    assert [m.text for m in thread.messages] == ["How do I deploy the API?", "@kbbot answer this",
                                                "Run `make ship`."]
    assert "Saved 3 messages" in follow.body["content"]


# --------------------------------------------------------------------------------------------- only your servers


async def test_a_server_outside_the_allowlist_gets_nothing_and_is_left(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    other = fake.add_guild(name="Strangers")
    lobby = fake.add_channel(other, "lobby")
    eve = fake.add_member(other, "Eve")
    eve_thread = fake.add_thread(other, lobby, "copy the wiki", owner=eve)
    seed = fake.message_payload(eve_thread, eve, "secret plans")
    late = fake.add_guild(name="Added later", joined=False)  # someone adds the bot while it runs
    ask, saver = ScriptedAsk(), RecordingSaver()
    with caplog.at_level(logging.WARNING, logger="kbbot"):
        async with running(world, ask=ask, saver=saver, data_dir=tmp_path, discord_allowed_guilds=world.guild["id"]):
            await fake.await_for(lambda: other["id"] in fake.left_guilds)
            mention = fake.message_payload(lobby, eve, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user])
            slash = fake.interaction_payload(channel=lobby, member=eve, data=fake.slash("ask", question="vpn?"))
            save = save_in(world, eve_thread, eve)
            for event, payload in (("MESSAGE_CREATE", mention), ("INTERACTION_CREATE", slash),
                                   ("INTERACTION_CREATE", save)):
                fake.dispatch(event, payload)
            await fake.await_for(lambda: callbacks(fake, slash) and callbacks(fake, save))
            fake.join_guild(late)
            await fake.await_for(lambda: late["id"] in fake.left_guilds)
            # A stranger's DM and /ask in a DM get nothing either; a member of our server is answered in a DM.
            eve_dm = fake.dm_channel(eve["user"])
            fake.dispatch("MESSAGE_CREATE", fake.message_payload(eve_dm, eve["user"], "what is in the wiki?"))
            dm_slash = fake.interaction_payload(channel=eve_dm, member=eve, data=fake.slash("ask", question="x?"))
            fake.dispatch("INTERACTION_CREATE", dm_slash)
            await fake.await_for(lambda: callbacks(fake, dm_slash))
            bob_dm = fake.dm_channel(world.bob["user"])
            fake.dispatch("MESSAGE_CREATE", fake.message_payload(bob_dm, world.bob["user"], "dm ok?"))
            await fake.await_for(lambda: message_posts(fake, bob_dm))
            # Our own server is still served (events are handled in order: the mention above was ignored).
            ours = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> ok?", mentions=[fake.bot_user])
            fake.dispatch("MESSAGE_CREATE", ours)
            await fake.await_for(lambda: message_posts(fake, world.general))
    assert [q.text for q in ask.questions] == ["dm ok?", "ok?"] and saver.threads == []
    assert message_posts(fake, eve_dm) == []
    assert callbacks(fake, dm_slash)[0].body["data"]["content"] == REFUSED
    assert message_posts(fake, lobby) == [] and fake.calls_to("GET", f"/channels/{eve_thread['id']}/messages") == []
    for interaction in (slash, save):
        [callback] = callbacks(fake, interaction)
        assert callback.body["data"]["content"] == REFUSED and callback.body["data"]["flags"] & 64
    assert world.guild["id"] not in fake.left_guilds
    assert any("not in DISCORD_ALLOWED_GUILDS" in r.getMessage() for r in caplog.records)
    assert seed["content"] == "secret plans"


async def test_the_allowlist_defaults_to_discord_guild_ids(world: World, tmp_path: Path) -> None:
    fake = world.fake
    other = fake.add_guild(name="Strangers")
    async with running(world, data_dir=tmp_path, discord_guild_ids=world.guild["id"]):
        await fake.await_for(lambda: other["id"] in fake.left_guilds)
    assert fake.left_guilds == [other["id"]]


async def test_without_an_allowlist_a_public_bot_warns_at_start(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.fake
    fake.add_guild(name="Strangers")
    with caplog.at_level(logging.WARNING, logger="kbbot"):
        async with running(world, data_dir=tmp_path):
            pass
    assert fake.left_guilds == []
    assert any("Public Bot is on" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------- save permissions


async def test_a_member_without_read_message_history_cannot_save(world: World, tmp_path: Path) -> None:
    fake = world.fake
    seed_thread(world, world.thread, 3)
    # Kim holds a save role, but the channel hides its history from her (a member overwrite, as admins do).
    fake.overwrite(world.general, world.kim["user"]["id"], deny=READ_MESSAGE_HISTORY)
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path, discord_save_roles="wiki-editors"):
        denied = save_in(world, world.thread, world.kim)
        assert not int(denied["member"]["permissions"]) & READ_MESSAGE_HISTORY
        fake.dispatch("INTERACTION_CREATE", denied)
        [callback] = await fake.await_for(lambda: callbacks(fake, denied))
    assert callback.body["data"]["content"] == USER_CANNOT_READ and callback.body["data"]["flags"] & 64
    assert saver.threads == [] and fake.calls_to("GET", f"/channels/{world.thread['id']}/messages") == []


async def test_a_private_thread_without_the_bot_asks_to_add_it(world: World, tmp_path: Path) -> None:
    fake = world.fake
    private = fake.add_thread(world.guild, world.general, "Salaries", owner=world.ana, private_members=[world.bob])
    fake.message_payload(private, world.ana, "numbers are in the sheet")
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        first = save_in(world, private)
        fake.dispatch("INTERACTION_CREATE", first)
        [callback] = await fake.await_for(lambda: callbacks(fake, first))
        assert callback.body["data"]["content"] == ADD_BOT_TO_THREAD
        assert saver.threads == []

        fake.add_to_thread(private, fake.bot_user)  # someone added the bot
        again = save_in(world, private)
        fake.dispatch("INTERACTION_CREATE", again)
        await fake.await_for(lambda: followups(fake, again))
    [thread] = saver.threads
    assert [m.text for m in thread.messages] == ["numbers are in the sheet"]


# --------------------------------------------------------------------------------------------- messages


async def test_forwarded_messages_are_saved_with_their_content(world: World, tmp_path: Path) -> None:
    fake = world.fake
    original = fake.message_payload(
        world.general, world.bob, f"The VPN moved to vpn2, ask <@{world.ana['user']['id']}>",
        mentions=[world.ana], store=False,
        attachments=[{"id": "5", "filename": "vpn.conf", "size": 9, "url": "https://cdn.example/vpn.conf",
                      "proxy_url": "https://cdn.example/vpn.conf"}],
    )
    fake.forward_payload(world.thread, world.kim, original)
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        save = save_in(world, world.thread)
        fake.dispatch("INTERACTION_CREATE", save)
        await fake.await_for(lambda: followups(fake, save))
    [thread] = saver.threads
    [forward] = thread.messages
    assert forward.author_name == "Kim"
    assert forward.text == "*Forwarded message:*\n> The VPN moved to vpn2, ask @Ana B."
    assert [(a.name, a.url) for a in forward.attachments] == [("vpn.conf", "https://cdn.example/vpn.conf")]


async def test_saved_pages_show_server_nicknames(world: World, tmp_path: Path) -> None:
    fake = world.fake
    carol = fake.add_member(world.guild, "Carol", nick="Carol (IT)")
    for author, text in ((world.ana, "vpn?"), (carol, f"<@{world.ana['user']['id']}> restart it"), (world.ana, "ok")):
        mentions = [world.ana] if "<@" in text else []
        fake.message_payload(world.thread, author, text, mentions=mentions)
    assert "member" not in fake._rest_view(fake.channel_messages(world.thread["id"])[0])  # REST has no member
    saver = RecordingSaver()
    async with running(world, saver=saver, data_dir=tmp_path):
        save = save_in(world, world.thread)
        fake.dispatch("INTERACTION_CREATE", save)
        await fake.await_for(lambda: followups(fake, save))
    [thread] = saver.threads
    assert [(m.author_name, m.text) for m in thread.messages] == [
        ("Ana B.", "vpn?"), ("Carol (IT)", "@Ana B. restart it"), ("Ana B.", "ok")
    ]
    # One lookup per person, not per message.
    assert len(fake.calls_to("GET", f"/guilds/{world.guild['id']}/members/")) <= 2


@dataclass
class GatedAsk:
    """Answers once the test opens the gate (so the question can be deleted while the bot works on it)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    questions: list[Question] = field(default_factory=list)

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        self.questions.append(question)
        await self.gate.wait()
        return Answer(text="Use the VPN portal.")


async def test_a_deleted_question_still_gets_its_answer_without_a_reply_reference(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    ask = GatedAsk()
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", msg)
        await fake.await_for(lambda: ask.questions)
        fake.delete_message(world.general, msg)
        ask.gate.set()
        [post] = await fake.await_for(lambda: message_posts(fake, world.general))
    assert post.body["message_reference"]["fail_if_not_exists"] is False
    [answer] = fake.channel_messages(world.general["id"])
    assert "message_reference" not in answer and answer["embeds"][0]["description"] == "Use the VPN portal."
    assert_no_ping(post.body)


async def test_eyes_while_working_then_removed_and_optional(world: World, tmp_path: Path) -> None:
    fake = world.fake
    ask = GatedAsk()
    async with running(world, ask=ask, data_dir=tmp_path):
        msg = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", msg)
        await fake.await_for(lambda: fake.reactions(world.general, msg) == ["👀"])
        ask.gate.set()
        await fake.await_for(lambda: message_posts(fake, world.general) and not fake.reactions(world.general, msg))

        # Without Add Reactions the answer still arrives.
        fake.overwrite(world.general, fake.bot_role(world.guild)["id"], deny=ADD_REACTIONS, kind=0)
        second = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> wiki?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", second)
        await fake.await_for(lambda: len(message_posts(fake, world.general)) == 2)
    path = f"/channels/{world.general['id']}/messages/{msg['id']}/reactions/"
    assert [c.method for c in fake.calls if c.path.startswith(path)] == ["PUT", "DELETE"]
    assert fake.reactions(world.general, second) == []


async def test_hostile_forwards_and_nicknames_reach_the_page_inert(world: World, tmp_path: Path) -> None:
    # Forwarded text, nicknames and mentions are chosen by users: @everyone, HTML/script, control characters,
    # unicode and a huge forward must not ping, inject markup or drop the rest of the thread.
    fake = world.fake
    mallory = fake.add_member(world.guild, "Mallory", nick="<img src=x onerror=alert(1)> **M** \u202e")
    hostile = fake.message_payload(
        world.general, mallory, "@everyone <script>alert(1)</script> \x07 ünïcødé 🎉 " + "long " * 2000,
        store=False,
    )
    fake.forward_payload(world.thread, mallory, hostile)
    fake.message_payload(world.thread, world.ana, f"thanks <@{mallory['user']['id']}>", mentions=[mallory])
    async with perfect_wiki(tmp_path) as (wiki, _backend, saver):
        async with running(world, saver=saver, data_dir=tmp_path):
            save = save_in(world, world.thread)
            fake.dispatch("INTERACTION_CREATE", save)
            [follow] = await fake.await_for(lambda: followups(fake, save), timeout=10)
        [page] = wiki.pages()
    html = page["content"]
    assert "Saved 2 messages" in follow.body["content"]
    assert "<script" not in html and "<img" not in html  # at most escaped text, never a tag
    assert "@everyone" not in html  # made inert (a zero-width space after the @)
    assert "ünïcødé 🎉" in html and html.count("long") >= 2000
    assert "thanks @" in html
    assert_no_ping(follow.body)
