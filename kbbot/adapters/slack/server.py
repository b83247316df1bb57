"""How Slack reaches the app: HTTP (Events API on ``/slack/events``) or Socket Mode (a websocket we dial out).

HTTP mode returns plain aiohttp routes rather than owning a server, so the startup code can serve ``/healthz``
and ``/metrics`` on the same ``HTTP_HOST:HTTP_PORT``.

The endpoint is public, so it is cheap to attack and quiet: the ``X-Slack-Signature`` (v0 HMAC, slack_sdk's
:class:`~slack_sdk.signature.SignatureVerifier`, 5-minute clock window) is checked on the raw bytes *before*
anything parses or logs them. A request without the headers or with a stale timestamp is refused before its body
is even read; the body is read with a deadline; nothing about a refused request is logged but its size. Only a
verified request reaches Bolt (whose own verification is therefore off: one check, here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.connection import socket_logger

__all__ = ["EVENTS_PATH", "AsyncSocketModeHandler", "slack_routes", "slack_web_app", "socket_mode_handler"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
#: Slack payloads are small; a view submission with a long thread title is a few KB. Cap what we buffer.
MAX_BODY_BYTES = 1 << 20
#: Slack signs a request when it sends it; one older than this is a replay (Slack's documented window).
MAX_CLOCK_SKEW_SECONDS = 300
#: Slack sends its few KB at once; a client that trickles the body is holding a connection hostage.
BODY_TIMEOUT_SECONDS = 5.0


def slack_routes(
    app: AsyncApp,
    *,
    signing_secret: str,
    path: str = EVENTS_PATH,
    is_open: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.time,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
) -> list[web.RouteDef]:
    """``POST /slack/events`` for events, slash commands, shortcuts, buttons and modal submissions.

    While ``is_open()`` is False (shutting down) requests get 503: Slack redelivers events that were not
    acknowledged, so another replica (or this one after its restart) answers them instead of nobody.
    """
    if not signing_secret:
        raise ValueError("HTTP mode needs the signing secret")
    verifier = SignatureVerifier(signing_secret)

    def unauthorized(reason: str, size: int | None) -> web.Response:
        log.info("refused an unsigned or badly signed Slack request (%s, %s bytes)", reason, size)
        return web.Response(status=401, text="invalid signature")

    async def events(request: web.Request) -> web.StreamResponse:
        if is_open is not None and not is_open():
            return web.Response(status=503, text="shutting down", headers={"Retry-After": "5"})
        stamp, signature = request.headers.get("X-Slack-Request-Timestamp"), request.headers.get("X-Slack-Signature")
        if not stamp or not signature or not signature.startswith("v0="):
            return unauthorized("no signature", request.content_length)
        try:
            fresh = abs(clock() - int(stamp)) <= MAX_CLOCK_SKEW_SECONDS
        except ValueError:
            fresh = False
        if not fresh:
            return unauthorized("stale or malformed timestamp", request.content_length)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.Response(status=413, text="payload too large")
        try:
            raw = await asyncio.wait_for(request.read(), timeout=body_timeout_seconds)
        except TimeoutError:
            return web.Response(status=408, text="request body too slow", headers={"Connection": "close"})
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="payload too large")
        try:
            body = raw.decode("utf-8")
            valid = verifier.is_valid(body=body, timestamp=stamp, signature=signature)
        except (UnicodeDecodeError, ValueError):
            valid = False
        if not valid:
            return unauthorized("signature mismatch", len(raw))
        try:
            # Bolt parses the body while building the request; a signed body that is not a JSON object or form
            # of one is still not something Slack sends.
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
        except Exception:
            return web.Response(status=400, text="malformed payload")
        if not isinstance(bolt_request.body, dict):
            return web.Response(status=400, text="malformed payload")
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    return [web.post(path, events)]


def slack_web_app(app: AsyncApp, *, signing_secret: str, path: str = EVENTS_PATH) -> web.Application:
    """A ready aiohttp application with only the Slack route (tests; or mount it with ``add_subapp``)."""
    web_app = web.Application(client_max_size=MAX_BODY_BYTES)
    web_app.add_routes(slack_routes(app, signing_secret=signing_secret, path=path))
    return web_app


def socket_mode_handler(
    app: AsyncApp, *, app_token: str, web_client: AsyncWebClient | None = None, ping_interval: float = 10
) -> AsyncSocketModeHandler:
    """The Socket Mode connection (aiohttp). Start with ``await handler.connect_async()``, stop with
    ``await handler.close_async()``. ``web_client`` (defaults to the app's) is used for
    ``apps.connections.open``, so ``SLACK_API_URL`` applies to it too."""
    return AsyncSocketModeHandler(
        app, app_token=app_token, web_client=web_client or app.client, ping_interval=ping_interval,
        logger=socket_logger(),
    )
