"""Joining what several exports hold of one conversation: one copy per message, in time order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from kbbot.core.models import Thread, ThreadMessage

__all__ = ["Merged", "merge_threads"]


@dataclass(frozen=True, slots=True)
class Merged:
    """The thread to save, and how many of its messages came only from the earlier ones."""

    thread: Thread
    earlier: int


def merge_threads(earlier: Iterable[ThreadMessage], later: Thread) -> Merged:
    """``later`` holding also the ``earlier`` messages it lacks (one per message id; ``later``'s copy wins),
    in time order."""
    merged: dict[str, ThreadMessage] = {_identity(m): m for m in earlier}
    before = set(merged)
    for message in later.messages:
        merged[_identity(message)] = message
    kept = len(before - {_identity(m) for m in later.messages})
    ordered = sorted(merged.values(), key=lambda m: (m.timestamp, _number(m.id)))
    return Merged(replace(later, messages=tuple(ordered)), kept)


def _identity(message: ThreadMessage) -> str:
    return message.id or f"{message.timestamp}\x00{message.author_id}\x00{message.text}"


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0
