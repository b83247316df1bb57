"""The stored form of an :class:`OutboxItem`'s content, shared by the SQLite and Redis outboxes.

Both stores keep the queued save as one JSON ``payload`` next to the bookkeeping fields they update on their
own (revision, attempts, failures, next attempt, last error). One codec means an item written by either store reads
back identically, and a new field is added in one place.

Reading never raises: an entry that cannot be read back (a truncated or hand-edited payload, a field of the
wrong type, a format this version does not know) comes back as an ``unreadable`` item with its key and
whatever bookkeeping could be read. One bad entry must not stop the worker from sending the saves behind it;
the saver backs it off like any failing save and gives up on it in the end (see ``ThreadSaver.retry_due``).
"""

from __future__ import annotations

import json
from typing import Any

from kbbot.core.ports import OutboxItem, OutboxPart

#: What a damaged payload or bookkeeping field raises while being read back (bad UTF-8 is a ValueError).
_DAMAGED = (TypeError, ValueError, KeyError, AttributeError, RecursionError)


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
            "queued_at": item.queued_at,
        },
        ensure_ascii=False,
    )


def load_item(
    key: str,
    payload: Any,
    *,
    revision: Any,
    attempts: Any,
    failures: Any,
    next_attempt_at: Any,
    last_error: Any,
) -> OutboxItem:
    """Rebuild an item from its :func:`dump_payload` payload and the store's bookkeeping fields, as stored
    (``str`` or ``bytes``; ``failures`` None for an entry stored before they were counted: none); an
    ``unreadable`` item when any of them is damaged."""
    try:
        data = json.loads(payload)  # not text or bytes: damage, caught below
        queued_at = data.get("queued_at")  # items queued before the field existed: unknown
        return OutboxItem(
            key=_str(data, "key"),
            platform=_str(data, "platform"),
            conversation_key=_str(data, "conversation_key"),
            digest=_str(data, "digest"),
            title=_str(data, "title"),
            tags=tuple(_strings(data["tags"])),
            retag=bool(data.get("retag", True)),  # items queued before the field existed replaced tags
            announce=bool(data.get("announce", True)),  # ... and were announced
            parts=tuple(OutboxPart(_str(part, "title"), _str(part, "content")) for part in data["parts"]),
            revision=int(revision),
            attempts=int(attempts),
            failures=int(failures or 0),
            next_attempt_at=float(next_attempt_at),
            last_error=_optional_text(last_error),
            queued_at=None if queued_at is None else float(queued_at),
        )
    except _DAMAGED as exc:
        return _unreadable(
            key, exc, revision=revision, attempts=attempts, failures=failures, next_attempt_at=next_attempt_at,
            last_error=last_error,
        )


def _unreadable(
    key: str,
    exc: BaseException,
    *,
    revision: Any,
    attempts: Any,
    failures: Any,
    next_attempt_at: Any,
    last_error: Any,
) -> OutboxItem:
    # Thread saves are keyed ``platform:conversation``, so the key still says which platform's thread it was.
    # Whether anyone waits for it was in the payload: assume nobody (never post into a conversation on a guess),
    # so any worker takes it and its failures are in the log, the queued-saves gauge and `kbbot check`.
    platform, _, conversation = key.partition(":")
    return OutboxItem(
        key=key,
        platform=platform,
        conversation_key=conversation,
        digest="",
        title="",
        tags=(),
        parts=(),
        retag=False,
        announce=False,
        revision=_number(int, revision),
        attempts=_number(int, attempts),
        failures=_number(int, failures or 0),
        next_attempt_at=_number(float, next_attempt_at),
        last_error=_optional_text(last_error),
        unreadable=f"{type(exc).__name__}: {exc}"[:500],
    )


def _str(data: Any, name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is {type(value).__name__}, not text")
    return value


def _strings(values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise TypeError("tags are not a list of text")
    return values


def _optional_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value) if value else None


def _number(kind: type[int] | type[float], value: Any) -> Any:
    try:
        return kind(value)
    except _DAMAGED:
        return kind(0)
