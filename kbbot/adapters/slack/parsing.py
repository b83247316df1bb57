"""Pure parsing of what users type in Slack: mention text → question or command, message permalinks → thread."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from kbbot.formats.slack import thread_key

_ANGLE = re.compile(r"<([^<>]*)>")


def plain_text(
    text: str, *, bot_user_id: str | None = None, users: Mapping[str, str] | None = None, drop_unknown: bool = False
) -> str:
    """Slack message text → what the user meant, as plain text: the bot's own mention dropped, people's mentions
    as their names (``users``: id → name, from ``users.info``; else the label or the id), ``<!here>``,
    ``<!channel>`` and ``<!everyone>`` dropped (they address people, they are not part of a question), other
    tokens turned into their labels (``<#C1|general>`` → ``#general``, ``<https://x|x>`` → ``x``), entities
    decoded, runs of spaces collapsed. ``drop_unknown`` drops mentions of people whose name is not known (for
    titles, which must not show raw ids).

    Only for questions, commands and titles; thread history goes through :mod:`kbbot.formats.slack`.
    """
    names = users or {}

    def token(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith("@"):
            if bot_user_id and target[1:] == bot_user_id:
                return ""
            name = names.get(target[1:]) or label.lstrip("@")
            return "@" + name if name else ("" if drop_unknown else "@" + target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            special = target[1:].split("^")[0]
            if special in _BROADCASTS:
                return ""
            return label if label and special == "date" else "@" + (label.lstrip("@") or special)
        return label or target

    out = _ANGLE.sub(token, text or "")
    out = out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return _SPACES.sub(" ", out).strip()


def object_id(payload: Mapping[str, object], field: str) -> str:
    """The ``id`` of the object ``payload[field]`` (an action's ``user``, a shortcut's ``channel``), "" without one."""
    value = payload.get(field)
    return str(value.get("id", "")) if isinstance(value, Mapping) else ""


def mentioned_users(text: str) -> set[str]:
    """The user ids ``<@U…>``/``<@W…>`` mentions in ``text`` name (Enterprise Grid ids start with W)."""
    return set(_USER.findall(text or ""))


_BROADCASTS = frozenset({"here", "channel", "everyone"})
_SPACES = re.compile(r"[ \t]{2,}")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass(frozen=True, slots=True)
class Command:
    """A bot command parsed from ``/kb …`` or ``@bot …``: ``name`` is ask/save/help/status/gaps, ``arg`` the rest."""

    name: str
    arg: str


_KEYWORDS = ("save", "help", "status", "use", "gaps", "stop")
#: ``use NAME``: a knowledgebase name, so "use vpn on a plane?" stays a question.
_KB_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def parse_command(text: str, *, choosing: bool = False) -> Command:
    """``help`` / ``status`` / ``save …`` are commands when they are the first word; everything else is a
    question (so "save me from VPN errors?" is still ``save`` — users get the help hint if it fails).
    ``use NAME`` is one only when there are knowledgebases to choose from (``choosing``)."""
    stripped = text.strip()
    first, _, rest = stripped.partition(" ")
    word = first.lower().rstrip(":,.!")
    if word == "use":
        if choosing and (not rest.strip() or _KB_NAME.fullmatch(rest.strip())):
            return Command(word, rest.strip())
        return Command("ask", stripped)
    if word in _KEYWORDS and (word == "save" or not rest.strip()):
        return Command(word, rest.strip())
    return Command("ask", stripped)


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """A Slack thread: its channel and the ``ts`` of the root message."""

    channel: str
    thread_ts: str

    @property
    def key(self) -> str:
        """Its saved-thread key: the one an export import gives the same thread (so both save one page)."""
        return thread_key(self.channel, self.thread_ts)

    @classmethod
    def from_key(cls, key: str) -> ThreadRef | None:
        channel, sep, ts = key.partition(":")
        if not sep or not _CHANNEL_ID.fullmatch(channel) or not _TS.fullmatch(ts):
            return None
        return cls(channel, ts)


_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_TS = re.compile(r"\d{9,}\.\d{6}")
_P_TS = re.compile(r"p(\d{10,})")


def parse_permalink(text: str) -> tuple[ThreadRef, str] | None:
    """``<https://acme.slack.com/archives/C1/p1700000000000100?thread_ts=…|…> Title`` → (thread, title).

    Accepts the link with or without Slack's angle brackets and label. A link to a reply carries
    ``thread_ts`` in the query, which names the thread; otherwise the linked message is the root. Returns None
    when the first word is not a Slack message link.
    """
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("<"):
        end = stripped.find(">")
        if end < 0:
            return None
        url, rest = stripped[1:end].split("|", 1)[0], stripped[end + 1 :]
    else:
        url, _, rest = stripped.partition(" ")
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not (host == "slack.com" or host.endswith(".slack.com")):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 3 or segments[0] != "archives" or not _CHANNEL_ID.fullmatch(segments[1]):
        return None
    p_ts = _P_TS.fullmatch(segments[2])
    if p_ts is None:
        return None
    digits = p_ts.group(1)
    ts = f"{digits[:-6]}.{digits[-6:]}"
    thread_ts = parse_qs(parts.query).get("thread_ts", [ts])[0]
    if not _TS.fullmatch(thread_ts):
        return None
    return ThreadRef(segments[1], thread_ts), rest.strip()
