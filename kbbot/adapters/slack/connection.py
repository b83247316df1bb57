"""Is Slack talking to us? Start-up checks of both tokens, the Socket Mode connection, and the state /readyz shows.

Runs in the background so the process serves ``/healthz`` and answers SIGTERM from its first second:

- ``auth.test`` with the bot token at start and every ``recheck_seconds``; ``apps.connections.open`` with the app
  token (Socket Mode), then the websocket.
- A token Slack *rejects* (``invalid_auth``, ``not_allowed_token_type``, ``token_revoked``, …) ends the run with
  :class:`~kbbot.errors.Unauthorized`, one line naming the setting (the CLI exits 3). Retrying cannot help.
- Slack *unreachable* (connection errors, timeouts, 5xx, ``ratelimited``) is retried with exponential backoff and
  jitter (tenacity), one log line per attempt; meanwhile :meth:`SlackConnection.problem` says why ``/readyz`` is
  not ready.
- slack_sdk reconnects a dropped websocket by itself and logs each failed try with a traceback; its logger here
  turns those into single lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from kbbot.adapters.slack.errors import error_code
from kbbot.core.tasks import cancel_and_wait, raise_if_cancelled
from kbbot.errors import Unauthorized

log = logging.getLogger(__name__)

#: Where to get each token again, for the one line that says it was rejected.
_WHERE = {
    "SLACK_BOT_TOKEN": "Slack app → OAuth & Permissions → Bot User OAuth Token (xoxb-…)",
    "SLACK_APP_TOKEN": "Slack app → Basic Information → App-Level Tokens, with connections:write (xapp-…)",
}


class Unreachable(Exception):
    """Slack did not answer (network, timeout, 5xx, rate limit): worth another try."""


class OneLineFilter(logging.Filter):
    """slack_sdk's Socket Mode client logs every failed (re)connect with ``logger.exception``: keep the words
    and the exception's type, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def socket_logger() -> logging.Logger:
    logger = logging.getLogger("kbbot.slack.socket")
    if not any(isinstance(f, OneLineFilter) for f in logger.filters):
        logger.addFilter(OneLineFilter())
    return logger


async def call(method: Callable[..., Awaitable[Any]], setting: str, **kwargs: Any) -> Any:
    """One Web API call; Slack's "no" becomes Unauthorized naming ``setting``, silence becomes Unreachable."""
    try:
        return await method(**kwargs)
    except SlackApiError as exc:
        status = getattr(exc.response, "status_code", 200)
        code = error_code(exc)
        if status >= 500 or code in ("ratelimited", "internal_error", "fatal_error", "service_unavailable"):
            raise Unreachable(f"HTTP {status} {code}") from None
        raise Unauthorized(f"{setting} was rejected by Slack ({code}); get it again: {_WHERE[setting]}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise Unreachable(type(exc).__name__) from None


class SlackConnection:
    """The background checks (see the module docstring). ``connect(url)`` opens the Socket Mode websocket at the
    URL ``apps.connections.open`` gave (None in HTTP mode); ``is_connected`` tells whether it is open now."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        app_token: str | None = None,
        connect: Callable[[str], Awaitable[Any]] | None = None,
        is_connected: Callable[[], bool] = lambda: True,
        recheck_seconds: float = 300.0,
        max_backoff_seconds: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._app_token = app_token
        self._connect = connect
        self._is_connected = is_connected
        self._recheck = recheck_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self._problem: str | None = "connecting to Slack"
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.bot_user_id: str | None = None

    def start(self) -> asyncio.Task[None]:
        """Run the checks in the background; the task ends with Unauthorized when a token is rejected."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="slack-connection")
        return self._task

    async def stop(self) -> None:
        """Cancel the checks (also mid-connect). A failure they ended with stays on the task for the caller."""
        # Again and again if need be: a cancel landing as an HTTP call completes can be lost (see cancel_and_wait).
        with contextlib.suppress(Exception):  # raising it also marks the failure as seen
            await cancel_and_wait(self._task)

    async def wait_ready(self) -> None:
        """Until the start-up checks passed (and Socket Mode connected) for the first time."""
        await self._ready.wait()

    def problem(self) -> str | None:
        """Why Slack is not ready (None when it is): for ``/readyz``. Never calls the network."""
        if self._problem is None and not self._is_connected():
            return "the Socket Mode connection is down; slack_sdk is reconnecting"
        return self._problem

    async def _run(self) -> None:
        auth = await self._retrying(lambda: call(self._client.auth_test, "SLACK_BOT_TOKEN"))
        self.bot_user_id = str(auth.get("user_id") or "") or None
        if self._connect is not None:
            assert self._app_token is not None
            opened = await self._retrying(
                lambda: call(self._client.apps_connections_open, "SLACK_APP_TOKEN", app_token=self._app_token)
            )
            await self._connect(str(opened["url"]))
            log.info("Slack: Socket Mode connected")
        self._problem = None
        self._ready.set()
        while True:
            raise_if_cancelled()  # a stop whose cancel was lost mid-check ends here, not after another recheck
            await self._sleep(self._recheck)
            try:
                await call(self._client.auth_test, "SLACK_BOT_TOKEN")
            except Unreachable as exc:
                self._problem = f"cannot reach Slack ({exc})"
                log.warning("Slack: auth.test failed: cannot reach Slack (%s)", exc)
            except Unauthorized as exc:
                # Revoked while running: not ready (the load balancer sends traffic elsewhere), and said loudly.
                self._problem = str(exc)
                log.error("%s", exc)
            else:
                self._problem = None

    async def _retrying(self, attempt_once: Callable[[], Awaitable[Any]]) -> Any:
        def waiting(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            self._problem = f"cannot reach Slack ({error})"
            log.warning("Slack: cannot reach Slack (%s); attempt %d, next in %.0f s", error, state.attempt_number,
                        delay)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Unreachable),
            wait=wait_exponential_jitter(initial=1, max=self._max_backoff),
            before_sleep=waiting,
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                return await attempt_once()
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises
