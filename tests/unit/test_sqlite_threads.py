from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kbbot.core.ports import OutboxItem, OutboxPart
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap


def item(key: str = "slack:C1:1", content: str = "<p>x</p>") -> OutboxItem:
    return OutboxItem(
        key=key,
        platform="slack",
        conversation_key=key.split(":", 1)[1],
        digest="abc",
        title="T ✓ 日本",
        tags=("a", "b"),
        parts=(OutboxPart("T ✓ 日本", content), OutboxPart("T (part 2/2)", "<p>y</p>")),
    )


async def test_map_roundtrip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "threads.sqlite3"
    m = SqliteSavedThreadMap(path)
    assert await m.get("k") is None
    await m.put("k", ["p1", "p2"])
    await m.put("k", ["p3"])
    await m.aclose()
    m = SqliteSavedThreadMap(path)
    assert await m.get("k") == ("p3",)
    await m.delete("k")
    assert await m.get("k") is None
    await m.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await m.get("k")


async def test_outbox_add_claim_release_remove(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "t.sqlite3")
    rev = await box.add(item(), now=100)
    assert rev == 1
    claimed = await box.claim("slack:C1:1", now=100, lease_seconds=30)
    assert claimed is not None and claimed.attempts == 1 and claimed.parts == item().parts
    assert claimed.title == "T ✓ 日本" and claimed.tags == ("a", "b")
    # leased: nobody else gets it until the lease ends
    assert await box.claim("slack:C1:1", now=120, lease_seconds=30) is None
    await box.release("slack:C1:1", next_attempt_at=200, error="HTTP 503")
    [pending] = await box.pending()
    assert pending.next_attempt_at == 200 and pending.last_error == "HTTP 503" and pending.attempts == 1
    again = await box.claim("slack:C1:1", now=121, lease_seconds=30)  # release dropped the lease
    assert again is not None and again.attempts == 2
    assert await box.remove("slack:C1:1", revision=again.revision)
    assert await box.pending() == []
    assert await box.claim("slack:C1:1", now=500, lease_seconds=30) is None
    await box.aclose()


async def test_newer_revision_survives_remove_of_older_and_keeps_attempts(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "t.sqlite3")
    await box.add(item(content="old"), now=1)
    claimed = await box.claim("slack:C1:1", now=1, lease_seconds=30)
    assert claimed is not None
    assert await box.add(item(content="new"), now=2) == 2  # a re-save while the old one is in flight
    assert not await box.remove("slack:C1:1", revision=claimed.revision)
    [pending] = await box.pending()
    assert pending.parts[0].content == "new" and pending.attempts == 1  # the intent history is kept
    await box.aclose()


async def test_lease_expires_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    box = SqliteOutbox(path)
    await box.add(item(), now=0)
    assert await box.claim("slack:C1:1", now=0, lease_seconds=60) is not None
    await box.aclose()  # the process dies holding the lease
    box = SqliteOutbox(path)
    assert await box.claim("slack:C1:1", now=59, lease_seconds=60) is None
    later = await box.claim("slack:C1:1", now=61, lease_seconds=60)
    assert later is not None and later.attempts == 2
    await box.aclose()


async def test_concurrent_claims_only_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    a, b = SqliteOutbox(path), SqliteOutbox(path)  # two processes' connections on one file
    await a.add(item(), now=0)
    results = await asyncio.gather(*(box.claim("slack:C1:1", now=1, lease_seconds=60) for box in (a, b) * 5))
    assert sum(r is not None for r in results) == 1
    await a.aclose()
    await b.aclose()


async def test_pending_sorted_by_due_time(tmp_path: Path) -> None:
    box = SqliteOutbox(tmp_path / "t.sqlite3")
    await box.add(item("slack:b"), now=50)
    await box.add(item("slack:a"), now=10)
    assert [i.key for i in await box.pending()] == ["slack:a", "slack:b"]
    await box.aclose()
