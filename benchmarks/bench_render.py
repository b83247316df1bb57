"""Render a 2,000-message thread to HTML (Perfect Wiki) and Markdown (MatHub/local); goal ≤ 100 ms each.

Run: ``python -m benchmarks.bench_render``. The thread mixes what chat threads contain: mostly plain sentences,
some inline Markdown (bold, links, inline code), some code blocks, lists and quotes.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.core.page_render import PageRenderer

_SAMPLES = (
    "Has anyone seen the deploy fail on staging this morning? It looks like the migration step timed out.",
    "Yes, same here. I think the database was under load from the nightly export job.",
    "Try running it again after 10, the export should be done by then.",
    "It worked, thanks! I'll write that down so the next person knows.",
    "Here is the command: `kubectl rollout restart deploy/api` and then check **the logs** in [Grafana](https://grafana.example.com/d/abc).",
    "```\n$ make migrate\nERROR: lock timeout after 30s\n```",
    "- check the export job\n- rerun the migration\n- ping @here if it fails again",
    "> the migration step timed out\nThat's the lock from the export job.",
)


def make_thread(count: int) -> Thread:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    people = ["Ada Lovelace", "Grace Hopper", "Linus", "Margaret Hamilton", "Ken"]
    messages = tuple(
        ThreadMessage(
            author_name=people[i % len(people)],
            author_id=f"U{i % len(people)}",
            timestamp=(start + timedelta(seconds=37 * i)).isoformat(),
            text=_SAMPLES[i % 4] if i % 3 else _SAMPLES[4 + (i // 3) % 4],
            attachments=(Attachment("log.txt", f"https://files.example.com/{i}/log.txt"),) if i % 50 == 0 else (),
            edited=i % 17 == 0,
            deleted=i % 101 == 0,
        )
        for i in range(count)
    )
    return Thread("slack", "C1:1736067600.000100", messages, "https://example.slack.com/archives/C1/p1", "ops")


def _best_ms(renderer: PageRenderer, thread: Thread, rounds: int) -> tuple[float, float, int]:
    """Best wall-clock and CPU milliseconds over ``rounds`` (CPU time is steadier on a busy machine)."""
    best_wall = best_cpu = float("inf")
    size = 0
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        parts = renderer.render(thread, "Deploy failed on staging")
        best_wall = min(best_wall, (time.perf_counter() - wall) * 1000)
        best_cpu = min(best_cpu, (time.process_time() - cpu) * 1000)
        size = sum(len(part.content) for part in parts)
    return best_wall, best_cpu, size


def run(messages: int = 2000, rounds: int = 5) -> dict[str, float | int]:
    thread = make_thread(messages)
    html_ms, html_cpu, html_chars = _best_ms(PageRenderer("html", max_chars=2_000_000), thread, rounds)
    md_ms, md_cpu, md_chars = _best_ms(PageRenderer("markdown", max_chars=2_000_000), thread, rounds)
    return {
        "messages": messages,
        "html_ms": round(html_ms, 1),
        "html_cpu_ms": round(html_cpu, 1),
        "html_chars": html_chars,
        "markdown_ms": round(md_ms, 1),
        "markdown_cpu_ms": round(md_cpu, 1),
        "markdown_chars": md_chars,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
