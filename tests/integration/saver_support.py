"""A ThreadSaver wired to a real backend and the SQLite stores, with a test clock; shared by the save tests.

The Perfect Wiki and MatHub save tests drive the same saver the same way (restart it like a new process,
swap in a crashing map); only the backend, its fake and the retry timings differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from kbbot.core.models import SavedPage
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.memory_kb import SimulatedCrash

F = TypeVar("F")
K = TypeVar("K")


class CrashingMap:
    """A map whose next ``put`` kills the "process": the wiki has the page, the map never learns its id."""

    def __init__(self, inner: SqliteSavedThreadMap) -> None:
        self.inner = inner
        self.crash_next_put = True

    async def get(self, key: str) -> tuple[str, ...] | None:
        return await self.inner.get(key)

    async def put(self, key: str, page_ids: Sequence[str]) -> None:
        if self.crash_next_put:
            self.crash_next_put = False
            raise SimulatedCrash()
        await self.inner.put(key, page_ids)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class SaverWiring(Generic[F, K]):
    """``fake`` and ``kb`` are the backend under test; ``now`` is the saver's clock (mutate ``now[0]``),
    ``saved`` collects what the saved-page listener heard."""

    fake: F
    path: Path
    kb: K
    retry: SaveRetryPolicy
    thread_map: SqliteSavedThreadMap = field(init=False)
    outbox: SqliteOutbox = field(init=False)
    saver: ThreadSaver = field(init=False)
    saved: list[SavedPage] = field(default_factory=list)
    now: list[float] = field(default_factory=lambda: [1e9])

    def __post_init__(self) -> None:
        self._open_stores()
        self.saver = self.build_saver()

    def _open_stores(self) -> None:
        self.thread_map = SqliteSavedThreadMap(self.path)
        self.outbox = SqliteOutbox(self.path)

    def build_saver(self, thread_map: object | None = None, **kw: Any) -> ThreadSaver:
        async def on_saved(key: str, page: SavedPage) -> None:
            self.saved.append(page)

        saver = ThreadSaver(
            self.kb,  # type: ignore[arg-type]
            thread_map or self.thread_map,  # type: ignore[arg-type]
            self.outbox,
            retry=self.retry,
            clock=lambda: self.now[0],
            **kw,
        )
        for platform in ("slack", "discord"):  # the Perfect Wiki tests save Slack threads, MatHub's Discord ones
            saver.listen(platform, on_saved)
        return saver

    async def restart(self) -> None:
        """What a new process sees: the saver stopped, the stores reopened from the same file."""
        await self.aclose()
        self._open_stores()
        self.saver = self.build_saver()

    async def aclose(self) -> None:
        await self.saver.stop()
        await self.thread_map.aclose()
        await self.outbox.aclose()
