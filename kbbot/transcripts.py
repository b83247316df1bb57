"""Read a chat transcript file into a :class:`Thread`, for ``kbbot save FILE``.

Three formats, recognised by content (not by file name):

* **Slack export JSON**: a list of message objects (``user``/``user_name``/``user_profile.real_name``,
  ``text``, ``ts``; optional ``files``, ``edited``, ``subtype``), as in a Slack workspace export's per-day files.
* **DiscordChatExporter JSON**: ``{"guild": …, "channel": …, "messages": [{"author": {…}, "timestamp",
  "content", "attachments", "timestampEdited"}]}``.
* **Plain text**: ``Name: message`` lines; a line without ``Name:`` continues the previous message.

The conversation key is derived from the content (Slack: the first message's ``ts``; Discord: the channel id;
text: the file's resolved path), so saving the same transcript again updates the page it made before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kbbot.adapters.markup import discord_to_markdown, slack_to_markdown
from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.errors import TranscriptError

__all__ = ["TranscriptError", "load_transcript", "parse_transcript"]

#: Bigger than any sane transcript (10,000 long messages is ~20 MB); protects memory from a wrong file.
MAX_BYTES = 64 * 1024 * 1024
_TEXT_LINE = re.compile(r"^(?P<name>[^:\n]{1,80}?):[ \t](?P<text>.*)$")


def load_transcript(path: Path, *, max_bytes: int = MAX_BYTES) -> Thread:
    """Read and parse ``path``. Raises :class:`TranscriptError` with a clear sentence."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {_os_reason(exc)}") from None
    if size > max_bytes:
        raise TranscriptError(f"{path} is {size:,} bytes; transcripts over {max_bytes:,} bytes are refused")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {_os_reason(exc)}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TranscriptError(f"{path} is not UTF-8 text (is it a zip? unpack the export first)") from None
    return parse_transcript(text, name=str(path), key_hint=str(path.resolve()))


def parse_transcript(text: str, *, name: str = "transcript", key_hint: str | None = None) -> Thread:
    """Parse transcript ``text``; ``name`` is used in error messages, ``key_hint`` keys plain-text files."""
    if not text.strip():
        raise TranscriptError(f"{name} is empty")
    stripped = text.lstrip()
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise TranscriptError(f"{name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        except RecursionError:
            raise TranscriptError(f"{name} is nested too deeply to be a chat export") from None
        if isinstance(data, list):
            return _slack(data, name)
        if isinstance(data, dict) and isinstance(data.get("messages"), list):
            return _discord(data, name)
        raise TranscriptError(
            f"{name} is JSON but neither a Slack export (a list of messages) nor a DiscordChatExporter "
            "export (an object with 'messages')"
        )
    return _plain(text, name, key_hint or name)


# --- Slack ---------------------------------------------------------------------------------------------------


def _slack(data: list[Any], name: str) -> Thread:
    users: dict[str, str] = {}
    rows = [item for item in data if isinstance(item, dict)]
    for item in rows:  # names first, so <@U1> mentions resolve even before U1's first message
        uid = _str(item.get("user"))
        display = _slack_name(item)
        if uid and display:
            users.setdefault(uid, display)
    messages = []
    for index, item in enumerate(rows):
        if item.get("subtype") in ("channel_join", "channel_leave"):
            continue
        ts = _str(item.get("ts"))
        text = item.get("text")
        if not isinstance(text, str) or not ts:
            raise TranscriptError(f"{name}: message {index + 1} has no 'text' or 'ts' (not a Slack export?)")
        uid = _str(item.get("user")) or _str(item.get("bot_id"))
        raw_files = item.get("files")
        files: list[Any] = raw_files if isinstance(raw_files, list) else []
        attachments = tuple(
            Attachment(_str(f.get("name")) or _str(f.get("title")) or "file", _str(f.get("url_private")))
            for f in files
            if isinstance(f, dict) and _str(f.get("url_private"))
        )
        messages.append(
            ThreadMessage(
                author_name=_slack_name(item) or users.get(uid, "") or uid or "unknown",
                author_id=uid,
                timestamp=_from_epoch(ts, name, index),
                text=slack_to_markdown(text, users=users),
                attachments=attachments,
                edited=isinstance(item.get("edited"), dict),
                deleted=item.get("subtype") == "tombstone",
            )
        )
    if not messages:
        raise TranscriptError(f"{name} has no messages")
    first = rows[0]
    key = "export:" + (_str(first.get("thread_ts")) or _str(first.get("ts")))
    return Thread("slack", key, tuple(messages))


def _slack_name(item: Mapping[str, Any]) -> str:
    profile = item.get("user_profile")
    if isinstance(profile, dict):
        for field in ("display_name", "real_name", "name"):
            if value := _str(profile.get(field)):
                return value
    return _str(item.get("user_name")) or _str(item.get("username"))


def _from_epoch(ts: str, name: str, index: int) -> str:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        raise TranscriptError(f"{name}: message {index + 1} has a bad 'ts' ({ts[:40]!r})") from None


# --- Discord -------------------------------------------------------------------------------------------------


def _discord(data: Mapping[str, Any], name: str) -> Thread:
    channel = data.get("channel") if isinstance(data.get("channel"), dict) else {}
    guild = data.get("guild") if isinstance(data.get("guild"), dict) else {}
    assert isinstance(channel, dict) and isinstance(guild, dict)
    raw_messages = [m for m in data["messages"] if isinstance(m, dict)]
    users: dict[str, str] = {}
    for item in raw_messages:
        author = item.get("author") if isinstance(item.get("author"), dict) else {}
        assert isinstance(author, dict)
        if uid := _str(author.get("id")):
            users.setdefault(uid, _str(author.get("nickname")) or _str(author.get("name")))
        for mention in item.get("mentions") or ():
            if isinstance(mention, dict) and (mid := _str(mention.get("id"))):
                users.setdefault(mid, _str(mention.get("nickname")) or _str(mention.get("name")))
    messages = []
    for index, item in enumerate(raw_messages):
        author = item.get("author") if isinstance(item.get("author"), dict) else {}
        assert isinstance(author, dict)
        stamp = _str(item.get("timestamp"))
        if not stamp:
            raise TranscriptError(
                f"{name}: message {index + 1} has no 'timestamp' (not a DiscordChatExporter file?)"
            )
        attachments = tuple(
            Attachment(_str(a.get("fileName")) or "file", _str(a.get("url")))
            for a in item.get("attachments") or ()
            if isinstance(a, dict) and _str(a.get("url"))
        )
        content = item.get("content")
        messages.append(
            ThreadMessage(
                author_name=_str(author.get("nickname")) or _str(author.get("name")) or "unknown",
                author_id=_str(author.get("id")),
                timestamp=_iso(stamp),
                text=discord_to_markdown(content if isinstance(content, str) else "", users=users),
                attachments=attachments,
                edited=bool(item.get("timestampEdited")),
            )
        )
    if not messages:
        raise TranscriptError(f"{name} has no messages")
    channel_id = _str(channel.get("id")) or hashlib.sha256(name.encode()).hexdigest()[:16]
    return Thread(
        "discord",
        f"export:{channel_id}",
        tuple(messages),
        channel_name=_str(channel.get("name")) or None,
        title_hint=None,
    )


def _iso(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp  # shown as written
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


# --- plain text ----------------------------------------------------------------------------------------------


def _plain(text: str, name: str, key_hint: str) -> Thread:
    authors: list[str] = []
    bodies: list[list[str]] = []
    for line in text.splitlines():
        match = _TEXT_LINE.match(line)
        if match and not match.group("name").strip().startswith(("http", "<")):
            authors.append(match.group("name").strip())
            bodies.append([match.group("text")])
        elif bodies:
            bodies[-1].append(line)
        elif line.strip():
            raise TranscriptError(
                f"{name}: the first line should look like 'Name: message' (got {line.strip()[:40]!r})"
            )
    if not bodies:
        raise TranscriptError(f"{name} has no 'Name: message' lines")
    messages = tuple(
        ThreadMessage(
            author_name=author,
            author_id=author,
            timestamp="",
            text="\n".join(body).strip(),
        )
        for author, body in zip(authors, bodies, strict=True)
    )
    digest = hashlib.sha256(key_hint.encode()).hexdigest()[:16]
    return Thread("text", f"file:{digest}", messages)


def _str(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__
