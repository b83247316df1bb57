"""slack_service(): Settings (through the composition root's mapping) → the adapter in HTTP or Socket Mode, against
the fake Slack API."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from aiohttp import web

from kbbot.adapters.services import ChatServices
from kbbot.adapters.slack import slack_service
from kbbot.config import Settings
from kbbot.core.ask import QueueListener
from kbbot.core.models import Answer, Question, SavedPage, Thread
from kbbot.errors import ConfigError
from kbbot.runtime import slack_credentials
from kbbot.store.memory import MemoryDeduper, MemoryFeedbackStore
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    SlackSigner,
    command_payload,
    event_envelope,
    mention_event,
    message_shortcut_payload,
)


class EchoAsk:
    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        return Answer(text=f"echo: {question.text}")

    async def status(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class NoSaver:
    async def save(self, thread: Thread, title: str | None = None, tags=None) -> SavedPage:  # type: ignore[no-untyped-def]
        raise NotImplementedError


def _deps() -> ChatServices:
    return ChatServices(ask=EchoAsk(), saver=NoSaver(), feedback=MemoryFeedbackStore(), deduper=MemoryDeduper())


async def test_http_mode_routes_serve_signed_events() -> None:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                            slack_api_url=slack.api_url)
        async with slack_service(slack_credentials(settings), _deps()) as service:
            assert service.mode == "http" and len(service.routes) == 1
            app = web.Application()
            app.add_routes(service.routes)

            async def healthz(_: web.Request) -> web.Response:
                return web.Response(text="ok")

            app.router.add_get("/healthz", healthz)  # what the integrator adds next to it
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            try:
                body, headers = SlackSigner().event(event_envelope(mention_event("C1", "U1", "hi there", "1.000001")))
                async with httpx.AsyncClient() as http:
                    response = await http.post(f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers)
                    assert response.status_code == 200
                    assert (await http.get(f"http://127.0.0.1:{port}/healthz")).text == "ok"
                [post] = await slack.await_for("chat.postMessage")
                assert "echo: hi there" in post.params["text"]

                # Shutting down: new requests are refused so Slack redelivers them elsewhere.
                await service.stop_intake()
                assert not service.accepting
                async with httpx.AsyncClient() as http:
                    response = await http.post(f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers)
                assert response.status_code == 503
            finally:
                await runner.cleanup()


async def test_socket_mode_when_app_token_is_set() -> None:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN, slack_api_url=slack.api_url)
        async with slack_service(slack_credentials(settings), _deps()) as service:
            assert service.mode == "socket" and service.routes == []
            await asyncio.to_thread(slack.wait_socket)
            envelope_id = slack.send_envelope("events_api", event_envelope(mention_event("C1", "U1", "yo", "1.000002")))
            await asyncio.to_thread(slack.wait_ack, envelope_id)
            [post] = await slack.await_for("chat.postMessage")
            assert "echo: yo" in post.params["text"]
        [opened] = slack.calls("apps.connections.open")
        assert "xapp" not in opened.body  # the app token goes in the Authorization header only


async def test_missing_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        async with slack_service(slack_credentials(Settings(slack_signing_secret=SIGNING_SECRET)), _deps()):
            pass
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        async with slack_service(slack_credentials(Settings(slack_bot_token=BOT_TOKEN)), _deps()):
            pass


async def test_a_clean_start_logs_no_warnings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # SLACK_BOT_TOKEN in the environment, as `kbbot run` has it: Bolt used to warn "token will be unused".
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    with FakeSlack() as slack, caplog.at_level("INFO"):
        for extra in ({"slack_signing_secret": SIGNING_SECRET}, {"slack_app_token": APP_TOKEN}):
            settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=slack.api_url, **extra)
            async with slack_service(slack_credentials(settings), _deps()) as service:
                await service.connection.wait_ready()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_socket_mode_commands_and_shortcuts_in_slacks_envelopes() -> None:
    # Envelopes as bolt-python tests/adapter_tests/socket_mode/mock_socket_mode_server.py sends them.
    with FakeSlack() as slack:
        slack.add_channel("C111", "general")
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN, slack_api_url=slack.api_url)
        async with slack_service(slack_credentials(settings), _deps()) as service:
            await service.connection.wait_ready()
            url = slack.response_url()
            command = slack.send_envelope("slash_commands", command_payload("hi there", user="U1", channel="C111",
                                                                            response_url=url))
            ack = await asyncio.to_thread(slack.wait_ack, command)
            assert ack["payload"]["text"] == ":mag: Looking that up…"  # the ack carries the reply
            [reply] = await slack.await_for("response_url")
            assert "echo: hi there" in reply.params["text"]

            shortcut = message_shortcut_payload(user="U1", channel="C111", message_ts="1700000000.000100",
                                                text="<!here> VPN notes")
            envelope = slack.send_envelope("interactive", shortcut)
            assert "payload" not in await asyncio.to_thread(slack.wait_ack, envelope)
            [opened] = await slack.await_for("views.open")
            assert opened.params["trigger_id"] == shortcut["trigger_id"]
            assert opened.params["view"]["blocks"][0]["element"]["initial_value"] == "VPN notes"
