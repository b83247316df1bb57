"""Secret masking and Slack export reading: the two costs every import (and masking, every save) pays.

- mask: :func:`kbbot.core.secrets.mask_thread` on bench_render's 2,000-message thread (a few planted tokens);
  goal ≤ 0.25 ms CPU a message (a thread over 200 messages is masked in a worker thread, off the event loop);
- read: :func:`kbbot.formats.slack_export.read_slack_export` on a generated export zip (channels × days of
  threaded day files, users.json, a bot post with attachments in every file); goal ≥ 5,000 messages a second.

Run: ``python -m benchmarks.bench_import``.
"""

from __future__ import annotations

import json
import tempfile
import time
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.bench_render import make_thread
from kbbot.core.secrets import mask_thread
from kbbot.formats.slack_export import read_slack_export

GOAL_MASK_MS_PER_MESSAGE = 0.25
GOAL_READ_MESSAGES_PER_SECOND = 5_000


def _mask_ms(messages: int, rounds: int) -> tuple[float, int]:
    thread = make_thread(messages)
    planted = list(thread.messages)
    for i in range(0, messages, 100):  # one message in a hundred carries a token
        planted[i] = replace(planted[i], text=planted[i].text + " xoxb-123456789012-1234567890123-AbCdEfGhIjKl")
    thread = replace(thread, messages=tuple(planted))
    mask_thread(thread)  # compile the patterns once (importing detect-secrets' plugins)
    best = float("inf")
    count = 0
    for _ in range(rounds):
        cpu = time.process_time()
        masked, _ = mask_thread(thread)
        best = min(best, (time.process_time() - cpu) * 1000)
        count = masked.count
    return best, count


def _export(path: Path, channels: int, days: int, per_day: int) -> int:
    users = [{"id": f"U{i:08d}", "name": f"user{i}", "profile": {"display_name": f"User {i}"}} for i in range(50)]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    total = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("users.json", json.dumps(users))
        out.writestr("channels.json", json.dumps([{"id": f"C{c:08d}", "name": f"chan-{c}"} for c in range(channels)]))
        for c in range(channels):
            for d in range(days):
                day = start + timedelta(days=d)
                rows = []
                for m in range(per_day):
                    ts = f"{(day + timedelta(minutes=m)).timestamp():.6f}"
                    root = f"{(day + timedelta(minutes=m - m % 10)).timestamp():.6f}"
                    rows.append({"type": "message", "user": f"U{(c + m) % 50:08d}", "ts": ts, "thread_ts": root,
                                 "text": f"step {m}: ask <@U{m % 50:08d}> about *deploys* in <#C{c:08d}|chan-{c}>"})
                rows.append({"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "CI",
                             "ts": f"{(day + timedelta(hours=23)).timestamp():.6f}",
                             "attachments": [{"title": "Build failed", "text": "see logs",
                                              "fields": [{"title": "branch", "value": "main"}]}]})
                out.writestr(f"chan-{c}/{day:%Y-%m-%d}.json", json.dumps(rows))
                total += len(rows)
    return total


def run(channels: int = 10, days: int = 30, per_day: int = 60, rounds: int = 3) -> dict[str, float | int]:
    mask_ms, masked = _mask_ms(2000, rounds)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "export.zip"
        messages = _export(archive, channels, days, per_day)
        best = float("inf")
        threads = 0
        for _ in range(rounds):
            cpu = time.process_time()
            result = read_slack_export(archive)
            best = min(best, time.process_time() - cpu)
            threads = len(result.threads)
    return {
        "mask_messages": 2000,
        "mask_cpu_ms": round(mask_ms, 1),
        "mask_ms_per_message": round(mask_ms / 2000, 3),
        "masked": masked,
        "read_messages": messages,
        "read_threads": threads,
        "read_cpu_s": round(best, 2),
        "read_messages_per_second": round(messages / best),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
