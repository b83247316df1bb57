"""The public /slack/events endpoint under attack: unsigned, badly signed, slow and numerous clients. The real
aiohttp server (kbbot.ops.http.HttpServer) serves the real Slack route; clients are raw sockets and httpx."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from kbbot.adapters.slack import slack_routes
from kbbot.ops.http import HttpServer
from tests.fakes.slack_api import SIGNING_SECRET, SlackSigner, event_envelope, mention_event
from tests.scenarios.slack_support import ALICE, GENERAL, loopback_client, slack_rig


@asynccontextmanager
async def _served(**server_args: object) -> AsyncIterator[tuple[HttpServer, object]]:
    async with slack_rig() as rig:
        app = web.Application()
        app.add_routes(slack_routes(rig.bot.app, signing_secret=SIGNING_SECRET, body_timeout_seconds=0.3))
        async with HttpServer(app, "127.0.0.1", 0, **server_args) as server:  # type: ignore[arg-type]
            yield server, rig


async def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes or answers; a guard stops a hang (no timing claim)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), timeout=20)
    finally:
        writer.close()


def _head(body_length: int, **headers: str) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: kbbot", "Content-Type: application/json",
             f"Content-Length: {body_length}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("body", [b"[1]", b"", b"\xff\xfe", json.dumps({"type": "event_callback"}).encode()])
async def test_unsigned_or_badly_signed_requests_get_401_quietly(body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async with _served() as (server, rig):
        marker_body = body + b" SECRET-MARKER" if body else body
        with caplog.at_level(logging.DEBUG):
            async with loopback_client() as http:
                unsigned = await http.post(f"{server.url}/slack/events", content=marker_body)
                forged = await http.post(f"{server.url}/slack/events", content=marker_body,
                                         headers={**SlackSigner("wrong-secret").sign(marker_body.decode("latin-1")),
                                                  "Content-Type": "application/json"})
        assert unsigned.status_code == 401 and forged.status_code == 401
        assert "Traceback" not in caplog.text and "ERROR" not in caplog.text
        assert "SECRET-MARKER" not in caplog.text  # the body is never logged
        # Nothing reached Bolt (auth.test is the adapter's own start-up check, as in `kbbot run`).
        assert [call.method for call in rig.slack.calls()] in ([], ["auth.test"])


async def test_a_signed_body_that_is_not_an_object_is_400_not_500(caplog: pytest.LogCaptureFixture) -> None:
    async with _served() as (server, _rig):
        headers = {"Content-Type": "application/json", **SlackSigner().sign("[1]")}
        async with loopback_client() as http:
            response = await http.post(f"{server.url}/slack/events", content="[1]", headers=headers)
        assert response.status_code == 400
        assert "Traceback" not in caplog.text


async def test_an_unsigned_request_is_refused_before_its_body_is_read() -> None:
    async with _served() as (server, _rig):
        # Headers announce 1 MiB that never comes: answered at once, without waiting for (or reading) the body.
        answer = await _exchange(server.port, _head(1 << 20))
        assert answer.startswith(b"HTTP/1.1 401")
        old = SlackSigner().sign("x", timestamp=int(time.time()) - 3600)
        stale = await _exchange(server.port, _head(1 << 20, **old))
        assert stale.startswith(b"HTTP/1.1 401")


async def test_a_client_that_trickles_the_body_gets_408() -> None:
    async with _served() as (server, _rig):
        body = json.dumps(event_envelope(mention_event(GENERAL, ALICE, "hi", "1700000000.000100")))
        head = _head(len(body), **SlackSigner().sign(body))
        answer = await _exchange(server.port, head + body[:10].encode())
        assert answer.startswith(b"HTTP/1.1 408")


async def test_a_client_that_never_finishes_its_headers_is_disconnected() -> None:
    async with _served(header_timeout_seconds=0.3) as (server, _rig):
        answer = await _exchange(server.port, b"POST /slack/events HTTP/1.1\r\nHost: kb")
        assert answer == b""  # closed by the server without an answer


async def test_connections_past_the_bound_get_503_and_real_events_still_work() -> None:
    async with _served(max_connections=3) as (server, rig):
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        while server.connections < 3:  # each joins aiohttp's list as it is accepted
            await asyncio.sleep(0.01)
        refused = await _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: kbbot\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 503")
        for _, writer in idle:
            writer.close()
        while server.connections:
            await asyncio.sleep(0.01)
        body, headers = rig.signer.event(event_envelope(mention_event(GENERAL, ALICE, "vpn?", "1700000001.000100")))
        async with loopback_client() as http:
            response = await http.post(f"{server.url}/slack/events", content=body, headers=headers)
        assert response.status_code == 200
        await rig.slack.await_for("chat.postMessage")
