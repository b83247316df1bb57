"""The fake Discord's rules match Discord's documentation (discord/discord-api-docs), checked with discord.py's
own REST client (``discord.http.HTTPClient``) and gateway client against tests/fakes/discord_api.py.

Each test quotes the documentation passage it checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import discord
import discord.http
import pytest

from tests.fakes.discord_api import (
    ADD_REACTIONS,
    MESSAGE_CONTENT,
    READ_MESSAGE_HISTORY,
    VIEW_CHANNEL,
    FakeDiscord,
    discord_pointed_at,
)

ATTACHMENT = {"id": "9", "filename": "a.txt", "size": 1, "url": "https://cdn.example/a.txt",
              "proxy_url": "https://cdn.example/a.txt"}
EMBED = {"type": "rich", "title": "T", "description": "D"}


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake, discord_pointed_at(fake):
        yield fake


@asynccontextmanager
async def rest(fake: FakeDiscord) -> AsyncIterator[discord.http.HTTPClient]:
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    await http.static_login(fake.token)
    try:
        yield http
    finally:
        await http.close()


def guild_with_thread(fake: FakeDiscord) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    guild = fake.add_guild()
    channel = fake.add_channel(guild, "general")
    ana = fake.add_member(guild, "Ana", nick="Ana B.")
    thread = fake.add_thread(guild, channel, "t", owner=ana)
    return guild, channel, ana, thread


# --------------------------------------------------------------------------------------------- Message Content


async def test_rest_history_blanks_content_without_the_portal_switch(fake: FakeDiscord) -> None:
    """developers/events/gateway.mdx "Message Content Intent": apps without the intent "will receive empty values
    in fields that contain user-inputted content", except "Content in messages that an app sends", "Content in
    DMs with the app", "Content in which the app is mentioned"; message.mdx footnote [2]: "empty values in the
    content, embeds, attachments, and components fields while poll will be omitted". HTTP is bound by the
    portal's approval, not by IDENTIFY ("HTTP API restrictions are independent of Gateway restrictions")."""
    _guild, _channel, ana, thread = guild_with_thread(fake)
    plain = fake.message_payload(thread, ana, "plain", attachments=[ATTACHMENT], embeds=[EMBED])
    plain["poll"] = {"question": {"text": "?"}}
    fake.message_payload(thread, ana, f"<@{fake.app_id}> hi", mentions=[fake.bot_user])
    fake.message_payload(thread, fake.bot_user, "mine")
    dm = fake.dm_channel(ana["user"])
    fake.message_payload(dm, ana["user"], "in a dm")
    fake.privileged_intents = 0
    async with rest(fake) as http:
        oldest_first = list(reversed(await http.logs_from(int(thread["id"]), 100)))
        [in_dm] = await http.logs_from(int(dm["id"]), 100)
    blank, mention, own = oldest_first
    assert (blank["content"], blank["embeds"], blank["attachments"], blank["components"]) == ("", [], [], [])
    assert "poll" not in blank
    assert mention["content"] == f"<@{fake.app_id}> hi" and own["content"] == "mine"
    assert in_dm["content"] == "in a dm"

    fake.privileged_intents = MESSAGE_CONTENT
    async with rest(fake) as http:
        with_switch = (await http.logs_from(int(thread["id"]), 100))[-1]
    assert with_switch["content"] == "plain" and with_switch["attachments"] and with_switch["embeds"]


async def test_gateway_blanks_by_the_identified_intents_and_resolved_targets_keep_content(fake: FakeDiscord) -> None:
    """The same rule in MESSAGE_CREATE, by the intents sent in IDENTIFY; and "Content of the message a message
    context menu command is used on" is an exception (developers/events/gateway.mdx)."""
    _guild, channel, ana, _thread = guild_with_thread(fake)
    seen: list[discord.Message] = []
    got_interaction = asyncio.Event()
    targets: list[str] = []
    intents = discord.Intents.default()  # no Message Content
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    @client.event
    async def on_interaction(interaction: discord.Interaction[discord.Client]) -> None:
        resolved = (interaction.data or {}).get("resolved", {})
        targets.extend(m["content"] for m in resolved.get("messages", {}).values())
        got_interaction.set()

    task = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        assert not fake.identifies[-1]["intents"] & MESSAGE_CONTENT
        target = fake.message_payload(channel, ana, "right-clicked", attachments=[ATTACHMENT])
        fake.dispatch("MESSAGE_CREATE", target)
        mention = fake.message_payload(channel, ana, f"<@{fake.app_id}> hi", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", mention)
        menu = fake.interaction_payload(channel=channel, member=ana, data=fake.message_command("Save", target))
        fake.dispatch("INTERACTION_CREATE", menu)
        await asyncio.wait_for(got_interaction.wait(), 10)
    finally:
        await client.close()
        await asyncio.wait_for(task, 10)
    blank, mention = seen
    assert blank.content == "" and blank.attachments == []
    assert mention.content == f"<@{fake.app_id}> hi"
    assert targets == ["right-clicked"]


async def test_identify_with_a_disallowed_privileged_intent_closes_with_4014(fake: FakeDiscord) -> None:
    """developers/topics/opcodes-and-status-codes.mdx: "4014 | Disallowed intent(s) | You sent a disallowed intent
    for a Gateway Intent. You may have tried to specify an intent that you have not enabled or are not approved
    for." — discord.py turns it into PrivilegedIntentsRequired."""
    fake.privileged_intents = 0
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with client:
            await asyncio.wait_for(client.start(fake.token), 10)


async def test_application_flags_show_the_portal_switches(fake: FakeDiscord) -> None:
    """developers/resources/application.mdx "Application Flags": GATEWAY_MESSAGE_CONTENT_LIMITED (1 << 19) and
    GATEWAY_GUILD_MEMBERS_LIMITED (1 << 15) are the Bot page's switches for apps in under 100 servers."""
    async with rest(fake) as http:
        on = int((await http.application_info())["flags"])
        fake.privileged_intents = 0
        off = int((await http.application_info())["flags"])
    assert on & (1 << 19) and on & (1 << 15)
    assert off == 0


# --------------------------------------------------------------------------------------------- permissions


async def test_history_needs_view_channel_and_read_message_history(fake: FakeDiscord) -> None:
    """developers/resources/message.mdx "Get Channel Messages": "requires the current user to have the
    VIEW_CHANNEL permission"; "If the current user is missing the READ_MESSAGE_HISTORY permission in the
    channel, then no messages will be returned." Overwrites per developers/topics/permissions.mdx
    (a thread inherits its parent channel's)."""
    guild, channel, ana, thread = guild_with_thread(fake)
    fake.message_payload(thread, ana, "x")
    bot_role = fake.bot_role(guild)["id"]
    async with rest(fake) as http:
        assert len(await http.logs_from(int(thread["id"]), 100)) == 1
        fake.overwrite(channel, bot_role, deny=READ_MESSAGE_HISTORY, kind=0)
        assert await http.logs_from(int(thread["id"]), 100) == []
        fake.overwrite(channel, guild["id"], deny=VIEW_CHANNEL, kind=0)  # @everyone
        with pytest.raises(discord.Forbidden) as refused:
            await http.logs_from(int(thread["id"]), 100)
    assert refused.value.code == 50001  # Missing Access


async def test_private_threads_are_visible_to_members_and_manage_threads_only(fake: FakeDiscord) -> None:
    """developers/topics/threads.mdx: "Private threads ... You must be invited to the thread to be able to view
    or participate in it, or be a moderator (MANAGE_THREADS permission)"; GUILD_CREATE "will only include
    active threads the current user can view" (developers/resources/channel.mdx)."""
    guild = fake.add_guild()
    channel = fake.add_channel(guild, "general")
    ana = fake.add_member(guild, "Ana")
    private = fake.add_thread(guild, channel, "p", owner=ana, private_members=[])
    fake.message_payload(private, ana, "secret")
    assert private not in guild["threads"]
    assert fake.permissions(private, ana["user"]["id"]) & VIEW_CHANNEL
    async with rest(fake) as http:
        with pytest.raises(discord.Forbidden):
            await http.logs_from(int(private["id"]), 100)
        fake.add_to_thread(private, fake.bot_user)
        assert len(await http.logs_from(int(private["id"]), 100)) == 1


async def test_interactions_carry_permissions_computed_in_the_channel(fake: FakeDiscord) -> None:
    """developers/interactions/receiving-and-responding.mdx: ``member.permissions`` — "Total permissions of the
    member in the channel, including overwrites"; ``app_permissions`` — "Bitwise set of permissions the app
    has within the channel the interaction was sent from"."""
    _guild, channel, ana, thread = guild_with_thread(fake)
    fake.overwrite(channel, ana["user"]["id"], deny=READ_MESSAGE_HISTORY)
    interaction = fake.interaction_payload(channel=thread, member=ana, data=fake.slash("x"))
    assert not int(interaction["member"]["permissions"]) & READ_MESSAGE_HISTORY
    assert int(interaction["app_permissions"]) & READ_MESSAGE_HISTORY
    assert int(interaction["member"]["permissions"]) & VIEW_CHANNEL


async def test_reactions_need_add_reactions_unless_someone_reacted_already(fake: FakeDiscord) -> None:
    """developers/resources/message.mdx "Create Reaction": "requires the READ_MESSAGE_HISTORY permission ...
    Additionally, if nobody else has reacted to the message using this emoji, this endpoint requires the
    ADD_REACTIONS permission"; "Returns a 204 empty response on success"."""
    guild, channel, ana, _thread = guild_with_thread(fake)
    message = fake.message_payload(channel, ana, "q?")
    async with rest(fake) as http:
        await http.add_reaction(int(channel["id"]), int(message["id"]), "👀")
        assert fake.reactions(channel, message) == ["👀"]
        await http.remove_own_reaction(int(channel["id"]), int(message["id"]), "👀")
        assert fake.reactions(channel, message) == []
        fake.overwrite(channel, fake.bot_role(guild)["id"], deny=ADD_REACTIONS, kind=0)
        with pytest.raises(discord.Forbidden) as refused:
            await http.add_reaction(int(channel["id"]), int(message["id"]), "👀")
    assert refused.value.code == 50013  # Missing Permissions


# --------------------------------------------------------------------------------------------- shapes


async def test_rest_messages_have_no_member_and_members_are_fetched_by_id(fake: FakeDiscord) -> None:
    """developers/events/gateway-events.mdx "Message Create Extra Fields": ``member`` is an extra field of the
    gateway event (REST messages don't carry it); developers/resources/guild.mdx "Get Guild Member" returns the
    member with its ``nick`` (example: "Example Guild Member")."""
    guild, _channel, ana, thread = guild_with_thread(fake)
    created = fake.message_payload(thread, ana, "x")
    assert created["member"]["nick"] == "Ana B."
    async with rest(fake) as http:
        [listed] = await http.logs_from(int(thread["id"]), 100)
        member = await http.get_member(int(guild["id"]), int(ana["user"]["id"]))
        with pytest.raises(discord.NotFound):
            await http.get_member(int(guild["id"]), 1)
    assert "member" not in listed
    assert member["nick"] == "Ana B." and member["user"]["id"] == ana["user"]["id"]


async def test_a_reply_to_a_deleted_message_fails_unless_fail_if_not_exists_is_false(fake: FakeDiscord) -> None:
    """developers/resources/message.mdx "Message Reference Structure": ``fail_if_not_exists`` — "when sending,
    whether to error if the referenced message doesn't exist instead of sending as a normal (non-reply)
    message, default true"."""
    _guild, channel, ana, _thread = guild_with_thread(fake)
    question = fake.message_payload(channel, ana, "q?")
    fake.delete_message(channel, question)
    reference = {"message_id": question["id"], "channel_id": channel["id"]}
    async with rest(fake) as http:
        with pytest.raises(discord.HTTPException) as refused:
            await http.send_message(int(channel["id"]), params=_params(content="a", message_reference=reference))
        plain = {**reference, "fail_if_not_exists": False}
        sent = await http.send_message(int(channel["id"]), params=_params(content="a", message_reference=plain))
    assert refused.value.status == 400 and refused.value.code == 50035
    assert "message_reference" not in sent and sent["content"] == "a"


async def test_forwards_carry_a_snapshot_without_the_author(fake: FakeDiscord) -> None:
    """developers/resources/message.mdx "Forwards" / "Message Snapshot Object": message_reference type FORWARD
    (1), one snapshot with "type, content, embeds, attachments, timestamp, edited_timestamp, flags, mentions,
    mention_roles, stickers, sticker_items, and components" — "author will be excluded"."""
    _guild, channel, ana, thread = guild_with_thread(fake)
    original = fake.message_payload(channel, ana, "moved to vpn2", store=False)
    forward = fake.forward_payload(thread, ana, original)
    [snapshot] = forward["message_snapshots"]
    assert forward["message_reference"]["type"] == 1 and forward["content"] == ""
    assert snapshot["message"]["content"] == "moved to vpn2" and "author" not in snapshot["message"]
    fake.privileged_intents = 0
    async with rest(fake) as http:
        [listed] = await http.logs_from(int(thread["id"]), 100)
    assert listed["message_snapshots"][0]["message"]["content"] == ""  # also blanked without the intent


async def test_guilds_list_pages_and_leaving_a_guild(fake: FakeDiscord) -> None:
    """developers/resources/user.mdx "Get Current User Guilds" (partial guilds, ``after`` paging) and
    "Leave Guild" ("Returns a 204 empty response on success")."""
    first, second = fake.add_guild(name="A"), fake.add_guild(name="B")
    async with rest(fake) as http:
        assert [g["name"] for g in await http.get_guilds(200)] == ["A", "B"]
        assert [g["name"] for g in await http.get_guilds(1, after=int(first["id"]))] == ["B"]
        await http.leave_guild(int(second["id"]))
        assert [g["name"] for g in await http.get_guilds(200)] == ["A"]


def _params(*, content: str, message_reference: dict[str, Any]) -> Any:
    return discord.http.handle_message_parameters(content=content, message_reference=message_reference)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- payload shapes

def fields(names: str) -> set[str]:
    return set(names.split())


# The top-level fields of the examples in discord/discord-api-docs, copied from the files named. Optional
# fields an example happens to show (a message's ``reactions``, a guild's ``features`` values) are left out.
DOC_MESSAGE = fields(  # developers/resources/message.mdx "Example Message"
    "attachments tts embeds timestamp mention_everyone id pinned edited_timestamp author mention_roles content "
    "channel_id mentions type"
)
DOC_THREAD = fields(  # developers/resources/channel.mdx "Example Thread Channel"
    "id guild_id parent_id owner_id name type last_message_id message_count member_count rate_limit_per_user "
    "thread_metadata total_message_sent"
)
DOC_THREAD_METADATA = fields("archived auto_archive_duration archive_timestamp locked")
DOC_GUILD = fields(  # developers/resources/guild.mdx "Example Guild"
    "id name icon description splash discovery_splash features emojis banner owner_id application_id region "
    "afk_channel_id afk_timeout system_channel_id widget_enabled widget_channel_id verification_level roles "
    "default_message_notifications mfa_level explicit_content_filter max_presences max_members vanity_url_code "
    "premium_tier premium_subscription_count system_channel_flags preferred_locale rules_channel_id "
    "public_updates_channel_id safety_alerts_channel_id"
)
DOC_MEMBER = fields("user nick roles joined_at deaf mute")  # developers/resources/guild.mdx "Example Guild Member"
DOC_SLASH = fields(  # developers/interactions/application-commands.mdx "Example Interaction" (slash command)
    "type token member id guild_id app_permissions guild_locale locale data channel_id"
)
DOC_SLASH_DATA = fields("options type name id")
DOC_MENU = fields(  # developers/interactions/application-commands.mdx "Example Interaction" (message command)
    "application_id channel_id data guild_id guild_locale app_permissions id locale member token type version"
)
DOC_MENU_DATA = fields("id name resolved target_id type")
DOC_GUILD_CREATE_EXTRA = fields(  # developers/events/gateway-events.mdx "Guild Create" extra fields
    "joined_at large unavailable member_count voice_states members channels threads presences stage_instances "
    "guild_scheduled_events soundboard_sounds"
)


def test_payloads_have_the_fields_of_the_doc_examples(fake: FakeDiscord) -> None:
    guild, channel, ana, thread = guild_with_thread(fake)
    message = fake.message_payload(channel, ana, "hello")
    assert set(message) >= DOC_MESSAGE
    assert {"guild_id", "member"} <= set(message)  # MESSAGE_CREATE extra fields in a guild
    assert set(thread) >= DOC_THREAD and set(thread["thread_metadata"]) >= DOC_THREAD_METADATA
    assert set(guild) >= DOC_GUILD and set(guild) >= DOC_GUILD_CREATE_EXTRA
    assert set(ana) >= DOC_MEMBER
    slash = fake.interaction_payload(channel=channel, member=ana, data=fake.slash("ask", question="q"))
    assert set(slash) >= DOC_SLASH and set(slash["data"]) >= DOC_SLASH_DATA
    assert "permissions" in slash["member"]
    menu = fake.interaction_payload(channel=thread, member=ana, data=fake.message_command("Save", message))
    assert set(menu) >= DOC_MENU and set(menu["data"]) >= DOC_MENU_DATA
    assert set(menu["data"]["resolved"]["messages"][message["id"]]) >= DOC_MESSAGE
