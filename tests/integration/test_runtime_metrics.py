"""The runtime as `kbbot run` builds it, against the fake Perfect Wiki: every metrics hook is wired."""

from __future__ import annotations

from pathlib import Path

from kbbot.config import load_settings
from kbbot.core.models import Question, Thread, ThreadMessage
from kbbot.runtime import open_runtime
from tests.fakes.perfectwiki import FakePerfectWiki


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
