"""What the bot does for each Slack interaction, after Bolt has verified and acknowledged it.

Every flow here runs *after* ``ack()``: Slack wants an answer within 3 s and the knowledgebase may take longer,
so the listeners in :mod:`kbbot.adapters.slack.app` ack first and then await these methods (Bolt runs listeners
as background tasks when ``process_before_response`` is off, so the HTTP response or Socket Mode ack is already
on its way). Nothing here posts text that was not built by :mod:`kbbot.adapters.slack.rendering`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.services import ChatServices
from kbbot.adapters.slack import errors, rendering
from kbbot.adapters.slack.gaps import render_gaps
from kbbot.adapters.slack.history import (
    DEFAULT_MAX_MESSAGES,
    Membership,
    ThreadReader,
    UserDirectory,
    title_hint,
    truncation_text,
)
from kbbot.adapters.slack.parsing import Command, ThreadRef, mentioned_users, plain_text
from kbbot.adapters.slack.rendering import Message
from kbbot.adapters.slack.views import save_modal
from kbbot.core.ask import queue_notice
from kbbot.core.models import Answer, Asker, Question, SavedPage, Thread
from kbbot.core.text import clean_question, neutralize_mentions
from kbbot.errors import SaveError
from kbbot.ops.shutdown import TaskTracker

log = logging.getLogger(__name__)

PLATFORM = "slack"
WORKING_REACTION = "eyes"

#: Sends a message back to whoever triggered a slash command or an interaction (Bolt's ``respond``).
Reply = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SlackOptions:
    """Adapter knobs that are not secrets. Defaults are what production wants; tests shrink the waits."""

    command: str = "/kb"
    #: Prefilled in the save modal's tags field (the saver adds them anyway when none are given).
    default_tags: tuple[str, ...] = ()
    question_max_chars: int = 2000
    dedupe_ttl_seconds: int = 3600
    share_ttl_seconds: int = 3600
    history_page_size: int = 100
    #: The most messages read from one thread when saving; a longer thread is saved up to here, with a note on
    #: the page and to the requester (see :mod:`kbbot.adapters.slack.history`).
    history_max_messages: int = DEFAULT_MAX_MESSAGES
    users_cache_seconds: float = 3600
    #: How long :meth:`SlackHandlers.drain` waits for in-flight answers at shutdown.
    drain_seconds: float = 20.0
    #: Slack user ids allowed to see ``/kb gaps`` (SLACK_ADMIN_USERS).
    admin_users: tuple[str, ...] = ()


class SlackHandlers:
    """The flows: ask (mention, DM, /kb), share, feedback, save (shortcut, permalink, mention), help, status."""

    def __init__(self, *, client: AsyncWebClient, services: ChatServices, options: SlackOptions) -> None:
        self.client = client
        self.services = services
        # Answers in flight: in the bot's one shutdown tracker when given (``kbbot run``: one drain for every
        # adapter), else in this adapter's own, which :meth:`drain` waits for.
        self._tracker = TaskTracker()
        self._in_flight = services.in_flight or functools.partial(self._tracker.work, refuse_when_closed=False)
        self.options = options
        self.users = UserDirectory(client, ttl_seconds=options.users_cache_seconds)
        self._reader = ThreadReader(
            client, self.users, page_size=options.history_page_size, max_messages=options.history_max_messages
        )
        self._membership = Membership(client)
        # Answers shown ephemerally, kept so "Share in channel" posts the very same answer without re-asking.
        # Another replica (or an expired entry) falls back to asking again, which the answer cache absorbs.
        self._shared: TTLCache[str, tuple[str, Answer]] = TTLCache(maxsize=2000, ttl=options.share_ttl_seconds)

    # --- lifecycle ------------------------------------------------------------------------------

    def tracked(self) -> AbstractAsyncContextManager[None]:
        """Marks the running listener as in flight, so a stopping bot lets it finish."""
        return self._in_flight()

    async def drain(self) -> None:
        """Wait (bounded) for answers still being worked on, so a restart does not swallow them."""
        await self._tracker.idle(self.options.drain_seconds)

    # --- dedupe ---------------------------------------------------------------------------------

    async def first_delivery(self, body: dict[str, Any], channel: str, ts: str) -> bool:
        """False for a redelivered event (same ``event_id``) and for the second event about the same message
        (an @mention in a DM also arrives as ``message.im``): each message gets one answer."""
        ttl = self.options.dedupe_ttl_seconds
        event_id = body.get("event_id")
        if event_id and not await self.services.deduper.first_seen(f"slack:event:{event_id}", ttl):
            log.info("ignoring redelivered Slack event %s", event_id)
            return False
        if not await self.services.deduper.first_seen(f"slack:msg:{channel}:{ts}", ttl):
            log.info("ignoring second event for message %s:%s", channel, ts)
            return False
        return True

    # --- asking ---------------------------------------------------------------------------------

    async def plain(self, text: str, *, bot_user_id: str | None = None, title: bool = False) -> str:
        """What the user typed, as plain text with people's names instead of ``<@U…>`` ids (``users.info``,
        cached) and without ``<!here>``-style broadcasts: what questions, commands and titles are made of.

        ``title``: for the save modal, which must open within the 3 s of its trigger: names not found within a
        second are left out rather than shown as ids."""
        ids = mentioned_users(text) - {bot_user_id or ""}
        names: dict[str, str] = {}
        if ids:
            try:
                names = await asyncio.wait_for(self.users.names(ids), timeout=1.0 if title else None)
            except TimeoutError:
                names = {}
        return plain_text(text, bot_user_id=bot_user_id, users=names, drop_unknown=title)

    def _question(self, text: str, user_id: str, conversation: str) -> Question:
        channel = conversation.partition(":")[0] if ":" in conversation else ""
        return Question(
            text=text, asker=Asker(id=user_id), conversation_key=conversation, platform=PLATFORM,
            places=(channel,) if channel else (), direct=channel.startswith("D"),
        )

    async def _answer(self, question: Question, notify: Reply) -> tuple[str, Answer]:
        """(cleaned question, answer). Exceptions propagate to the app's one error hook. ``notify`` tells the
        asker their place in line when the wiki token's rate budget makes the question wait."""
        cleaned = clean_question(question.text, max_chars=self.options.question_max_chars)
        notice = queue_notice(lambda text: notify(rendering.render_text(":hourglass_flowing_sand: " + text)))
        answer = await self.services.ask.ask(question, on_queued=notice)
        return cleaned, answer

    async def answer_message(
        self, *, channel: str, ts: str, user_id: str, text: str, thread_ts: str | None, offer_save: bool,
        earlier: tuple[str, ...] = (),
    ) -> None:
        """Answer a mention, DM or follow-up: 👀 while working, the answer in the thread (or DM), errors to the
        asker only. An answer in a channel thread is remembered, so replies there become follow-ups; ``earlier``
        are the thread's questions before this one."""
        await self._react("reactions_add", channel, ts)
        try:
            conversation = f"{channel}:{thread_ts or ts}"
            question = dataclasses.replace(self._question(text, user_id, conversation), earlier=earlier)
            cleaned, answer = await self._answer(
                question, lambda m: self.tell_user(channel, user_id, m, thread_ts=thread_ts)
            )
            save_target = ThreadRef(channel, thread_ts or ts).key if offer_save else None
            posted: list[str] = []
            for message in rendering.render_answer(answer, question=cleaned, save_target=save_target):
                try:
                    posted += await self.post(channel, message, thread_ts=thread_ts)
                except SlackApiError as exc:
                    # E.g. only admins may post here: the asker still gets the answer, for their eyes only.
                    log.warning("could not post the answer in the channel: %s", errors.describe(exc))
                    await self.tell_user(channel, user_id, message, thread_ts=thread_ts)
            if self.services.conversations is not None and thread_ts and posted and not channel.startswith("D"):
                await self.services.conversations.answered(
                    thread_key(channel, thread_ts), cleaned, empty=answer.empty or not answer.text.strip(),
                    messages=[message_key(channel, t) for t in posted],
                )
        finally:
            await self._react("reactions_remove", channel, ts)

    async def answer_command(self, *, text: str, user_id: str, channel: str, reply: Reply) -> None:
        """``/kb <question>``: an ephemeral answer with "Share in channel"."""
        cleaned, answer = await self._answer(self._question(text, user_id, f"{channel}:command"), reply)
        share_id = uuid.uuid4().hex
        self._shared[share_id] = (cleaned, answer)
        for message in rendering.render_answer(answer, question=cleaned, share_id=_share_value(share_id, cleaned)):
            await reply(message)

    async def share(
        self, *, value: str, user_id: str, reply_public: Reply, reply_private: Reply, channel: str = ""
    ) -> None:
        """"Share in channel": post the ephemeral answer publicly, then remove the ephemeral copy."""
        try:
            data = json.loads(value)
            share_id, question = str(data["id"]), str(data["q"])
        except (ValueError, KeyError, TypeError):
            await reply_private(rendering.render_error("That button is broken; please ask again."))
            return
        kept = self._shared.get(share_id)
        if kept is not None:
            cleaned, answer = kept
        else:
            # Asked again in its channel, so its knowledgebase answers (several are configured).
            conversation = f"{channel}:share" if channel else "share"
            cleaned, answer = await self._answer(self._question(question, user_id, conversation), reply_private)
        name = await self.users.name(user_id)
        first, *rest = rendering.render_answer(answer, question=cleaned)
        asked = rendering.escape(cleaned[:200])
        shared_by = rendering.context(f"Shared by {rendering.escape(name)} · asked: “{asked}”")
        await reply_public(Message(text=first.text, blocks=[shared_by, *first.blocks]))
        for message in rest:
            await reply_public(message)

    async def record_feedback(
        self, *, question: str, user_id: str, helpful: bool, reply: Reply, channel: str = ""
    ) -> None:
        await self.services.feedback.record(
            platform=PLATFORM, question=question, user_id=user_id, helpful=helpful, channel=channel
        )
        thanks = "Thanks — glad it helped!" if helpful else "Thanks — noted. The wiki's editors will see it."
        await reply(rendering.render_text(thanks))

    async def reply_to(self, command: Command, channel: str, user_id: str) -> Message | None:
        """The reply to ``help``, ``status``, ``use NAME`` and ``gaps``, the same in a mention, a DM and ``/kb``
        (only where it goes differs); None for the other commands."""
        if command.name == "help":
            return self.help()
        if command.name == "status":
            return await self.status(channel, user_id)
        if command.name == "use":
            return await self.use(channel, user_id, command.arg)
        if command.name == "gaps":
            return await self.gaps(user_id)
        return None

    async def gaps(self, user_id: str) -> Message:
        """``/kb gaps``: the week's top knowledge gaps, for SLACK_ADMIN_USERS only."""
        if user_id not in self.options.admin_users:
            return rendering.render_text("Only kbbot admins can see the knowledge gaps (SLACK_ADMIN_USERS).")
        if self.services.gaps is None:
            return rendering.render_text("Knowledge gaps are not recorded here.")
        return render_gaps(await self.services.gaps.top())

    async def status(self, channel: str = "", user_id: str = "") -> Message:
        """The ``status`` reply (of the knowledgebase that answers in ``channel``)."""
        if self.services.router is not None:
            status = await self.services.router.status(self._question("", user_id, f"{channel}:status"))
        else:
            status = await self.services.ask.status()
        return rendering.render_status(status, await self.services.feedback.counts())

    def help(self) -> Message:
        """The help reply (with ``use NAME`` when there are knowledgebases to choose from)."""
        names = self.services.router.names if self.services.router is not None else ()
        return rendering.render_help(self.options.command, knowledgebases=names)

    @property
    def choosing(self) -> bool:
        """Several knowledgebases: ``use NAME`` picks the one a person's direct messages ask."""
        return self.services.router is not None and len(self.services.router.names) > 1

    async def use(self, channel: str, user_id: str, name: str) -> Message:
        """``use NAME``: the knowledgebase this person's direct messages ask (only parsed when choosing)."""
        assert self.services.router is not None
        return rendering.render_text(await self.services.router.use(PLATFORM, user_id, name))

    # --- saving ---------------------------------------------------------------------------------

    async def open_save_modal(self, *, trigger_id: str, ref: ThreadRef, title: str, user_id: str) -> None:
        """Open the modal first thing: ``trigger_id`` expires 3 s after the click. When Slack refuses, the user is
        told why (ephemeral), so a click never ends in silence."""
        view = save_modal(ref, title=title_hint(title) if title else "", tags=self.options.default_tags)
        try:
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            log.warning("could not open the save form: %s", errors.describe(exc))
            if errors.error_code(exc) in errors.TRIGGER_ERRORS:
                reason = "Slack took too long to open the save form. Please try again."
            else:
                code = errors.error_code(exc)
                reason = errors.scope_hint(exc) or f"I couldn't open the save form (Slack said `{code}`)."
            hint = f" You can also use `{self.options.command} save <message link>`."
            await self.tell_user(ref.channel, user_id, rendering.render_error(reason + hint), thread_ts=ref.thread_ts)

    async def save(
        self,
        *,
        ref: ThreadRef,
        user_id: str,
        title: str | None,
        tags: Sequence[str],
        fail: Reply,
        bot_user_id: str | None = None,
    ) -> None:
        """Check membership, read the whole thread, save it, and post the page link in the thread.

        A save queued for retry is announced as such; ``fail`` (the requester only) gets the link when it cannot
        go in the thread. ``bot_user_id`` (kbbot's user): its notices in the thread are not saved.
        """
        info = await self._membership.check(ref.channel, user_id)
        read = await self._reader.read_capped(ref, channel_name=_channel_name(info), bot_user_id=bot_user_id)
        thread = dataclasses.replace(read.thread, places=(ref.channel,))
        # No tags given → None, so the saver applies its defaults (channel name + SAVE_DEFAULT_TAGS).
        saved = await self.services.saver.save(thread, title=title or None, tags=tuple(tags) or None)
        name = await self.users.name(user_id)
        shown_title = title or saved.title or thread.title_hint or "Slack thread"
        note = truncation_text(read.max_messages) if read.truncated else None
        message = rendering.render_saved(saved, title=shown_title, saved_by=name, note=note)
        try:
            await self.post(ref.channel, message, thread_ts=_thread_key_ts(thread, ref))
        except SlackApiError as exc:
            log.warning("could not post the saved-page link in the thread: %s", errors.describe(exc))
            await fail(message)

    async def on_saved(self, conversation_key: str, saved: SavedPage | SaveError) -> None:
        """ThreadSaver's callback for a save that was pending and has now ended: link the page in the thread, or
        say why the wiki refused it."""
        ref = ThreadRef.from_key(conversation_key)
        if ref is None:
            return
        if isinstance(saved, SaveError):
            message = rendering.render_error(str(saved))
        else:
            message = rendering.render_saved(saved, title=saved.title or "this thread", saved_by="")
        try:
            await self.post(ref.channel, message, thread_ts=ref.thread_ts)
        except SlackApiError as exc:
            log.warning("could not post the outcome of a retried save: %s", errors.describe(exc))

    # --- sending --------------------------------------------------------------------------------

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> list[str]:
        """Post ``message``; returns the ``ts`` of what Slack posted (several when it went as plain parts)."""
        kwargs: dict[str, Any] = {"channel": channel, "unfurl_links": False, "unfurl_media": False}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        return await _send(self.client.chat_postMessage, message, **kwargs)

    async def tell_user(self, channel: str, user_id: str, message: Message, *, thread_ts: str | None = None) -> None:
        """Ephemeral to one user; if Slack refuses (e.g. the bot left the channel), a DM instead."""
        kwargs: dict[str, Any] = {"channel": channel, "user": user_id}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        try:
            await _send(self.client.chat_postEphemeral, message, **kwargs)
        except SlackApiError as exc:
            log.info("ephemeral message refused (%s); sending a DM instead", errors.describe(exc))
            try:
                await _send(self.client.chat_postMessage, message, channel=user_id)
            except SlackApiError as dm_exc:
                log.warning("could not tell the user either: %s", errors.describe(dm_exc))

    async def _react(self, method: str, channel: str, ts: str) -> None:
        # The 👀 is a courtesy: failing to add or remove it must never stop an answer.
        try:
            await getattr(self.client, method)(channel=channel, timestamp=ts, name=WORKING_REACTION)
        except SlackApiError as exc:
            # A missing reactions:write is worth an admin's attention; already_reacted and the like are not.
            level = logging.WARNING if errors.needed_scope(exc) else logging.DEBUG
            log.log(level, "%s failed: %s", method, errors.describe(exc))


#: Slack's errors for blocks it will not show; the same words still go through as plain text.
REFUSED_BLOCKS = frozenset({"msg_blocks_too_long", "invalid_blocks", "msg_too_long"})


async def _send(method: Callable[..., Awaitable[Any]], message: Message, **kwargs: Any) -> list[str]:
    """One Web API post of ``message``; when Slack refuses its blocks, the text again as plain-text chunks.
    Returns the posted messages' ``ts`` (none for ephemeral messages, which have no lasting ts)."""
    try:
        return _posted_ts(await method(**kwargs, **message.kwargs()))
    except SlackApiError as exc:
        if errors.error_code(exc) not in REFUSED_BLOCKS or not message.blocks:
            raise
        log.warning("Slack refused a message's blocks (%s); sending it as plain text", errors.describe(exc))
        posted: list[str] = []
        for part in rendering.plain_parts(message):
            posted += _posted_ts(await method(**kwargs, **part.kwargs()))
        return posted


def _posted_ts(response: Any) -> list[str]:
    ts = response.get("ts") if response is not None and hasattr(response, "get") else None
    return [ts] if isinstance(ts, str) and ts else []


def thread_key(channel: str, thread_ts: str) -> str:
    """A Slack thread in :class:`~kbbot.core.conversations.Conversations`."""
    return f"{PLATFORM}:{channel}:{thread_ts}"


def message_key(channel: str, ts: str) -> str:
    """One Slack message (one of kbbot's answers) in :class:`~kbbot.core.conversations.Conversations`."""
    return f"{PLATFORM}:msg:{channel}:{ts}"


def _share_value(share_id: str, question: str) -> str:
    """The share button's value: the cache id plus the question (to re-ask if the cache lost it), as JSON that
    stays whole within Slack's 2000-character limit however the question escapes."""
    question = neutralize_mentions(question)
    while True:
        value = json.dumps({"id": share_id, "q": question}, ensure_ascii=False)
        if len(value) <= rendering.MAX_BUTTON_VALUE - 100 or not question:
            return value
        question = question[: len(question) * 3 // 4]


def _channel_name(info: dict[str, Any]) -> str | None:
    name = info.get("name")
    return str(name) if isinstance(name, str) and name else None


def _thread_key_ts(thread: Thread, ref: ThreadRef) -> str:
    # ThreadReader may have followed a reply link to its root; the Thread key holds the real root ts.
    _, _, ts = thread.key.partition(":")
    return ts or ref.thread_ts


