"""`/readyz`, the AI-quota gauges, the 402 breaker and `kbbot check` over every knowledgebase of a KBBOT_CONFIG
file.

Four knowledgebases behind one bot: engineering (its own token), handbook and archive (two tables on the HR
token: one billed quota, one rate budget, one 402 breaker), and maths (MatHub, no AI). The fakes are real
servers on 127.0.0.1; the runtime is the real composition root, and ``/readyz`` and ``/metrics`` are mounted by
the same function ``kbbot run`` uses, served by aiohttp and read with httpx. The exposition text is parsed with
prometheus_client's own parser, as Prometheus would read it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from kbbot.commands.run import mount_runtime_ops
from kbbot.config import Settings
from kbbot.core.ask import QUOTA_NOTICE
from kbbot.core.models import Answer, Asker, Question, Source
from kbbot.knowledgebases import Knowledgebases, parse_knowledgebases
from kbbot.ops.http import HttpServer
from kbbot.runtime import Runtime, open_runtime
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401
from tests.integration.bot_process import running_bot, user_id, wait_until
from tests.integration.cli_support import kbbot_in_process
from tests.integration.quota_support import Clock, probe_due
from tests.scenarios.knowledgebases_support import SLACK_ENG, SLACK_MATHS, Wikis, three_wikis
from tests.scenarios.slack_support import FAST_HTTP_RETRY

SLACK_ARCHIVE = "C0ARCHIVE1"
#: The environment's PERFECTWIKI_AI_QUOTA_MONTHLY: the plan's quota, for tables that do not set their own.
ENV_QUOTA = 40


def config_text(w: Wikis) -> str:
    return f"""
[knowledgebases.engineering]
backend = "perfectwiki"
api_token = "env:PW_ENG_TOKEN"
base_url = "{w.eng.url}"
rate_per_second = 1000
rate_per_minute = 100000
ai_quota_monthly = 100

[knowledgebases.handbook]
backend = "perfectwiki"
api_token = "env:PW_HR_TOKEN"
base_url = "{w.hr.url}"
rate_per_second = 1000
rate_per_minute = 100000

[knowledgebases.archive]
backend = "perfectwiki"
api_token = "env:PW_HR_TOKEN"
base_url = "{w.hr.url}"
page_url_template = "https://archive.wiki.internal/{{id}}"
rate_per_second = 1000
rate_per_minute = 100000

[knowledgebases.maths]
backend = "mathub"
api_key = "env:MATHUB_KEY"
base_url = "{w.maths.url}"
project = "algebraic-topology"

[routes]
default = "handbook"
slack = {{ "{SLACK_ENG}" = "engineering", "{SLACK_ARCHIVE}" = "archive", "{SLACK_MATHS}" = "maths" }}
"""


def four(w: Wikis, base: Settings, tmp: Path) -> Knowledgebases:
    path = tmp / "kbbot.toml"
    path.write_text(config_text(w), encoding="utf-8")
    return parse_knowledgebases(path.read_text(encoding="utf-8"), base, w.environ(), source=path)


@asynccontextmanager
async def ops(
    tmp_path: Path, wikis: Wikis, *, data: str = "data", quota_clock: Callable[[], float] = time.time, **env: Any
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """The bot over the four knowledgebases with its ``/readyz`` and ``/metrics``; ``data``: its KBBOT_DATA_DIR
    under ``tmp_path`` (another one is another replica)."""
    base = Settings(kbbot_data_dir=tmp_path / data, perfectwiki_ai_quota_monthly=ENV_QUOTA, **env)
    kbs = four(wikis, base, tmp_path)
    async with open_runtime(base, knowledgebases=kbs, http_retry=FAST_HTTP_RETRY, quota_clock=quota_clock) as rt:
        app = web.Application()
        mount_runtime_ops(app, rt)
        async with HttpServer(app, "127.0.0.1", 0) as server, httpx.AsyncClient(base_url=server.url) as http:
            yield rt, http


def samples(text: str, name: str) -> dict[str, float]:
    """``kb`` label → value of metric ``name``, parsed as Prometheus parses the exposition."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[sample.labels.get("kb", "")] = sample.value
    return found


async def test_readyz_names_every_knowledgebase_and_caches_each_probe(tmp_path: Path) -> None:
    with three_wikis() as wikis:
        async with ops(tmp_path, wikis) as (_, http):
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json() == {
                "ready": True,
                "checks": {"knowledgebase": "ok"},
                "knowledgebases": {"engineering": "ok", "handbook": "ok", "archive": "ok", "maths": "ok"},
            }
            spent = (wikis.eng.stats().total_requests, wikis.hr.stats().total_requests)
            assert spent == (1, 2)  # one list call per knowledgebase (handbook and archive: two on the HR wiki)
            for _ in range(5):
                assert (await http.get("/readyz")).status_code == 200
            # Cached: frequent probes do not spend the per-token API budget.
            assert (wikis.eng.stats().total_requests, wikis.hr.stats().total_requests) == spent


async def test_one_wiki_down_and_a_401_on_another_token_degrade_but_keep_the_bot_ready(tmp_path: Path) -> None:
    with three_wikis() as wikis:
        wikis.eng.regenerate()  # the engineering token was regenerated in the admin panel: 401 from now on
        wikis.maths.stop()  # the MatHub server is down: connection refused
        async with ops(tmp_path, wikis) as (rt, http):
            ready = await http.get("/readyz")
            # The bot still answers handbook and archive: a 503 would pull it out of the load balancer.
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["ready"] is True
            assert body["checks"]["knowledgebase"] == "degraded: engineering, maths not answering (2 of 4)"
            states = body["knowledgebases"]
            assert states["handbook"] == "ok" and states["archive"] == "ok"
            assert states["engineering"] == (
                "degraded: the API token was rejected (401): regenerate it and update the secret"
            )
            assert states["maths"].startswith("degraded: ") and "MatHub" in states["maths"], states
            # No secret and no library text (URLs, headers) in the body.
            assert all(secret not in ready.text for secret in wikis.environ().values())
            assert "127.0.0.1" not in ready.text and "Traceback" not in ready.text
            # The default keeps answering with AI meanwhile.
            answer = await rt.router.ask(Question("holiday days?", asker=Asker("U1"), platform="slack"))
            assert answer.source is Source.AI


async def test_no_knowledgebase_answering_is_not_ready(tmp_path: Path) -> None:
    with three_wikis() as wikis:
        wikis.eng.stop()
        wikis.hr.regenerate()
        wikis.maths.stop()
        async with ops(tmp_path, wikis) as (_, http):
            ready = await http.get("/readyz")
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert body["ready"] is False and body["checks"]["knowledgebase"] == "no knowledgebase answers"
            # Down, not degraded: each one says why.
            assert body["knowledgebases"]["handbook"] == (
                "the API token was rejected (401): regenerate it and update the secret"
            )
            assert set(body["knowledgebases"]) == {"engineering", "handbook", "archive", "maths"}
            assert not any(state.startswith("degraded") for state in body["knowledgebases"].values())


async def test_quota_gauges_per_knowledgebase_and_one_count_per_token(tmp_path: Path) -> None:
    with three_wikis() as wikis:
        async with ops(tmp_path, wikis) as (rt, http):
            asks = [
                ("how do I set up the VPN?", SLACK_ENG),
                ("holiday days per year?", "C0GENERAL"),  # the default route: handbook
                ("old holiday policy?", SLACK_ARCHIVE),
                ("what is the fundamental group?", SLACK_MATHS),
            ]
            for text, channel in asks:
                question = Question(text, asker=Asker("U1"), platform="slack", places=(channel,))
                await rt.router.ask(question)
            assert wikis.eng.stats().billed_queries == 1 and wikis.hr.stats().billed_queries == 2
            scrape = await http.get("/metrics")
            assert scrape.status_code == 200
            text = scrape.text
    used = samples(text, "kbbot_ai_quota_used_ratio")
    # engineering: its own ai_quota_monthly (1 of 100); handbook and archive: the HR token's one quota of the
    # environment's PERFECTWIKI_AI_QUOTA_MONTHLY, counted over both (2 of 40); maths has no AI: no series.
    assert used == {"engineering": 0.01, "handbook": 2 / ENV_QUOTA, "archive": 2 / ENV_QUOTA}
    runs_out = samples(text, "kbbot_ai_quota_runs_out_timestamp_seconds")
    assert set(runs_out) == {"engineering", "handbook", "archive"}
    assert runs_out["handbook"] == runs_out["archive"]
    # Every knowledgebase's 402 state, labelled.
    assert samples(text, "kbbot_quota_paused") == {"engineering": 0, "handbook": 0, "archive": 0, "maths": 0}
    # ... and each one's outbox (nothing queued here; tests/integration/test_runtime_metrics.py queues some).
    assert samples(text, "kbbot_thread_saves_queued") == {"engineering": 0, "handbook": 0, "archive": 0, "maths": 0}


@pytest.mark.redis
@pytest.mark.parametrize("prefix", [None, "acme"])
async def test_with_redis_one_token_is_one_count_whether_or_not_its_tables_share_a_namespace(
    redis_server: RedisServer, tmp_path: Path, prefix: str | None
) -> None:
    # Without REDIS_PREFIX handbook and archive (one token, one URL) share a namespace, so one count holds
    # both; with it they are acme.handbook and acme.archive, and the forecast adds the two up. Either way: 2.
    with three_wikis() as wikis:
        async with ops(tmp_path, wikis, redis_url=redis_server.url, redis_prefix=prefix) as (rt, http):
            spaces = {rt.stacks[name].stores.namespace for name in ("handbook", "archive")}
            assert len(spaces) == (1 if prefix is None else 2)
            for text, channel in (("holiday days?", "C0GENERAL"), ("old holiday policy?", SLACK_ARCHIVE)):
                await rt.router.ask(Question(text, asker=Asker("U1"), platform="slack", places=(channel,)))
            assert wikis.hr.stats().billed_queries == 2
            used = samples((await http.get("/metrics")).text, "kbbot_ai_quota_used_ratio")
    assert used["handbook"] == used["archive"] == 2 / ENV_QUOTA


def test_check_reports_every_knowledgebase_and_names_each_failure(tmp_path: Path) -> None:
    with three_wikis() as wikis:
        (tmp_path / "kbbot.toml").write_text(config_text(wikis), encoding="utf-8")
        env = {**wikis.environ(), "KBBOT_DATA_DIR": str(tmp_path / "data")}
        assert kbbot_in_process("check", "--json", env=env, cwd=tmp_path).returncode == 0
        wikis.eng.regenerate()
        wikis.maths.stop()
        report = kbbot_in_process("check", "--json", env=env, cwd=tmp_path)
        shown = kbbot_in_process("check", env=env, cwd=tmp_path)
    assert report.returncode == 3, report.stderr  # the first failure's code: a rejected token
    kbs = json.loads(report.stdout)["knowledgebases"]
    assert kbs["handbook"]["name"] == "Handbook" and kbs["archive"]["name"] == "Handbook"
    assert kbs["engineering"]["error"].startswith("knowledgebase engineering: ")
    assert kbs["maths"]["error"].startswith("knowledgebase maths: ")
    [line] = report.stderr.splitlines()
    assert line.startswith("kbbot: knowledgebase engineering: ") and "; knowledgebase maths: " in line
    out = " ".join(shown.stdout.split())
    assert "✓ handbook: Handbook (perfectwiki)" in out and "✓ archive: Handbook (perfectwiki)" in out
    assert "✗ knowledgebase engineering: " in out and "✗ knowledgebase maths: " in out
    assert shown.returncode == 3
    assert all(secret not in report.stdout + report.stderr + shown.stdout for secret in wikis.environ().values())


async def test_kbbot_run_serves_readyz_and_quota_gauges_of_every_knowledgebase(tmp_path: Path) -> None:
    with three_wikis() as wikis:
        wikis.maths.stop()
        (tmp_path / "kbbot.toml").write_text(config_text(wikis), encoding="utf-8")
        env = {
            **wikis.environ(), "KBBOT_CONFIG": str(tmp_path / "kbbot.toml"),
            "PERFECTWIKI_AI_QUOTA_MONTHLY": str(ENV_QUOTA),
        }
        with running_bot(tmp_path, env=env, ai_latency=0) as bot:
            asker = user_id(1)
            bot.add_askers([asker])
            async with httpx.AsyncClient() as http:
                ready = await http.get(bot.base + "/readyz")
                while "connecting to Slack" in ready.text:  # the start-up auth.test runs in the background
                    await asyncio.sleep(0.05)
                    ready = await http.get(bot.base + "/readyz")
                assert await bot.ask(http, asker, "how many holiday days?", "1700000000.000100") == 200
                await wait_until(lambda: len(bot.replies(asker)) >= 1, what="the answer")
                metrics = (await http.get(bot.base + "/metrics")).text
            bot.stop()
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["checks"]["slack"] == "ok"
    assert body["checks"]["knowledgebase"] == "degraded: maths not answering (1 of 4)"
    assert [name for name, state in body["knowledgebases"].items() if state == "ok"] == [
        "engineering", "handbook", "archive",
    ]
    # The DM asked the default (handbook): one billed call on the HR token, shown for both of its tables.
    used = samples(metrics, "kbbot_ai_quota_used_ratio")
    assert used == {"engineering": 0.0, "handbook": 1 / ENV_QUOTA, "archive": 1 / ENV_QUOTA}
    log = bot.log.read_text()
    assert all(secret not in log for secret in wikis.environ().values())


# --- the 402 breaker: one per token ----------------------------------------------------------------------------

#: The stores a test runs on: embedded (memory + SQLite), or one real redis-server where handbook and archive
#: share a namespace (no REDIS_PREFIX: one token, one URL) or each have their own (acme.handbook, acme.archive).
STORES = [
    pytest.param({}, id="memory"),
    pytest.param({"redis_prefix": None}, id="redis", marks=pytest.mark.redis),
    pytest.param({"redis_prefix": "acme"}, id="redis-prefixed", marks=pytest.mark.redis),
]


def _store_env(request: pytest.FixtureRequest, store: dict[str, Any]) -> dict[str, Any]:
    if "redis_prefix" not in store:
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"redis_url": server.url, **store}


_askers = itertools.count(1)


async def ask(rt: Runtime, text: str, channel: str) -> Answer:
    """``text`` asked in Slack ``channel``, each time by another person (one person's AI budget,
    AI_USER_LIMIT 5/minute, is not what these tests are about)."""
    asker = Asker(f"U{next(_askers):08d}")
    return await rt.router.ask(Question(text, asker=asker, platform="slack", places=(channel,)))


async def synced(rt: Runtime) -> Runtime:
    """Every index read (the search fallback answers from them)."""
    for stack in rt.all_stacks:
        await stack.syncer.sync()
    return rt


async def paused(rt: Runtime) -> dict[str, bool]:
    return {name: (await stack.stores.quota.state()).paused for name, stack in rt.stacks.items()}


@pytest.mark.parametrize("store", STORES)
async def test_a_402_on_one_table_pauses_every_table_on_its_token_and_search_answers_both(
    request: pytest.FixtureRequest, tmp_path: Path, store: dict[str, Any]
) -> None:
    env = _store_env(request, store)
    with three_wikis() as wikis:
        async with ops(tmp_path, wikis, **env) as (rt, http):
            await synced(rt)
            if env:
                spaces = {rt.stacks[name].stores.namespace for name in ("handbook", "archive")}
                assert len(spaces) == (2 if env["redis_prefix"] else 1)
            wikis.hr.set_ai_quota(0)  # the HR token's monthly AI quota is gone

            first = await ask(rt, "how many holiday days per year?", "C0GENERAL")  # handbook, the default
            assert (wikis.hr.stats().queries, wikis.hr.stats().quota_exceeded) == (1, 1)
            # archive is on the same token: its question makes no upstream AI call (it could only get a 402).
            second = await ask(rt, "what is the holiday policy?", SLACK_ARCHIVE)
            assert wikis.hr.stats().per_endpoint.get("query", 0) == 1 and wikis.hr.stats().quota_exceeded == 1
            # Both are answered from their own wiki's pages, with the notice saying why.
            for answer, kb in ((first, "handbook"), (second, "archive")):
                assert answer.source is Source.SEARCH and answer.knowledgebase == kb
                assert answer.notice is not None and answer.notice.startswith(QUOTA_NOTICE)
                assert "30 holiday days" in answer.text
                assert "Holiday policy" in [page.title for page in answer.related_pages]
            # The other token's knowledgebase still answers with AI.
            assert (await ask(rt, "how do I set up the VPN?", SLACK_ENG)).source is Source.AI
            assert await paused(rt) == {"engineering": False, "handbook": True, "archive": True, "maths": False}
            scrape = (await http.get("/metrics")).text
            assert samples(scrape, "kbbot_quota_paused") == {
                "engineering": 0, "handbook": 1, "archive": 1, "maths": 0,
            }
            if env:
                # Another replica (same file, its own data dir) sees the token paused too and asks nothing.
                async with ops(tmp_path, wikis, data="replica", **env) as (replica, _):
                    assert (await paused(replica))["archive"] and (await paused(replica))["handbook"]
                    again = await ask(await synced(replica), "holiday policy for new staff?", SLACK_ARCHIVE)
                    assert again.source is Source.SEARCH and "30 holiday days" in again.text
                assert wikis.hr.stats().queries == 1


@pytest.mark.parametrize("store", STORES[:2])
async def test_tables_on_different_tokens_keep_separate_breakers(
    request: pytest.FixtureRequest, tmp_path: Path, store: dict[str, Any]
) -> None:
    env, clock = _store_env(request, store), Clock()
    with three_wikis() as wikis:
        async with ops(tmp_path, wikis, quota_clock=clock, **env) as (rt, _):
            await synced(rt)
            wikis.eng.set_ai_quota(0)  # the engineering token's quota is gone, the HR token's is not
            assert (await ask(rt, "how do I set up the VPN?", SLACK_ENG)).source is Source.SEARCH
            assert await paused(rt) == {"engineering": True, "handbook": False, "archive": False, "maths": False}
            assert (await ask(rt, "how many holiday days?", "C0GENERAL")).source is Source.AI
            assert (await ask(rt, "what is the holiday policy?", SLACK_ARCHIVE)).source is Source.AI
            assert wikis.hr.stats().billed_queries == 2 and wikis.hr.stats().quota_exceeded == 0
            # …and the other way round: the HR token's 402 leaves engineering's breaker as it was.
            wikis.hr.set_ai_quota(2)
            assert (await ask(rt, "who approves holidays?", "C0GENERAL")).source is Source.SEARCH
            assert await paused(rt) == {"engineering": True, "handbook": True, "archive": True, "maths": False}
            # Engineering's quota comes back: its probe resumes engineering only.
            wikis.eng.set_ai_quota(None)
            await probe_due(clock, env.get("redis_url"))
            assert (await ask(rt, "deploy checklist?", SLACK_ENG)).source is Source.AI
            assert await paused(rt) == {"engineering": False, "handbook": True, "archive": True, "maths": False}


@pytest.mark.parametrize("store", STORES)
async def test_the_shared_breaker_probes_once_per_interval_for_every_table_and_resumes_them_all(
    request: pytest.FixtureRequest, tmp_path: Path, store: dict[str, Any]
) -> None:
    # Perfect Wiki's 402 says no time when the quota comes back (its body is one line, no Retry-After): the
    # breaker finds out by one probe per QUOTA_PROBE_SECONDS, and a new month is simply a probe that is answered.
    env, clock = _store_env(request, store), Clock()
    redis_url = env.get("redis_url")
    with three_wikis() as wikis:
        async with ops(tmp_path, wikis, quota_clock=clock, **env) as (rt, _):
            await synced(rt)
            wikis.hr.set_ai_quota(0)
            assert (await ask(rt, "how many holiday days?", "C0GENERAL")).source is Source.SEARCH
            assert wikis.hr.stats().queries == 1
            # Within the interval neither table asks.
            assert (await ask(rt, "what is the holiday policy?", SLACK_ARCHIVE)).source is Source.SEARCH
            assert (await ask(rt, "holidays for part-time staff?", "C0GENERAL")).source is Source.SEARCH
            assert wikis.hr.stats().queries == 1

            # The interval is over, the quota still gone: one probe for the token, whichever table asks first;
            # its 402 starts the next interval for both.
            await probe_due(clock, redis_url)
            assert (await ask(rt, "holiday carry-over rules?", SLACK_ARCHIVE)).source is Source.SEARCH
            assert (await ask(rt, "holiday carry-over for managers?", "C0GENERAL")).source is Source.SEARCH
            assert (wikis.hr.stats().queries, wikis.hr.stats().quota_exceeded) == (2, 2)
            assert (await paused(rt))["handbook"] and (await paused(rt))["archive"]

            # A new month: the quota is back. The next probe (archive's) is answered, and that resumes AI for
            # handbook as well, with no probe of its own.
            wikis.hr.set_ai_quota(None)
            await probe_due(clock, redis_url)
            assert (await ask(rt, "holiday days in the first year?", SLACK_ARCHIVE)).source is Source.AI
            assert await paused(rt) == {"engineering": False, "handbook": False, "archive": False, "maths": False}
            assert (await ask(rt, "holiday days after five years?", "C0GENERAL")).source is Source.AI
            assert (wikis.hr.stats().queries, wikis.hr.stats().billed_queries) == (4, 2)
