"""DiscordChatExporter JSON → the neutral :class:`Thread` of one channel.

Shapes read (from DiscordChatExporter's ``JsonMessageWriter.cs``, across versions): ``guild``, ``channel``,
``dateRange``, ``messages`` (``id``, ``type``, ``timestamp``, ``timestampEdited``, ``content``, ``author``
with ``nickname``/``name``/``isBot``, ``attachments``, ``embeds``, ``stickers`` (absent before 2.27),
``mentions``, ``reference`` (``messageId``; ``type`` ``Forward`` since 2.44), ``forwardedMessage``,
``interaction``), ``messageCount``. Older versions lack the newer keys; every key is optional here except a
message's ``timestamp``.

A channel exported with a size or message-count limit arrives as ``Name [part 2].json``, ``[part 3]``…: each
part is the same channel (same ``channel.id``), so they are one conversation; joining parts and separate
exports of one channel is done by the transcript archive (``kbbot/store/transcript_archive.py``): no part
replaces another's messages.

Content is shown as the live bot shows it (``adapters/discord/history.py``): embeds as ``discord_embed.py``
renders them, stickers as a one-line summary, attachments as links. System messages (joins —
DiscordChatExporter writes "Joined the server." —, pins, renames, calls, thread-created notices) are events,
not chat, and are skipped; a reply keeps a line quoting what it answers; a forwarded message keeps the
forwarded text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from kbbot.adapters.markup import discord_to_markdown
from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.errors import ExportError
from kbbot.formats.discord_embed import embed_markdown, forwarded_quote
from kbbot.formats.fields import text_field

__all__ = [
    "SYSTEM_TYPES",
    "is_discord_export",
    "parse_discord_export",
]

#: DiscordChatExporter's names for Discord's system message types (MessageKind.cs): not conversation.
SYSTEM_TYPES = frozenset({
    "RecipientAdd", "RecipientRemove", "Call", "ChannelNameChange", "ChannelIconChange", "ChannelPinnedMessage",
    "GuildMemberJoin", "ThreadCreated",
})

_REPLY_SNIPPET = 120


def is_discord_export(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("messages"), list)


def parse_discord_export(
    data: Mapping[str, Any], name: str, *, since: date | None = None, until: date | None = None
) -> Thread:
    """Read one DiscordChatExporter file. ``since``/``until`` (inclusive, UTC dates) keep only those days."""
    channel = _dict(data.get("channel"))
    raw = [m for m in data.get("messages") or () if isinstance(m, dict)]
    users: dict[str, str] = {}
    by_id: dict[str, Mapping[str, Any]] = {}
    for item in raw:
        author = _dict(item.get("author"))
        if uid := text_field(author.get("id")):
            users.setdefault(uid, _author_name(author))
        for mention in item.get("mentions") or ():
            if isinstance(mention, dict) and (mid := text_field(mention.get("id"))):
                users.setdefault(mid, _author_name(mention))
        if mid := text_field(item.get("id")):
            by_id.setdefault(mid, item)
    messages: dict[str, ThreadMessage] = {}
    for index, item in enumerate(raw):
        stamp = _iso(text_field(item.get("timestamp")))
        if stamp is None:
            raise ExportError(f"{name}: message {index + 1} has no valid 'timestamp'")
        if text_field(item.get("type")) in SYSTEM_TYPES:
            continue
        day = datetime.fromisoformat(stamp).date()
        if (since and day < since) or (until and day > until):
            continue
        message = _message(item, stamp, users, by_id)
        # Some exports repeat a message (an edit caught mid-export): keep one per id, the last one written.
        messages[message.id or f"#{index}"] = message
    channel_id = text_field(channel.get("id")) or hashlib.sha256(name.encode()).hexdigest()[:16]
    return Thread(
        "discord",
        f"export:{channel_id}",
        _ordered(messages.values()),
        channel_name=text_field(channel.get("name")) or None,
    )


def _ordered(messages: Iterable[ThreadMessage]) -> tuple[ThreadMessage, ...]:
    return tuple(sorted(messages, key=lambda m: (m.timestamp, int(m.id) if m.id.isdigit() else 0)))


def _message(
    item: Mapping[str, Any], stamp: str, users: Mapping[str, str], by_id: Mapping[str, Mapping[str, Any]]
) -> ThreadMessage:
    author = _dict(item.get("author"))
    bot = bool(author.get("isBot"))
    text = _content(item, users, bot=bot)
    reference = _dict(item.get("reference"))
    forwarded = _dict(item.get("forwardedMessage"))
    attachments = _attachments(item.get("attachments"))
    if forwarded or text_field(reference.get("type")) == "Forward":
        shown = forwarded_quote(_content(forwarded, users, bot=bot) if forwarded else "")
        text = "\n\n".join(part for part in (text, shown) if part)
        attachments += _attachments(forwarded.get("attachments"))
    elif ref_id := text_field(reference.get("messageId")):
        text = _reply_line(by_id.get(ref_id), users) + ("\n\n" + text if text else "")
    interaction = _dict(item.get("interaction"))
    if command := text_field(interaction.get("name")):
        by = _author_name(_dict(interaction.get("user")))
        text = f"*(/{command}{' by ' + by if by else ''})*" + ("\n\n" + text if text else "")
    return ThreadMessage(
        author_name=_author_name(author) or "unknown",
        author_id=text_field(author.get("id")),
        timestamp=stamp,
        text=text,
        attachments=attachments,
        edited=bool(item.get("timestampEdited")),
        id=text_field(item.get("id")),
    )


def _content(item: Mapping[str, Any], users: Mapping[str, str], *, bot: bool) -> str:
    content = item.get("content")
    text = discord_to_markdown(content, users=users) if isinstance(content, str) else ""
    # A bot's embed is its message (kbbot's answers are); anyone else's a link preview (as the live bot shows).
    extras = [embed_markdown(e, preview=not bot, users=users) for e in item.get("embeds") or () if isinstance(e, dict)]
    extras += [f"*(sticker: {text_field(s.get('name'))})*" for s in item.get("stickers") or () if isinstance(s, dict)]
    return "\n\n".join(part for part in (text, *extras) if part)


def _reply_line(target: Mapping[str, Any] | None, users: Mapping[str, str]) -> str:
    if target is None:
        return "> ↪ *Reply to a message not in this export*"
    who = _author_name(_dict(target.get("author"))) or "someone"
    said = discord_to_markdown(text_field(target.get("content")), users=users).replace("\n", " ")
    if len(said) > _REPLY_SNIPPET:
        said = said[: _REPLY_SNIPPET - 1] + "…"
    return f"> ↪ *Replying to {who}*" + (f": {said}" if said else "")


def _attachments(items: object) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(text_field(a.get("fileName")) or "file", text_field(a.get("url")))
        for a in (items if isinstance(items, list) else ())
        if isinstance(a, dict) and text_field(a.get("url"))
    )


def _author_name(author: Mapping[str, Any]) -> str:
    return text_field(author.get("nickname")) or text_field(author.get("name"))


def _iso(stamp: str) -> str | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


