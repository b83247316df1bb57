"""The runtime as `kbbot run` builds it, against the fake Perfect Wiki: every metrics hook is wired."""

from __future__ import annotations

from pathlib import Path

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from kbbot.commands.run import mount_runtime_ops
from kbbot.config import load_settings
from kbbot.core.models import Question, Thread, ThreadMessage
from kbbot.core.threads import SaveRetryPolicy
from kbbot.ops.http import HttpServer
from kbbot.runtime import open_runtime
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.scenarios.slack_support import FAST_HTTP_RETRY


async def test_questions_upstream_calls_and_saves_are_counted(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    fake_pw.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard.</p>"}])
    settings = load_settings(
        _env_file=None,
        perfectwiki_api_token=fake_pw.token,
        perfectwiki_base_url=fake_pw.url,
        kbbot_data_dir=tmp_path / "data",
    )
    async with open_runtime(settings) as rt:
        await rt.ask.ask(Question("how do I set up the vpn?", platform="slack"))
        await rt.ask.ask(Question("How do I set up the VPN", platform="discord"))
        thread = Thread(
            platform="slack",
            key="C1:1700000000.000100",
            messages=(ThreadMessage("Ann", "U1", "2026-11-22T10:00:00+00:00", "How do we rotate keys?"),),
            channel_name="ops",
        )
        assert (await rt.saver.save(thread)).created
        fake_pw.set_ai_quota(0)
        await rt.ask.ask(Question("a new question", platform="slack"))
        text = rt.metrics.render()[0].decode()

    assert 'kbbot_questions_total{platform="slack",source="ai"} 1.0' in text
    assert 'kbbot_questions_total{platform="discord",source="cache"} 1.0' in text
    assert 'kbbot_questions_total{platform="slack",source="search"} 1.0' in text
    assert "kbbot_cache_hits_total 1.0" in text
    assert 'kbbot_upstream_requests_total{endpoint="AI query",status="200"} 1.0' in text
    assert 'kbbot_upstream_requests_total{endpoint="AI query",status="402"} 1.0' in text
    assert 'kbbot_upstream_requests_total{endpoint="create page",status="200"} 1.0' in text
    assert 'kbbot_thread_saves_total{outcome="created"} 1.0' in text
    assert "kbbot_quota_paused 1.0" in text
    assert fake_pw.token not in text


async def test_a_scrape_shows_the_saves_waiting_in_the_outbox(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        perfectwiki_api_token=fake_pw.token,
        perfectwiki_base_url=fake_pw.url,
        kbbot_data_dir=tmp_path / "data",
    )
    # A first retry an hour away: nothing drains the outbox while the test reads the gauge.
    async with open_runtime(settings, http_retry=FAST_HTTP_RETRY, save_retry=SaveRetryPolicy(first_delay=3600)) as rt:
        app = web.Application()
        mount_runtime_ops(app, rt)  # as `kbbot run` mounts /metrics
        async with HttpServer(app, "127.0.0.1", 0) as server, httpx.AsyncClient(base_url=server.url) as http:

            async def queued() -> float:
                scrape = await http.get("/metrics")
                assert scrape.status_code == 200
                [value] = [
                    sample.value
                    for family in text_string_to_metric_families(scrape.text)
                    for sample in family.samples
                    if sample.name == "kbbot_thread_saves_queued"
                ]
                return value

            assert await queued() == 0
            fake_pw.fail_next(10, status=503, endpoint="create")  # the wiki is down for page creation
            for n in (1, 2):
                thread = Thread(
                    platform="slack",
                    key=f"C1:1700000000.00010{n}",
                    messages=(ThreadMessage("Ann", "U1", "2026-11-22T10:00:00+00:00", f"Runbook {n}"),),
                )
                assert (await rt.saver.save(thread)).pending
                assert await queued() == n
