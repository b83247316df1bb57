"""A fake Slack Web API (and Socket Mode websocket): a real aiohttp server on 127.0.0.1 in a background thread.

The client under test is the real ``slack_sdk`` ``AsyncWebClient(base_url=fake.api_url)``. Every call is recorded
with its merged parameters (query string, form body or JSON body) so tests assert on what the bot really sent.
Methods answer like Slack does: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` with HTTP 200. The
rules it enforces (each has a test in tests/unit/test_fake_slack.py saying where the rule comes from):

- a bad token is ``invalid_auth``; a token of the wrong kind (a bot ``xoxb-`` token for ``apps.connections.open``,
  an app-level ``xapp-`` token for anything else) is ``not_allowed_token_type``;
- a method whose scope the token lacks answers ``missing_scope`` with ``needed`` and ``provided``
  (:meth:`FakeSlack.revoke_scope`);
- ``chat.postMessage``/``chat.postEphemeral``: more than 50 blocks or a section text over 3000 characters is
  ``invalid_blocks``; more than 12,000 characters of text in all blocks together is ``msg_blocks_too_long``
  (slackapi/bolt-js#2509, #2867: Slack sums the blocks' text strings); ``text`` over 40,000 is ``msg_too_long``;
- ``ratelimited`` comes with HTTP 429 and ``Retry-After``; 5xx failures come with an HTML-ish body as Slack's
  load balancers send (:meth:`FakeSlack.fail_next` with ``status``);
- ``conversations.replies`` repeats the thread's root message first on *every* page, as Slack does;
  the bot's own posts come back as an app's messages do, with ``bot_id``, ``app_id`` and ``bot_profile``
  (:func:`bot_post_fields`), and its user is known to ``users.info`` (``is_bot``);
  ``conversations.replies``/``conversations.members`` page with ``response_metadata.next_cursor``.

Also here:
- ``response_url`` endpoints (slash commands and interactions reply to them): :meth:`FakeSlack.response_url`.
- Socket Mode: ``apps.connections.open`` hands out ``ws://127.0.0.1:PORT/socket``; :meth:`FakeSlack.send_envelope`
  pushes an envelope to the connected client and :meth:`FakeSlack.wait_ack` returns the client's ack.
- :class:`SlackSigner` and the ``*_payload`` builders: SIGNED requests (v0 HMAC) carrying real-shaped payloads
  for events, slash commands, block actions, message shortcuts and view submissions.

Usage::

    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        slack.add_user("U1", "alice")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ...
        slack.wait_for("chat.postMessage")
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp import WSMsgType, web

from tests.fakes.background import BackgroundServer

BOT_TOKEN = "xoxb-test-bot-token-7d1e"
APP_TOKEN = "xapp-1-test-app-token-42"
SIGNING_SECRET = "test-signing-secret-0f3a9c"
TEAM_ID = "T0TEAM001"
BOT_USER_ID = "U0KBBOT01"
BOT_ID = "B0KBBOT01"
APP_ID = "A0KBBOT01"
#: The app's name (deploy/slack/manifest.yml ``display_information.name``): what Slack shows on its posts.
BOT_NAME = "kbbot"
ENTERPRISE_ID = "E0GRID001"

#: The bot scopes of deploy/slack/manifest.yml (what an installed kbbot has).
BOT_SCOPES = (
    "app_mentions:read", "channels:history", "channels:read", "chat:write", "commands", "groups:history",
    "groups:read", "im:history", "im:read", "im:write", "mpim:history", "mpim:read", "reactions:write", "users:read",
)
#: Scope each Web API method needs, from its page on docs.slack.dev/reference/methods (conversations.* need the
#: read/history scope of the channel's kind; the fake checks the public-channel one, which kbbot's seeds use).
METHOD_SCOPES = {
    "chat.postMessage": "chat:write", "chat.postEphemeral": "chat:write", "chat.update": "chat:write",
    "reactions.add": "reactions:write", "reactions.remove": "reactions:write", "users.info": "users:read",
    "conversations.info": "channels:read", "conversations.members": "channels:read",
    "conversations.replies": "channels:history",
}
#: Block-text budget of one message (see the module docstring).
MAX_BLOCK_TEXT = 12_000
MAX_TEXT = 40_000


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded request: the Web API method (or ``response_url``/``socket_ack``), its parameters, raw body."""

    method: str
    params: dict[str, Any]
    body: str
    at: float


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    # channel -> list of messages (root and replies, in ts order)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: dict[str, list[tuple[str, int, dict[str, Any]]]] = field(default_factory=dict)
    scopes: set[str] = field(default_factory=lambda: set(BOT_SCOPES))
    latency: dict[str, float] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeSlack:
    """The fake server. Start with ``with`` (or :meth:`start`/:meth:`stop`). Control methods are thread-safe."""

    def __init__(self, *, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._s = _State()
        self._server = BackgroundServer(self._build_app, name="fake-slack", on_shutdown=self._close_sockets)
        self._sockets: list[web.WebSocketResponse] = []
        self._ts = itertools.count(1)
        self.add_user(BOT_USER_ID, BOT_NAME, display_name="", real_name=BOT_NAME)
        self._s.users[BOT_USER_ID].update(is_bot=True)
        self._s.users[BOT_USER_ID]["profile"].update(bot_id=BOT_ID, api_app_id=APP_ID)

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` / ``AsyncWebClient(base_url=…)`` should be (with the trailing slash)."""
        return f"{self.url}/api/"

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> FakeSlack:
        self._server.start()
        return self

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/commands/{team}/{hook}/{rid}", self._response)
        app.router.add_get("/socket", self._socket)
        return app

    async def _close_sockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- seeding ----------------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, *, display_name: str | None = None, real_name: str = "") -> None:
        with self._lock:
            self._s.users[user_id] = {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": real_name or name.title(),
                "is_bot": False,
                "profile": {"display_name": display_name if display_name is not None else name,
                            "real_name": real_name or name.title()},
            }

    def add_channel(
        self, channel_id: str, name: str, *, private: bool = False, members: Sequence[str] = (), im_user: str = ""
    ) -> None:
        """A channel (``C…``), private channel (``G…``/``private=True``) or DM (``D…`` with ``im_user``)."""
        is_im = channel_id.startswith("D")
        with self._lock:
            info: dict[str, Any] = {
                "id": channel_id, "created": 1_600_000_000, "is_archived": False,
                "is_channel": not is_im and not private, "is_group": private, "is_im": is_im,
                "is_mpim": False, "is_private": private or is_im, "is_member": True,
            }
            if is_im:
                info["user"] = im_user
            else:
                info["name"] = name
            self._s.channels[channel_id] = info
            self._s.members[channel_id] = list(members)
            self._s.messages.setdefault(channel_id, [])

    def add_thread(self, channel: str, messages: Iterable[Mapping[str, Any]], *, root_ts: str | None = None) -> str:
        """Seed a thread: each message needs ``user`` and ``text`` (extra keys kept). Returns the root ``ts``."""
        with self._lock:
            root = root_ts or self._next_ts()
            out: list[dict[str, Any]] = []
            for index, message in enumerate(messages):
                ts = root if index == 0 else self._next_ts()
                item = {"type": "message", "ts": ts, **dict(message)}
                item["thread_ts"] = root
                out.append(item)
            if out:
                out[0]["reply_count"] = len(out) - 1
            self._s.messages.setdefault(channel, []).extend(out)
            return root

    def add_reply(self, channel: str, thread_ts: str, message: Mapping[str, Any]) -> str:
        """A person's reply in an existing thread (``user`` and ``text``); returns its ``ts``."""
        with self._lock:
            ts = self._next_ts()
            self._s.messages.setdefault(channel, []).append(
                {"type": "message", "ts": ts, **dict(message), "thread_ts": thread_ts}
            )
            return ts

    def fail_next(self, method: str, error: str, count: int = 1, *, status: int = 200, **fields: Any) -> None:
        """The next ``count`` calls of ``method`` answer ``{"ok": false, "error": error, **fields}``
        (``ratelimited``: with HTTP 429 and ``Retry-After: 0``, as Slack does). ``status`` 5xx sends a server
        error instead."""
        with self._lock:
            self._s.failures.setdefault(method, []).extend([(error, status, fields)] * count)

    def revoke_scope(self, *scopes: str) -> None:
        """The bot token no longer has ``scopes``: methods needing one answer ``missing_scope``."""
        with self._lock:
            self._s.scopes.difference_update(scopes)

    def set_latency(self, method: str, seconds: float) -> None:
        with self._lock:
            self._s.latency[method] = seconds

    def response_url(self) -> str:
        """A fresh ``response_url`` for a slash command or interaction payload, in Slack's shape
        (``https://hooks.slack.com/commands/T1G0MJLK0/51806896453/20IxlWcF4iUiCdrXkXIFmc2u``, as in payloads
        Slack sent to apps, e.g. quoted in public Slack app repositories): the last segment is the secret."""
        return f"{self.url}/commands/{TEAM_ID}/{uuid.uuid4().int % 10**11:011d}/{uuid.uuid4().hex[:24]}"

    # --- inspection -------------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._s.calls if method is None or c.method == method]

    def outgoing_bodies(self) -> list[str]:
        """Every request body the bot sent (Web API calls and response_url posts), for safety assertions."""
        with self._lock:
            return [c.body for c in self._s.calls]

    def responses(self, url: str) -> list[dict[str, Any]]:
        rid = url.rsplit("/", 1)[-1]
        with self._lock:
            return list(self._s.responses.get(rid, []))

    def wait_responses(self, url: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` payloads were posted to the response_url ``url``."""
        rid = url.rsplit("/", 1)[-1]
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(got := self._s.responses.get(rid, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} responses at {url}, wanted {count}")
                self._changed.wait(left)
            return list(got)

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self._s.messages.get(channel, []) if m.get("thread_ts", m["ts"]) == thread_ts]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0, **match: Any) -> list[Call]:
        """Block until at least ``count`` calls of ``method`` (whose params include ``match``) were recorded."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self._s.calls if c.method == method and _matches(c.params, match)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({c.method for c in self._s.calls})
                    raise AssertionError(f"{method} called {len(found)}× (wanted {count}); saw {seen}")
                self._changed.wait(left)

    async def await_for(self, method: str, count: int = 1, timeout: float = 10.0, **match: Any) -> list[Call]:
        """:meth:`wait_for` from async code without blocking the test's event loop."""
        return await asyncio.to_thread(self.wait_for, method, count, timeout, **match)

    # --- Socket Mode ------------------------------------------------------------------------------

    def send_envelope(self, kind: str, payload: Mapping[str, Any], *, retry_attempt: int = 0) -> str:
        """Push a Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``) to the client."""
        envelope_id = str(uuid.uuid4())
        # Envelope shapes: bolt-python tests/adapter_tests/socket_mode/mock_socket_mode_server.py
        # (socket_mode_envelopes): a shortcut does not accept a response payload, a slash command does; only
        # events_api envelopes carry retry_attempt/retry_reason. A view submission's ack may carry
        # response_action (errors), so it accepts one too.
        accepts = kind == "slash_commands" or payload.get("type") in ("view_submission", "block_suggestion")
        message: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": dict(payload),
            "type": kind,
            "accepts_response_payload": accepts,
        }
        if kind == "events_api":
            message["retry_attempt"] = retry_attempt
            message["retry_reason"] = "timeout" if retry_attempt else ""

        async def send() -> None:
            if not self._sockets:
                raise AssertionError("no Socket Mode client connected")
            await self._sockets[-1].send_str(json.dumps(message))

        self._server.call(send(), timeout=5)
        return envelope_id

    def wait_socket(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._sockets:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no Socket Mode client connected")
                self._changed.wait(left)

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self._s.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} was not acknowledged")
                self._changed.wait(left)
            return self._s.acks[envelope_id]

    # --- server side ------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.{next(self._ts):06d}"

    def _record(self, method: str, params: dict[str, Any], body: str) -> None:
        with self._changed:
            self._s.calls.append(Call(method, params, body, time.monotonic()))
            self._changed.notify_all()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.text()
        params: dict[str, Any] = dict(request.query)
        if body:
            if request.content_type == "application/json":
                try:
                    loaded = json.loads(body)
                except ValueError:
                    return web.json_response({"ok": False, "error": "invalid_json"})
                if isinstance(loaded, dict):
                    params.update(loaded)
            else:
                params.update(dict(parse_qsl(body, keep_blank_values=True)))
        for key in ("blocks", "view"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    return web.json_response({"ok": False, "error": f"invalid_{key}"})
        self._record(method, params, body)
        with self._lock:
            delay = self._s.latency.get(method, 0.0)
            failures = self._s.failures.get(method)
            failure = failures.pop(0) if failures else None
        if delay:
            await asyncio.sleep(delay)
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        refused = self._refuse_token(method, token)
        if refused is not None:
            return web.json_response(refused)
        if failure is not None:
            error, status, fields = failure
            if status >= 500:  # Slack's edge answers 5xx with a non-JSON body
                return web.Response(status=status, text="<html><body>Service Unavailable</body></html>")
            if error == "ratelimited":  # Slack says this with HTTP 429 and Retry-After
                return web.json_response({"ok": False, "error": error}, status=429, headers={"Retry-After": "0"})
            return web.json_response({"ok": False, "error": error, **fields})
        with self._lock:
            needed, provided = METHOD_SCOPES.get(method), ",".join(sorted(self._s.scopes))
            missing = needed is not None and needed not in self._s.scopes
        if missing:
            # Shape: docs.slack.dev/reference/methods/* "missing_scope"; `needed`/`provided` as slack_sdk models
            # them (python-slack-sdk slack_sdk/audit_logs/v1/logs.py LogsResponse: error, needed, provided).
            return web.json_response({"ok": False, "error": "missing_scope", "needed": needed, "provided": provided})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(params)
        return web.json_response(result)

    def _refuse_token(self, method: str, token: str) -> dict[str, Any] | None:
        """Slack's answer to a bad or wrong-kind token (None when the token is right for ``method``)."""
        app_method = method == "apps.connections.open"
        if token == (self.app_token if app_method else self.bot_token):
            return None
        if token.startswith("xoxb-" if app_method else "xapp-"):
            # An app-level token only opens connections, a bot token cannot (docs.slack.dev/reference/methods/
            # apps.connections.open: "not_allowed_token_type").
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": False, "error": "invalid_auth"}

    async def _response(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        body = await request.text()
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        self._record("response_url", {"rid": rid, **payload}, body)
        refused = message_error(payload) if isinstance(payload, dict) and not payload.get("delete_original") else None
        if refused:  # response_url answers like an incoming webhook: HTTP 400 with the error as plain text
            return web.Response(status=400, text=refused)
        with self._changed:
            self._s.responses.setdefault(rid, []).append(payload)
            self._changed.notify_all()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        with self._changed:
            self._sockets.append(ws)
            self._changed.notify_all()
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": APP_ID}}))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict) and "envelope_id" in data:
                        self._record("socket_ack", data, msg.data)
                        with self._changed:
                            self._s.acks[str(data["envelope_id"])] = data
                            self._changed.notify_all()
        finally:
            with self._changed:
                if ws in self._sockets:
                    self._sockets.remove(ws)
        return ws

    # --- methods ----------------------------------------------------------------------------------

    def _m_auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "kbbot",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _m_apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        refused = message_error(params)
        if refused:
            return {"ok": False, "error": refused}
        blocks = params.get("blocks") or []
        with self._lock:
            if channel.startswith("U"):  # posting to a user id opens the app DM
                channel = "D" + channel[1:]
            ts = self._next_ts()
            message = {"type": "message", "ts": ts, "text": params.get("text", ""), "blocks": blocks,
                       **bot_post_fields()}
            if params.get("thread_ts"):
                message["thread_ts"] = str(params["thread_ts"])
            self._s.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._post(params)

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        refused = message_error(params)
        if refused:
            return {"ok": False, "error": refused}
        with self._lock:
            if str(params.get("channel")) not in self._s.channels:
                return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts"), "text": params.get("text", "")}

    def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel") or ""), str(params.get("message_ts") or "")
        return {"ok": True, "channel": channel,
                "permalink": f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

    def _m_reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("name") and params.get("timestamp"):
            return {"ok": True}
        return {"ok": False, "error": "no_item_specified"}

    def _m_reactions_remove(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._m_reactions_add(params)

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if not params.get("trigger_id") or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": "V" + uuid.uuid4().hex[:10].upper(), **view}}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            user = self._s.users.get(str(params.get("user") or ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _m_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            info = self._s.channels.get(str(params.get("channel") or ""))
        return {"ok": True, "channel": info} if info else {"ok": False, "error": "channel_not_found"}

    def _m_conversations_members(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            channel = str(params.get("channel") or "")
            if channel not in self._s.channels:
                return {"ok": False, "error": "channel_not_found"}
            members = list(self._s.members.get(channel, []))
        page, cursor = _page(members, params, default_limit=100)
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        with self._lock:
            if channel not in self._s.channels:
                return {"ok": False, "error": "channel_not_found"}
            history = self._s.messages.get(channel, [])
            target = next((m for m in history if m["ts"] == ts), None)
            if target is None:
                return {"ok": False, "error": "thread_not_found"}
            if target.get("thread_ts", ts) != ts:  # a reply's ts: Slack answers with just that reply
                return {"ok": True, "messages": [dict(target)], "has_more": False,
                        "response_metadata": {"next_cursor": ""}}
            root = dict(target)
            replies = [dict(m) for m in history if m.get("thread_ts") == ts and m["ts"] != ts]
        # Slack puts the parent message first on every page, whatever the cursor (as observed in real workspaces,
        # issue #13 item 10); `limit` counts the replies.
        page, cursor = _page(replies, params, default_limit=1000)
        return {"ok": True, "messages": [root, *page], "has_more": bool(cursor),
                "response_metadata": {"next_cursor": cursor}}


def bot_post_fields() -> dict[str, Any]:
    """What Slack adds to a message the bot posted with its token (``chat.postMessage``), as
    ``conversations.replies`` (and ``conversations.history``, events) return it. Shape from bolt-python
    tests/slack_bolt/request/test_payload_utils.py (``bot_im_thread_message_body``: ``user``, ``bot_id``,
    ``app_id``, ``bot_profile``) and tests/scenario_tests/test_message_bot.py (``bot_profile.icons``)."""
    return {
        "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID, "team": TEAM_ID,
        "bot_profile": {
            "id": BOT_ID, "deleted": False, "name": BOT_NAME, "updated": 1726133600, "app_id": APP_ID,
            "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
                      "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
                      "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png"},
            "team_id": TEAM_ID,
        },
    }


def _page(items: list[Any], params: Mapping[str, Any], *, default_limit: int) -> tuple[list[Any], str]:
    try:
        limit = max(1, min(int(params.get("limit") or default_limit), 1000))
    except ValueError:
        limit = default_limit
    cursor = str(params.get("cursor") or "")
    offset = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
    page = items[offset : offset + limit]
    following = offset + limit
    return page, (base64.b64encode(f"offset:{following}".encode()).decode() if following < len(items) else "")


def block_text_chars(value: Any) -> int:
    """The characters Slack counts against a message's block budget: every ``text`` string in the block tree."""
    if isinstance(value, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else block_text_chars(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(block_text_chars(v) for v in value)
    return 0


def message_error(params: Mapping[str, Any]) -> str | None:
    """Slack's error for a message that breaks its limits (None when it is fine)."""
    blocks = params.get("blocks") or []
    if not params.get("text") and not blocks:
        return "no_text"
    if len(str(params.get("text") or "")) > MAX_TEXT:
        return "msg_too_long"
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text") if isinstance(block, dict) else None
        if isinstance(text, str) and len(text) > 3000:
            return "invalid_blocks"
    if block_text_chars(blocks) > MAX_BLOCK_TEXT:
        return "msg_blocks_too_long"
    return None


def _matches(params: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    return all(params.get(k) == v for k, v in match.items())


# --- signed requests ------------------------------------------------------------------------------


class SlackSigner:
    """Builds the HTTP requests Slack sends to ``/slack/events``, signed like Slack signs them (v0)."""

    def __init__(self, signing_secret: str = SIGNING_SECRET) -> None:
        self.signing_secret = signing_secret

    def sign(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(self.signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    def event(self, payload: Mapping[str, Any], *, retry_num: int | None = None) -> tuple[str, dict[str, str]]:
        body = json.dumps(payload)
        headers = {"Content-Type": "application/json", **self.sign(body)}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return body, headers

    def form(self, fields: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        body = urlencode(fields)
        return body, {"Content-Type": "application/x-www-form-urlencoded", **self.sign(body)}

    def command(self, payload: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        return self.form(payload)

    def interaction(self, payload: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        return self.form({"payload": json.dumps(payload)})


_event_ids = itertools.count(1)

# The builders below fill Slack's real payload shapes with this workspace's ids. The shapes are copied from
# slackapi/bolt-python's test suite, including the Enterprise Grid fields (``enterprise_id``,
# ``team.enterprise_id``/``enterprise_name``, ``authorizations``) a Grid workspace sends:
#   event_callback + app_mention: tests/scenario_tests_async/test_events_shared_channels.py (app_mention_body)
#   message events and subtypes:  tests/scenario_tests_async/test_message_bot.py, test_message_deleted.py,
#                                 test_message_changed.py, test_message_file_share.py
#   message_action (shortcut):    tests/scenario_tests_async/test_shortcut.py (message_shortcut_body)
#   block_actions:                tests/scenario_tests_async/test_block_actions.py (body)
#   view_submission:              tests/scenario_tests_async/test_view_submission.py (body)
#   slash command:                tests/scenario_tests_async/test_slash_command.py (slash_command_body)


def event_envelope(event: Mapping[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The Events API ``event_callback`` wrapper around ``event`` (Enterprise Grid workspace)."""
    return {
        "token": "verification_token",
        "team_id": TEAM_ID,
        "enterprise_id": ENTERPRISE_ID,
        "api_app_id": APP_ID,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": ENTERPRISE_ID, "team_id": TEAM_ID, "user_id": BOT_USER_ID,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": f"1-message-{TEAM_ID}-C111",
    }


def _rich_text(text: str) -> list[dict[str, Any]]:
    """The ``blocks`` Slack adds to a typed message (bolt-python test_message_bot.py user_message_event_payload)."""
    return [{"type": "rich_text", "block_id": "bN8",
             "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}]


def mention_event(channel: str, user: str, text: str, ts: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "client_msg_id": str(uuid.uuid4()), "type": "app_mention", "text": f"<@{BOT_USER_ID}> {text}",
        "user": user, "ts": ts, "team": TEAM_ID, "blocks": _rich_text(text), "channel": channel, "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = user
    return event


def message_event(channel: str, user: str, text: str, ts: str, *, channel_type: str = "im",
                  thread_ts: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "client_msg_id": str(uuid.uuid4()), "type": "message", "text": text, "user": user, "ts": ts,
        "team": TEAM_ID, "blocks": _rich_text(text), "channel": channel, "event_ts": ts, "channel_type": channel_type,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def reaction_event(
    channel: str, user: str, reaction: str, item_ts: str, *, item_user: str = BOT_USER_ID
) -> dict[str, Any]:
    """``reaction_added`` as documented (docs.slack.dev/reference/events/reaction_added, the example payload:
    ``user``, ``reaction``, ``item_user``, ``item`` {type message, channel, ts}, ``event_ts``)."""
    return {
        "type": "reaction_added", "user": user, "reaction": reaction, "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": item_ts}, "event_ts": f"{time.time():.6f}",
    }


def bot_message_event(channel: str, text: str, ts: str, *, channel_type: str = "im") -> dict[str, Any]:
    """Another app's post (bolt-python test_message_bot.py bot_message_event_payload)."""
    return {
        "bot_id": "B999", "type": "message", "text": text, "user": "UB111", "ts": ts, "team": TEAM_ID,
        "bot_profile": {"id": "B999", "deleted": False, "name": "other-app", "updated": 1607307935, "app_id": "A222",
                        "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
                        "team_id": TEAM_ID},
        "channel": channel, "event_ts": ts, "channel_type": channel_type,
    }


def classic_bot_message_event(channel: str, text: str, ts: str, *, channel_type: str = "im") -> dict[str, Any]:
    """A legacy integration's post (bolt-python test_message_bot.py classic_bot_message_event_payload)."""
    return {"type": "message", "subtype": "bot_message", "text": text, "ts": ts, "username": "classic-bot",
            "bot_id": "B888", "channel": channel, "event_ts": ts, "channel_type": channel_type}


def message_changed_event(channel: str, user: str, text: str, ts: str, *, channel_type: str = "im") -> dict[str, Any]:
    """An edit (bolt-python test_message_changed.py event_payload)."""
    return {
        "type": "message", "subtype": "message_changed",
        "message": {"type": "message", "text": text, "user": user, "team": TEAM_ID,
                    "edited": {"user": user, "ts": ts}, "blocks": _rich_text(text)},
        "previous_message": {"type": "message", "text": "original message", "user": user, "team": TEAM_ID,
                             "ts": "1665102338.901939", "blocks": _rich_text("original message")},
        "channel": channel, "hidden": True, "ts": ts, "event_ts": ts, "channel_type": channel_type,
    }


def message_deleted_event(channel: str, user: str, ts: str, *, channel_type: str = "im") -> dict[str, Any]:
    """A deletion (bolt-python test_message_deleted.py event_payload)."""
    return {
        "type": "message", "subtype": "message_deleted",
        "previous_message": {"type": "message", "text": "Delete this message", "user": user, "team": TEAM_ID,
                             "ts": "1665368619.804829"},
        "channel": channel, "hidden": True, "deleted_ts": "1665368619.804829", "event_ts": ts, "ts": ts,
        "channel_type": channel_type,
    }


def app_rate_limited_payload() -> dict[str, Any]:
    """Sent unasked when the app gets more than 30,000 events an hour from a workspace; no inner event
    (docs.slack.dev/reference/events/app_rate_limited, the JSON example there)."""
    return {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "app_rate_limited", "team_id": TEAM_ID,
            "minute_rate_limited": 1518467820, "api_app_id": APP_ID}


def command_payload(text: str, *, user: str, channel: str, response_url: str, command: str = "/kb") -> dict[str, str]:
    return {
        "token": "verification_token", "team_id": TEAM_ID, "team_domain": "acme", "enterprise_id": ENTERPRISE_ID,
        "enterprise_name": "Acme Org", "channel_id": channel, "channel_name": "general", "user_id": user,
        "user_name": "alice", "command": command, "text": text, "api_app_id": APP_ID,
        "is_enterprise_install": "false", "response_url": response_url, "trigger_id": f"111.222.{uuid.uuid4().hex}",
    }


def _team() -> dict[str, Any]:
    return {"id": TEAM_ID, "domain": "acme", "enterprise_id": ENTERPRISE_ID, "enterprise_name": "Acme Org"}


def block_action_payload(
    action_id: str, value: str, *, user: str, channel: str, response_url: str,
    message_ts: str | None = None, ephemeral: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {"type": "message", "channel_id": channel, "is_ephemeral": ephemeral}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": "verification_token", "container": container,
        "trigger_id": f"111.222.{uuid.uuid4().hex}", "team": _team(),
        "channel": {"id": channel, "name": "general"}, "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": "kb_answer_actions",
                     "text": {"type": "plain_text", "text": "Button", "emoji": True}, "value": value,
                     "type": "button", "action_ts": f"{time.time():.6f}"}],
    }
    if message_ts and not ephemeral:
        container["message_ts"] = message_ts
        payload["message"] = {"type": "message", "ts": message_ts, "text": "…", **bot_post_fields()}
    elif message_ts:
        container["message_ts"] = message_ts
    return payload


def message_shortcut_payload(
    *, user: str, channel: str, message_ts: str, text: str, thread_ts: str | None = None,
    callback_id: str = "save_thread",
) -> dict[str, Any]:
    message: dict[str, Any] = {"client_msg_id": str(uuid.uuid4()), "type": "message", "text": text, "user": user,
                               "ts": message_ts, "team": TEAM_ID, "blocks": _rich_text(text)}
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "message_action", "token": "verification_token", "action_ts": f"{time.time():.6f}",
        "team": _team(), "user": {"id": user, "name": "alice"}, "channel": {"id": channel, "name": "general"},
        "callback_id": callback_id, "trigger_id": f"111.222.{uuid.uuid4().hex}", "message_ts": message_ts,
        "message": message, "response_url": f"https://hooks.slack.invalid/app/{TEAM_ID}/111/{uuid.uuid4().hex}",
    }


def view_submission_payload(
    view: Mapping[str, Any], values: Mapping[str, Mapping[str, str]], *, user: str
) -> dict[str, Any]:
    """A ``view_submission`` for a view we opened: ``values`` is ``{block_id: {action_id: text}}``."""
    state = {
        block: {action: {"type": "plain_text_input", "value": text} for action, text in actions.items()}
        for block, actions in values.items()
    }
    submitted = {
        "id": "V0VIEW0001", "team_id": TEAM_ID, "clear_on_close": False, "notify_on_close": False,
        "external_id": "", **dict(view), "state": {"values": state}, "hash": "1596530361.3wRYuk3R",
        "previous_view_id": None, "root_view_id": "V0VIEW0001", "app_id": APP_ID, "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    }
    return {
        "type": "view_submission", "team": _team(),
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": "verification_token", "trigger_id": f"111.222.{uuid.uuid4().hex}",
        "view": submitted, "response_urls": [],
    }


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack Web API. Import it into a test module (or conftest) to use it as a fixture."""
    with FakeSlack() as fake:
        yield fake
