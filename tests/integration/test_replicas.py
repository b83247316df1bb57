"""Two bot processes sharing one real redis-server behave like one bot against the fake Perfect Wiki.

- 200 questions (with duplicates, in varied spellings) split across both → upstream AI calls = distinct
  questions, and zero 429s although both replicas ask at full speed (one rate budget in Redis);
- the same Slack event delivered to both (and redelivered) → one answer: the real Slack adapter in HTTP mode,
  signed Events API requests, answers posted to the fake Slack Web API, dedupe through Redis;
- a 402 seen by one → the other stops asking too, and its /metrics shows the pause;
- /readyz and /metrics answer on both; every log line (JSON) of the whole run is free of every secret;
- SIGTERM → both exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.discord_api import FakeDiscord
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack, SlackSigner, event_envelope, mention_event

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
ALICE, GENERAL = "U0ALICE01", "C0GENERAL"
DISCORD_TOKEN = "MTExMTExMTExMTExMTExMTExMQ.AbCdEf.ReplicaTestDiscordSecret0123456789"
TOPICS = [
    "vpn setup", "expense reports", "holiday calendar", "deploy pipeline", "oncall rotation",
    "laptop refresh", "security training", "parental leave", "wifi password", "travel booking",
    "code review", "incident postmortem", "staging database", "feature flags", "release notes",
    "office parking", "coffee machine", "badge access", "printer setup", "team offsite",
    "budget approval", "hiring process", "interview loop", "onboarding buddy", "git branching",
    "docker images", "kubernetes access", "log retention", "backup policy", "password manager",
]  # fmt: skip


@dataclass
class Replica:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    stderr_path: Path


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_user(ALICE, "alice", real_name="Alice Adams")
        slack.add_channel(GENERAL, "general", members=[ALICE])
        yield slack


@pytest.fixture
def fake_pw() -> Iterator[FakePerfectWiki]:
    # A token of 30 a second and 120 a minute (the rules of the default 10/60, scaled up: PERFECTWIKI_RATE_*
    # below), so the 30 distinct questions and both index syncs are not held to 6 a second.
    with FakePerfectWiki(per_second=30, per_minute=120) as fake:
        fake.seed_pages([{"title": t.title(), "content": f"<p>How {t} works: ask the {t} team.</p>"} for t in TOPICS])
        yield fake


async def _start(name: str, env: dict[str, str], tmp_path: Path) -> Replica:
    stderr_path = tmp_path / f"{name}.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.replica_app",
        env=env, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=stderr_path.open("wb"),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    except TimeoutError:
        proc.kill()
        raise
    assert line.startswith(b"READY "), (line, stderr_path.read_text()[-2000:])
    port = int(line.split()[1])
    return Replica(name, proc, f"http://127.0.0.1:{port}", stderr_path)


@pytest.fixture
def fake_discord() -> Iterator[FakeDiscord]:
    """Both replicas run the real Discord adapter too (as `kbbot run` does); it must only ever talk to loopback."""
    with FakeDiscord() as fake:
        fake.token = DISCORD_TOKEN
        yield fake


@pytest.fixture
async def replicas(
    redis_server: RedisServer,
    fake_pw: FakePerfectWiki,
    fake_slack: FakeSlack,
    fake_discord: FakeDiscord,
    tmp_path: Path,
) -> AsyncIterator[tuple[Replica, Replica]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PERFECTWIKI_API_TOKEN": fake_pw.token,
        "PERFECTWIKI_BASE_URL": fake_pw.url,
        "REDIS_URL": redis_server.url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_URL": fake_discord.api_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "LOG_FORMAT": "json",
        # Every question here comes from one asker; the per-person AI budget is not what this test is about.
        "AI_USER_LIMIT": "off",
        "LOG_LEVEL": "DEBUG",
        # 20/s minus one slot of headroom = 19/s for the whole bot. Unshared, two replicas would send 38/s into
        # the fake's 30/s and draw 429s on the first burst; shared, there is room for scheduling jitter when
        # the machine is busy (a request granted at a window edge may arrive late).
        "PERFECTWIKI_RATE_PER_SECOND": "20",
        "PERFECTWIKI_RATE_PER_MINUTE": "120",
        "QUOTA_PROBE_SECONDS": "3600",
        "REQUEST_TIMEOUT_SECONDS": "10",
        "KBBOT_DATA_DIR": str(tmp_path / "data"),
    }
    started = await asyncio.gather(_start("a", env, tmp_path), _start("b", env, tmp_path))
    yield started[0], started[1]
    for replica in started:
        if replica.proc.returncode is None:
            replica.proc.kill()
            await replica.proc.wait()


def _spellings(topic: str) -> list[str]:
    """Different texts that normalize to the same question (case, spacing, trailing ?/punctuation)."""
    base = f"how does {topic} work"
    return [base, base.upper() + "?", f"  How   does {topic} work?? ", f"How does {topic} work!"]


async def test_two_replicas_behave_like_one_bot(
    replicas: tuple[Replica, Replica], fake_pw: FakePerfectWiki, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    a, b = replicas
    rng = random.Random(8)
    questions = [rng.choice(_spellings(topic)) for topic in TOPICS for _ in range(200 // len(TOPICS))]
    questions += [rng.choice(_spellings(rng.choice(TOPICS))) for _ in range(200 - len(questions))]
    rng.shuffle(questions)
    assert len(questions) == 200

    # Both replicas' start-up index syncs may take their half of the token's minute (background share), so the
    # last few of the 30 distinct questions could wait for the next minute window: an answer may take ~60 s.
    async with httpx.AsyncClient(timeout=180) as http:
        # Both replicas ready: the wiki answers (token valid), Redis answers, Slack accepted the bot token.
        for replica in (a, b):
            ready = await http.get(f"{replica.url}/readyz")
            while "connecting to Slack" in ready.text:  # the start-up auth.test runs in the background
                await asyncio.sleep(0.05)
                ready = await http.get(f"{replica.url}/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"knowledgebase": "ok", "redis": "ok", "slack": "ok"}
        fake_pw.reset_stats()

        # --- 200 questions split across both, all at once --------------------------------------------------
        async def ask(i: int, text: str) -> dict[str, object]:
            replica = (a, b)[i % 2]
            response = await http.post(f"{replica.url}/ask", json={"text": text})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        answers = await asyncio.gather(*(ask(i, q) for i, q in enumerate(questions)))
        stats = fake_pw.stats()
        assert stats.queries == len(TOPICS)  # upstream AI calls = distinct questions
        assert stats.rate_limited == 0 and 429 not in stats.statuses()
        assert all(answer["answer"] for answer in answers)
        assert {answer["source"] for answer in answers} <= {"ai", "cache"}
        # Every spelling of a topic got the same answer text, whichever replica answered.
        by_topic: dict[str, set[str]] = {}
        for question, answer in zip(questions, answers, strict=True):
            topic = next(t for t in TOPICS if t in question.lower())
            by_topic.setdefault(topic, set()).add(str(answer["answer"]))
        assert all(len(texts) == 1 for texts in by_topic.values())

        # Later, on either replica, every one of them comes from the shared cache.
        again = await asyncio.gather(*(ask(i, _spellings(t)[i % 4]) for i, t in enumerate(TOPICS * 2)))
        assert {answer["source"] for answer in again} == {"cache"}
        assert fake_pw.stats().queries == len(TOPICS)
        hits = [
            float(line.split()[-1])
            for r in (a, b)
            for line in (await http.get(f"{r.url}/metrics")).text.splitlines()
            if line.startswith("kbbot_cache_hits_total")
        ]
        assert sum(hits) >= 2 * len(TOPICS)

        # --- the same Slack event delivered to both replicas, and redelivered (X-Slack-Retry-Num) ----------
        signer = SlackSigner(SIGNING_SECRET)
        event = mention_event(GENERAL, ALICE, "how does vpn setup work?", "1700009000.000100")
        envelope = event_envelope(event, event_id="Ev0REPLICA01")
        deliveries = []
        for n, replica in enumerate((a, b, a, b, b, a)):
            body, headers = signer.event(envelope, retry_num=n or None)
            deliveries.append(http.post(f"{replica.url}/slack/events", content=body, headers=headers))
        acks = await asyncio.gather(*deliveries)
        assert [ack.status_code for ack in acks] == [200] * 6  # every delivery is acked (Slack stops retrying)
        (posted,) = await fake_slack.await_for("chat.postMessage", channel=GENERAL)
        assert posted.params.get("thread_ts") == "1700009000.000100"

        # --- a 402 seen by one replica pauses the other --------------------------------------------------
        fake_pw.set_ai_quota(fake_pw.stats().billed_queries)  # the monthly quota is used up from now on
        before = fake_pw.stats().queries
        first = (await http.post(f"{a.url}/ask", json={"text": "what is the meaning of a new question"})).json()
        assert first["source"] == "search" and "paused" in str(first["notice"])
        assert fake_pw.stats().queries == before + 1 and fake_pw.stats().quota_exceeded == 1
        for text in ("another brand new question", "and one more new one", "what about yet another"):
            other = (await http.post(f"{b.url}/ask", json={"text": text})).json()
            assert other["source"] == "search" and "paused" in str(other["notice"])
        assert fake_pw.stats().queries == before + 1  # replica B never asked the AI
        metrics_b = (await http.get(f"{b.url}/metrics")).text
        assert "kbbot_quota_paused 1.0" in metrics_b
        assert 'kbbot_questions_total{platform="cli",source="search"} 3.0' in metrics_b

    # --- SIGTERM: both drain and exit cleanly ----------------------------------------------------------
    for replica in (a, b):
        replica.proc.send_signal(signal.SIGTERM)
    codes = await asyncio.wait_for(asyncio.gather(a.proc.wait(), b.proc.wait()), timeout=30)
    assert codes == [0, 0]

    # Both drained: still exactly one answer in the channel for the six deliveries.
    assert len(fake_slack.calls("chat.postMessage")) == 1

    # --- no secret in any log line of the whole run ----------------------------------------------------
    secrets = [fake_pw.token, BOT_TOKEN, SIGNING_SECRET, DISCORD_TOKEN]
    lines = [line for r in (a, b) for line in r.stderr_path.read_text().splitlines() if line.strip()]
    assert len(lines) > 200
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message", "request_id"} <= record.keys()
        for secret in secrets:
            assert secret not in line
    assert any("[REDACTED]" in line for line in lines)  # the careless debug line was scrubbed, not lost
    answered = [json.loads(line) for line in lines if '"answered"' in line]
    assert {record["platform"] for record in answered} == {"cli", "slack"}
    assert all(record["request_id"] for record in answered)  # Slack's too: set per HTTP request, inherited
