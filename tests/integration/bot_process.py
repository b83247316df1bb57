"""A real `kbbot run` process (Slack HTTP mode) against the fake Perfect Wiki and fake Slack Web API.

Used by the fairness and shutdown tests and by the benchmarks that measure them: questions arrive as signed
Slack DM events over HTTP, answers and notices leave as Web API calls recorded by the fake Slack, so nothing
of the bot is bypassed. Each asker has their own DM channel (``D`` + the user id's tail), so an answer or a
notice is attributed to its asker by channel.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack, SlackSigner, event_envelope, message_event
from tests.integration.cli_support import ROOT

RESTARTING = "restarting"
SLOW_DOWN = "Please slow down"


def user_id(n: int) -> str:
    return f"U{n:08d}"


def dm_of(user: str) -> str:
    return "D" + user[1:]


@dataclass
class Bot:
    proc: subprocess.Popen[bytes]
    log: Path
    base: str
    pw: FakePerfectWiki
    slack: FakeSlack

    @property
    def events_url(self) -> str:
        return f"{self.base}/slack/events"

    def add_askers(self, users: list[str]) -> None:
        for user in users:
            self.slack.add_user(user, user.lower())
            self.slack.add_channel(dm_of(user), "", im_user=user, members=[user])

    async def ask(self, http: httpx.AsyncClient, user: str, text: str, ts: str) -> int:
        """One DM from ``user`` (see :meth:`add_askers`); returns the HTTP status of Slack's delivery (200 =
        acked)."""
        body, headers = SlackSigner(SIGNING_SECRET).event(event_envelope(message_event(dm_of(user), user, text, ts)))
        response = await http.post(self.events_url, content=body, headers=headers)
        return response.status_code

    def replies(self, user: str) -> list[dict[str, Any]]:
        """Everything the bot sent to ``user``: posts in their DM and messages only they see (in posting order)."""
        dm = dm_of(user)
        out = []
        for call in self.slack.calls():
            if call.method not in ("chat.postMessage", "chat.postEphemeral"):
                continue
            channel = str(call.params.get("channel", ""))
            ephemeral_to_user = call.method == "chat.postEphemeral" and call.params.get("user") == user
            if channel in (dm, user) or ephemeral_to_user:
                out.append({"method": call.method, "text": _all_text(call.params), "at": call.at})
        return out

    def reactions_added(self) -> int:
        return len(self.slack.calls("reactions.add"))

    def stop(self) -> float:
        """SIGTERM; returns the seconds until the process exited."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        return time.monotonic() - started


def _all_text(params: Mapping[str, Any]) -> str:
    # The fallback text plus every block's text: a notice sits in the blocks of the answer message.
    return str(params.get("text", "")) + " " + str(params.get("blocks", ""))


@contextmanager
def running_bot(
    tmp_path: Path, *, env: Mapping[str, str] = (), ai_latency: float = 0.2, per_second: int = 10, per_minute: int = 60,  # type: ignore[assignment]
    prepare: Callable[[FakePerfectWiki], object] | None = None,
) -> Iterator[Bot]:
    """Fakes with Perfect Wiki's real limits (10/s, 60/min) and ``ai_latency`` per AI answer, and the bot.

    ``per_second`` raises the token's per-second limit on both sides (an enterprise plan's, set in
    PERFECTWIKI_RATE_PER_SECOND), for tests about the minute's budget that need not wait on the second's.
    ``prepare`` sets the fake wiki up before the bot starts (more pages, held responses)."""
    with FakePerfectWiki(per_second=per_second, per_minute=per_minute) as pw, FakeSlack() as slack:
        pw.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard and import the VPN profile.</p>"}])
        pw.set_latency(ai_latency, endpoint="query")
        if prepare is not None:
            prepare(pw)
        settings = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "PERFECTWIKI_API_TOKEN": pw.token,
            "PERFECTWIKI_BASE_URL": pw.url,
            "PERFECTWIKI_RATE_PER_SECOND": str(per_second),
            "PERFECTWIKI_RATE_PER_MINUTE": str(per_minute),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "INDEX_REFRESH_SECONDS": "0",
            "KBBOT_DATA_DIR": str(tmp_path / "data"),
            **dict(env),
        }
        log_path = tmp_path / "run.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "kbbot", "run"], cwd=tmp_path, env=settings, stderr=log)
        try:
            port = _wait_for_port(proc, log_path)
            yield Bot(proc=proc, log=log_path, base=f"http://127.0.0.1:{port}", pw=pw, slack=slack)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_for_port(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    """The bound port, from the start-up log line (the process prints it once serving)."""
    deadline = time.monotonic() + 60  # only turns a hung start into a failure
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"HTTP on 127\.0\.0\.1:(\d+)", log_path.read_text())
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(log_path.read_text()[-3000:])


async def wait_until(check: Any, *, what: str, timeout: float = 120) -> None:
    """Poll ``check()`` until true; the timeout only turns a hang into a failure, it bounds nothing."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
