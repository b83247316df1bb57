"""The stored form of an :class:`OutboxItem`'s content, shared by the SQLite and Redis outboxes.

Both stores keep the queued save as one JSON ``payload`` next to the bookkeeping fields they update on their
own (revision, attempts, next attempt, last error). One codec means an item written by either store reads
back identically, and a new field is added in one place.
"""

from __future__ import annotations

import json

from kbbot.core.ports import OutboxItem, OutboxPart


def dump_payload(item: OutboxItem) -> str:
    """The JSON payload of ``item``: everything but the bookkeeping fields."""
    return json.dumps(
        {
            "key": item.key,
            "platform": item.platform,
            "conversation_key": item.conversation_key,
            "digest": item.digest,
            "title": item.title,
            "tags": list(item.tags),
            "retag": item.retag,
            "announce": item.announce,
            "parts": [{"title": part.title, "content": part.content} for part in item.parts],
        },
        ensure_ascii=False,
    )


def load_item(
    payload: str, *, revision: int, attempts: int, next_attempt_at: float, last_error: str | None
) -> OutboxItem:
    """Rebuild an item from its :func:`dump_payload` payload and the store's bookkeeping fields."""
    data = json.loads(payload)
    return OutboxItem(
        key=data["key"],
        platform=data["platform"],
        conversation_key=data["conversation_key"],
        digest=data["digest"],
        title=data["title"],
        tags=tuple(data["tags"]),
        retag=data.get("retag", True),  # items queued before the field existed replaced tags
        announce=data.get("announce", True),  # ... and were announced
        parts=tuple(OutboxPart(part["title"], part["content"]) for part in data["parts"]),
        revision=revision,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        last_error=last_error,
    )
