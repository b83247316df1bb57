"""Reading a Slack thread into the neutral :class:`~kbbot.core.models.Thread`, and who may save it.

``conversations.replies`` is paged with a cursor (Slack returns at most ``limit`` messages a call and a
``response_metadata.next_cursor``); user ids are turned into names with ``users.info``, cached because the same
few people write most messages and Slack rate-limits ``users.info`` (tier 4).

**How much is read**: at most ``max_messages`` (``SlackOptions.history_max_messages``, 10,000 by default).
``conversations.replies`` is rate-limited (tier 3, ~50 calls a minute), so 10,000 messages are already ~100
calls and a couple of minutes of reading, and the page grows to several wiki pages. A longer thread is
not cut silently: the saved page ends with a note saying it holds only the first N messages, and the requester
is told the same (:attr:`ReadThread.truncated`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.errors import describe, error_code, needed_scope, scope_hint
from kbbot.adapters.slack.parsing import ThreadRef
from kbbot.core.models import Thread, ThreadMessage
from kbbot.errors import SaveError
from kbbot.formats.slack import referenced_ids, thread_title_hint, to_neutral, user_display_name
from kbbot.formats.slack import title_hint as title_hint  # the modal's default title uses it too

log = logging.getLogger(__name__)

#: Default cap on the messages read from one thread (see the module docstring).
DEFAULT_MAX_MESSAGES = 10_000


class UserDirectory:
    """User id → display name via ``users.info``, cached for ``ttl_seconds``. Unknown users keep their id."""

    def __init__(self, client: AsyncWebClient, *, ttl_seconds: float = 3600, max_entries: int = 5000) -> None:
        self._client = client
        self._cache: TTLCache[str, str] = TTLCache(maxsize=max_entries, ttl=ttl_seconds)
        self._scope_reported = False

    async def lookup(self, user_id: str) -> str | None:
        """The user's display name, or None when ``users.info`` fails (logged; not cached, so a transient error
        is retried next time)."""
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            # A missing users:read fails every lookup the same way: say it once, not once per person.
            repeated = needed_scope(exc) is not None and self._scope_reported
            self._scope_reported = self._scope_reported or needed_scope(exc) is not None
            log.log(logging.DEBUG if repeated else logging.WARNING, "users.info failed for %s: %s", user_id,
                    describe(exc))
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("users.info failed for %s: cannot reach Slack (%s)", user_id, type(exc).__name__)
            return None
        user = response.get("user")
        name = (user_display_name(user) if isinstance(user, dict) else "") or user_id
        self._cache[user_id] = name
        return name

    async def name(self, user_id: str) -> str:
        """The display name, or the id itself when Slack cannot tell (a deleted or external user)."""
        return await self.lookup(user_id) or user_id

    async def names(self, user_ids: set[str]) -> dict[str, str]:
        """The names Slack could tell; ids it could not are left out, so callers can use the message's own.
        Looked up a few at a time (users.info is tier 4: ~100 a minute)."""
        ordered = sorted(user_ids)
        found: list[str | None] = []
        for start in range(0, len(ordered), 8):
            found += await asyncio.gather(*(self.lookup(uid) for uid in ordered[start : start + 8]))
        return {uid: name for uid, name in zip(ordered, found, strict=True) if name}


@dataclass(frozen=True, slots=True)
class ReadThread:
    """A thread as read, and whether it was longer than the reader's ``max_messages`` (then the Thread holds the
    first ``max_messages`` and a closing note saying so)."""

    thread: Thread
    truncated: bool
    max_messages: int


class ThreadReader:
    """Fetches a whole thread (every page, up to ``max_messages``) and converts it for the ThreadSaver."""

    def __init__(
        self,
        client: AsyncWebClient,
        users: UserDirectory,
        *,
        page_size: int = 100,
        max_messages: int = DEFAULT_MAX_MESSAGES,
    ) -> None:
        if page_size < 1 or max_messages < 1:
            raise ValueError("page_size and max_messages must be at least 1")
        self._client = client
        self._users = users
        self._page_size = page_size
        self.max_messages = max_messages

    async def raw_messages(self, ref: ThreadRef) -> tuple[list[dict[str, Any]], bool]:
        """The thread's messages, root first, at most ``max_messages``; and whether more were left unread.
        Raises :class:`SaveError` with a user-fit reason."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        more = False
        while True:
            wanted = min(self._page_size, self.max_messages - len(messages) + (1 if messages else 0))
            kwargs: dict[str, Any] = {"channel": ref.channel, "ts": ref.thread_ts, "limit": max(wanted, 1)}
            if cursor:
                kwargs["cursor"] = cursor
            try:
                response = await self._client.conversations_replies(**kwargs)
            except SlackApiError as exc:
                raise SaveError(_history_error(exc)) from None
            page = response.get("messages")
            if not isinstance(page, list):
                raise SaveError("Slack returned an unexpected reply while reading the thread.")
            # Every page repeats the root message first; keep it once.
            messages.extend(m for m in page if isinstance(m, dict) and not (messages and m.get("ts") == ref.thread_ts))
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            more = bool(cursor) and bool(response.get("has_more", True))
            if len(messages) >= self.max_messages:
                more = more or len(messages) > self.max_messages
                del messages[self.max_messages :]
                break
            if not more:
                break
        if not messages:
            raise SaveError("That thread is empty or no longer exists.")
        return messages, more

    async def read(
        self, ref: ThreadRef, *, channel_name: str | None = None, follow: bool = True, bot_user_id: str | None = None
    ) -> Thread:
        """The thread (see :meth:`read_capped` for whether it was cut at ``max_messages``)."""
        return (await self.read_capped(ref, channel_name=channel_name, follow=follow, bot_user_id=bot_user_id)).thread

    async def read_capped(
        self, ref: ThreadRef, *, channel_name: str | None = None, follow: bool = True, bot_user_id: str | None = None
    ) -> ReadThread:
        """``bot_user_id``: kbbot's own user, whose notices are left off the page (see kbbot.formats.slack)."""
        raw, truncated = await self.raw_messages(ref)
        root = raw[0]
        if follow and root.get("thread_ts") and root.get("thread_ts") != ref.thread_ts:
            # The link pointed at a reply: read the thread it belongs to (once; never loop).
            parent = ThreadRef(ref.channel, str(root["thread_ts"]))
            return await self.read_capped(parent, channel_name=channel_name, follow=False, bot_user_id=bot_user_id)
        ids, channels = referenced_ids(raw)
        names = await self._users.names(ids)
        messages = tuple(m for m in (_convert(r, names, channels, bot_user_id) for r in raw) if m is not None)
        if not messages:
            raise SaveError("That thread holds only Slack notices (joins, pins, topic changes): nothing to save.")
        if truncated:
            # Said on the page itself, so a reader of the wiki knows the conversation went on.
            messages = (*messages, _truncation_note(self.max_messages, messages[-1].timestamp))
        thread = Thread(
            platform="slack",
            key=ref.key,
            messages=messages,
            permalink=await self._permalink(ref),
            channel_name=channel_name,
            title_hint=thread_title_hint(messages),
        )
        return ReadThread(thread=thread, truncated=truncated, max_messages=self.max_messages)

    async def _permalink(self, ref: ThreadRef) -> str | None:
        try:
            response = await self._client.chat_getPermalink(channel=ref.channel, message_ts=ref.thread_ts)
        except SlackApiError:
            return None
        link = response.get("permalink")
        return str(link) if isinstance(link, str) and link.startswith("https://") else None


def _convert(
    raw: dict[str, Any], names: dict[str, str], channels: dict[str, str], bot_user_id: str | None
) -> ThreadMessage | None:
    # The one Slack converter (kbbot.formats.slack), shared with export imports. A name users.info could not
    # tell falls back to what the message carries (user_profile, bot_profile, username).
    try:
        return to_neutral(raw, users=names, channels=channels, bot_user_id=bot_user_id)
    except ValueError:  # no usable ``ts``: Slack never sends that, but one odd message must not fail the save
        return None


def truncation_text(max_messages: int) -> str:
    """The sentence that says a saved thread was cut (on the page and to the requester)."""
    return (
        f"This thread has more than {max_messages:,} messages; only the first {max_messages:,} were saved. "
        "Open the thread in Slack for the rest."
    )


def _truncation_note(max_messages: int, timestamp: str) -> ThreadMessage:
    return ThreadMessage(author_name="kbbot", author_id="", timestamp=timestamp, text=truncation_text(max_messages))


def _history_error(exc: SlackApiError) -> str:
    code = error_code(exc)
    log.warning("reading from Slack failed: %s", describe(exc))
    hint = scope_hint(exc)
    if hint:
        return hint
    if code in ("not_in_channel", "channel_not_found"):
        return "I can't read that channel — invite me first (`/invite @kbbot`), then try again."
    if code == "thread_not_found":
        return "That thread doesn't exist any more."
    if code == "ratelimited":
        return "Slack is rate-limiting me; please try again in a minute."
    return "I couldn't read that thread from Slack."


class Membership:
    """Who may save a conversation: anyone for public channels, only members for private ones and DMs."""

    def __init__(self, client: AsyncWebClient, *, page_size: int = 200, max_pages: int = 50) -> None:
        self._client = client
        self._page_size = page_size
        self._max_pages = max_pages

    async def channel_info(self, channel: str) -> dict[str, Any]:
        try:
            response = await self._client.conversations_info(channel=channel)
        except SlackApiError as exc:
            raise SaveError(_history_error(exc)) from None
        info = response.get("channel")
        if not isinstance(info, dict):
            raise SaveError("Slack returned an unexpected reply about that channel.")
        return info

    async def check(self, channel: str, user_id: str) -> dict[str, Any]:
        """Returns the channel info when ``user_id`` may save from it; raises :class:`SaveError` otherwise."""
        info = await self.channel_info(channel)
        if info.get("is_im"):
            if info.get("user") != user_id:
                raise SaveError("Only the people in a conversation can save it.")
            return info
        if not (info.get("is_private") or info.get("is_group") or info.get("is_mpim")):
            return info
        cursor: str | None = None
        for _ in range(self._max_pages):
            kwargs: dict[str, Any] = {"channel": channel, "limit": self._page_size}
            if cursor:
                kwargs["cursor"] = cursor
            try:
                response = await self._client.conversations_members(**kwargs)
            except SlackApiError as exc:
                raise SaveError(_history_error(exc)) from None
            if user_id in (response.get("members") or []):
                return info
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                break
        raise SaveError("Only members of this private channel can save its threads.")
