"""Redis goes away under a running bot and comes back (issue 15, item 4), with a real redis-server that is
killed and restarted on the same port, and the real startup path (`tests.integration.replica_app`, i.e.
`open_runtime` + `kbbot run`'s `serve`) in its own process:

- while Redis is down, questions are answered (per-process cache, limits, dedupe), a Slack mention is
  answered instead of vanishing after the ack, `/readyz` says degraded (200: the bot still serves, and
  every replica shares the same Redis, so 503 would take the whole bot out of the load balancer), a save
  fails with a clear message instead of being lost, and the outage is logged once;
- after Redis returns, the first burst of questions succeeds although the pool's connections are stale, the
  recovery is logged once, and the shared state is used again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, redis_binary
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack, SlackSigner, event_envelope, mention_event

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
ALICE, GENERAL = "U0ALICE01", "C0GENERAL"
TOPICS = ["vpn setup", "expense reports", "holiday calendar", "deploy pipeline", "oncall rotation", "laptop refresh"]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (it is killed and restarted), not the session's shared one."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server binary not found (apt-get install redis-server; .ci/run installs it)")
    with RedisServer(binary) as server:
        yield server


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_user(ALICE, "alice", real_name="Alice Adams")
        slack.add_channel(GENERAL, "general", members=[ALICE])
        yield slack


@pytest.fixture
def wiki() -> Iterator[FakePerfectWiki]:
    with FakePerfectWiki() as fake:
        fake.seed_pages([{"title": t.title(), "content": f"<p>How {t} works: ask the {t} team.</p>"} for t in TOPICS])
        yield fake


@pytest.fixture
async def bot(
    own_redis: RedisServer, wiki: FakePerfectWiki, fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process, Path]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PERFECTWIKI_API_TOKEN": wiki.token,
        "PERFECTWIKI_BASE_URL": wiki.url,
        "REDIS_URL": own_redis.url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "LOG_FORMAT": "json",
        "INDEX_REFRESH_SECONDS": "0",
        "AI_USER_LIMIT": "off",  # one test asker asks everything
        "KBBOT_DATA_DIR": str(tmp_path / "data"),
    }
    log_path = tmp_path / "bot.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.replica_app",
        env=env, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=log_path.open("wb"),
    )  # fmt: skip
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    assert line.startswith(b"READY "), (line, log_path.read_text()[-2000:])
    yield f"http://127.0.0.1:{int(line.split()[1])}", proc, log_path
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def _ask(http: httpx.AsyncClient, url: str, text: str) -> dict[str, object]:
    response = await http.post(f"{url}/ask", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_redis_outage_and_return(
    bot: tuple[str, asyncio.subprocess.Process, Path],
    own_redis: RedisServer,
    wiki: FakePerfectWiki,
    fake_slack: FakeSlack,
) -> None:
    url, proc, log_path = bot
    async with httpx.AsyncClient(timeout=60) as http:
        ready = await http.get(f"{url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok", ready.text
        # Several connections in the pool: after the restart they are all stale.
        first = await asyncio.gather(*(_ask(http, url, f"how does {t} work") for t in TOPICS[:4]))
        assert {answer["source"] for answer in first} == {"ai"}

        # --- Redis goes away -------------------------------------------------------------------------------
        own_redis.kill()
        down = await _ask(http, url, f"how does {TOPICS[4]} work")
        assert down["source"] == "ai" and down["answer"]
        assert (await _ask(http, url, f"How does {TOPICS[4]} work?"))["source"] == "cache"  # this process's cache

        # A mention is answered, not dropped after the ack.
        signer = SlackSigner(SIGNING_SECRET)
        event = mention_event(GENERAL, ALICE, f"how does {TOPICS[5]} work?", "1700009000.000100")
        body, headers = signer.event(event_envelope(event, event_id="Ev0OUTAGE01"))
        assert (await http.post(f"{url}/slack/events", content=body, headers=headers)).status_code == 200
        (posted,) = await fake_slack.await_for("chat.postMessage", channel=GENERAL)
        assert TOPICS[5] in json.dumps(posted.params).lower()  # the answer names the page

        # A save cannot be queued durably (the outbox is in Redis): the user is told, nothing is half-done.
        root = fake_slack.add_thread(GENERAL, [{"user": ALICE, "text": "Where is the VPN guide?"}])
        event = mention_event(GENERAL, ALICE, "save VPN guide", "1700009100.000200", thread_ts=root)
        body, headers = signer.event(event_envelope(event, event_id="Ev0OUTAGE02"))
        assert (await http.post(f"{url}/slack/events", content=body, headers=headers)).status_code == 200
        (note,) = await fake_slack.await_for("chat.postEphemeral", channel=GENERAL)
        assert "saving is paused" in note.params["text"].lower(), note.params["text"]
        assert wiki.stats().per_endpoint.get("create", 0) == 0

        degraded = await http.get(f"{url}/readyz")
        assert degraded.status_code == 200, degraded.text
        assert degraded.json()["checks"]["redis"].startswith("degraded: Redis is unreachable")
        assert degraded.json()["checks"]["knowledgebase"] == "ok"

        # --- Redis comes back (empty, on the same port) ------------------------------------------------------
        own_redis.restart()
        back = await http.get(f"{url}/readyz")
        assert back.status_code == 200 and back.json()["checks"]["redis"] == "ok", back.text
        wiki.reset_stats()
        burst = await asyncio.gather(*(_ask(http, url, f"what is the {t} policy") for t in TOPICS))
        assert {answer["source"] for answer in burst} == {"ai"} and all(a["answer"] for a in burst)
        assert wiki.stats().queries == len(TOPICS)
        # ...and they went to the shared cache in Redis again.
        client = aioredis.Redis.from_url(own_redis.url)
        try:
            keys = [key.decode() async for key in client.scan_iter(match="kbbot:*{cache}:a:*")]
        finally:
            await client.aclose()
        assert len(keys) == len(TOPICS)

        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    messages = [record["message"] for record in records]
    assert sum("Redis cannot be reached" in m for m in messages) == 1, messages
    assert sum("Redis is reachable again" in m for m in messages) == 1, messages
    assert not [r for r in records if r["level"] == "ERROR"], [r for r in records if r["level"] == "ERROR"]
    assert "Traceback" not in log_path.read_text()
