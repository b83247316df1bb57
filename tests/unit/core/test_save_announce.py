"""A queued save from an import lands without a post in the conversation; a live save's is announced."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kbbot.core.models import SavedPage, Thread, ThreadMessage
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.errors import Unavailable
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.memory_kb import MemoryKnowledgeBase

POLICY = SaveRetryPolicy(first_delay=10, jitter=0, rng=random.Random(0))


@pytest.mark.parametrize("announce", [True, False])
async def test_queued_save_is_announced_only_when_asked(tmp_path: Path, announce: bool) -> None:
    kb = MemoryKnowledgeBase()
    now = [1_700_000_000.0]
    db = tmp_path / "threads.sqlite3"
    thread_map, outbox = SqliteSavedThreadMap(db), SqliteOutbox(db)
    heard: list[tuple[str, SavedPage]] = []

    async def on_saved(key: str, page: SavedPage) -> None:
        heard.append((key, page))

    saver = ThreadSaver(kb, thread_map, outbox, retry=POLICY, clock=lambda: now[0])
    saver.listen("slack", on_saved)
    thread = Thread("slack", "C1:1700000000.000100", (ThreadMessage("ada", "U1", "2026-01-05T09:00:00+00:00", "hi"),))
    try:
        kb.fail_next("create_page", Unavailable("down", status=503))
        assert (await saver.save(thread, announce=announce)).pending
        now[0] += 10
        assert await saver.retry_due() is None
        assert list(kb.pages) == ["p1"]
        assert [k for k, _ in heard] == (["C1:1700000000.000100"] if announce else [])
    finally:
        await thread_map.aclose()
        await outbox.aclose()
