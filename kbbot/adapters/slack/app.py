"""The Bolt app: wires Slack events, commands, shortcuts and buttons to :class:`SlackHandlers`.

Each listener acks first (events are auto-acked by Bolt before the listener runs) and only then does the slow
work; with ``process_before_response=False`` Bolt runs listeners as background tasks, so the HTTP response or
Socket Mode ack leaves within milliseconds regardless of how long the knowledgebase takes.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.services import ChatServices
from kbbot.adapters.slack import rendering
from kbbot.adapters.slack.followups import SlackFollowUps
from kbbot.adapters.slack.handlers import SlackHandlers, SlackOptions
from kbbot.adapters.slack.parsing import ThreadRef, object_id, parse_command, parse_permalink, plain_text
from kbbot.adapters.slack.rendering import Message
from kbbot.adapters.slack.views import SAVE_VIEW_CALLBACK, InvalidSubmission, parse_submission
from kbbot.core.replies import error_reply
from kbbot.errors import KbbotError

log = logging.getLogger(__name__)

SAVE_SHORTCUT_CALLBACK = "save_thread"

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SlackBot:
    """The Bolt app and the handlers behind it."""

    app: AsyncApp
    handlers: SlackHandlers

    async def drain(self) -> None:
        """Let answers already being worked on finish (bounded by ``SlackOptions.drain_seconds``)."""
        await self.handlers.drain()


def build_slack(*, client: AsyncWebClient, services: ChatServices, options: SlackOptions | None = None) -> SlackBot:
    """Build the handlers and the Bolt app.

    ``client`` carries the bot token and ``base_url`` (``SLACK_API_URL``). Requests are verified before they
    reach this app: by :func:`~kbbot.adapters.slack.server.slack_routes` in HTTP mode, by the websocket Slack
    authenticated in Socket Mode. ``services.conversations`` (the threads kbbot answered in) turns on follow-ups.
    """
    handlers = SlackHandlers(client=client, services=services, options=options or SlackOptions())
    app = AsyncApp(
        client=client,  # carries SLACK_BOT_TOKEN (see _QuietStart)
        # HTTP requests are verified on their raw bytes before Bolt sees them (server.py); Socket Mode needs none.
        request_verification_enabled=False,
        logger=_bolt_logger(),
        # Our own posts come back as events; answering them would loop.
        ignoring_self_events_enabled=True,
    )
    app.middleware(_app_rate_limited)
    conversations = services.conversations
    followups = SlackFollowUps(handlers, conversations) if conversations is not None else None
    _register(app, handlers, followups)
    return SlackBot(app=app, handlers=handlers)


async def _app_rate_limited(body: Body, next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
    """Slack sends ``app_rate_limited`` unasked when the workspace's events exceed 30,000 an hour
    (docs.slack.dev/reference/events/app_rate_limited). It has no inner event, so no listener matches and Bolt
    would answer 404, which counts as a failed delivery and can get the subscriptions disabled: say 200, and
    warn the operator (events in that minute were dropped by Slack)."""
    if isinstance(body, dict) and body.get("type") == "app_rate_limited":
        log.warning(
            "Slack rate-limited this app's events (team %s, minute %s): events of that minute were not delivered",
            body.get("team_id"), body.get("minute_rate_limited"),
        )
        return BoltResponse(status=200, body="")
    await next()
    return None


class _QuietStart(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and then warns, at every start, that the
    ``client`` we pass wins over it; the client carries that very token, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("kbbot.slack.bolt")
    if not any(isinstance(f, _QuietStart) for f in logger.filters):
        logger.addFilter(_QuietStart())
    return logger


def _responder(respond: AsyncRespond, **fixed: Any) -> Any:
    """Replies through ``response_url``; blocks Slack refuses (it answers HTTP 400 there) go again as plain text."""

    async def send(message: Message) -> None:
        response = await respond(**message.kwargs(), **fixed)
        if response.status_code == 200 or not message.blocks:
            return
        log.warning("Slack refused a reply (HTTP %s, %s); sending it as plain text", response.status_code,
                    str(response.body)[:80])
        for part in rendering.plain_parts(message):
            await respond(**part.kwargs(), **fixed)

    return send


Listener = Callable[..., Awaitable[None]]


ErrorHook = Callable[[Exception, Body, AsyncRespond | None], Awaitable[None]]


def error_hook(h: SlackHandlers) -> ErrorHook:
    """The one place a failed interaction becomes a message: Bolt's error handler (``app.error``) and every
    listener (through :func:`_guarded`) end here. The flows raise; this logs once (a :class:`KbbotError` as one
    line, anything else with its traceback), words it with :func:`error_reply` (a bug gets a generic line,
    never its details) and tells the person who triggered the request, privately, where they were: the
    command's or button's ``response_url``, the event's channel and thread, or the saved thread of a modal."""

    async def on_error(error: Exception, body: Body, respond: AsyncRespond | None = None) -> None:
        # Slash commands have no "type": their command ("/kb") names them.
        kind = (body.get("type") or body.get("command")) if isinstance(body, dict) else None
        if isinstance(error, KbbotError):
            log.info("Slack %s failed: %s: %s", kind, type(error).__name__, error)
        else:
            log.error("Slack %s failed unexpectedly", kind, exc_info=error)
        message = rendering.render_error(error_reply(error))
        try:
            if respond is not None and isinstance(body, dict) and body.get("response_url"):
                await _responder(respond, response_type="ephemeral", replace_original=False)(message)
                return
            where = _asker(body if isinstance(body, dict) else {})
            if where is not None:
                channel, user, thread_ts = where
                await h.tell_user(channel, user, message, thread_ts=thread_ts)
        except Exception as exc:  # telling failed too (Slack down): the first error is logged already
            log.warning("could not tell the user about a failure: %s", type(exc).__name__)

    return on_error


def _asker(body: Body) -> tuple[str, str, str | None] | None:
    """(channel, user, thread) where the person behind an event or a save-modal submission saw the bot: a
    mention's thread (the answer starts one), a DM's or a follow-up's own thread."""
    event = body.get("event")
    if isinstance(event, dict) and event.get("channel") and event.get("user"):
        thread_ts = event.get("thread_ts") or (event.get("ts") if event.get("type") == "app_mention" else None)
        return str(event["channel"]), str(event["user"]), str(thread_ts) if thread_ts else None
    user = object_id(body, "user")
    if body.get("type") == "view_submission" and user:
        try:
            ref = parse_submission(body.get("view") or {}).ref
        except InvalidSubmission:
            return None
        return ref.channel, user, ref.thread_ts
    return None


def _guarded(listener: Listener, on_error: ErrorHook) -> Listener:
    """Hands a listener's failure to the error hook itself instead of raising it to Bolt: Bolt clears the ack
    when a listener raises soon after acking, then reports "didn't call ack()" and answers 404, so Slack would
    show "app did not respond" on top of our message. Every listener takes ``body`` (and ``respond`` where
    Slack gives one) for the hook. ``functools.wraps`` keeps the signature Bolt reads to pass the arguments."""

    @functools.wraps(listener)
    async def run(**kwargs: Any) -> None:
        try:
            await listener(**kwargs)
        except Exception as exc:
            await on_error(exc, kwargs["body"], kwargs.get("respond"))

    return run


#: What "stop" outside a thread says.
STOP_HINT = (
    "`stop` works in a thread where I answered: mention me there with `stop`, or react :octagonal_sign: to my "
    "answer."
)


def _register(app: AsyncApp, h: SlackHandlers, followups: SlackFollowUps | None = None) -> None:
    command = h.options.command
    on_error = error_hook(h)
    app.error(on_error)

    def guarded(listener: Listener) -> Listener:
        return _guarded(listener, on_error)

    @app.event("app_mention")
    @guarded
    async def on_mention(body: Body, event: Body, context: AsyncBoltContext) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return  # other bots mentioning us: answering could start a bot-to-bot loop
        async with h.tracked():
            channel, ts, user = str(event.get("channel", "")), str(event.get("ts", "")), str(event.get("user", ""))
            if not channel or not ts or not await h.first_delivery(body, channel, ts):
                return
            thread_ts = str(event.get("thread_ts") or ts)
            cmd = parse_command(
                await h.plain(str(event.get("text", "")), bot_user_id=context.bot_user_id), choosing=h.choosing
            )
            if cmd.name == "save":
                if not event.get("thread_ts"):
                    hint = f"Mention me with `save` *inside a thread* to save it, or use `{command} save <link>`."
                    await h.tell_user(channel, user, rendering.render_text(hint))
                    return
                ref = ThreadRef(channel, thread_ts)
                await h.save(
                    ref=ref, user_id=user, title=cmd.arg or None, tags=(),
                    fail=lambda m: h.tell_user(channel, user, m, thread_ts=thread_ts),
                    bot_user_id=context.bot_user_id,
                )
            elif (reply := await h.reply_to(cmd, channel, user)) is not None:
                await h.tell_user(channel, user, reply, thread_ts=thread_ts)
            elif cmd.name == "stop":
                if followups is not None and event.get("thread_ts"):
                    await followups.stop(channel=channel, thread_ts=thread_ts, user=user)
                else:
                    await h.tell_user(channel, user, rendering.render_text(STOP_HINT), thread_ts=thread_ts)
            else:
                # A mention in a thread kbbot answered in is asked like a follow-up: with the thread's topic.
                in_thread = followups is not None and event.get("thread_ts")
                earlier = await followups.earlier(channel, thread_ts) if followups and in_thread else ()
                await h.answer_message(
                    channel=channel, ts=ts, user_id=user, text=cmd.arg, thread_ts=thread_ts, offer_save=True,
                    earlier=earlier,
                )

    @app.event("message")
    @guarded
    async def on_message(body: Body, event: Body, context: AsyncBoltContext) -> None:
        # Direct messages, and (message.channels / message.groups) replies in threads kbbot answered in: other
        # channel messages reach us as app_mention. Edits, deletions, joins and bot posts are ignored; a
        # question typed along with an uploaded file (file_share) is still a question.
        if event.get("channel_type") in ("channel", "group") and followups is not None:
            if event.get("thread_ts"):  # top-level channel messages are never follow-ups: no store read
                async with h.tracked():
                    await followups.on_reply(body, event, context.bot_user_id)
            return
        if event.get("channel_type") != "im" or event.get("bot_id"):
            return
        if event.get("subtype") not in (None, "file_share", "thread_broadcast"):
            return
        async with h.tracked():
            channel, ts, user = str(event.get("channel", "")), str(event.get("ts", "")), str(event.get("user", ""))
            if not channel or not ts or not await h.first_delivery(body, channel, ts):
                return
            cmd = parse_command(
                await h.plain(str(event.get("text", "")), bot_user_id=context.bot_user_id), choosing=h.choosing
            )
            thread_ts = str(event["thread_ts"]) if event.get("thread_ts") else None
            if (reply := await h.reply_to(cmd, channel, user)) is not None:
                await h.post(channel, reply, thread_ts=thread_ts)  # a DM is private: even gaps can go in it
            elif cmd.name == "save":
                hint = f"To save a thread, use *Save thread to wiki* from its message menu, or `{command} save <link>`."
                await h.post(channel, rendering.render_text(hint), thread_ts=thread_ts)
            elif cmd.name == "stop":
                await h.post(channel, rendering.render_text(STOP_HINT), thread_ts=thread_ts)
            else:
                await h.answer_message(
                    channel=channel, ts=ts, user_id=user, text=cmd.arg, thread_ts=thread_ts, offer_save=False
                )

    @app.command(command)
    @guarded
    async def on_command(
        ack: AsyncAck, body: Body, command: Body, respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        raw = str(command.get("text", ""))
        user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
        # Names are looked up after the ack (Slack waits 3 s at most).
        cmd = parse_command(plain_text(raw), choosing=h.choosing)
        private = _responder(respond, response_type="ephemeral", replace_original=False)
        if cmd.name == "help" or (not cmd.arg and cmd.name == "ask"):
            await ack(**h.help().kwargs(), response_type="ephemeral")
            return
        if cmd.name == "stop":  # slash commands cannot be used in threads
            await ack(text=STOP_HINT, response_type="ephemeral")
            return
        if cmd.name == "save":
            # Parse the raw text: plain_text() would have dropped the <…> around an escaped permalink.
            rest = raw.strip().split(None, 1)
            parsed = parse_permalink(rest[1]) if len(rest) == 2 else None
            if parsed is None:
                usage = (
                    f"Usage: `{h.options.command} save <message link> [title]` — use *Copy link* on a message of "
                    "the thread (slash commands can't be used inside threads)."
                )
                await ack(text=usage, response_type="ephemeral")
                return
            ref, title = parsed
            await ack(text=":inbox_tray: Saving the thread…", response_type="ephemeral")
            async with h.tracked():
                await h.save(ref=ref, user_id=user, title=title or None, tags=(), fail=private,
                             bot_user_id=context.bot_user_id)
            return
        if cmd.name == "ask":
            await ack(text=":mag: Looking that up…", response_type="ephemeral")
        else:
            await ack()
        async with h.tracked():
            if (reply := await h.reply_to(cmd, channel, user)) is not None:
                await private(reply)
            else:
                question = parse_command(await h.plain(raw)).arg
                await h.answer_command(text=question, user_id=user, channel=channel, reply=private)

    @app.action(rendering.ACTION_SHARE)
    @guarded
    async def on_share(ack: AsyncAck, body: Body, action: Body, respond: AsyncRespond) -> None:
        await ack()
        async with h.tracked():
            user = object_id(body, "user")

            shown = _responder(respond, response_type="in_channel", replace_original=False)
            deleted = False

            async def public(message: Message) -> None:
                nonlocal deleted
                if not deleted:  # the ephemeral copy goes once, before the first public part
                    deleted = True
                    await respond(delete_original=True)
                await shown(message)

            await h.share(
                value=str(action.get("value", "")), user_id=user, reply_public=public,
                channel=object_id(body, "channel"),
                reply_private=_responder(respond, response_type="ephemeral", replace_original=False),
            )

    async def on_feedback(ack: AsyncAck, body: Body, action: Body, respond: AsyncRespond) -> None:
        await ack()
        async with h.tracked():
            await h.record_feedback(
                question=str(action.get("value", "")),
                user_id=object_id(body, "user"),
                helpful=action.get("action_id") == rendering.ACTION_FEEDBACK_UP,
                channel=object_id(body, "channel"),
                reply=_responder(respond, response_type="ephemeral", replace_original=False),
            )
            if followups is not None and action.get("action_id") == rendering.ACTION_FEEDBACK_DOWN:
                await followups.downvoted(body)

    app.action(rendering.ACTION_FEEDBACK_UP)(guarded(on_feedback))
    app.action(rendering.ACTION_FEEDBACK_DOWN)(guarded(on_feedback))

    @app.action(rendering.ACTION_SAVE_THREAD)
    @guarded
    async def on_save_button(ack: AsyncAck, body: Body, action: Body, respond: AsyncRespond) -> None:
        await ack()
        try:
            data = json.loads(str(action.get("value", "")))
            ref = ThreadRef.from_key(str(data["ref"]))
            title = str(data.get("title") or "")
        except (ValueError, KeyError, TypeError):
            ref, title = None, ""
        if ref is None:
            await respond(text="That button is broken; use *Save thread to wiki* from the message menu instead.",
                          response_type="ephemeral", replace_original=False)
            return
        user = object_id(body, "user")
        await h.open_save_modal(trigger_id=str(body.get("trigger_id", "")), ref=ref, title=title, user_id=user)

    @app.shortcut(SAVE_SHORTCUT_CALLBACK)
    @guarded
    async def on_save_shortcut(ack: AsyncAck, body: Body, shortcut: Body, context: AsyncBoltContext) -> None:
        await ack()
        message = shortcut.get("message") or {}
        channel = object_id(shortcut, "channel")
        ts = str(message.get("thread_ts") or message.get("ts") or "")
        ref = ThreadRef.from_key(f"{channel}:{ts}")
        if ref is None:
            log.warning("save shortcut without a usable channel/message")
            return
        title = await h.plain(str(message.get("text", "")), bot_user_id=context.bot_user_id, title=True)
        user = object_id(shortcut, "user")
        await h.open_save_modal(trigger_id=str(shortcut.get("trigger_id", "")), ref=ref, title=title, user_id=user)

    @app.view(SAVE_VIEW_CALLBACK)
    @guarded
    async def on_save_submit(ack: AsyncAck, body: Body, view: Body, context: AsyncBoltContext) -> None:
        try:
            request = parse_submission(view)
        except InvalidSubmission as exc:
            await ack(response_action="errors", errors=exc.errors)
            return
        await ack()
        async with h.tracked():
            user = object_id(body, "user")
            ref = request.ref
            await h.save(
                ref=ref, user_id=user, title=request.title, tags=request.tags,
                fail=lambda m: h.tell_user(ref.channel, user, m, thread_ts=ref.thread_ts),
                bot_user_id=context.bot_user_id,
            )

    @app.event("reaction_added")
    @guarded
    async def on_reaction(body: Body, event: Body) -> None:
        if followups is not None:
            async with h.tracked():
                await followups.on_reaction(event)

