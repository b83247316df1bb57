"""/healthz, /readyz and /metrics over real HTTP (aiohttp on 127.0.0.1, httpx as the client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from kbbot.core.models import KbInfo
from kbbot.core.ports import FeedbackCounts, QuotaState
from kbbot.errors import ConfigError, Unauthorized, Unavailable
from kbbot.ops.http import HttpServer, ReadinessCheck, add_ops_routes, feedback_refresher, quota_refresher
from kbbot.ops.metrics import Metrics
from kbbot.store.redis_store import RedisQuotaGate, connect_redis
from tests.fakes.redis_server import RedisServer, _redis_server, _redis_server_session  # noqa: F401

TOKEN = "pw_secret_token_1234567890"


class FakeInfo:
    """Stands in for ``kb.info``: counts calls, can fail or hang on demand."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None
        self.delay = 0.0

    async def __call__(self) -> KbInfo:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return KbInfo(name="Acme wiki", requests_left_second=9, requests_left_minute=59)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Serve = Callable[..., Awaitable[tuple[httpx.AsyncClient, ReadinessCheck]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[HttpServer] = []
    clients: list[httpx.AsyncClient] = []

    async def start(
        readiness: ReadinessCheck, metrics: Metrics | None = None, refreshers: Any = ()
    ) -> tuple[httpx.AsyncClient, ReadinessCheck]:
        app = web.Application()
        add_ops_routes(app, readiness=readiness, metrics=metrics, refreshers=refreshers)
        server = await HttpServer(app, "127.0.0.1", 0).start()
        servers.append(server)
        assert server.port > 0
        client = httpx.AsyncClient(base_url=server.url, timeout=5)
        clients.append(client)
        return client, readiness

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.stop()


async def test_healthz_is_ok_even_when_kb_is_down(serve: Serve) -> None:
    info = FakeInfo()
    info.error = Unavailable("the knowledgebase is unreachable")
    client, _ = await serve(ReadinessCheck(info))
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert info.calls == 0  # liveness never touches the network


async def test_readyz_ok_and_cached_so_probes_do_not_spend_the_budget(serve: Serve) -> None:
    info, clock = FakeInfo(), Clock()
    client, _ = await serve(ReadinessCheck(info, clock=clock, ok_cache_seconds=60, fail_cache_seconds=5))
    for _ in range(20):
        response = await client.get("/readyz")
        assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"knowledgebase": "ok"}}
    assert info.calls == 1
    # Concurrent probes share one upstream call too.
    clock.now += 61
    await asyncio.gather(*(client.get("/readyz") for _ in range(10)))
    assert info.calls == 2


async def test_readyz_of_several_knowledgebases_caches_each_and_degrades_per_knowledgebase(serve: Serve) -> None:
    eng, hr, clock = FakeInfo(), FakeInfo(), Clock()
    eng.delay = hr.delay = 0.05  # concurrent probes overlap with the calls in flight
    readiness = ReadinessCheck({"eng": eng, "hr": hr}, clock=clock, ok_cache_seconds=60, fail_cache_seconds=5)
    client, _ = await serve(readiness)
    await asyncio.gather(*(client.get("/readyz") for _ in range(10)))
    assert (eng.calls, hr.calls) == (1, 1)  # concurrent probes share one call per knowledgebase
    body = (await client.get("/readyz")).json()
    assert body == {"ready": True, "checks": {"knowledgebase": "ok"}, "knowledgebases": {"eng": "ok", "hr": "ok"}}

    eng.error = Unauthorized(f"401 for token {TOKEN}")
    clock.now += 61
    response = await client.get("/readyz")
    assert response.status_code == 200  # hr still answers: degraded, not unready
    assert response.json()["knowledgebases"] == {
        "eng": "degraded: the API token was rejected (401): regenerate it and update the secret", "hr": "ok",
    }
    assert response.json()["checks"]["knowledgebase"] == "degraded: eng not answering (1 of 2)"
    assert TOKEN not in response.text

    # hr's success is still cached; eng's failure is re-checked sooner, and now hr fails too.
    hr.error = Unavailable("Perfect Wiki is unreachable")
    clock.now += 6
    response = await client.get("/readyz")
    assert response.status_code == 200 and (eng.calls, hr.calls) == (3, 2)
    clock.now += 55
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["knowledgebases"] == {
        "eng": "the API token was rejected (401): regenerate it and update the secret",
        "hr": "Perfect Wiki is unreachable",
    }
    eng.error = None
    clock.now += 6
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_bad_token_is_503_with_a_clear_reason_and_no_token(serve: Serve) -> None:
    info, clock = FakeInfo(), Clock()
    info.error = Unauthorized(f"401 for token {TOKEN}")  # even a careless message…
    client, _ = await serve(ReadinessCheck(info, clock=clock, fail_cache_seconds=5))
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and "rejected" in body["checks"]["knowledgebase"]
    assert TOKEN not in response.text  # …never reaches the probe body
    # Failures are re-checked sooner than successes.
    info.error = None
    clock.now += 6
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_timeout_and_library_errors(serve: Serve) -> None:
    info = FakeInfo()
    info.delay = 5
    client, _ = await serve(ReadinessCheck(info, timeout_seconds=0.2, fail_cache_seconds=0))
    response = await client.get("/readyz")
    assert response.status_code == 503 and "did not answer" in response.json()["checks"]["knowledgebase"]
    info.delay = 0
    info.error = httpx.ConnectError(f"cannot connect to https://x/?token={TOKEN}")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["knowledgebase"] == "the knowledgebase is unreachable (ConnectError)"


async def test_readyz_draining_is_503(serve: Serve) -> None:
    draining = False
    client, _ = await serve(ReadinessCheck(FakeInfo(), draining=lambda: draining))
    assert (await client.get("/readyz")).status_code == 200
    draining = True
    response = await client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["shutdown"] == "draining"


@pytest.mark.redis
async def test_readyz_checks_redis(serve: Serve, redis_server: RedisServer) -> None:
    redis = await connect_redis(redis_server.url)
    try:
        client, _ = await serve(ReadinessCheck(FakeInfo(), redis_ping=redis.ping, timeout_seconds=1))
        response = await client.get("/readyz")
        assert response.status_code == 200 and response.json()["checks"]["redis"] == "ok"
    finally:
        await redis.aclose()
    import redis.asyncio as aioredis

    from tests.fakes.redis_server import free_port

    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        client, _ = await serve(ReadinessCheck(FakeInfo(), redis_ping=dead.ping, timeout_seconds=1))
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["redis"].startswith("Redis is unreachable")
    finally:
        await dead.aclose()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_exposition(serve: Serve) -> None:
    metrics = Metrics()
    metrics.question("slack", "ai", 2.5)
    metrics.question("slack", "cache", 0.003)
    metrics.question("discord", "search", 0.2)
    metrics.question("slack", "user text with spaces <script>", 0.1)  # folded into "other"
    metrics.cache(hit=True)
    metrics.cache(hit=False)
    metrics.cache(hit=False)
    metrics.upstream("ai_query", 200, 2.4)
    metrics.upstream("ai_query", 429, 0.1)
    metrics.upstream("pages_get", "timeout", 30)
    metrics.save("created", 1.2)
    metrics.save("queued")
    metrics.quota_paused(True)

    async def state() -> QuotaState:
        return QuotaState(paused=True, next_probe_at=1_900_000_000.0)

    async def counts() -> FeedbackCounts:
        return FeedbackCounts(helpful=7, not_helpful=2)

    client, _ = await serve(ReadinessCheck(FakeInfo()), metrics, [quota_refresher(state), feedback_refresher(counts)])
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    s = _samples(response.text)
    assert s[("kbbot_questions_total", (("platform", "slack"), ("source", "ai")))] == 1
    assert s[("kbbot_questions_total", (("platform", "slack"), ("source", "other")))] == 1
    assert s[("kbbot_questions_total", (("platform", "discord"), ("source", "search")))] == 1
    assert s[("kbbot_cache_hits_total", ())] == 1 and s[("kbbot_cache_misses_total", ())] == 2
    assert s[("kbbot_upstream_requests_total", (("endpoint", "ai_query"), ("status", "429")))] == 1
    assert s[("kbbot_upstream_requests_total", (("endpoint", "pages_get"), ("status", "timeout")))] == 1
    assert s[("kbbot_upstream_rate_limited_total", (("endpoint", "ai_query"),))] == 1
    assert s[("kbbot_quota_paused", ())] == 1
    assert s[("kbbot_quota_next_probe_timestamp_seconds", ())] == 1_900_000_000.0
    assert s[("kbbot_thread_saves_total", (("outcome", "created"),))] == 1
    assert s[("kbbot_feedback_votes", (("verdict", "helpful"),))] == 7
    assert s[("kbbot_question_duration_seconds_count", (("platform", "slack"), ("source", "ai")))] == 1
    assert (
        s[
            (
                "kbbot_question_duration_seconds_bucket",
                (("le", "2.5"), ("platform", "slack"), ("source", "ai")),
            )
        ]
        == 1
    )
    assert s[("kbbot_upstream_request_duration_seconds_sum", (("endpoint", "ai_query"),))] == pytest.approx(2.5)
    assert "<script>" not in response.text


async def test_metrics_refresher_failure_still_serves(serve: Serve) -> None:
    metrics = Metrics()
    metrics.quota_paused(True)

    async def broken() -> QuotaState:
        raise ConnectionError("redis down")

    client, _ = await serve(ReadinessCheck(FakeInfo()), metrics, [quota_refresher(broken)])
    response = await client.get("/metrics")
    assert response.status_code == 200 and "kbbot_quota_paused 1.0" in response.text


@pytest.mark.redis
async def test_metrics_quota_gauge_follows_shared_redis_state(serve: Serve, redis_server: RedisServer) -> None:
    """Replica B's /metrics shows the pause that replica A tripped."""
    a, b = await connect_redis(redis_server.url), await connect_redis(redis_server.url)
    try:
        metrics_b = Metrics()
        client, _ = await serve(
            ReadinessCheck(FakeInfo()),
            metrics_b,
            [quota_refresher(RedisQuotaGate(b, probe_seconds=60).state)],
        )
        assert "kbbot_quota_paused 0.0" in (await client.get("/metrics")).text
        await RedisQuotaGate(a, probe_seconds=60).trip()
        assert "kbbot_quota_paused 1.0" in (await client.get("/metrics")).text
    finally:
        await a.aclose()
        await b.aclose()


async def test_separate_metrics_objects_do_not_collide() -> None:
    one, two = Metrics(), Metrics()
    one.cache(hit=True)
    assert b"kbbot_cache_hits_total 1.0" in one.render()[0]
    assert b"kbbot_cache_hits_total 0.0" in two.render()[0]


async def test_unknown_route_404_and_metrics_absent(serve: Serve) -> None:
    client, _ = await serve(ReadinessCheck(FakeInfo()))
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/metrics")).status_code == 404


async def test_mount_ops_with_embedded_stores(tmp_path: Path) -> None:
    """The one-call wiring over real (memory/SQLite) stores: ready, metrics with feedback and 402 state."""
    from kbbot.config import Settings
    from kbbot.ops.http import mount_ops
    from kbbot.store.factory import build_stores

    metrics = Metrics()
    stores = await build_stores(Settings(kbbot_data_dir=tmp_path))
    info = FakeInfo()

    class Kb:
        async def info(self) -> KbInfo:
            return await info()

    app = web.Application()
    mount_ops(app, kb=Kb(), stores=stores, metrics=metrics)  # type: ignore[arg-type]
    async with HttpServer(app, "127.0.0.1", 0) as server, httpx.AsyncClient(base_url=server.url) as client:
        await stores.feedback.record(platform="slack", question="q", user_id="U1", helpful=False)
        await stores.quota.trip()
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"knowledgebase": "ok"}
        text = (await client.get("/metrics")).text
        assert 'kbbot_feedback_votes{verdict="not_helpful"} 1.0' in text
        assert "kbbot_quota_paused 1.0" in text
    await stores.aclose()


async def test_request_id_middleware_tags_the_handler_and_its_tasks() -> None:
    from kbbot.ops.http import request_id_middleware
    from kbbot.ops.logging import request_id_var

    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request_id_var.get())
        task = asyncio.create_task(asyncio.sleep(0, result=request_id_var.get()))  # like Bolt's listener tasks
        seen.append(await task)
        return web.Response(text="ok")

    app = web.Application(middlewares=[request_id_middleware])
    app.router.add_post("/slack/events", handler)
    async with HttpServer(app, "127.0.0.1", 0) as server, httpx.AsyncClient(base_url=server.url) as client:
        await client.post("/slack/events", headers={"X-Request-Id": "Ev0ABC"})
        await client.post("/slack/events", headers={"X-Request-Id": 'bad id"<script>' + "x" * 200})
        await client.post("/slack/events")
    assert seen[0] == seen[1] == "Ev0ABC"
    assert (
        seen[2] == seen[3] and seen[2] is not None and len(seen[2]) <= 64 and '"' not in seen[2] and " " not in seen[2]
    )
    assert seen[4] == seen[5] and seen[4] not in (None, "Ev0ABC", seen[2])


async def test_port_in_use_is_a_settings_error_naming_the_variables() -> None:
    # `kbbot run` with HTTP_PORT taken by another process used to end in an OSError traceback.
    async with HttpServer(web.Application(), "127.0.0.1", 0) as taken:
        with pytest.raises(ConfigError, match="HTTP_PORT") as info:
            await HttpServer(web.Application(), "127.0.0.1", taken.port).start()
        assert str(taken.port) in str(info.value)
