"""One Slack message → a neutral :class:`ThreadMessage`: the only Slack message converter.

Live saves (``conversations.replies``, in ``adapters/slack/history.py``) and export imports (``slack_export.py``,
``kbbot save`` of a day file) both call :func:`to_neutral`, so the same thread saved either way renders to the
same page (and :func:`thread_key` gives it the same key as a live save, ``CHANNEL:THREAD_TS``).

What a message holds, and where it goes on the page:

* ``text`` (mrkdwn) → Markdown. Integration posts (GitHub, PagerDuty, Datadog, CI bots) put their content in
  legacy ``attachments`` (pretext, title, text, fields, footer) or only in ``blocks`` (``rich_text``,
  ``section``, ``header``, ``context``): both are rendered. A ``rich_text`` block is what Slack made of the text
  the person typed, so when ``text`` is there it wins; other blocks are shown unless the text already says it.
* ``files`` → attachment links (the permalink, else ``url_private`` without its ``?t=xoxe-…`` token).
* ``tombstone`` (a deleted message that still has replies) → "(deleted message)", with no author.
* Bot and integration messages are credited to the bot's name (``bot_profile.name``, else ``username``).
* ``thread_broadcast`` (a reply also sent to the channel) says so; joins, leaves, topic and pin notices are
  events, not chat, and are skipped (:func:`to_neutral` returns None).
* kbbot's own messages (live saves pass its ``bot_user_id``): its answers stay, because people reply to them and
  the page must read as the conversation did; its notices (save confirmations, errors, help) are skipped, or a
  re-save would put "Saved this thread to the wiki" on the page. An answer is told by its blocks' ids
  (:data:`ANSWER_BLOCK_ID`, set by the renderer). Discord's history applies the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kbbot.adapters.markup import slack_to_markdown
from kbbot.core.models import Attachment, ThreadMessage
from kbbot.core.page_render import clean_title
from kbbot.core.secrets import strip_link_tokens

__all__ = [
    "ANSWER_BLOCK_ID",
    "SYSTEM_SUBTYPES",
    "iso_time",
    "message_markdown",
    "referenced_ids",
    "thread_key",
    "thread_title_hint",
    "title_hint",
    "to_neutral",
    "user_display_name",
]

#: Notices Slack posts as messages: not part of the conversation, so not on the page.
SYSTEM_SUBTYPES = frozenset({
    "channel_join", "channel_leave", "group_join", "group_leave", "channel_topic", "channel_purpose",
    "channel_name", "group_topic", "group_purpose", "group_name", "channel_archive", "channel_unarchive",
    "group_archive", "group_unarchive", "pinned_item", "unpinned_item", "bot_add", "bot_remove",
    "channel_convert_to_private", "channel_convert_to_public", "reminder_add", "joiner_notification",
    "slackbot_response", "app_conversation_join",
})

#: The ``block_id`` prefix of the blocks of kbbot's answers (``kb_answer_actions``: the buttons under one).
ANSWER_BLOCK_ID = "kb_answer"

_MENTION = re.compile(r"<@([UWB][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)\|([^>]*)>")
_WORDS = re.compile(r"[\W_]+")
#: Link previews (``from_url``) are trimmed like Discord's; an integration's own attachment is kept whole.
_PREVIEW_CHARS = 500
_EMPTY: Mapping[str, str] = {}


def thread_key(channel_id: str, thread_ts: str) -> str:
    """The saved-thread key of a Slack thread, for live saves (``ThreadRef.key``) and export imports alike."""
    return f"{channel_id}:{thread_ts}"


def iso_time(ts: str) -> str:
    """A Slack ``ts`` (epoch seconds as a string) as ISO 8601 UTC; ``ValueError`` when it is not a time."""
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC).isoformat()
    except (OverflowError, OSError) as exc:
        raise ValueError(f"not a Slack ts: {ts[:40]!r}") from exc


def user_display_name(user: Mapping[str, Any]) -> str:
    """What people see as a user's name (a ``users.info``/``users.json`` user object), or ""."""
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    assert isinstance(profile, dict)
    for value in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def referenced_ids(messages: Iterable[Mapping[str, Any]]) -> tuple[set[str], dict[str, str]]:
    """The user ids whose names a page needs (authors and mentions) and the channel names the tokens carry."""
    users: set[str] = set()
    channels: dict[str, str] = {}
    for message in messages:
        if isinstance(message.get("user"), str) and message["user"]:
            users.add(message["user"])
        for text in _texts(message):
            users.update(_MENTION.findall(text))
            channels.update(dict(_CHANNEL.findall(text)))
        for element in _rich_elements(message.get("blocks")):
            if element.get("type") == "user" and isinstance(element.get("user_id"), str):
                users.add(element["user_id"])
    return users, channels


def to_neutral(
    raw: Mapping[str, Any],
    *,
    users: Mapping[str, str] = _EMPTY,
    channels: Mapping[str, str] = _EMPTY,
    bot_user_id: str | None = None,
) -> ThreadMessage | None:
    """The neutral message, or None for a system notice or a notice of kbbot's (``bot_user_id``: its user).
    ``users``/``channels`` map ids to names.

    Raises ``ValueError`` when ``ts`` is missing or not a time (the one field every Slack message has)."""
    subtype = raw.get("subtype")
    if subtype in SYSTEM_SUBTYPES:
        return None
    if bot_user_id and raw.get("user") == bot_user_id and not is_answer(raw):
        return None
    ts = _str(raw.get("ts"))
    timestamp = iso_time(ts)
    if subtype == "tombstone":
        # The root of a thread whose replies outlived it: Slack keeps a placeholder (posted as USLACKBOT).
        # Nobody is credited; the page says a message was deleted.
        return ThreadMessage(author_name="", author_id="", timestamp=timestamp, text="", deleted=True, id=ts)
    author_name, author_id = _author(raw, users)
    text = message_markdown(raw, users=users, channels=channels)
    if subtype == "thread_broadcast":
        text = (text + "\n\n" if text else "") + "*(Also sent to the channel.)*"
    return ThreadMessage(
        author_name=author_name,
        author_id=author_id,
        timestamp=timestamp,
        text=text,
        attachments=_files(raw.get("files")),
        edited=isinstance(raw.get("edited"), dict),
        id=ts,
    )


def is_answer(raw: Mapping[str, Any]) -> bool:
    """Whether the message is (a part of) one of kbbot's answers."""
    blocks = raw.get("blocks")
    return isinstance(blocks, list) and any(
        isinstance(b, dict) and str(b.get("block_id", "")).startswith(ANSWER_BLOCK_ID) for b in blocks
    )


def message_markdown(
    raw: Mapping[str, Any], *, users: Mapping[str, str] = _EMPTY, channels: Mapping[str, str] = _EMPTY
) -> str:
    """Everything a reader should see of a message, as Markdown: text, blocks, then legacy attachments."""
    text = raw.get("text")
    body = slack_to_markdown(text, users=users, channels=channels) if isinstance(text, str) else ""
    blocks = raw.get("blocks") if isinstance(raw.get("blocks"), list) else []
    assert isinstance(blocks, list)
    typed = [b for b in blocks if isinstance(b, dict)]
    only_rich = all(b.get("type") == "rich_text" for b in typed)
    if typed and not (body.strip() and only_rich):
        rendered = _blocks(typed, users, channels)
        overlap = _overlap(body, rendered) if rendered and body.strip() else None
        if rendered and not body.strip():
            body = rendered
        elif overlap == "second":
            body = rendered  # the text was the notification fallback of the blocks
        elif rendered and overlap is None:
            body = f"{body}\n\n{rendered}"  # both say something: keep both
    parts = [body] if body.strip() else []
    for attachment in raw.get("attachments") or ():
        if isinstance(attachment, dict) and (shown := _attachment(attachment, users, channels)):
            parts.append(shown)
    return "\n\n".join(parts).strip()


def title_hint(text: str, *, max_chars: int = 120) -> str:
    """A page title from the root message: its first line of words (never code), else ``Slack thread``."""
    return clean_title(text, max_chars=max_chars) or "Slack thread"


def thread_title_hint(messages: Sequence[ThreadMessage]) -> str:
    """A thread's default title: from its root, or the first reply that says something when the root was
    deleted or holds only files (live saves and imports alike)."""
    first = next((m for m in messages if not m.deleted and m.text.strip()), None)
    return title_hint(first.text if first else "")


# --- pieces ------------------------------------------------------------------------------------------------


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _author(raw: Mapping[str, Any], users: Mapping[str, str]) -> tuple[str, str]:
    user_id = _str(raw.get("user"))
    bot_id = _str(raw.get("bot_id"))
    profile = raw.get("bot_profile") if isinstance(raw.get("bot_profile"), dict) else {}
    assert isinstance(profile, dict)
    if bot_id or raw.get("subtype") == "bot_message":
        # An integration or app: credit the bot's own name, not the user that installed it.
        bot_name = _str(profile.get("name")) or _str(raw.get("username"))
        if bot_name:
            return bot_name, user_id or bot_id
    user_profile = raw.get("user_profile") if isinstance(raw.get("user_profile"), dict) else {}
    assert isinstance(user_profile, dict)
    name = (
        users.get(user_id)
        or user_display_name({"profile": user_profile, "name": user_profile.get("name")})
        or _str(raw.get("username"))
        or _str(raw.get("user_name"))
        or users.get(bot_id)
        or user_id
        or bot_id
        or "unknown"
    )
    return name, user_id or bot_id


def _files(files: object) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    for item in files if isinstance(files, list) else ():
        if not isinstance(item, dict) or item.get("mode") in ("tombstone", "hidden_by_limit"):
            continue
        url = next(
            (u for key in ("permalink", "url_private") if (u := _str(item.get(key))).startswith("https://")), ""
        )
        name = _str(item.get("name")) or _str(item.get("title")) or "file"
        out.append(Attachment(name=name, url=strip_link_tokens(url)[0]))
    return tuple(out)


def _texts(message: Mapping[str, Any]) -> Iterable[str]:
    if isinstance(message.get("text"), str):
        yield message["text"]
    for attachment in message.get("attachments") or ():
        if isinstance(attachment, dict):
            for key in ("pretext", "title", "text", "footer", "fallback"):
                if isinstance(attachment.get(key), str):
                    yield attachment[key]
            for field in attachment.get("fields") or ():
                if isinstance(field, dict) and isinstance(field.get("value"), str):
                    yield field["value"]
    for block in message.get("blocks") or ():
        if isinstance(block, dict):
            yield from _block_texts(block)


def _block_texts(block: Mapping[str, Any]) -> Iterable[str]:
    obj = block.get("text")
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        yield obj["text"]
    for key in ("fields", "elements"):
        for obj in block.get(key) or ():
            if isinstance(obj, dict) and obj.get("type") in ("mrkdwn", "plain_text") and isinstance(
                obj.get("text"), str
            ):
                yield obj["text"]


def _rich_elements(blocks: object) -> Iterable[Mapping[str, Any]]:
    """Every leaf element of every ``rich_text`` block (depth-first)."""
    stack: list[Any] = [b for b in reversed(blocks) if isinstance(b, dict)] if isinstance(blocks, list) else []
    while stack:
        node = stack.pop()
        children = node.get("elements")
        if isinstance(children, list):
            stack.extend(c for c in reversed(children) if isinstance(c, dict))
        else:
            yield node


def _overlap(first: str, second: str) -> str | None:
    """Which rendering holds all the other says, word for word: "first" (also when equal), "second", or None."""
    a, b = _WORDS.sub(" ", first).strip().lower(), _WORDS.sub(" ", second).strip().lower()
    if b in a:
        return "first"
    if a in b:
        return "second"
    return None


# --- Block Kit -----------------------------------------------------------------------------------------------


def _text_object(obj: object, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return ""
    if obj.get("type") == "mrkdwn":
        return slack_to_markdown(obj["text"], users=users, channels=channels)
    return slack_to_markdown(obj["text"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _blocks(blocks: list[dict[str, Any]], users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "rich_text":
            out.append(_rich_text(block, users, channels))
        elif kind == "header":
            if heading := _text_object(block.get("text"), users, channels):
                out.append(f"**{heading}**")
        elif kind == "section":
            lines = [_text_object(block.get("text"), users, channels)]
            lines += [_text_object(f, users, channels) for f in block.get("fields") or ()]
            out.append("\n".join(line for line in lines if line))
        elif kind == "context":
            bits = [
                _text_object(e, users, channels) or _str(e.get("alt_text"))
                for e in block.get("elements") or ()
                if isinstance(e, dict)
            ]
            if shown := " · ".join(b for b in bits if b):
                out.append(f"*{shown}*" if "*" not in shown else shown)
        elif kind == "image" and (
            label := _text_object(block.get("title"), users, channels) or _str(block.get("alt_text"))
        ):
            out.append(f"(image: {label})")
    return "\n\n".join(part for part in out if part.strip())


def _styled(text: str, style: object) -> str:
    if not text.strip() or not isinstance(style, dict):
        return text
    if style.get("code"):
        fence = "``" if "`" in text else "`"
        return f"{fence}{text}{fence}"
    lead, core, trail = text[: len(text) - len(text.lstrip())], text.strip(), text[len(text.rstrip()) :]
    if style.get("strike"):
        core = f"~~{core}~~"
    if style.get("italic"):
        core = f"*{core}*"
    if style.get("bold"):
        core = f"**{core}**"
    return lead + core + trail


def _inline(elements: object, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    out: list[str] = []
    for el in elements if isinstance(elements, list) else ():
        if not isinstance(el, dict):
            continue
        kind = el.get("type")
        if kind == "text":
            out.append(_styled(_str_raw(el.get("text")), el.get("style")))
        elif kind == "link":
            url = _str(el.get("url"))
            label = _str_raw(el.get("text"))
            out.append(f"[{label}](<{url}>)" if label and label != url else f"<{url}>")
        elif kind == "user":
            uid = _str(el.get("user_id"))
            out.append("@" + (users.get(uid) or uid))
        elif kind == "channel":
            cid = _str(el.get("channel_id"))
            out.append("#" + (channels.get(cid) or cid))
        elif kind == "usergroup":
            out.append("@\u200bgroup")
        elif kind == "broadcast":
            out.append("@\u200b" + (_str(el.get("range")) or "here"))
        elif kind == "emoji":
            code = _str(el.get("unicode"))
            try:
                out.append("".join(chr(int(part, 16)) for part in code.split("-")) if code else "")
            except ValueError:
                out.append("")
            if not code or not out[-1]:
                out[-1] = slack_to_markdown(f":{_str(el.get('name'))}:")
        elif kind == "date":
            out.append(_str_raw(el.get("fallback")))
    return "".join(out)


def _str_raw(value: object) -> str:
    return value if isinstance(value, str) else ""


def _rich_text(block: Mapping[str, Any], users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    out: list[str] = []
    for el in block.get("elements") or ():
        if not isinstance(el, dict):
            continue
        kind = el.get("type")
        if kind == "rich_text_section":
            out.append(_inline(el.get("elements"), users, channels))
        elif kind == "rich_text_preformatted":
            body = "".join(_str_raw(e.get("text")) or _str_raw(e.get("url")) for e in el.get("elements") or ()
                           if isinstance(e, dict))
            fence = "```"
            while fence in body:
                fence += "`"
            out.append(f"{fence}\n{body.strip(chr(10))}\n{fence}")
        elif kind == "rich_text_quote":
            quoted = _inline(el.get("elements"), users, channels)
            out.append("\n".join("> " + line for line in quoted.split("\n")))
        elif kind == "rich_text_list":
            indent = "   " * int(el.get("indent") or 0) if isinstance(el.get("indent"), int) else ""
            ordered = el.get("style") == "ordered"
            start = int(el.get("offset") or 0) if isinstance(el.get("offset"), int) else 0
            items = [_inline(item.get("elements"), users, channels) for item in el.get("elements") or ()
                     if isinstance(item, dict)]
            marks = [f"{start + n}." if ordered else "-" for n in range(1, len(items) + 1)]
            out.append("\n".join(f"{indent}{mark} {item}" for mark, item in zip(marks, items, strict=True)))
    # Each element is its own block (Slack draws them on their own lines); blank lines keep Markdown from
    # gluing a quote or fence onto the list before it.
    return "\n\n".join(part.strip("\n") for part in out if part.strip())


# --- legacy attachments --------------------------------------------------------------------------------------


def _attachment(item: Mapping[str, Any], users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    def md(key: str) -> str:
        value = item.get(key)
        return slack_to_markdown(value, users=users, channels=channels).strip() if isinstance(value, str) else ""

    lines: list[str] = []
    if pretext := md("pretext"):
        lines.append(pretext)
    if author := md("author_name"):
        lines.append(author)
    if title := md("title"):
        link = _str(item.get("title_link"))
        lines.append(f"**[{title}](<{link}>)**" if link.startswith(("https://", "http://")) else f"**{title}**")
    text = md("text")
    if text and item.get("from_url") and len(text) > _PREVIEW_CHARS:
        text = text[: _PREVIEW_CHARS - 1] + "…"
    if text:
        lines.append(text)
    for field in item.get("fields") or ():
        if isinstance(field, dict):
            name = slack_to_markdown(_str_raw(field.get("title"))).strip()
            value = slack_to_markdown(_str_raw(field.get("value")), users=users, channels=channels).strip()
            if name or value:
                lines.append(f"**{name}**: {value}" if name and value else f"**{name}**" if name else value)
    blocks = item.get("blocks")
    if isinstance(blocks, list) and (rendered := _blocks([b for b in blocks if isinstance(b, dict)], users, channels)):
        lines.append(rendered)
    if footer := md("footer"):
        lines.append(f"*{footer}*" if "*" not in footer else footer)
    if not lines and (fallback := md("fallback")):
        lines.append(fallback)
    if not lines:
        return ""
    body = "\n\n".join(lines)
    # Quoted, so an integration's card reads as one unit under the message it belongs to.
    return "\n".join(("> " + line) if line else ">" for line in body.split("\n"))
