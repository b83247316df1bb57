"""With several knowledgebases every series of one carries its ``kb`` label; with one, the series stay as they were."""

from __future__ import annotations

from kbbot.core.ports import QuotaState
from kbbot.ops.metrics import Metrics


def test_each_knowledgebase_reports_under_its_own_label() -> None:
    metrics = Metrics(knowledgebases=("handbook", "engineering"))
    eng, hr = metrics.for_kb("engineering"), metrics.for_kb("handbook")
    eng.question("slack", "ai", 1.0)
    hr.question("slack", "search", 0.1)
    eng.cache(True)
    hr.upstream("AI query", 402, 0.2)
    hr.quota_paused(True)
    eng.save("created", 0.3)
    metrics.quota_state(QuotaState(paused=True, next_probe_at=123.0))  # the scrape refresh: the default's
    text = metrics.render()[0].decode()
    assert 'kbbot_questions_total{kb="engineering",platform="slack",source="ai"} 1.0' in text
    assert 'kbbot_questions_total{kb="handbook",platform="slack",source="search"} 1.0' in text
    assert 'kbbot_cache_hits_total{kb="engineering"} 1.0' in text
    assert 'kbbot_upstream_requests_total{endpoint="AI query",kb="handbook",status="402"} 1.0' in text
    assert 'kbbot_quota_paused{kb="handbook"} 1.0' in text
    assert 'kbbot_quota_next_probe_timestamp_seconds{kb="handbook"} 123.0' in text
    assert 'kbbot_thread_saves_total{kb="engineering",outcome="created"} 1.0' in text


def test_one_knowledgebase_keeps_the_label_free_series() -> None:
    metrics = Metrics()
    assert metrics.for_kb("default") is metrics
    metrics.question("cli", "search", 0.1)
    assert 'kbbot_questions_total{platform="cli",source="search"} 1.0' in metrics.render()[0].decode()
