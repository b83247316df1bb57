"""What the bot does with Discord events: answer questions, save threads.

Every path ends in exactly one user-visible reply, and every send disables mentions. Failures are worded in
one place (:mod:`kbbot.adapters.discord.error_hook`): app commands raise to the command tree's error handler;
a question's failure goes through :meth:`DiscordHandlers.failed`. Interactions are acknowledged first — a
defer (type 5) — because Discord drops an interaction that gets no response within 3 seconds and a wiki AI
answer can take longer.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence

import discord
from discord.utils import MISSING

from kbbot.adapters.discord.error_hook import failure_text
from kbbot.adapters.discord.feedback import answer_buttons
from kbbot.adapters.discord.guilds import GuildGate
from kbbot.adapters.discord.history import blanked, display_names, read_thread, thread_to_neutral
from kbbot.adapters.discord.permissions import can_read_history, denied_text, may_save
from kbbot.adapters.discord.render import OutgoingMessage, render_answer, render_text, safe
from kbbot.adapters.services import ChatServices
from kbbot.core.ask import queue_notice
from kbbot.core.conversations import Reply
from kbbot.core.models import Answer, Asker, Question, SavedPage
from kbbot.core.replies import masked_note
from kbbot.core.text import count_messages, parse_tags

log = logging.getLogger(__name__)

NONE = discord.AllowedMentions.none()

NOT_IN_THREAD = (
    "Saving works inside a thread or forum post: open the thread you want to keep and run `/save-thread` "
    "there (or right-click a message in it → Apps → Save thread to wiki)."
)
EMPTY_THREAD = "There is nothing in this thread to save yet."
NO_HISTORY_ACCESS = (
    "I can't read this thread's history. Please give the bot the **Read Message History** and "
    "**View Channel** permissions here, then try again."
)
ADD_BOT_TO_THREAD = (
    "This is a private thread and I'm not in it, so I can't read it. Add me first (mention me in the thread, "
    "or thread menu → Add Members), then save again."
)
USER_CANNOT_READ = (
    "Saving publishes this thread's whole history, so only people who can read it may save it: you need "
    "**View Channel** and **Read Message History** here."
)
SAVING_OFF = (
    "Saving is off: Discord does not send this bot the text of messages, because its **Message Content "
    "intent** is not switched on. An admin can turn it on in the Developer Portal (Bot → Privileged Gateway "
    "Intents) and restart the bot."
)
BLANK_HISTORY = (
    "Not saved: Discord sent {count} of these messages without their text (the bot's **Message Content "
    "intent** is off in the Developer Portal), and a page without them would be wrong. An admin can switch it "
    "on (Bot → Privileged Gateway Intents); then save again."
)
#: Put on a question while the answer is being worked on (the invite's Add Reactions permission), as in Slack.
WORKING = "👀"
#: Under answers when the Message Content intent is off: replies without a mention arrive without their text.
FOLLOW_UP_HINT = "Mention me to ask a follow-up"
STOP_EMOJI = frozenset({"🛑"})
FOLLOWUPS_STOPPED = "OK, I'll stop answering replies here. Mention me if you need me again."
FOLLOWUPS_NOT_FOLLOWING = "I'm not following this conversation: I only answer replies where I answered."
SAVE_OFFER = (
    "💡 I couldn't answer this from the wiki, but this thread looks like it has the answer now. Save it with "
    "`/save-thread` (or right-click a message → Apps → Save thread to wiki), so the next person gets it from me."
)


Interaction = discord.Interaction[discord.Client]


class DiscordHandlers:
    """Holds the injected services; the client wiring (``client.py``) routes events here."""

    def __init__(
        self,
        *,
        client: discord.Client,
        services: ChatServices,
        gate: GuildGate | None = None,
        save_roles: Sequence[str] = (),
        auto_channels: Sequence[int] = (),
        auto_min_relevance: float = 0.0,
    ) -> None:
        self._client = client
        self._gate = gate or GuildGate(client, ())
        self._ask = services.ask
        self._saver = services.saver
        self._feedback = services.feedback
        self._save_roles = tuple(save_roles)
        self._auto_channels = frozenset(auto_channels)
        self._auto_min_relevance = auto_min_relevance
        #: Conversations kbbot answered in (follow-ups); None: only mentions, DMs and auto channels are answered.
        self._conversations = services.conversations

    # ------------------------------------------------------------------------------------------ asking

    def question_text(self, message: discord.Message) -> str | None:
        """The question in ``message``, or None when the bot should stay quiet.

        Answered: DMs, messages that @mention the bot, and (with the Message Content intent) messages with a
        ``?`` in the auto-answer channels or in threads/forum posts under them.
        """
        me = self._client.user
        if me is None or message.author.bot or message.webhook_id is not None or message.author.id == me.id:
            return None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None
        if self._unasked(message) and not self._auto_answers(message, message.content or ""):
            return None
        return self._plain(message)

    def _plain(self, message: discord.Message) -> str:
        """The message's text for the wiki: without the bot's mention, other mentions as names."""
        me = self._client.user
        text = self._own_mention(message, me.id).sub(" ", message.content or "") if me else message.content or ""
        # Other mentions → names, so the wiki AI sees "@Ana", not "<@1234>".
        for user in message.mentions:
            # The name goes in as a replacement template: its backslashes are doubled to stay backslashes.
            text = re.sub(rf"<@!?{user.id}>", ("@" + user.display_name).replace("\\", "\\\\"), text)
        for role in message.role_mentions:
            text = text.replace(f"<@&{role.id}>", "@" + role.name)
        for channel in message.channel_mentions:
            text = text.replace(f"<#{channel.id}>", "#" + channel.name)
        return text.strip()

    @staticmethod
    def _own_mention(message: discord.Message, my_id: int) -> re.Pattern[str]:
        # "@kbbot" typed in a server often autocompletes to the bot's managed role rather than its user.
        self_role = message.guild.self_role if message.guild is not None else None
        return re.compile(rf"<@!?{my_id}>" + (rf"|<@&{self_role.id}>" if self_role is not None else ""))

    def _unasked(self, message: discord.Message) -> bool:
        """A server message that does not mention the bot: answered only in auto-answer channels."""
        me = self._client.user
        if message.guild is None or me is None:
            return False
        return not self._own_mention(message, me.id).search(message.content or "")

    def _auto_answers(self, message: discord.Message, content: str) -> bool:
        if not self._auto_channels or "?" not in content:
            return False
        channel = message.channel
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        return channel.id in self._auto_channels or parent_id in self._auto_channels

    async def on_message(self, message: discord.Message) -> None:
        # A server the bot has just left is no longer cached: its messages have no ``guild`` and would look
        # like DMs, but their (partial) channel still carries the guild id.
        guild_id: int | None = message.guild.id if message.guild else getattr(message.channel, "guild_id", None)
        if guild_id is not None and not self._gate.allows(guild_id):
            log.warning("Discord: ignored a message from server %s (not in DISCORD_ALLOWED_GUILDS)", guild_id)
            await self._gate.leave_if_not_allowed(discord.Object(id=guild_id))
            return
        text = self.question_text(message)
        key = await self._conversation_of(message)
        earlier: tuple[str, ...] = ()
        followed = text is None
        if text is None:
            follow_up = await self._follow_up(message, key) if key is not None else None
            if follow_up is None:
                return
            text, earlier = follow_up
        elif self._conversations is not None and text.strip().casefold().rstrip(".!") == "stop":
            await self._stop(message, key)
            return
        elif key is not None and self._conversations is not None:
            earlier = await self._conversations.earlier(key)
        if guild_id is None and not await self._gate.serves(None, message.author.id):
            log.warning(
                "Discord: ignored a DM from user %s, who is in none of DISCORD_ALLOWED_GUILDS", message.author.id
            )
            return
        question = dataclasses.replace(_question(text, message.author, message.channel, message.id), earlier=earlier)
        notice = queue_notice(lambda text: self._reply_text(message, "⏳ " + text))
        await self._react(message, add=True)
        try:
            try:
                async with message.channel.typing():
                    answer = await self._ask.ask(question, on_queued=notice)
            except Exception as exc:
                await self.failed(message, exc)
                return
            if self._unasked(message) and not followed and not answer.confident(self._auto_min_relevance):
                # Nobody asked the bot: a "couldn't find it" or a weak quote would only be noise.
                log.info("Discord: stayed quiet in an auto-answer channel (no confident answer)")
                return
            sent = await self._reply_answer(message, answer, question.text)
            if self._conversations is not None and sent:
                await self._conversations.answered(
                    key or _conversation_key(message), question.text, empty=answer.empty or not answer.text.strip(),
                    messages=[_message_key(i) for i in sent],
                )
        finally:
            await self._react(message, add=False)

    # ------------------------------------------------------------------------------------------ follow-ups

    async def _conversation_of(self, message: discord.Message) -> str | None:
        """The conversation ``message`` continues: the one of kbbot's answer it replies to, else the thread it
        is in (whether kbbot answered there is the conversation store's to say)."""
        if self._conversations is None:
            return None
        ref = message.reference
        if ref is not None and ref.message_id is not None:
            key = await self._conversations.thread_of(_message_key(ref.message_id))
            if key is not None:
                return key
        if isinstance(message.channel, discord.Thread):
            return _thread_key(message.channel.id)
        return None

    async def _follow_up(self, message: discord.Message, key: str) -> tuple[str, tuple[str, ...]] | None:
        """A person's message without a mention in conversation ``key``: (text, earlier questions) to answer,
        or None (not a follow-up, an acknowledgement, or a save offer that was posted instead). Needs the
        Message Content intent: without it Discord sends such messages without their text."""
        me = self._client.user
        if self._conversations is None or me is None or not self._client.intents.message_content:
            return None
        if message.author.bot or message.webhook_id is not None or message.author.id == me.id:
            return None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None
        text = self._plain(message)
        decision = await self._conversations.decide(key, text)
        if decision.reply is Reply.ANSWER:
            return text, decision.earlier
        if decision.reply is Reply.OFFER_SAVE and isinstance(message.channel, discord.Thread):
            await message.channel.send(SAVE_OFFER, allowed_mentions=NONE)
        elif decision.reply is Reply.ACKNOWLEDGED:
            log.info("Discord: an acknowledgement in a conversation I answered; no answer needed")
        return None

    async def _stop(self, message: discord.Message, key: str | None) -> None:
        stopped = self._conversations is not None and key is not None and await self._conversations.stop(key)
        await self._reply_text(message, FOLLOWUPS_STOPPED if stopped else FOLLOWUPS_NOT_FOLLOWING)

    async def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """🛑 on one of kbbot's answers ends follow-ups in its conversation."""
        me = self._client.user
        if self._conversations is None or str(payload.emoji) not in STOP_EMOJI or (me and payload.user_id == me.id):
            return
        key = await self._conversations.thread_of(_message_key(payload.message_id))
        if key is not None and await self._conversations.stop(key):
            log.info("Discord: follow-ups stopped by a 🛑 reaction")

    async def on_vote(self, message: discord.Message | None, helpful: bool) -> None:
        """A 👍/👎 on an answer: after a 👎, the next person answering in its conversation is offered a save."""
        if helpful or message is None or self._conversations is None:
            return
        key = await self._conversations.thread_of(_message_key(message.id))
        if key is not None:
            await self._conversations.downvoted(key)

    async def _react(self, message: discord.Message, *, add: bool) -> None:
        """👀 on the question while working; a missing permission or a deleted question only skips it."""
        me = self._client.user
        try:
            if add:
                await message.add_reaction(WORKING)
            elif me is not None:
                await message.remove_reaction(WORKING, me)
        except discord.HTTPException as exc:
            log.debug("Discord: could not %s the working reaction (HTTP %s)", "add" if add else "remove", exc.status)

    async def refuse(self, message: discord.Message, exc: Exception) -> None:
        """Tell the asker why their question was not taken (the bot is stopping); other messages stay silent."""
        if self.question_text(message) is not None:
            await self.failed(message, exc)

    async def failed(self, message: discord.Message, exc: Exception) -> None:
        """The one reply to a question that failed, worded like an app command's (``error_hook``)."""
        await self._reply_text(message, failure_text(exc))

    async def ask_interaction(self, interaction: Interaction, question_text: str) -> None:
        """``/ask``: defer at once ("thinking…"), then answer in follow-ups.

        When the question has to wait for the wiki token's rate budget, the "thinking…" response is edited
        to show the asker's place in line, and the answer later replaces that notice (so it never lingers).
        """
        await interaction.response.defer(thinking=True)
        question = _question(question_text, interaction.user, interaction.channel, interaction.id)
        shown = False

        async def show(text: str) -> None:
            nonlocal shown
            await interaction.edit_original_response(content=render_text("⏳ " + text)[0], allowed_mentions=NONE)
            shown = True

        answer = await self._ask.ask(question, on_queued=queue_notice(show))
        await self._followup_answer(interaction, render_answer(answer, question=question_text), replace_original=shown)

    # ------------------------------------------------------------------------------------------ saving

    async def save_interaction(
        self,
        interaction: Interaction,
        *,
        title: str | None = None,
        tags: str | None = None,
        target: discord.Message | None = None,
    ) -> None:
        """``/save-thread`` and the "Save thread to wiki" message command (``target``: the message it was
        used on, which Discord sends with its content even without the Message Content intent)."""
        thread = interaction.channel
        refusal = self._save_refusal(interaction, thread)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True, allowed_mentions=NONE)
            return
        assert isinstance(thread, discord.Thread)
        await interaction.response.defer(thinking=True)
        try:
            me = self._client.user
            messages = await read_thread(thread, target=target, bot_id=me.id if me is not None else None)
            empty = blanked(messages, bot_id=me.id if me is not None else 0)
            if empty:
                log.warning(
                    "Discord: save of thread %s refused: %d of %d messages came without their text (the "
                    "Message Content intent is off in the Developer Portal)",
                    thread.id,
                    len(empty),
                    len(messages),
                )
                await self._followup_text(interaction, BLANK_HISTORY.format(count=len(empty)))
                return
            neutral = dataclasses.replace(
                thread_to_neutral(thread, messages, await display_names(thread.guild, messages)),
                places=_places(thread),
            )
            if not neutral.messages:
                await self._followup_text(interaction, EMPTY_THREAD)
                return
            tag_list = parse_tags(tags or "") or None
            saved = await self._saver.save(neutral, title=(title or "").strip() or None, tags=tag_list)
        except discord.Forbidden:
            log.warning("no access to the history of Discord thread %s", thread.id)
            private = thread.type == discord.ChannelType.private_thread
            await self._followup_text(interaction, ADD_BOT_TO_THREAD if private else NO_HISTORY_ACCESS)
            return
        await self._followup_text(interaction, saved_text(saved, count=len(neutral.messages)))

    def _save_refusal(self, interaction: Interaction, thread: object) -> str | None:
        """Why this save cannot start, checked before anything is read; None when it can."""
        if not isinstance(thread, discord.Thread):
            return NOT_IN_THREAD
        if not self._client.intents.message_content:
            log.warning("Discord: save refused: the Message Content intent is off (switch it on in the portal)")
            return SAVING_OFF
        if not may_save(
            thread=thread, user=interaction.user, permissions=interaction.permissions, save_roles=self._save_roles
        ):
            return denied_text(self._save_roles)
        if not can_read_history(interaction.permissions):
            return USER_CANNOT_READ
        if not can_read_history(interaction.app_permissions):
            # Without Read Message History Discord returns an empty history rather than an error.
            private = thread.type == discord.ChannelType.private_thread
            return ADD_BOT_TO_THREAD if private and not interaction.app_permissions.view_channel else NO_HISTORY_ACCESS
        return None

    # ------------------------------------------------------------------------------------------ sending

    async def _reply_answer(self, message: discord.Message, answer: Answer, question: str) -> list[int]:
        """Send the answer as a reply; returns the ids of the messages sent."""
        # Without the Message Content intent a reply without a mention reaches the bot without its text.
        hint = None if self._client.intents.message_content else FOLLOW_UP_HINT
        parts = render_answer(answer, question=question, hint=hint)
        sent: list[int] = []
        for index, part in enumerate(parts):
            view = answer_buttons(self._feedback) if index == len(parts) - 1 else discord.ui.View()
            if index == 0:
                posted = await message.channel.send(
                    part.content,
                    embeds=list(part.embeds),
                    view=view,
                    allowed_mentions=NONE,
                    reference=_reply_to(message),
                    mention_author=False,
                )
            else:
                posted = await message.channel.send(
                    part.content, embeds=list(part.embeds), view=view, allowed_mentions=NONE
                )
            sent.append(posted.id)
        return sent

    async def _reply_text(self, message: discord.Message, text: str) -> None:
        for index, chunk in enumerate(render_text(text)):
            if index == 0:
                await message.channel.send(
                    chunk, allowed_mentions=NONE, reference=_reply_to(message), mention_author=False
                )
            else:
                await message.channel.send(chunk, allowed_mentions=NONE)

    async def _followup_answer(
        self, interaction: Interaction, parts: list[OutgoingMessage], *, replace_original: bool = False
    ) -> None:
        """Send ``parts`` as follow-ups; with ``replace_original`` the first one replaces the (queue notice in
        the) original response instead."""
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if index == 0 and replace_original:
                await interaction.edit_original_response(
                    content=part.content,
                    embeds=list(part.embeds),
                    view=answer_buttons(self._feedback) if last else None,
                    allowed_mentions=NONE,
                )
                continue
            await interaction.followup.send(
                part.content or MISSING,
                embeds=list(part.embeds),
                view=answer_buttons(self._feedback) if last else MISSING,
                allowed_mentions=NONE,
            )

    async def _followup_text(self, interaction: Interaction, text: str, *, replace_original: bool = False) -> None:
        for index, chunk in enumerate(render_text(text)):
            if index == 0 and replace_original:
                await interaction.edit_original_response(content=chunk, embeds=[], view=None, allowed_mentions=NONE)
            else:
                await interaction.followup.send(chunk, allowed_mentions=NONE)


def saved_text(saved: SavedPage, *, count: int) -> str:
    """The confirmation after a save: a link when the wiki has one, or that the save is queued for retry."""
    if saved.pending:
        return (
            f"The wiki isn't reachable right now, so I queued this thread ({count_messages(count)}); "
            "it will be saved automatically as soon as the wiki is back, and I'll post the link in this thread."
        )
    verb = "Saved" if saved.created else "Updated"
    title = safe(saved.title.replace("[", "(").replace("]", ")")) or "the page"
    masked = f"\n🔒 {masked_note(saved)}" if masked_note(saved) else ""
    if saved.url:
        return f"{verb} {count_messages(count)} to the wiki: [{title}]({saved.url}){masked}"
    return f"{verb} {count_messages(count)} to the wiki as “{title}”.{masked}"


def _thread_key(thread_id: int) -> str:
    return f"discord:thread:{thread_id}"


def _message_key(message_id: int) -> str:
    return f"discord:msg:{message_id}"


def _conversation_key(message: discord.Message) -> str:
    """Where an answer to ``message`` starts a conversation: its thread, else the question itself (replies to the
    answer find it through the answer's message ids)."""
    if isinstance(message.channel, discord.Thread):
        return _thread_key(message.channel.id)
    return f"discord:reply:{message.channel.id}:{message.id}"


def _reply_to(message: discord.Message) -> discord.MessageReference:
    """A reply that Discord sends as a plain message when the question was deleted in the meantime
    (``fail_if_not_exists=False``), instead of rejecting it and losing the answer."""
    return message.to_reference(fail_if_not_exists=False)


def _question(text: str, user: discord.abc.User, channel: object, event_id: int) -> Question:
    """A Discord question: the asker by id and display name, one conversation per channel and message, and
    where it was asked (channel, parent channel, server) for routing to a knowledgebase."""
    places = _places(channel)
    return Question(
        text=text,
        asker=Asker(id=str(user.id), name=user.display_name),
        conversation_key=f"{getattr(channel, 'id', None)}:{event_id}",
        platform="discord",
        places=places,
        direct=_guild_id(channel) is None,
    )


def _places(channel: object) -> tuple[str, ...]:
    """Channel, parent channel (threads, forum posts), server: most specific first."""
    ids = (getattr(channel, "id", None), getattr(channel, "parent_id", None), _guild_id(channel))
    return tuple(dict.fromkeys(str(i) for i in ids if i is not None))


def _guild_id(channel: object) -> int | None:
    guild = getattr(channel, "guild", None)
    return getattr(guild, "id", None) if guild is not None else getattr(channel, "guild_id", None)
