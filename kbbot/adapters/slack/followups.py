"""Follow-ups in Slack threads: replies without a mention in threads where kbbot answered, "@kbbot stop" and 🛑.

Slack sends every message of the channels kbbot is in (``message.channels``, ``message.groups``; scopes
``channels:history``, ``groups:history``). Here only thread replies by people matter; what to do with each is
:class:`~kbbot.core.conversations.Conversations`' decision. A reply that mentions kbbot also arrives as
``app_mention``: that listener answers it (asked with the thread's earlier questions), this one leaves it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from kbbot.adapters.slack import rendering
from kbbot.adapters.slack.handlers import SlackHandlers, message_key, thread_key
from kbbot.adapters.slack.parsing import ThreadRef
from kbbot.core.conversations import Conversations, Reply

log = logging.getLogger(__name__)

#: 🛑 in Slack's emoji names.
STOP_REACTIONS = frozenset({"octagonal_sign"})
#: Kinds of message a person's reply can be (a reply "also sent to the channel" is ``thread_broadcast``).
_REPLY_SUBTYPES = (None, "file_share", "thread_broadcast")


class SlackFollowUps:
    """The follow-up flows, over the adapter's handlers and the conversation memory."""

    def __init__(self, handlers: SlackHandlers, conversations: Conversations) -> None:
        self._h = handlers
        self._conversations = conversations

    async def earlier(self, channel: str, thread_ts: str) -> tuple[str, ...]:
        """The questions kbbot answered in the thread (a mention there is asked like a follow-up)."""
        return await self._conversations.earlier(thread_key(channel, thread_ts))

    async def on_reply(self, body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None) -> None:
        """A message in a channel: answered only when it is a person's follow-up in a thread kbbot answered."""
        thread_ts, ts = str(event.get("thread_ts") or ""), str(event.get("ts") or "")
        if not thread_ts or thread_ts == ts or event.get("bot_id") or event.get("subtype") not in _REPLY_SUBTYPES:
            return
        channel, user, raw = str(event.get("channel", "")), str(event.get("user", "")), str(event.get("text", ""))
        if not channel or not user or (bot_user_id and re.search(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", raw)):
            return  # a mention: the app_mention listener answers it
        text = await self._h.plain(raw, bot_user_id=bot_user_id)
        decision = await self._conversations.decide(thread_key(channel, thread_ts), text)
        if decision.reply in (Reply.IGNORE, Reply.ACKNOWLEDGED, Reply.QUIET):
            if decision.reply is Reply.ACKNOWLEDGED:
                log.info("Slack: an acknowledgement in a thread I answered; no answer needed")
            return
        if not await self._h.first_delivery(body, channel, ts):
            return
        if decision.reply is Reply.OFFER_SAVE:
            title = decision.earlier[0] if decision.earlier else ""  # the thread's first question
            await self._h.post(
                channel, rendering.render_save_offer(ThreadRef(channel, thread_ts).key, title=title),
                thread_ts=thread_ts,
            )
            return
        await self._h.answer_message(
            channel=channel, ts=ts, user_id=user, text=text, thread_ts=thread_ts, offer_save=True,
            earlier=decision.earlier,
        )

    async def stop(self, *, channel: str, thread_ts: str | None, user: str) -> None:
        """"@kbbot stop" in a thread: no more follow-ups there (mentions are still answered)."""
        stopped = bool(thread_ts) and await self._conversations.stop(thread_key(channel, thread_ts or ""))
        text = rendering.FOLLOWUPS_STOPPED if stopped else rendering.FOLLOWUPS_NOT_FOLLOWING
        await self._h.tell_user(channel, user, rendering.render_text(text), thread_ts=thread_ts)

    async def on_reaction(self, event: dict[str, Any]) -> None:
        """🛑 on kbbot's answer (or on the thread's first message) ends follow-ups in that thread."""
        item = event.get("item") or {}
        if event.get("reaction") not in STOP_REACTIONS or item.get("type") != "message":
            return
        channel, ts, user = str(item.get("channel", "")), str(item.get("ts", "")), str(event.get("user", ""))
        if not channel or not ts:
            return
        key = await self._conversations.thread_of(message_key(channel, ts)) or thread_key(channel, ts)
        if await self._conversations.stop(key):
            thread_ts = key.rpartition(":")[2]
            await self._h.tell_user(channel, user, rendering.render_text(rendering.FOLLOWUPS_STOPPED),
                                    thread_ts=thread_ts)

    async def downvoted(self, body: dict[str, Any]) -> None:
        """A 👎 on one of kbbot's answers: the thread's next human answer is worth saving."""
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        message = body.get("message") or {}
        ts = str(container.get("message_ts") or message.get("ts") or "")
        thread_ts = str(container.get("thread_ts") or message.get("thread_ts") or "")
        if not channel or not ts:
            return
        key = await self._conversations.thread_of(message_key(channel, ts))
        if key is None and thread_ts:
            key = thread_key(channel, thread_ts)
        if key is not None:
            await self._conversations.downvoted(key)
