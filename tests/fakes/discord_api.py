"""A fake Discord: REST API and gateway websocket on 127.0.0.1, for driving the real discord.py client.

REST (under ``/api/v10``; point ``discord.http.Route.BASE`` at ``fake.api_url``): ``users/@me``,
``oauth2/applications/@me``, ``gateway/bot``, channel message create / history (``before``/``after``/``limit``
paging, newest first like Discord) / typing / get channel, interaction callbacks (recorded with the time they
arrived), follow-up webhooks, application command bulk overwrite (global and per guild). Every request is
recorded as a :class:`Call`; unknown routes answer 404 and are recorded too, so a test sees stray calls.

Gateway (``fake.gateway_url``; point ``DiscordWebSocket.DEFAULT_GATEWAY`` at it): HELLO, heartbeat ACKs,
IDENTIFY → READY (+ ``shard``) → GUILD_CREATE with channels, threads, members and roles; then tests inject
dispatches (MESSAGE_CREATE, INTERACTION_CREATE) with :meth:`FakeDiscord.dispatch`.

Discord's rules the fake applies (each has a test in tests/unit/test_fake_discord.py that quotes the doc):

- Message Content (discord-api-docs developers/events/gateway.mdx "Message Content Intent", and
  developers/resources/message.mdx footnote [2]): without the privileged intent, ``content``, ``embeds``,
  ``attachments`` and ``components`` (and forwarded ``message_snapshots``) of guild messages that neither
  mention the bot nor are the bot's own come back empty and ``poll`` is omitted — in MESSAGE_CREATE (by the
  intents sent in IDENTIFY) and in REST history (by the Developer Portal switch, :attr:`privileged_intents`).
  The target of a message context-menu command in ``data.resolved.messages`` keeps its content.
- IDENTIFY with a privileged intent the portal has not enabled: close code 4014 "Disallowed intent(s)"
  (developers/topics/opcodes-and-status-codes.mdx).
- Permissions (developers/topics/permissions.mdx ``compute_permissions``; developers/resources/message.mdx
  "Get Channel Messages", "Create Reaction"): the bot's and members' permissions are computed from roles and
  channel overwrites (a thread uses its parent's); history without View Channel is 403 Missing Access (50001),
  without Read Message History an empty list; private threads (type 12) are visible only to their members and
  to members with Manage Threads (developers/topics/threads.mdx).
- REST messages carry no ``member`` (only MESSAGE_CREATE does: developers/events/gateway-events.mdx "Message
  Create Extra Fields"); names come from ``GET /guilds/{id}/members/{user}``.
- A reply to a deleted message fails with 400 unless ``fail_if_not_exists`` is false, then it is sent as a
  normal message (developers/resources/message.mdx "Message Reference Structure").

The server runs on its own event loop in a background thread; every inspection method is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.background import BackgroundServer

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"

# Gateway opcodes
DISPATCH, HEARTBEAT, IDENTIFY, HELLO, HEARTBEAT_ACK = 0, 1, 2, 10, 11

# Privileged intents: GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)

MESSAGE_CONTENT = 1 << 15
#: Application flags (developers/resources/application.mdx "Application Flags") for the portal switches.
APP_FLAG_MEMBERS_LIMITED, APP_FLAG_MESSAGE_CONTENT_LIMITED = 1 << 15, 1 << 19

# Channel types
GUILD_TEXT, DM, GUILD_FORUM, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 15, 11, 12

# Permission bits (developers/topics/permissions.mdx "Bitwise Permission Flags")
ADMINISTRATOR = 1 << 3
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_THREADS = 1 << 34
SEND_MESSAGES_IN_THREADS = 1 << 38
USE_APPLICATION_COMMANDS = 1 << 31

ALL_PERMISSIONS = str((1 << 50) - 1)
MEMBER_PERMISSIONS = str(
    VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | SEND_MESSAGES_IN_THREADS | USE_APPLICATION_COMMANDS
    | ADD_REACTIONS
)


@dataclass
class Call:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any
    at: float  # time.monotonic() when the request arrived
    headers: dict[str, str] = field(default_factory=dict)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


class FakeDiscord:
    """One application with one bot user, guilds you add before :meth:`start`, and a message store."""

    def __init__(self, *, app_id: int | None = None, bot_name: str = "kbbot") -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.app_id = app_id or self.snowflake()
        self.bot_user = self.user_payload(self.app_id, bot_name, bot=True)
        self.calls: list[Call] = []
        self.identifies: list[dict[str, Any]] = []
        self.dispatched_at: dict[
            str, float
        ] = {}  # interaction id → time.monotonic() of its INTERACTION_CREATE
        self._guilds: list[dict[str, Any]] = []
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._sockets: dict[int, web.WebSocketResponse] = {}  # shard id → socket
        self._interaction_channels: dict[str, str] = {}  # interaction id → channel id (for its webhooks)
        self._shard_count = 1
        self._seq = itertools.count(1)
        self.heartbeat_interval_ms = 41250
        #: Privileged intents switched on in the "Developer Portal"; others in IDENTIFY get close code 4014.
        #: Also what REST applies the Message Content rule by (HTTP is not bound to the IDENTIFY intents).
        self.privileged_intents = PRIVILEGED_INTENTS
        self.bot_public = True
        self._identified_intents: dict[int, int] = {}  # shard id → intents sent in its IDENTIFY
        self._thread_members: dict[str, set[str]] = {}  # private thread id → member user ids
        self._deleted: set[str] = set()  # ids of deleted messages
        self.left_guilds: list[str] = []
        self._server = BackgroundServer(self._build_app, name="fake-discord", on_shutdown=self._close_sockets)
        self.fail_routes: dict[str, tuple[int, dict[str, Any]]] = {}  # "METHOD /path" → (status, body)
        self._fail_next: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    # ------------------------------------------------------------------ ids and payload builders

    def snowflake(self) -> int:
        """Increasing ids, like Discord's (timestamp << 22 | counter)."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        with self._lock:
            return (ms << 22) | (next(self._counter) & 0x3FFFFF)

    @staticmethod
    def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": name.lower().replace(" ", "_"),
            "global_name": name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
        }

    def add_guild(self, *, name: str = "Acme", owner_id: int | None = None, joined: bool = True) -> dict[str, Any]:
        """A guild the bot is in (shape: developers/resources/guild.mdx "Example Guild" plus the GUILD_CREATE
        extra fields of developers/events/gateway-events.mdx); ``joined=False``: added later by
        :meth:`join_guild`."""
        gid = self.snowflake()
        guild: dict[str, Any] = {
            "id": str(gid),
            "name": name,
            "icon": None,
            "owner_id": str(owner_id or self.snowflake()),
            "features": [],
            "roles": [
                {
                    "id": str(gid),  # @everyone has the guild's id
                    "name": "@everyone",
                    "permissions": MEMBER_PERMISSIONS,
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "channels": [],
            "threads": [],
            "members": [self._member(self.bot_user, [])],
            "member_count": 1,
            "large": False,
            "unavailable": False,
            "emojis": [],
            "stickers": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            # The rest of developers/resources/guild.mdx "Example Guild" (all nullable or defaults).
            "description": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "application_id": None,
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "widget_enabled": False,
            "widget_channel_id": None,
            "max_presences": None,
            "max_members": 250000,
            "vanity_url_code": None,
            "premium_subscription_count": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "joined_at": _iso(int(time.time() * 1000)),
        }
        # Discord gives every bot a managed role named after it, tagged with the bot's id.
        bot_role = self.add_role(guild, self.bot_user["global_name"], permissions=int(MEMBER_PERMISSIONS))
        bot_role.update(managed=True, mentionable=True, tags={"bot_id": self.bot_user["id"]})
        guild["members"][0]["roles"] = [bot_role["id"]]
        self._guilds.append(guild)
        guild["_joined"] = joined
        return guild

    @staticmethod
    def bot_role(guild: dict[str, Any]) -> dict[str, Any]:
        return next(r for r in guild["roles"] if r.get("tags", {}).get("bot_id"))

    def add_role(self, guild: dict[str, Any], name: str, *, permissions: int = 0) -> dict[str, Any]:
        role = {
            "id": str(self.snowflake()),
            "name": name,
            "permissions": str(permissions),
            "position": len(guild["roles"]),
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": True,
            "flags": 0,
        }
        guild["roles"].append(role)
        return role

    @staticmethod
    def _member(user: dict[str, Any], roles: list[str], nick: str | None = None) -> dict[str, Any]:
        # Shape: developers/resources/guild.mdx "Example Guild Member".
        return {
            "user": user,
            "nick": nick,
            "roles": roles,
            "joined_at": _iso(int(time.time() * 1000)),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }

    def add_member(
        self, guild: dict[str, Any], name: str, *, roles: list[dict[str, Any]] = (), nick: str | None = None
    ) -> dict[str, Any]:
        """A guild member; returns the member payload (``["user"]`` is the user)."""
        user = self.user_payload(self.snowflake(), name)
        member = self._member(user, [r["id"] for r in roles], nick)
        guild["members"].append(member)
        guild["member_count"] += 1
        return member

    def add_channel(self, guild: dict[str, Any], name: str, *, kind: int = GUILD_TEXT) -> dict[str, Any]:
        channel = {
            "id": str(self.snowflake()),
            "type": kind,
            "guild_id": guild["id"],
            "name": name,
            "position": len(guild["channels"]),
            "permission_overwrites": [],
            "parent_id": None,
            "nsfw": False,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        if kind == GUILD_FORUM:
            channel.update(
                available_tags=[],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
                default_thread_rate_limit_per_user=0,
            )
        guild["channels"].append(channel)
        with self._lock:
            self._channels[channel["id"]] = channel
            self._messages[channel["id"]] = []
        return channel

    def add_thread(
        self,
        guild: dict[str, Any],
        parent: dict[str, Any],
        name: str,
        *,
        owner: dict[str, Any],
        private_members: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A public thread (or forum post when ``parent`` is a forum) owned by member ``owner``; with
        ``private_members`` a private thread that only those members (plus the owner) belong to.

        Shape: developers/resources/channel.mdx "Example Thread Channel"."""
        thread = {
            "id": str(self.snowflake()),
            "type": PUBLIC_THREAD if private_members is None else PRIVATE_THREAD,
            "guild_id": guild["id"],
            "parent_id": parent["id"],
            "owner_id": owner["user"]["id"],
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "total_message_sent": 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _iso(int(time.time() * 1000)),
                "locked": False,
                "create_timestamp": _iso(int(time.time() * 1000)),
            },
        }
        with self._lock:
            self._channels[thread["id"]] = thread
            self._messages[thread["id"]] = []
            if private_members is not None:
                ids = {owner["user"]["id"], *(m.get("user", m)["id"] for m in private_members)}
                self._thread_members[thread["id"]] = ids
        if self.can(thread, self.bot_user["id"], VIEW_CHANNEL):
            guild["threads"].append(thread)  # GUILD_CREATE lists only the threads the bot can view
        return thread

    def dm_channel(self, user: dict[str, Any]) -> dict[str, Any]:
        channel = {"id": str(self.snowflake()), "type": DM, "recipients": [user], "last_message_id": None}
        with self._lock:
            self._channels[channel["id"]] = channel
            self._messages[channel["id"]] = []
        return channel

    def message_payload(
        self,
        channel: dict[str, Any],
        author: dict[str, Any],
        content: str,
        *,
        mentions: list[dict[str, Any]] = (),
        attachments: list[dict[str, Any]] = (),
        embeds: list[dict[str, Any]] = (),
        store: bool = True,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE-shaped message. ``author`` is a member payload in guilds, a user payload in DMs.

        Shape: developers/resources/message.mdx "Example Message" plus the MESSAGE_CREATE extra fields
        (``guild_id``, ``member``, mentions with partial ``member``) of developers/events/gateway-events.mdx.
        ``store`` also files it in the channel's history (what ``GET /channels/{id}/messages`` returns).
        """
        user = author.get("user", author)
        mid = self.snowflake()
        message: dict[str, Any] = {
            "id": str(mid),
            "channel_id": channel["id"],
            "author": user,
            "content": content,
            "timestamp": _iso((mid >> 22) + DISCORD_EPOCH_MS),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [
                dict(m.get("user", m), member={k: v for k, v in m.items() if k != "user"})
                if "user" in m
                else m
                for m in mentions
            ],
            "mention_roles": [],
            "attachments": list(attachments),
            "embeds": list(embeds),
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
            if "user" in author:
                message["member"] = {k: v for k, v in author.items() if k != "user"}
        if store:
            with self._lock:
                self._messages.setdefault(channel["id"], []).append(message)
        return message

    def forward_payload(
        self, channel: dict[str, Any], author: dict[str, Any], original: dict[str, Any]
    ) -> dict[str, Any]:
        """A forwarded message (stored): empty content of its own, ``message_reference`` of type 1 (FORWARD)
        and one ``message_snapshots`` entry with the documented subset of the original's fields
        (developers/resources/message.mdx "Message Snapshot Object" — ``author`` is excluded)."""
        message = self.message_payload(channel, author, "")
        subset = (
            "type", "content", "embeds", "attachments", "timestamp", "edited_timestamp", "flags", "mentions",
            "mention_roles", "stickers", "sticker_items", "components",
        )
        message["message_reference"] = {
            "type": 1,
            "message_id": original["id"],
            "channel_id": original["channel_id"],
            **({"guild_id": original["guild_id"]} if "guild_id" in original else {}),
        }
        message["message_snapshots"] = [{"message": {k: original[k] for k in subset if k in original}}]
        message["flags"] = 1 << 14  # HAS_SNAPSHOT
        return message

    def delete_message(self, channel: dict[str, Any], message: dict[str, Any]) -> None:
        """The author deleted ``message`` (it leaves the history; replies to it now fail or lose the reference)."""
        with self._lock:
            self._deleted.add(message["id"])
            stored = self._messages.get(channel["id"], [])
            stored[:] = [m for m in stored if m["id"] != message["id"]]

    # ------------------------------------------------------------------ permissions

    def member_of(self, guild_id: str, user_id: str) -> dict[str, Any] | None:
        guild = next((g for g in self._guilds if g["id"] == guild_id), None)
        if guild is None:
            return None
        return next((m for m in guild["members"] if m["user"]["id"] == user_id), None)

    def permissions(self, channel: dict[str, Any], user_id: str) -> int:
        """``compute_permissions`` of developers/topics/permissions.mdx; a thread takes its parent's
        overwrites, and a private thread hides itself from non-members without Manage Threads."""
        guild = next((g for g in self._guilds if g["id"] == channel.get("guild_id")), None)
        member = self.member_of(guild["id"], user_id) if guild is not None else None
        if guild is None or member is None:
            return 0
        if guild["owner_id"] == user_id:
            return (1 << 50) - 1
        roles = {r["id"]: r for r in guild["roles"]}
        permissions = int(roles[guild["id"]]["permissions"])
        for role_id in member["roles"]:
            permissions |= int(roles[role_id]["permissions"]) if role_id in roles else 0
        if permissions & ADMINISTRATOR:
            return (1 << 50) - 1
        is_thread = channel.get("type") in (PUBLIC_THREAD, PRIVATE_THREAD)
        source = self._channels.get(channel.get("parent_id") or "", channel) if is_thread else channel
        overwrites = {o["id"]: o for o in source.get("permission_overwrites", [])}
        everyone = overwrites.get(guild["id"])
        if everyone:
            permissions = (permissions & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for role_id in member["roles"]:
            if role_id in overwrites:
                allow |= int(overwrites[role_id]["allow"])
                deny |= int(overwrites[role_id]["deny"])
        permissions = (permissions & ~deny) | allow
        own = overwrites.get(user_id)
        if own:
            permissions = (permissions & ~int(own["deny"])) | int(own["allow"])
        if channel.get("type") == PRIVATE_THREAD and not permissions & MANAGE_THREADS:
            with self._lock:
                joined = user_id in self._thread_members.get(channel["id"], set())
            if not joined:
                permissions &= ~VIEW_CHANNEL
        if not permissions & VIEW_CHANNEL:
            return 0  # "Implicit Permissions": without View Channel nothing else applies
        return permissions

    def can(self, channel: dict[str, Any], user_id: str, permission: int) -> bool:
        if not channel.get("guild_id"):
            return True  # DMs have no permissions to check
        return self.permissions(channel, user_id) & permission == permission

    @staticmethod
    def overwrite(channel: dict[str, Any], target_id: str, *, deny: int = 0, allow: int = 0, kind: int = 1) -> None:
        """Add a permission overwrite (``kind`` 0 = role, 1 = member) to ``channel``."""
        channel["permission_overwrites"].append(
            {"id": target_id, "type": kind, "allow": str(allow), "deny": str(deny)}
        )

    def add_to_thread(self, thread: dict[str, Any], member: dict[str, Any]) -> None:
        with self._lock:
            self._thread_members.setdefault(thread["id"], set()).add(member.get("user", member)["id"])

    # ------------------------------------------------------------------ the Message Content rule

    def sees_content(self, message: dict[str, Any], *, granted: bool) -> bool:
        """Whether the bot gets ``message``'s content: with the intent, or in the documented exceptions
        (its own messages, DMs, messages that mention it)."""
        if granted or not message.get("guild_id"):
            return True
        if message.get("author", {}).get("id") == self.bot_user["id"]:
            return True
        return any(m.get("id") == self.bot_user["id"] for m in message.get("mentions", []))

    def as_seen(self, message: dict[str, Any], *, granted: bool) -> dict[str, Any]:
        """``message`` as the bot receives it: blanked per the Message Content rule (also the message a
        reply or thread starter carries along)."""
        seen = dict(message)
        if not self.sees_content(message, granted=granted):
            seen.update(content="", embeds=[], attachments=[], components=[])
            seen.pop("poll", None)
            if "message_snapshots" in seen:
                seen["message_snapshots"] = [
                    {"message": dict(s["message"], content="", embeds=[], attachments=[], components=[])}
                    for s in seen["message_snapshots"]
                ]
        if isinstance(seen.get("referenced_message"), dict):
            seen["referenced_message"] = self.as_seen(seen["referenced_message"], granted=granted)
        return seen

    def _rest_view(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message as REST returns it: by the portal's switch, and without the gateway-only ``member``."""
        seen = self.as_seen(message, granted=bool(self.privileged_intents & MESSAGE_CONTENT))
        seen.pop("member", None)
        seen["mentions"] = [{k: v for k, v in m.items() if k != "member"} for m in seen.get("mentions", [])]
        return seen

    def interaction_payload(
        self,
        *,
        channel: dict[str, Any],
        member: dict[str, Any],
        data: dict[str, Any],
        kind: int = 2,
        message: dict[str, Any] | None = None,
        permissions: str | None = None,
    ) -> dict[str, Any]:
        """INTERACTION_CREATE: ``kind`` 2 = application command, 3 = component. ``member`` as from add_member.

        Shape: developers/interactions/application-commands.mdx "Example Interaction" (slash and message
        command), fields per developers/interactions/receiving-and-responding.mdx. ``member.permissions`` and
        ``app_permissions`` are computed in the channel (overwrites included) unless ``permissions`` is given.
        """
        iid = self.snowflake()
        user_id = member.get("user", member)["id"]
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": kind,
            "data": data,
            "channel_id": channel["id"],
            "channel": dict(channel),
            "token": f"itoken-{iid}",
            "version": 1,
            "locale": "en-US",
            "app_permissions": (
                str(self.permissions(channel, self.bot_user["id"])) if channel.get("guild_id") else ALL_PERMISSIONS
            ),
            "entitlements": [],
            "authorizing_integration_owners": {"0": channel.get("guild_id") or "0"},
            "context": 0 if channel.get("guild_id") else 1,
            "attachment_size_limit": 10_000_000,
        }
        if channel.get("guild_id"):
            payload["guild_id"] = channel["guild_id"]
            payload["guild_locale"] = "en-US"
            computed = str(self.permissions(channel, user_id)) if permissions is None else permissions
            payload["member"] = dict(member, permissions=computed)
        else:
            payload["user"] = member.get("user", member)
        if message is not None:
            payload["message"] = message
        return payload

    def slash(self, name: str, **options: str) -> dict[str, Any]:
        """``data`` of a chat-input command with string options."""
        return {
            "id": str(self.snowflake()),
            "name": name,
            "type": 1,
            "options": [{"name": k.replace("_", "-"), "type": 3, "value": v} for k, v in options.items()],
        }

    def message_command(self, name: str, target: dict[str, Any]) -> dict[str, Any]:
        """``data`` of a message context-menu command on ``target``."""
        return {
            "id": str(self.snowflake()),
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }

    # ------------------------------------------------------------------ inspection (thread-safe)

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def fail_next(
        self, route: str, *, status: int = 500, body: dict[str, Any] | None = None, count: int = 1
    ) -> None:
        """The next ``count`` requests to ``route`` ("POST /channels/1/messages") fail with ``status``.

        A 429 gets Discord's shape: ``retry_after`` (seconds) and ``global`` in the body and a ``Via`` header.
        """
        if body is None:
            body = (
                {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
                if status == 429
                else {"message": "Internal Server Error", "code": 0}
            )
        with self._lock:
            self._fail_next.setdefault(route, []).extend([(status, body)] * count)

    def channel_messages(self, channel_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages.get(channel_id, []))

    def commands(self, scope: str = "global") -> list[dict[str, Any]]:
        with self._lock:
            return list(self._commands.get(scope, []))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll ``predicate`` until it returns something truthy (sync tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.01)
        raise AssertionError("timed out waiting for the fake Discord")

    async def await_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll ``predicate`` without blocking the caller's event loop (async tests drive the client on it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            await asyncio.sleep(0.01)
        raise AssertionError("timed out waiting for the fake Discord")

    # ------------------------------------------------------------------ gateway control

    def dispatch(self, event: str, data: dict[str, Any], *, shard_id: int = 0) -> None:
        """Send a DISPATCH to the connected client (thread-safe; returns once it is on the wire).

        MESSAGE_CREATE goes out as the bot is allowed to see it (the Message Content rule, by the intents
        the shard identified with)."""
        if event == "MESSAGE_CREATE":
            with self._lock:
                intents = self._identified_intents.get(shard_id, 0)
            data = self.as_seen(data, granted=bool(intents & MESSAGE_CONTENT))
        if event == "INTERACTION_CREATE":
            with self._lock:
                self.dispatched_at[data["id"]] = time.monotonic()
                self._interaction_channels[data["id"]] = data["channel_id"]
                self._channels.setdefault(
                    data["channel_id"], data.get("channel") or {"id": data["channel_id"]}
                )
        self._server.call(self._send_dispatch(shard_id, event, data), timeout=5)

    async def _send_dispatch(self, shard_id: int, event: str, data: dict[str, Any]) -> None:
        ws = self._sockets.get(shard_id)
        if ws is None or ws.closed:
            raise RuntimeError(f"no gateway connection for shard {shard_id}")
        await ws.send_str(json.dumps({"op": DISPATCH, "t": event, "s": next(self._seq), "d": data}))

    def join_guild(self, guild: dict[str, Any], *, shard_id: int = 0) -> None:
        """Someone adds the bot to ``guild`` (``add_guild(joined=False)``) while it is connected: GUILD_CREATE."""
        guild["_joined"] = True
        # A guild that was never unavailable to the bot comes without the "unavailable" field (that is how
        # clients tell a join from a guild coming back).
        joined = {k: v for k, v in _public(guild).items() if k != "unavailable"}
        self._server.call(self._send_dispatch(shard_id, "GUILD_CREATE", joined), timeout=5)

    def connected_shards(self) -> list[int]:
        return sorted(sid for sid, ws in self._sockets.items() if not ws.closed)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}))
        shard_id = 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            op = payload.get("op")
            if op == HEARTBEAT:
                await ws.send_str(json.dumps({"op": HEARTBEAT_ACK}))
            elif op == IDENTIFY:
                d = payload["d"]
                with self._lock:
                    self.identifies.append(d)
                if d.get("intents", 0) & PRIVILEGED_INTENTS & ~self.privileged_intents:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                shard_id, count = d.get("shard", [0, 1])
                with self._lock:
                    self._identified_intents[shard_id] = d.get("intents", 0)
                self._shard_count = count
                self._sockets[shard_id] = ws
                mine = [
                    g for g in self._guilds
                    if (int(g["id"]) >> 22) % count == shard_id and self._in_guild(g)
                ]
                ready = {
                    "v": 10,
                    "user": dict(self.bot_user, verified=True, mfa_enabled=False, flags=0),
                    "guilds": [{"id": g["id"], "unavailable": True} for g in mine],
                    "session_id": f"session-{shard_id}",
                    "resume_gateway_url": self.gateway_url,
                    "shard": [shard_id, count],
                    "application": {"id": str(self.app_id), "flags": 0},
                    "private_channels": [],
                    "relationships": [],
                }
                await ws.send_str(
                    json.dumps({"op": DISPATCH, "t": "READY", "s": next(self._seq), "d": ready})
                )
                for guild in mine:
                    await ws.send_str(
                        json.dumps({"op": DISPATCH, "t": "GUILD_CREATE", "s": next(self._seq), "d": _public(guild)})
                    )
        return ws

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix(API_PREFIX)
        raw = await request.read()
        body: Any = None
        if raw:
            if request.content_type == "application/json":
                body = json.loads(raw)
            elif request.content_type.startswith("multipart/"):
                body = {"multipart": raw.decode("utf-8", "replace")}
        call = Call(
            method=request.method,
            path=path,
            query=dict(request.query),
            body=body,
            at=time.monotonic(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
        )
        with self._lock:
            self.calls.append(call)
        parts = path.strip("/").split("/")
        if parts[0] in ("interactions", "webhooks"):
            # Interaction callbacks and follow-ups are authenticated by the interaction token in the URL.
            token = parts[2] if len(parts) > 2 else ""
            with self._lock:
                known = token.removeprefix("itoken-") in self._interaction_channels
            if not known:
                return _json({"message": "Unknown Webhook", "code": 10015}, status=404)
        elif request.headers.get("Authorization", "") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        failure = self.fail_routes.get(f"{request.method} {path}")
        if failure is not None:
            return _json(failure[1], status=failure[0])
        with self._lock:
            key = f"{request.method} {path}"
            pending = self._fail_next.get(key, [])
            next_failure = pending.pop(0) if pending else None
        if next_failure is not None:
            status, payload = next_failure
            headers = (
                {"Via": "1.1 google"} if status == 429 else {}
            )  # discord.py treats 429 without Via as a ban
            return web.Response(
                body=json.dumps(payload).encode(),
                status=status,
                content_type="application/json",
                headers=headers,
            )
        return await self._route(request.method, path.strip("/").split("/"), call)

    async def _route(self, method: str, parts: list[str], call: Call) -> web.StreamResponse:
        body = call.body if isinstance(call.body, dict) else {}
        match (method, parts):
            case ("GET", ["users", "@me"]):
                return _json(dict(self.bot_user, verified=True, mfa_enabled=False, flags=0))
            case ("GET", ["oauth2", "applications", "@me"]):
                return _json(self._application())
            case ("GET", ["gateway", "bot"]):
                return _json(
                    {
                        "url": self.gateway_url,
                        "shards": 1,
                        "session_start_limit": {
                            "total": 1000,
                            "remaining": 999,
                            "reset_after": 0,
                            "max_concurrency": 1,
                        },
                    }
                )
            case ("GET", ["gateway"]):
                return _json({"url": self.gateway_url})
            case ("GET", ["channels", cid]):
                channel = self._channels.get(cid)
                if channel is None:
                    return _not_found("Unknown Channel", 10003)
                if not self.can(channel, self.bot_user["id"], VIEW_CHANNEL):
                    return _forbidden("Missing Access", 50001)
                return _json(channel)
            case ("POST", ["channels", cid, "typing"]):
                return web.Response(status=204)
            case ("POST", ["channels", cid, "messages"]):
                if cid not in self._channels:
                    return _not_found("Unknown Channel", 10003)
                channel = self._channels[cid]
                in_thread = channel.get("type") in (PUBLIC_THREAD, PRIVATE_THREAD)
                if not self.can(channel, self.bot_user["id"], VIEW_CHANNEL):
                    return _forbidden("Missing Access", 50001)
                if not self.can(channel, self.bot_user["id"], SEND_MESSAGES_IN_THREADS if in_thread else SEND_MESSAGES):
                    return _forbidden("Missing Permissions", 50013)
                reference = body.get("message_reference") or {}
                if reference and not self._exists(cid, str(reference.get("message_id"))):
                    if reference.get("fail_if_not_exists", True):
                        return _json(REPLY_TO_UNKNOWN_MESSAGE, status=400)
                    body = {k: v for k, v in body.items() if k != "message_reference"}
                return _json(self._bot_message(channel, body))
            case ("GET", ["channels", cid, "messages"]):
                channel = self._channels.get(cid)
                if channel is None:
                    return _not_found("Unknown Channel", 10003)
                if not self.can(channel, self.bot_user["id"], VIEW_CHANNEL):
                    return _forbidden("Missing Access", 50001)
                if not self.can(channel, self.bot_user["id"], READ_MESSAGE_HISTORY):
                    return _json([])  # "no messages will be returned"
                return _json(self._history(cid, call.query))
            case ("PUT" | "DELETE", ["channels", cid, "messages", mid, "reactions", emoji, "@me"]):
                return self._react(method, cid, mid, emoji)
            case ("GET", ["guilds", gid, "members", uid]):
                member = self.member_of(gid, uid)
                return _json(member) if member is not None else _not_found("Unknown Member", 10007)
            case ("GET", ["users", "@me", "guilds"]):
                # developers/resources/user.mdx "Get Current User Guilds": partial guilds, ``limit`` ≤ 200,
                # paged with ``after`` (ascending ids).
                limit = max(1, min(200, int(call.query.get("limit", "200"))))
                after = int(call.query.get("after", "0"))
                mine = sorted((g for g in self._guilds if self._in_guild(g) and int(g["id"]) > after),
                              key=lambda g: int(g["id"]))
                return _json(
                    [
                        {"id": g["id"], "name": g["name"], "icon": None, "owner": False, "permissions": "0",
                         "features": g["features"]}
                        for g in mine[:limit]
                    ]
                )
            case ("DELETE", ["users", "@me", "guilds", gid]):
                with self._lock:
                    self.left_guilds.append(gid)
                with contextlib.suppress(RuntimeError):
                    await self._send_dispatch(0, "GUILD_DELETE", {"id": gid})
                return web.Response(status=204)
            case ("POST", ["interactions", iid, _token, "callback"]):
                return self._callback(iid, body)
            case ("POST", ["webhooks", app_id, token]):
                channel = self._channel_of_token(token)
                return _json(self._bot_message(channel, body, webhook=True))
            case ("PATCH", ["webhooks", app_id, token, "messages", _mid]):
                channel = self._channel_of_token(token)
                return _json(self._bot_message(channel, body, webhook=True, store=False))
            case ("PUT", ["applications", app_id, "commands"]) if app_id == str(self.app_id):
                return _json(self._overwrite_commands("global", call.body))
            case ("PUT", ["applications", app_id, "guilds", gid, "commands"]) if app_id == str(self.app_id):
                return _json(self._overwrite_commands(f"guild:{gid}", call.body))
            case ("GET", ["applications", app_id, "commands"]) if app_id == str(self.app_id):
                return _json(self.commands("global"))
        return _not_found("404: Not Found", 0)

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(self.app_id),
            "name": self.bot_user["global_name"],
            "icon": None,
            "description": "",
            "bot_public": self.bot_public,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            # The portal's intent switches show as application flags (GATEWAY_*_LIMITED below 100 servers).
            "flags": (APP_FLAG_MESSAGE_CONTENT_LIMITED if self.privileged_intents & MESSAGE_CONTENT else 0)
            | (APP_FLAG_MEMBERS_LIMITED if self.privileged_intents & (1 << 1) else 0),
            "owner": self.user_payload(self.snowflake(), "owner"),
            "team": None,
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "rpc_origins": [],
        }

    def _overwrite_commands(self, scope: str, body: Any) -> list[dict[str, Any]]:
        stored = []
        for command in body or []:
            stored.append(
                {
                    "description": "",  # Discord returns "" for context-menu commands
                    "options": [],
                    **command,
                    "id": str(self.snowflake()),
                    "application_id": str(self.app_id),
                    "version": str(self.snowflake()),
                    "default_member_permissions": command.get("default_member_permissions"),
                }
            )
        with self._lock:
            self._commands[scope] = stored
        return stored

    def _history(self, cid: str, query: dict[str, str]) -> list[dict[str, Any]]:
        """Discord's paging: up to ``limit`` (≤100) messages before/after an id, always newest first."""
        limit = max(1, min(100, int(query.get("limit", "50"))))
        with self._lock:
            messages = sorted(self._messages.get(cid, []), key=lambda m: int(m["id"]))
        if "after" in query:
            after = int(query["after"])
            page = [m for m in messages if int(m["id"]) > after][:limit]
        elif "before" in query:
            before = int(query["before"])
            page = [m for m in messages if int(m["id"]) < before][-limit:]
        else:
            page = messages[-limit:]
        return [self._rest_view(m) for m in reversed(page)]

    def _in_guild(self, guild: dict[str, Any]) -> bool:
        return bool(guild.get("_joined", True)) and guild["id"] not in self.left_guilds

    def _exists(self, cid: str, mid: str) -> bool:
        with self._lock:
            return mid not in self._deleted and any(m["id"] == mid for m in self._messages.get(cid, []))

    def _react(self, method: str, cid: str, mid: str, emoji: str) -> web.Response:
        """Create / delete own reaction (developers/resources/message.mdx "Create Reaction"): needs Read
        Message History, and Add Reactions unless someone already reacted with that emoji."""
        channel = self._channels.get(cid)
        if channel is None:
            return _not_found("Unknown Channel", 10003)
        if not self._exists(cid, mid):
            return _not_found("Unknown Message", 10008)
        with self._lock:
            message = next(m for m in self._messages[cid] if m["id"] == mid)
            reactions = message.setdefault("reactions", [])
            existing = next((r for r in reactions if r["emoji"]["name"] == emoji), None)
        if method == "PUT":
            needed = READ_MESSAGE_HISTORY | (0 if existing else ADD_REACTIONS)
            if not self.can(channel, self.bot_user["id"], needed):
                return _forbidden("Missing Permissions", 50013)
            with self._lock:
                if existing is None:
                    reactions.append({"count": 1, "me": True, "emoji": {"id": None, "name": emoji}})
                elif not existing["me"]:
                    existing.update(count=existing["count"] + 1, me=True)
        elif existing is not None and existing["me"]:
            with self._lock:
                existing.update(count=existing["count"] - 1, me=False)
                if existing["count"] == 0:
                    reactions.remove(existing)
        return web.Response(status=204)

    def reactions(self, channel: dict[str, Any], message: dict[str, Any]) -> list[str]:
        """The emoji the bot currently has on ``message``."""
        with self._lock:
            stored = next((m for m in self._messages.get(channel["id"], []) if m["id"] == message["id"]), {})
            return [r["emoji"]["name"] for r in stored.get("reactions", []) if r["me"]]

    def _callback(self, iid: str, body: dict[str, Any]) -> web.Response:
        kind = body.get("type")
        data = body.get("data") or {}
        ephemeral = bool(int(data.get("flags") or 0) & 64)
        response: dict[str, Any] = {
            "interaction": {
                "id": iid,
                "type": 2,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": ephemeral,
            }
        }
        if kind in (4, 5):
            channel = self._channel_of_token(f"itoken-{iid}")
            message = self._bot_message(channel, data, store=False, flags=128 if kind == 5 else 0)
            response["interaction"]["response_message_id"] = message["id"]
            response["resource"] = {"type": kind, "message": message}
        return _json(response)

    def _channel_of_token(self, token: str) -> dict[str, Any]:
        # Interaction tokens are minted by interaction_payload; find the channel the interaction came from.
        iid = token.removeprefix("itoken-")
        with self._lock:
            channel_id = self._interaction_channels.get(iid)
        return self._channels.get(channel_id or "", {"id": "0", "type": GUILD_TEXT})

    def _bot_message(
        self,
        channel: dict[str, Any],
        body: dict[str, Any],
        *,
        webhook: bool = False,
        store: bool = True,
        flags: int = 0,
    ) -> dict[str, Any]:
        mid = self.snowflake()
        message: dict[str, Any] = {
            "id": str(mid),
            "channel_id": channel["id"],
            "author": self.bot_user,
            "content": body.get("content") or "",
            "timestamp": _iso((mid >> 22) + DISCORD_EPOCH_MS),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 19 if body.get("message_reference") else 0,
            "flags": flags | int(body.get("flags") or 0),
        }
        if webhook:
            message["webhook_id"] = str(self.app_id)
            message["application_id"] = str(self.app_id)
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
        if body.get("message_reference"):
            message["message_reference"] = body["message_reference"]
        if store and "id" in channel and channel["id"] != "0":
            with self._lock:
                self._messages.setdefault(channel["id"], []).append(message)
        return message

    # ------------------------------------------------------------------ lifecycle

    token = "fake-bot-token"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> FakeDiscord:
        self._server.start()
        return self

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        return app

    async def _close_sockets(self) -> None:
        for ws in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeDiscord:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _json(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json" without a charset: discord.py only parses bodies with that exact type.
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def _not_found(message: str, code: int) -> web.Response:
    return _json({"message": message, "code": code}, status=404)


def _public(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` without the fake's own bookkeeping keys (``_joined``)."""
    return {k: v for k, v in payload.items() if not k.startswith("_")}


def _forbidden(message: str, code: int) -> web.Response:
    # developers/topics/opcodes-and-status-codes.mdx: 50001 Missing access, 50013 Missing permissions.
    return _json({"message": message, "code": code}, status=403)


#: A reply to a deleted message: 50035 Invalid Form Body with the field error Discord sends for it.
REPLY_TO_UNKNOWN_MESSAGE = {
    "code": 50035,
    "errors": {"message_reference": {"_errors": [{"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]}},
    "message": "Invalid Form Body",
}


@contextlib.contextmanager
def discord_pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fake`` for the duration (restores afterwards)."""
    import discord.gateway
    import discord.http
    import yarl

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
