"""SIGTERM while a real `kbbot run` (Redis shared state, as replicas run) is in the middle of its first background
index sync: the sync is stopped at once, as the first shutdown step, and the process exits 0.

A CI run of the two-replica test once hung here: the sync's cancel was lost in a Redis command (Python 3.11's
``asyncio.wait_for``, see tests/unit/core/test_tasks.py), the sync went on fetching after "stopped in …" and then
slept until its next run while the shutdown waited. That exact moment is reproduced in-process by
tests/unit/test_search_sync.py::test_refresher_stop_ends_a_sync_whose_cancel_was_lost; this test holds the
wiki's page responses so SIGTERM lands mid-sync, and checks the whole process: the sync is stopped once, by the
shutdown (within its grace, before "stopped in …"), and the exit code is 0.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.integration.bot_process import running_bot

pytestmark = pytest.mark.redis

PAGES = 30


def _slow_wiki(pw: FakePerfectWiki) -> None:
    """Enough pages that the first sync is far from done, and every page response held: it waits mid-sync."""
    pw.seed_pages([{"title": f"Topic {n}", "content": f"<p>How topic {n} works.</p>"} for n in range(PAGES)])
    pw.hold("get")


async def test_sigterm_mid_sync_stops_the_sync_first_and_exits(redis_server: RedisServer, tmp_path: Path) -> None:
    env = {"INDEX_REFRESH_SECONDS": "900", "REDIS_URL": redis_server.url}
    with running_bot(tmp_path, env=env, prepare=_slow_wiki) as bot:
        await bot.pw.held(1, timeout=60)  # the first background sync waits for a page
        bot.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(bot.proc.wait, 120)  # only turns a hang into a failure
        log = bot.log.read_text()
        assert code == 0, log[-3000:]

    shutdown = log[log.index("stopping (SIGTERM)") : log.index("stopped in ")]
    assert "background index sync stopped mid-run" in shutdown  # by the shutdown itself, not after it
    assert log.count("background index sync stopped mid-run") == 1  # stopped once
    assert "index sync: " not in log  # the run was not finished after the stop
    assert "shutdown step" not in log  # every step (the sync's stop too) succeeded
