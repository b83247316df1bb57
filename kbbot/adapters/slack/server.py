"""How Slack reaches the app: HTTP (Events API on ``/slack/events``) or Socket Mode (a websocket we dial out).

HTTP mode returns plain aiohttp routes rather than owning a server, so the startup code can serve ``/healthz``
and ``/metrics`` on the same ``HTTP_HOST:HTTP_PORT``. Bolt's own aiohttp helpers translate the request and the
response; Bolt verifies the ``X-Slack-Signature`` (v0 HMAC of the raw body, 5-minute clock window) and answers
401 when it does not match.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

__all__ = ["EVENTS_PATH", "AsyncSocketModeHandler", "slack_routes", "slack_web_app", "socket_mode_handler"]

EVENTS_PATH = "/slack/events"
#: Slack payloads are small; a view submission with a long thread title is a few KB. Cap what we buffer.
MAX_BODY_BYTES = 1 << 20


def slack_routes(
    app: AsyncApp, *, path: str = EVENTS_PATH, is_open: Callable[[], bool] | None = None
) -> list[web.RouteDef]:
    """``POST /slack/events`` for events, slash commands, shortcuts, buttons and modal submissions.

    While ``is_open()`` is False (shutting down) requests get 503: Slack redelivers events that were not
    acknowledged, so another replica (or this one after its restart) answers them instead of nobody.
    """

    async def events(request: web.Request) -> web.StreamResponse:
        if is_open is not None and not is_open():
            return web.Response(status=503, text="shutting down", headers={"Retry-After": "5"})
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.Response(status=413, text="payload too large")
        try:
            bolt_request = await to_bolt_request(request)
        except ValueError:
            # Bolt parses the body while building the request; a body that is not JSON/form is not Slack's.
            return web.Response(status=400, text="malformed payload")
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    return [web.post(path, events)]


def slack_web_app(app: AsyncApp, *, path: str = EVENTS_PATH) -> web.Application:
    """A ready aiohttp application with only the Slack route (tests; or mount it with ``add_subapp``)."""
    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.add_routes(slack_routes(app, path=path))
    return web_app


def socket_mode_handler(
    app: AsyncApp, *, app_token: str, web_client: AsyncWebClient | None = None, ping_interval: float = 10
) -> AsyncSocketModeHandler:
    """The Socket Mode connection (aiohttp). Start with ``await handler.connect_async()``, stop with
    ``await handler.close_async()``. ``web_client`` (defaults to the app's) is used for
    ``apps.connections.open``, so ``SLACK_API_URL`` applies to it too."""
    return AsyncSocketModeHandler(
        app, app_token=app_token, web_client=web_client or app.client, ping_interval=ping_interval
    )
