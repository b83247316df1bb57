"""A Discord thread's history → the neutral :class:`Thread` that ThreadSaver turns into a page.

Discord hands out history newest-first in pages of at most 100; ``history(oldest_first=True)`` walks it with
``after=`` so the page reads top to bottom. Mentions become display names here, because a wiki reader cannot
resolve ``<@1234>``; attachments become links and embeds/stickers a one-line summary, so nothing silently
disappears from the saved page.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

import discord

from kbbot.adapters.markup import discord_to_markdown
from kbbot.core.models import Attachment, Thread, ThreadMessage

#: Message types that carry what people wrote (default, reply, slash-command output, context-menu output).
_CONTENT_TYPES = {
    discord.MessageType.default,
    discord.MessageType.reply,
    discord.MessageType.chat_input_command,
    discord.MessageType.context_menu_command,
}


async def read_thread(thread: discord.Thread) -> list[discord.Message]:
    """Every message of ``thread``, oldest first (discord.py fetches 100 per request, the API maximum)."""
    return [message async for message in thread.history(limit=None, oldest_first=True)]


def thread_to_neutral(thread: discord.Thread, messages: Iterable[discord.Message]) -> Thread:
    """Build the neutral thread. Keyed by the Discord thread id so a second save updates the same page."""
    converted: list[ThreadMessage] = []
    for message in messages:
        if message.type == discord.MessageType.thread_starter_message:
            # A thread started from a channel message: the starter lives in the parent channel and Discord
            # sends it along as the referenced message.
            starter = message.reference.resolved if message.reference is not None else None
            if isinstance(starter, discord.Message):
                converted.append(message_to_neutral(starter))
            continue
        if message.type not in _CONTENT_TYPES:
            continue  # joins, pins, renames: noise on a wiki page
        converted.append(message_to_neutral(message))
    parent = thread.parent
    return Thread(
        platform="discord",
        key=str(thread.id),
        messages=tuple(converted),
        permalink=thread.jump_url,
        channel_name=parent.name if parent is not None else None,
        title_hint=thread.name,
    )


def message_to_neutral(message: discord.Message) -> ThreadMessage:
    users = {str(user.id): user.display_name for user in message.mentions}
    roles = {str(role.id): role.name for role in message.role_mentions}
    channels = {str(channel.id): channel.name for channel in message.channel_mentions}
    text = discord_to_markdown(message.content or "", users=users, roles=roles, channels=channels)
    # A bot's embed is usually its whole message (e.g. kbbot's own answers): keep it; trim link previews.
    limit = 4096 if message.author.bot else 500
    extras = [_summarize_embed(embed, limit=limit) for embed in message.embeds]
    extras += [f"*(sticker: {sticker.name})*" for sticker in message.stickers]
    if extras:
        text = "\n\n".join(part for part in (text, *[e for e in extras if e]) if part)
    created = message.created_at.astimezone(UTC)
    return ThreadMessage(
        author_name=message.author.display_name,
        author_id=str(message.author.id),
        timestamp=created.isoformat(),
        text=text,
        attachments=tuple(Attachment(name=a.filename, url=a.url) for a in message.attachments),
        edited=message.edited_at is not None,
    )


def _summarize_embed(embed: discord.Embed, *, limit: int) -> str:
    """One quoted paragraph per embed: its title, link and (up to ``limit`` characters of) its text."""
    parts: list[str] = []
    if embed.title:
        parts.append(f"**{discord_to_markdown(embed.title)}**")
    if embed.url and embed.url.startswith(("https://", "http://")) and not any(c in embed.url for c in " <>\n"):
        parts.append(f"<{embed.url}>")
    if embed.description:
        description = discord_to_markdown(embed.description)
        parts.append(description if len(description) <= limit else description[: limit - 1] + "…")
    if not parts:
        return ""
    return "> Embed: " + " — ".join(parts).replace("\n", "\n> ")
