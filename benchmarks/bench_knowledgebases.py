"""Cost of scale (issue 19 item 5): ten knowledgebases start in ≤ 2 s and cost ≤ 1.5× the memory of one plus
their indexes.

Each figure comes from its own fresh child process (``python -m benchmarks.bench_knowledgebases child …``): it
writes a KBBOT_CONFIG file of N Perfect Wiki knowledgebases (own tokens, own base URLs; opening the runtime
makes no network call), opens the real composition root (``open_runtime``: per knowledgebase its client's
limiter, cache, quota breaker, index, saved-thread map, outbox and router entry) and reports

- the wall time of the whole start (interpreter start to runtime open), of ``open_runtime`` alone, and the
  CPU time of the start (which a busy machine does not inflate; the load average is reported with it);
- the resident set (``VmRSS``) once open, and after one search in every index (so the indexes are paged in).

Runs are made with empty indexes and with indexes of ``PAGES`` pages each, built beforehand in another child.
The memory goal is ``RSS(10) ≤ 1.5 × RSS(1) + 9 × index(1)``, with ``index(1) = RSS(1, indexed) − RSS(1, empty)``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COUNT = 10
PAGES = 500
GOAL_START_S = 2.0
GOAL_MEMORY_RATIO = 1.5


def _config(count: int) -> str:
    tables = []
    for n in range(count):
        tables.append(
            f'[knowledgebases.kb{n}]\nbackend = "perfectwiki"\napi_token = "env:PW_TOKEN_{n}"\n'
            f'base_url = "http://127.0.0.1:9/kb{n}/api"\npage_url_template = "https://kb{n}.example.org/{{id}}"\n'
        )
    routes = ", ".join(f'"C0CHAN{n:04d}" = "kb{n}"' for n in range(count))
    return "\n".join(tables) + f'\n[routes]\ndefault = "kb0"\nslack = {{ {routes} }}\n'


def _env(tmp: Path, count: int) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "KBBOT_DATA_DIR": str(tmp / "data"),
        "KBBOT_CONFIG": str(tmp / "kbbot.toml"),
    }
    env.update({f"PW_TOKEN_{n}": f"pw-bench-token-{n:04d}" for n in range(count)})
    return env


def _child(mode: str, tmp: Path, count: int) -> dict[str, Any]:
    (tmp / "kbbot.toml").write_text(_config(count), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_knowledgebases", "child", mode, str(count), str(time.time())],
        cwd=tmp, env=_env(tmp, count), capture_output=True, text=True, check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for indexed in (False, True):
        for count in (1, COUNT):
            with tempfile.TemporaryDirectory(prefix="kbbot-bench-kbs-") as raw:
                tmp = Path(raw)
                if indexed:
                    _child("build", tmp, count)
                figures[f"{count}_{'indexed' if indexed else 'empty'}"] = _child("measure", tmp, count)
    one, ten = figures["1_empty"], figures[f"{COUNT}_empty"]
    one_indexed, ten_indexed = figures["1_indexed"], figures[f"{COUNT}_indexed"]
    index_mb = max(0.0, one_indexed["rss_searched_mb"] - one["rss_searched_mb"])
    allowed = GOAL_MEMORY_RATIO * one_indexed["rss_searched_mb"] + (COUNT - 1) * index_mb
    return {
        # Wall times on a shared machine grow with its load; the CPU time of the start does not.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "count": COUNT,
        "pages_per_index": PAGES,
        "runs": figures,
        # A first start creates every knowledgebase's databases; a restart opens them.
        "first_start_seconds": ten["start_seconds"],
        "start_seconds": ten_indexed["start_seconds"],
        "open_runtime_seconds": ten_indexed["open_seconds"],
        "start_cpu_seconds": ten_indexed["start_cpu_seconds"],
        "one_start_seconds": one_indexed["start_seconds"],
        "rss_one_mb": one_indexed["rss_searched_mb"],
        "rss_ten_mb": ten_indexed["rss_searched_mb"],
        "index_mb": round(index_mb, 1),
        "allowed_mb": round(allowed, 1),
        "memory_ratio_empty": round(ten["rss_searched_mb"] / one["rss_searched_mb"], 3),
        "memory_ok": ten_indexed["rss_searched_mb"] <= allowed,
        "start_ok": max(ten["start_seconds"], ten_indexed["start_seconds"]) <= GOAL_START_S,
    }


# --- the child ------------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _measure(count: int, launched: float) -> dict[str, Any]:
    from kbbot.config import load_settings
    from kbbot.knowledgebases import load_knowledgebases
    from kbbot.runtime import open_runtime

    settings = load_settings()
    kbs = load_knowledgebases(settings, os.environ)
    started = time.perf_counter()
    async with open_runtime(settings, knowledgebases=kbs) as rt:
        opened = time.perf_counter()
        start_seconds = time.time() - launched
        usage = resource.getrusage(resource.RUSAGE_SELF)  # CPU: what the start costs whatever the machine's load
        rss_open = _rss_mb()
        assert len(rt.stacks) == count
        for stack in rt.all_stacks:
            await stack.index.search("deploy checklist rollback", limit=5)
        rss_searched = _rss_mb()
    return {
        "start_seconds": round(start_seconds, 3),
        "open_seconds": round(opened - started, 3),
        "start_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "rss_open_mb": round(rss_open, 1),
        "rss_searched_mb": round(rss_searched, 1),
    }


async def _build(count: int) -> dict[str, Any]:
    """Fill every knowledgebase's index with PAGES pages of varied words, as a sync would."""
    from kbbot.config import load_settings
    from kbbot.knowledgebases import load_knowledgebases
    from kbbot.search.index import IndexedPage, SearchIndex, index_path

    settings = load_settings()
    kbs = load_knowledgebases(settings, os.environ)
    words = [f"{stem}{n}" for stem in ("deploy", "vpn", "holiday", "invoice", "rollback", "cache") for n in range(60)]
    for k, kb_settings in enumerate(kbs.settings.values()):
        kb_settings.kbbot_data_dir.mkdir(parents=True, exist_ok=True)
        index = await SearchIndex(index_path(kb_settings.kbbot_data_dir, "perfectwiki")).open()
        pages = [
            IndexedPage(
                id=f"kb{k}-p{p}",
                title=f"Page {p} about {words[p % len(words)]}",
                text=" ".join(words[(p * 7 + i) % len(words)] for i in range(400)),
                url=f"https://kb{k}.example.org/kb{k}-p{p}",
            )
            for p in range(PAGES)
        ]
        await index.upsert_many(pages)
        await index.aclose()
    return {"built": count}


def _main(argv: list[str]) -> None:
    mode, count, launched = argv[0], int(argv[1]), float(argv[2])
    result = asyncio.run(_build(count) if mode == "build" else _measure(count, launched))
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _main(sys.argv[2:])
    else:
        print(json.dumps(run(), indent=2))
