"""One Discord embed → Markdown for the neutral message: the one embed conversion of the live history
(``adapters/discord/history.py``) and DiscordChatExporter imports (``discord_export.py``), so an embed reads the
same on a page either way (as does a forwarded message: :func:`forwarded_quote`).

Shape read: Discord's Embed Object (discord/discord-api-docs ``developers/resources/message.mdx``, "Embed
Object"): ``title``, ``url``, ``description``, ``fields`` (``name``, ``value``), ``footer.text``,
``author.name``. ``discord.Embed.to_dict()`` gives exactly that; DiscordChatExporter writes the same keys.
Every key is optional and may be of the wrong type.

A bot's embed *is* its message — kbbot's answers are nothing but embeds (the question as title, the answer as
description, a "Related pages" field, the source as footer) — so it is shown as the message's own content:
author, title (linked to ``url``), description, each field as its bold name over its value, the footer in
italics. Anyone else's embed is a preview Discord made of a link they posted: it goes under their words as a
quote, its text cut to :data:`PREVIEW_CHARS`.

Text goes through :func:`discord_to_markdown` like message content (mentions inert, ``<t:…>`` dates, spoilers
shown); titles, names and footers are one line, so they cannot open headings or lists of their own. The page
renderers escape whatever HTML is left and drop links that are not http(s).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kbbot.adapters.markup import discord_to_markdown

__all__ = ["PREVIEW_CHARS", "embed_markdown", "forwarded_quote"]

#: A link preview's text is cut here (the link itself is what matters).
PREVIEW_CHARS = 500
#: Bots list with "•" (kbbot's related pages do): a Markdown list, so each item stays on its own line.
_BULLET = re.compile(r"^([ \t]*)[•◦▪‣][ \t]*", re.MULTILINE)
#: What would open a block (heading, quote, list, rule, fence, table) at the start of a one-line label.
_BLOCK_START = re.compile(r"^(?:([#>+\-=*_~`|])|(\d{1,9})([.)]))")
_EMPTY: Mapping[str, str] = {}


def embed_markdown(embed: Mapping[str, Any], *, preview: bool, users: Mapping[str, str] = _EMPTY) -> str:
    """The embed as Markdown ("" when it shows nothing): its author's message content, or (``preview``) a quoted
    link preview. ``users`` maps mentioned user ids to names."""
    title = _line(embed.get("title"), users)
    url = _url(embed.get("url"))
    parts: list[str] = []
    if author := _line(_dict(embed.get("author")).get("name"), users):
        parts.append(author)
    if title:
        label = title.replace("[", "\\[").replace("]", "\\]")
        parts.append(_bold(f"[{label}](<{url}>)" if url else title))
    elif url:
        parts.append(f"<{url}>")
    if description := _text(embed.get("description"), users):
        parts.append(description[: PREVIEW_CHARS - 1] + "…" if preview and len(description) > PREVIEW_CHARS
                     else description)
    for field in embed.get("fields") or () if isinstance(embed.get("fields"), list) else ():
        field = _dict(field)
        name, value = _line(field.get("name"), users), _text(field.get("value"), users)
        if name or value:
            parts.append("\n".join(p for p in (_bold(name) if name else "", value) if p))
    if footer := _line(_dict(embed.get("footer")).get("text"), users):
        parts.append(f"*{footer}*" if "*" not in footer else footer)
    body = "\n\n".join(parts)
    if not body or not preview:
        return body
    return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))


def forwarded_quote(body: str) -> str:
    """A forwarded message as a quote of its Markdown ``body`` (Discord does not send who wrote it)."""
    return "*Forwarded message:*\n> " + body.replace("\n", "\n> ") if body else "*Forwarded message*"


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object, users: Mapping[str, str]) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    return _BULLET.sub(r"\1- ", discord_to_markdown(value.strip(), users=users))


def _line(value: object, users: Mapping[str, str]) -> str:
    """A one-line label (title, field name, author, footer): whitespace runs, newlines included, are one space."""
    if not isinstance(value, str):
        return ""
    line = " ".join(discord_to_markdown(" ".join(value.split()), users=users).split())
    return _BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", line)


def _bold(text: str) -> str:
    # A label with its own asterisks would unbalance the emphasis: shown as written instead.
    return f"**{text}**" if "*" not in text else text


def _url(value: object) -> str:
    url = value.strip() if isinstance(value, str) else ""
    ok = url.startswith(("https://", "http://")) and not any(c in url for c in " <>\n\t")
    return url if ok else ""
