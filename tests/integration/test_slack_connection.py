"""SlackConnection against the fake Slack Web API, with the sleeps injected (no waiting on the wall clock):
start-up checks, backoff for an unreachable Slack, a token rejected at start or revoked while running."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.connection import SlackConnection
from kbbot.errors import Unauthorized
from tests.cancels import HANG_GUARD_SECONDS, LOSES_CANCELS, LostSend
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack


class Sleeps:
    """An injected ``sleep``: records each delay and waits until the test lets it go."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._called = asyncio.Condition()
        self._go = asyncio.Semaphore(0)

    async def __call__(self, seconds: float) -> None:
        async with self._called:
            self.delays.append(seconds)
            self._called.notify_all()
        await self._go.acquire()

    async def wait_for(self, count: int) -> None:
        async with self._called:
            await self._called.wait_for(lambda: len(self.delays) >= count)

    def release(self) -> None:
        self._go.release()


def _client(url: str) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=url, retry_handlers=[])


async def test_ready_after_auth_then_a_revoked_bot_token_makes_it_not_ready() -> None:
    with FakeSlack() as slack:
        sleeps = Sleeps()
        connection = SlackConnection(_client(slack.api_url), recheck_seconds=300, sleep=sleeps)
        assert connection.problem() == "connecting to Slack"
        connection.start()
        await connection.wait_ready()
        assert connection.problem() is None and connection.bot_user_id == "U0KBBOT01"
        await sleeps.wait_for(1)
        assert sleeps.delays == [300]
        slack.bot_token = "xoxb-rotated"  # the token kbbot holds is revoked
        sleeps.release()
        await sleeps.wait_for(2)
        assert connection.problem() == (
            "SLACK_BOT_TOKEN was rejected by Slack (invalid_auth); get it again: "
            "Slack app → OAuth & Permissions → Bot User OAuth Token (xoxb-…)"
        )
        slack.bot_token = BOT_TOKEN
        sleeps.release()
        await sleeps.wait_for(3)
        assert connection.problem() is None  # and back once Slack accepts it again
        await connection.stop()


async def test_an_unreachable_slack_backs_off_with_one_line_per_attempt(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    connection = SlackConnection(_client(f"http://127.0.0.1:{port}/api/"), sleep=sleeps, max_backoff_seconds=60)
    with caplog.at_level(logging.WARNING):
        connection.start()
        for attempt in range(1, 9):
            await sleeps.wait_for(attempt)
            sleeps.release()
    await connection.stop()
    lines = [r for r in caplog.records if "cannot reach Slack" in r.getMessage()]
    assert len(lines) == 8 and all(r.exc_info is None for r in lines)
    assert "attempt 1," in lines[0].getMessage() and "ClientConnectorError" in lines[0].getMessage()
    assert sleeps.delays[0] < sleeps.delays[3] <= 60 and max(sleeps.delays) <= 60  # exponential, capped
    assert "cannot reach Slack" in (connection.problem() or "")


async def test_a_rejected_app_token_ends_the_task_with_unauthorized() -> None:
    with FakeSlack() as slack:
        connected: list[str] = []

        async def connect(url: str) -> None:
            connected.append(url)

        bad = SlackConnection(_client(slack.api_url), app_token="xapp-1-wrong", connect=connect)
        with pytest.raises(Unauthorized, match=r"SLACK_APP_TOKEN was rejected by Slack \(invalid_auth\)"):
            await bad.start()
        good = SlackConnection(_client(slack.api_url), app_token=APP_TOKEN, connect=connect)
        good.start()
        await good.wait_ready()
        await good.stop()
        assert connected == [f"ws://127.0.0.1:{slack.port}/socket"]  # the URL apps.connections.open gave


async def test_stop_returns_when_its_cancel_is_lost_and_the_checks_stop_at_once() -> None:
    """The cancel lands just as an awaited call completes, and Python 3.11 loses it (tests/cancels.py): the
    checks run on into the next auth.test. stop() must still return, and the loop must end there instead of
    starting another recheck."""
    with FakeSlack() as slack:
        recheck = LostSend()  # the recheck interval, awaited through wait_for
        connection = SlackConnection(_client(slack.api_url), recheck_seconds=300, sleep=recheck)
        task = connection.start()
        await connection.wait_ready()
        await recheck.inside.wait()
        checks = len(slack.calls("auth.test"))
        recheck.complete()  # the wait ends ...
        stopper = asyncio.create_task(connection.stop())  # ... and the cancel lands in the same step
        done, _ = await asyncio.wait({stopper}, timeout=HANG_GUARD_SECONDS)
        assert done, "stop() waited forever on checks whose cancel was lost"
        assert task.cancelled() and recheck.calls == 1
        assert len(slack.calls("auth.test")) == checks + (1 if LOSES_CANCELS else 0)  # it ran on into one check
