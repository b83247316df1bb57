from __future__ import annotations

from benchmarks import bench_index


def test_generators_are_deterministic() -> None:
    first = list(bench_index.generate_pages(3))
    assert first == list(bench_index.generate_pages(3))
    assert len({page_id for page_id, *_ in first}) == 3
    assert bench_index.generate_queries(20) == bench_index.generate_queries(20)


def test_run_reports_every_number_from_a_child_process() -> None:
    result = bench_index.run(pages=150, queries=20)
    for key in (
        "index_seconds",
        "search_p50_ms",
        "search_p95_ms",
        "search_cpu_p95_ms",
        "answer_p95_ms",
        "peak_rss_mb",
        "index_file_mb",
    ):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, key
    assert result["pages"] == 150 and result["queries"] == 20
    assert result["queries_with_results"] > 0
    assert 0 < result["peak_rss_mb"] < 1000
    assert result["search_p50_ms"] <= result["search_p95_ms"] <= result["search_max_ms"]
