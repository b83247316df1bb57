"""Read a chat transcript file into a :class:`Thread`, for ``kbbot save FILE``.

Three formats, recognised by content (not by file name):

* **Slack export JSON**: one day file of a Slack workspace export (a list of messages), converted by the same
  code as live saves (:mod:`kbbot.formats.slack`); names come from ``users.json`` when the file sits in an
  unzipped export. A whole export (zip or folder) is ``kbbot import``'s job.
* **DiscordChatExporter JSON** (:mod:`kbbot.formats.discord_export`).
* **Plain text**: ``Name: message`` lines; a line without ``Name:`` continues the previous message.

The conversation key is derived from the content (Slack: the first message's ``ts``; Discord: the channel id;
text: the file's resolved path), so saving the same transcript again updates the page it made before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kbbot.core.models import Thread, ThreadMessage
from kbbot.errors import TranscriptError
from kbbot.formats.discord_export import parse_discord_export
from kbbot.formats.fields import text_field
from kbbot.formats.slack import to_neutral, user_display_name

__all__ = ["TranscriptError", "load_transcript", "parse_transcript"]

#: Bigger than any sane transcript (10,000 long messages is ~20 MB); protects memory from a wrong file.
MAX_BYTES = 64 * 1024 * 1024
_ZIP_MAGIC = b"PK\x03\x04"
# A whole export handed to `kbbot save` (its zip, or the unzipped folder): say which command takes it.
_ONE_CONVERSATION = (
    "kbbot save takes one conversation (a Slack day file or thread JSON, a DiscordChatExporter JSON, "
    "`Name: message` lines); for a whole Slack or Discord export run: kbbot import EXPORT"
)
_TEXT_LINE = re.compile(r"^(?P<name>[^:\n]{1,80}?):[ \t](?P<text>.*)$")


def load_transcript(path: Path, *, max_bytes: int = MAX_BYTES) -> Thread:
    """Read and parse ``path``. Raises :class:`TranscriptError` with a clear sentence."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {_os_reason(exc)}") from None
    if path.is_dir():
        raise TranscriptError(f"{path} is a folder; {_ONE_CONVERSATION}") from None
    if size > max_bytes:
        raise TranscriptError(f"{path} is {size:,} bytes; transcripts over {max_bytes:,} bytes are refused")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {_os_reason(exc)}") from None
    if raw.startswith(_ZIP_MAGIC):
        raise TranscriptError(f"{path} is a zip file; {_ONE_CONVERSATION}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TranscriptError(f"{path} is not UTF-8 text") from None
    users = _export_users(path) if text.lstrip().startswith("[") else {}
    return parse_transcript(text, name=str(path), key_hint=str(path.resolve()), users=users)


def parse_transcript(
    text: str, *, name: str = "transcript", key_hint: str | None = None, users: Mapping[str, str] | None = None
) -> Thread:
    """Parse transcript ``text``; ``name`` is used in error messages, ``key_hint`` keys plain-text files,
    ``users`` names Slack user ids (from the export's ``users.json``)."""
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
            return _slack(data, name, users or {})
        if isinstance(data, dict) and isinstance(data.get("messages"), list):
            return _discord(data, name)
        raise TranscriptError(
            f"{name} is JSON but neither a Slack export (a list of messages) nor a DiscordChatExporter "
            "export (an object with 'messages')"
        )
    return _plain(text, name, key_hint or name)


# --- Slack ---------------------------------------------------------------------------------------------------


def _slack(data: list[Any], name: str, users: Mapping[str, str]) -> Thread:
    rows = [item for item in data if isinstance(item, dict)]
    names = dict(users)
    for item in rows:  # names first, so <@U1> mentions resolve even before U1's first message
        uid = text_field(item.get("user"))
        display = _slack_name(item)
        if uid and display:
            names.setdefault(uid, display)
    messages = []
    for index, item in enumerate(rows):
        ts = text_field(item.get("ts"))
        if not ts:
            raise TranscriptError(f"{name}: message {index + 1} has no 'ts' (not a Slack export?)")
        try:
            message = to_neutral(item, users=names)
        except ValueError:
            raise TranscriptError(f"{name}: message {index + 1} has a bad 'ts' ({ts[:40]!r})") from None
        if message is not None:
            messages.append(message)
    if not messages:
        raise TranscriptError(f"{name} has no messages")
    first = rows[0]
    key = "export:" + (text_field(first.get("thread_ts")) or text_field(first.get("ts")))
    return Thread("slack", key, tuple(messages))


def _slack_name(item: Mapping[str, Any]) -> str:
    profile = item.get("user_profile")
    shown = user_display_name({"profile": profile, "name": profile.get("name")}) if isinstance(profile, dict) else ""
    return shown or text_field(item.get("user_name")) or text_field(item.get("username"))


def _export_users(path: Path) -> dict[str, str]:
    """A day file inside an unzipped Slack export (``EXPORT/channel/2024-01-02.json``): the export's
    ``users.json`` names people whose messages and mentions the day file only has ids for."""
    users_file = path.parent.parent / "users.json"
    try:
        data = json.loads(users_file.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, list):
        return {}
    return {
        user["id"]: shown
        for user in data
        if isinstance(user, dict) and isinstance(user.get("id"), str) and (shown := user_display_name(user))
    }


# --- Discord -------------------------------------------------------------------------------------------------


def _discord(data: Mapping[str, Any], name: str) -> Thread:
    try:
        thread = parse_discord_export(data, name)
    except ValueError as exc:
        raise TranscriptError(f"{exc} (not a DiscordChatExporter file?)") from None
    if not thread.messages:
        raise TranscriptError(f"{name} has no messages")
    return thread


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




def _os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__
