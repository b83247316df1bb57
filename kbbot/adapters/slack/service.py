"""One call for the composition root: build the Slack adapter and run it in the right mode.

    async with slack_service(credentials, services, options=…) as slack:
        web_app.add_routes(slack.routes)      # HTTP mode: /slack/events (empty list in Socket Mode)
        saver.listen("slack", slack.bot.handlers.on_saved)
        ...serve HTTP_HOST:HTTP_PORT with /healthz and /metrics, until shutdown...

On exit it stops intake (Socket Mode connection closed; HTTP requests get 503), lets in-flight answers finish
(bounded by ``SlackOptions.drain_seconds``), and closes the Web API client's session when it made it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.services import ChatServices
from kbbot.adapters.slack.app import SlackBot, build_slack
from kbbot.adapters.slack.connection import SlackConnection
from kbbot.adapters.slack.handlers import SlackOptions
from kbbot.adapters.slack.server import AsyncSocketModeHandler, slack_routes, socket_mode_handler
from kbbot.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlackCredentials:
    """How to reach Slack (``SLACK_*``): an empty ``app_token`` means HTTP mode, which needs the
    ``signing_secret``."""

    bot_token: str
    app_token: str = ""
    signing_secret: str = ""
    api_url: str = "https://slack.com/api/"
    timeout_seconds: float = 30.0

    @property
    def mode(self) -> str:
        """``socket`` with an app token, else ``http``; :class:`ConfigError` when neither mode is set up."""
        if self.app_token:
            return "socket"
        if self.signing_secret:
            return "http"
        raise ConfigError(
            "Slack needs SLACK_SIGNING_SECRET (HTTP mode: Basic Information → Signing Secret) "
            "or SLACK_APP_TOKEN (Socket Mode: an xapp- token with connections:write)"
        )


def slack_web_client(credentials: SlackCredentials) -> AsyncWebClient:
    """The Web API client: bot token, API URL and request timeout."""
    if not credentials.bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions → Bot User OAuth Token)")
    return AsyncWebClient(
        token=credentials.bot_token,
        base_url=credentials.api_url,
        timeout=int(max(1, credentials.timeout_seconds)),
        retry_handlers=retry_handlers(),
    )


#: Calls that may be repeated after a 5xx or a dropped connection: reads, and reactions (a repeat is refused as
#: already_reacted). A post is not: it may have landed before the connection broke.
IDEMPOTENT_METHODS = frozenset({
    "apps.connections.open", "auth.test", "chat.getPermalink", "conversations.info", "conversations.members",
    "conversations.replies", "reactions.add", "reactions.remove", "users.info",
})


def _idempotent(request: HttpRequest) -> bool:
    return request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] in IDEMPOTENT_METHODS


class _Announced(AsyncRetryHandler):
    """Logs each retry in one line of kbbot's own (slack_sdk's "A retry handler found" is kept to DEBUG runs by
    kbbot.ops.logging)."""

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        method = request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        reason = f"HTTP {response.status_code}" if response is not None else type(error).__name__
        log.warning("Slack %s failed (%s); retrying (%d of %d)", method, reason, state.current_attempt + 1,
                    self.max_retry_count)
        await super().prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)


class _IdempotentServerErrorRetry(_Announced, AsyncServerErrorRetryHandler):
    async def _can_retry_async(self, *, request: HttpRequest, **kwargs: Any) -> bool:
        return _idempotent(request) and await super()._can_retry_async(request=request, **kwargs)


class _IdempotentConnectionErrorRetry(_Announced, AsyncConnectionErrorRetryHandler):
    async def _can_retry_async(self, *, request: HttpRequest, **kwargs: Any) -> bool:
        return _idempotent(request) and await super()._can_retry_async(request=request, **kwargs)


class _RateLimitRetry(_Announced, AsyncRateLimitErrorRetryHandler):
    pass


def retry_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's own retry handlers: 500/503 and connection errors for idempotent calls; HTTP 429 with
    Retry-After for every call (Slack did not process it), e.g. users.info bursts while saving a long thread."""
    return [
        _IdempotentServerErrorRetry(max_retry_count=2),
        _IdempotentConnectionErrorRetry(max_retry_count=2),
        _RateLimitRetry(max_retry_count=2),
    ]


class SlackService:
    """The running adapter: the bot, the mode, and the HTTP routes to mount (none in Socket Mode).

    Shutdown order: :meth:`stop_intake` (new Slack requests get 503 so Slack redelivers events to a live
    replica; the Socket Mode connection is closed), then :meth:`drain` (answers in flight finish, bounded).
    Leaving the ``slack_service`` block does both.
    """

    def __init__(
        self,
        bot: SlackBot,
        mode: str,
        connection: SlackConnection,
        handler: AsyncSocketModeHandler | None = None,
        *,
        signing_secret: str = "",
    ) -> None:
        self.bot = bot
        self.mode = mode
        self.connection = connection
        self._handler = handler
        self._open = True
        self.routes: list[web.RouteDef] = (
            [] if handler else slack_routes(bot.app, signing_secret=signing_secret, is_open=lambda: self._open)
        )
        #: The start-up checks and the Socket Mode connection, running in the background. It ends with
        #: Unauthorized (one line naming the token; exit 3) when Slack rejects a token: stop the bot then.
        self.started = connection.start()

    @property
    def accepting(self) -> bool:
        return self._open

    def problem(self) -> str | None:
        """Why Slack is not ready (None when it is), for ``/readyz``."""
        return self.connection.problem()

    async def stop_intake(self) -> None:
        """Stop taking new Slack requests (idempotent); also interrupts a start-up still connecting."""
        self._open = False
        await self.connection.stop()
        handler, self._handler = self._handler, None
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]

    async def drain(self) -> None:
        await self.bot.drain()


@asynccontextmanager
async def slack_service(
    credentials: SlackCredentials,
    services: ChatServices,
    *,
    client: AsyncWebClient | None = None,
    options: SlackOptions | None = None,
) -> AsyncIterator[SlackService]:
    """Socket Mode when ``SLACK_APP_TOKEN`` is set, else HTTP mode (needs ``SLACK_SIGNING_SECRET``)."""
    mode, app_token = credentials.mode, credentials.app_token
    web_client = client or slack_web_client(credentials)
    bot = build_slack(client=web_client, services=services, options=options)
    try:
        if mode == "socket":
            handler = socket_mode_handler(bot.app, app_token=app_token, web_client=web_client)
            connection = SlackConnection(
                web_client, app_token=app_token, connect=lambda url: _connect(handler, url),
                is_connected=lambda: _open(handler),
            )
            service = SlackService(bot, "socket", connection, handler)
        else:
            log.info("Slack: HTTP mode, events at /slack/events")
            service = SlackService(bot, "http", SlackConnection(web_client), signing_secret=credentials.signing_secret)
        try:
            yield service
        finally:
            await service.stop_intake()
            await service.drain()
    finally:
        if client is None and web_client.session is not None:
            await web_client.session.close()


async def _connect(handler: AsyncSocketModeHandler, url: str) -> None:
    # The URL our own apps.connections.open got: slack_sdk uses it instead of asking again.
    handler.client.wss_uri = url
    await handler.connect_async()  # type: ignore[no-untyped-call]


def _open(handler: AsyncSocketModeHandler) -> bool:
    session = handler.client.current_session
    return session is not None and not session.closed
