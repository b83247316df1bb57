"""A Discord thread's history → the neutral :class:`Thread` that ThreadSaver turns into a page.

Discord hands out history newest-first in pages of at most 100; ``history(oldest_first=True)`` walks it with
``after=`` so the page reads top to bottom. Mentions become display names here, because a wiki reader cannot
resolve ``<@1234>``; attachments become links, embeds readable content (``kbbot/formats/discord_embed.py``) and
stickers a one-line summary, so nothing silently disappears from the saved page. Forwarded messages carry their
text in ``message_snapshots`` (the forward itself is empty) and are saved as a quote.

Names: REST history has no ``member`` objects (only gateway MESSAGE_CREATE does), so a message's author is a
plain user with their global name. The page shows what people see in the server — their nickname — so the
names are looked up per author: the member cache first, else ``GET /guilds/{id}/members/{user}`` (one call
per distinct author; no privileged intent needed).

Blank messages: without the Message Content intent, Discord sends the messages of a thread with empty
``content``, ``embeds``, ``attachments`` and ``components`` (except the bot's own, ones that mention it, and
the message a context-menu command was used on). A real message is never empty, so :func:`blanked` finds
them and the save is refused instead of publishing a page of empty quotes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC

import discord

from kbbot.adapters.markup import discord_to_markdown
from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.formats.discord_embed import embed_markdown, forwarded_quote

log = logging.getLogger(__name__)

#: Message types that carry what people wrote (default, reply, slash-command output, context-menu output).
_CONTENT_TYPES = {
    discord.MessageType.default,
    discord.MessageType.reply,
    discord.MessageType.chat_input_command,
    discord.MessageType.context_menu_command,
}

Names = Mapping[int, str]
_NO_NAMES: Names = {}


async def read_thread(
    thread: discord.Thread, *, target: discord.Message | None = None, bot_id: int | None = None
) -> list[discord.Message]:
    """Every message of ``thread``, oldest first (discord.py fetches 100 per request, the API maximum), but for
    kbbot's own notices (``bot_id``: its user; see :func:`own_notice`).

    ``target`` — the message a context-menu command was used on — replaces its copy from the history: Discord
    always sends it with its content."""
    messages = [
        message
        async for message in thread.history(limit=None, oldest_first=True)
        if bot_id is None or not own_notice(message, bot_id=bot_id)
    ]
    if target is not None:
        messages = [target if message.id == target.id else message for message in messages]
    return messages


def own_notice(message: discord.Message, *, bot_id: int) -> bool:
    """Whether ``message`` is one of kbbot's notices ("Saved to the wiki …", save offers, errors), which a saved
    page leaves off. Its answers stay — people reply to them, so the page reads as the conversation did — and
    are told apart by their embeds (every answer is embeds; every notice plain content). Slack does the same
    (kbbot.formats.slack.to_neutral)."""
    return message.author.id == bot_id and not message.embeds


def _written(messages: Iterable[discord.Message]) -> list[discord.Message]:
    """The messages that go on the page, with a thread's starter message (type 21) replaced by the channel
    message it points to (Discord sends that along as the referenced message)."""
    kept: list[discord.Message] = []
    for message in messages:
        if message.type == discord.MessageType.thread_starter_message:
            starter = message.reference.resolved if message.reference is not None else None
            if isinstance(starter, discord.Message):
                kept.append(starter)
        elif message.type in _CONTENT_TYPES:
            kept.append(message)  # joins, pins, renames: noise on a wiki page
    return kept


def blanked(messages: Iterable[discord.Message], *, bot_id: int) -> list[discord.Message]:
    """The messages that came back emptied by the Message Content rule (see the module docstring)."""
    empty = []
    for message in _written(messages):
        # Threads live in servers, so only the bot's own messages and those mentioning it are exempt.
        if message.author.id == bot_id or any(u.id == bot_id for u in message.mentions):
            continue
        has_body = (
            message.content
            or message.embeds
            or message.attachments
            or message.stickers
            or message.components
            or message.poll is not None
            or any(s.content or s.embeds or s.attachments or s.stickers for s in message.message_snapshots)
        )
        if not has_body:
            empty.append(message)
    return empty


async def display_names(guild: discord.Guild | None, messages: Iterable[discord.Message]) -> dict[int, str]:
    """Server display names (nickname, else global name) of every author and mentioned user."""
    users: dict[int, discord.abc.User | None] = {}
    for message in _written(messages):
        users.setdefault(message.author.id, message.author)
        for mentioned in message.mentions:
            users.setdefault(mentioned.id, mentioned)
        for snapshot in message.message_snapshots:
            for user_id in snapshot.raw_mentions:
                users.setdefault(user_id, None)  # a forward sends mention ids only
    names: dict[int, str] = {}
    for user_id, user in users.items():
        if isinstance(user, discord.Member) or guild is None:
            if user is not None:
                names[user_id] = user.display_name
            continue
        member = guild.get_member(user_id)
        if member is None:
            try:
                member = await guild.fetch_member(user_id)
            except discord.NotFound:
                pass  # left the server: the global name is all there is
            except discord.HTTPException as exc:
                log.warning("could not look up a Discord member's nickname (HTTP %s)", exc.status)
        known: discord.abc.User | None = member or user
        if known is not None:
            names[user_id] = known.display_name
    return names


def thread_to_neutral(thread: discord.Thread, messages: Iterable[discord.Message], names: Names = _NO_NAMES) -> Thread:
    """Build the neutral thread. Keyed by the Discord thread id so a second save updates the same page."""
    parent = thread.parent
    return Thread(
        platform="discord",
        key=str(thread.id),
        messages=tuple(message_to_neutral(message, names) for message in _written(messages)),
        permalink=thread.jump_url,
        channel_name=parent.name if parent is not None else None,
        title_hint=thread.name,
    )


def message_to_neutral(message: discord.Message, names: Names = _NO_NAMES) -> ThreadMessage:
    users = {str(user.id): names.get(user.id, user.display_name) for user in message.mentions}
    text = _markdown(message.content, users, message)
    # A bot's embed is its message (kbbot's answers are); anyone else's a link preview, shown under their words.
    preview = not message.author.bot
    extras = [embed_markdown(embed.to_dict(), preview=preview, users=users) for embed in message.embeds]
    extras += [f"*(sticker: {sticker.name})*" for sticker in message.stickers]
    attachments = [Attachment(name=a.filename, url=a.url) for a in message.attachments]
    for snapshot in message.message_snapshots:
        extras.append(_forwarded(snapshot, names, message, preview=preview))
        attachments += [Attachment(name=a.filename, url=a.url) for a in snapshot.attachments]
    if extras:
        text = "\n\n".join(part for part in (text, *[e for e in extras if e]) if part)
    created = message.created_at.astimezone(UTC)
    return ThreadMessage(
        author_name=names.get(message.author.id, message.author.display_name),
        author_id=str(message.author.id),
        timestamp=created.isoformat(),
        text=text,
        attachments=tuple(attachments),
        edited=message.edited_at is not None,
    )


def _markdown(content: str, users: Mapping[str, str], message: discord.Message) -> str:
    roles = {str(role.id): role.name for role in message.role_mentions}
    channels = {str(channel.id): channel.name for channel in message.channel_mentions}
    return discord_to_markdown(content or "", users=users, roles=roles, channels=channels)


def _forwarded(snapshot: discord.MessageSnapshot, names: Names, message: discord.Message, *, preview: bool) -> str:
    """A forwarded message as a quote: its text, embeds and stickers (its author is not sent by Discord)."""
    users = {str(user_id): names[user_id] for user_id in snapshot.raw_mentions if user_id in names}
    parts = [_markdown(snapshot.content, users, message)]
    parts += [embed_markdown(embed.to_dict(), preview=preview, users=users) for embed in snapshot.embeds]
    parts += [f"*(sticker: {sticker.name})*" for sticker in snapshot.stickers]
    return forwarded_quote("\n\n".join(part for part in parts if part))

