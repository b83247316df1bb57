from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks import bench_index

ROOT = Path(bench_index.__file__).resolve().parent.parent


def test_generators_are_deterministic() -> None:
    first = list(bench_index.generate_pages(3))
    assert first == list(bench_index.generate_pages(3))
    assert len({page_id for page_id, *_ in first}) == 3
    assert bench_index.generate_queries(20) == bench_index.generate_queries(20)


def test_known_item_queries_name_a_page_with_those_words() -> None:
    pages = list(bench_index.generate_pages(200))
    by_id = {page_id: (title, markdown) for page_id, title, _tags, markdown in pages}
    known = bench_index.known_item_queries(pages, 20)
    assert len(known) == 20
    for question, page_id in known:
        title, markdown = by_id[page_id]
        words = question.split()
        assert len(words) == 3 and all(w in title.casefold() for w in words[:2])
        assert words[2] in markdown.casefold()


def test_peak_rss_is_the_processs_own_not_the_parents() -> None:
    # A parent that holds 200 MB starts the child: ru_maxrss would report the parent's peak (Linux carries it
    # across fork and exec); the child's VmHWM does not.
    code = (
        "import subprocess, sys\n"
        "ballast = b'x' * (200 * 1024 * 1024)\n"
        "out = subprocess.run([sys.executable, '-c', 'from benchmarks.bench_index import peak_rss_mb; "
        "print(peak_rss_mb())'], capture_output=True, text=True, check=True)\n"
        "print(out.stdout)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert 0 < float(out.stdout.strip()) < 150


def test_run_reports_every_number_from_a_child_process_per_engine() -> None:
    result = bench_index.run(sizes=(150,), queries=20, engines=("kbbot", "kbbot-tantivy"))
    row = result["sizes"]["150"]
    assert set(row["ok"]) == {"kbbot", "kbbot-tantivy"}
    assert row["engines"]["kbbot-tantivy"]["queries_with_results"] > 0
    ours = row["engines"]["kbbot"]
    for key in (
        "build_seconds",
        "search_p50_ms",
        "search_p95_ms",
        "search_cpu_p95_ms",
        "answer_p95_ms",
        "peak_rss_mb",
        "index_file_mb",
        "recall_at_5",
        "mrr_at_10",
    ):
        assert isinstance(ours[key], (int, float)) and ours[key] >= 0, key
    assert ours["pages"] == 150 and ours["queries"] == 20 and ours["engine"] == "kbbot"
    assert ours["queries_with_results"] > 0
    assert 0 < ours["peak_rss_mb"] < 1000
    assert ours["search_p50_ms"] <= ours["search_p95_ms"] <= ours["search_max_ms"]
    assert 0 < ours["recall_at_5"] <= 1 and ours["known_item_queries"] > 0
