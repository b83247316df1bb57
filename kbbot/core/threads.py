"""ThreadSaver: a chat thread → a wiki page, idempotent and durable.

How a save goes (``save`` and the background worker share :meth:`ThreadSaver._attempt`)::

    render (page_render) ─► outbox.add ─► outbox.claim (attempts += 1, lease)
        ─► for each part: mapped id? rewrite only kbbot's block in it (404 → treat as unmapped)
                          unmapped and attempts > 1? look for our marker in pages with this title, adopt it
                          else create, and record the id in the map at once
        ─► delete surplus parts of an earlier, longer save ─► outbox.remove

A re-save never sends the whole page: it sends ``PageChange(rewrite=…)``, which replaces only the block between
the page's ``kbbot-thread-begin``/``kbbot-thread`` marker lines in the page's *latest* content
(:func:`kbbot.core.page_block.replace_block`), so text people wrote around it survives, and MatHub's backend can
re-apply it after a version conflict instead of overwriting the other edit. Markers removed by a person: the new
block goes on top and the whole previous page is kept below it (never a silent loss, never a refusal).

The outbox entry is written *before* the first API call, so a crash or an outage never loses a save. A crash
after the wiki created a page but before the map recorded it is the dangerous case: the retry would create a
duplicate. Because the claim counted the attempt before the call, the retry knows an earlier attempt may have
written, lists the pages with the same title and adopts the one whose footer carries this thread's marker.

Failures: ``RateLimited``/``Unavailable``/``BadResponse``/``VersionConflict`` (after the backend's own bounded
retries) keep the save queued and ``save`` returns ``SavedPage(pending=True)``; the worker retries with
exponential backoff and jitter, also after a restart. Other errors (bad request, auth, scope) are not worth
retrying from the requester's view: ``save`` drops the entry and raises :class:`SaveError` with a sentence the
adapter can show.

Anything else (a bug on one thread's content, an outbox entry that cannot be read back) fails only that save:
the worker logs it with its traceback, backs it off like a busy wiki and goes on with the saves behind it.
After ``SaveRetryPolicy.max_attempts`` such failures it gives up like on a page the wiki refused: the entry is
dropped and the asker is told to save the thread again. They are counted apart from the attempts
(``OutboxItem.failures``): a save that waited through a long outage still gets all of its tries.

Who retries a queued save: only a process that can tell its requester how it ended, i.e. one where the
thread's platform adapter is listening (:meth:`ThreadSaver.listen`). Slack replicas and a Discord pod share one
Redis outbox; a Discord pod that sent a Slack thread's save would have nobody to post "Saved: <link>" into
Slack. Saves nobody waits for (``announce=False``: imports, ``kbbot save``) are retried by any worker. A save
for a platform no running process serves stays queued (nothing is lost) and the worker logs it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kbbot.core.models import PageChange, PageSummary, SavedPage, Thread
from kbbot.core.page_block import replace_block
from kbbot.core.page_render import PageRenderer, clean_title, find_marker, thread_digest
from kbbot.core.ports import KnowledgeBase, MetricsSink, NullMetrics, Outbox, OutboxItem, OutboxPart, SavedThreadMap
from kbbot.core.secrets import mask_thread
from kbbot.core.slugs import slugify
from kbbot.core.tasks import cancel_and_wait, raise_if_cancelled
from kbbot.core.text import neutralize_mentions
from kbbot.errors import (
    BadRequest,
    BadResponse,
    KbbotError,
    NotFound,
    RateLimited,
    SaveError,
    Unavailable,
    Unsupported,
    VersionConflict,
)

__all__ = ["QueuedSaves", "SaveRetryPolicy", "SavedCallback", "ThreadSaver"]

log = logging.getLogger(__name__)

#: Called when the worker finishes a save that ``save`` had reported as pending, for a thread of the platform
#: it listens for: ``(conversation_key, outcome)``. The outcome is the saved page (adapters post "Saved: <link>"
#: into the thread) or, when the wiki finally refused it, a :class:`SaveError` whose text the asker should read.
SavedCallback = Callable[[str, SavedPage | SaveError], Awaitable[None]]

#: Worth retrying later: the wiki is busy or down, or answered something we could not read.
_TRANSIENT = (RateLimited, Unavailable, BadResponse, VersionConflict)
#: The content itself is the problem; retrying the same content cannot help.
_HOPELESS = (BadRequest, Unsupported)
_MAX_ORPHAN_CANDIDATES = 20
_LOCK_STRIPES = 64
#: Threads longer than this render in a worker thread so the event loop keeps serving other users.
_RENDER_OFFLOAD_MESSAGES = 200


@dataclass(frozen=True, slots=True)
class SaveRetryPolicy:
    """Outbox retry timing. ``first_delay * multiplier**(attempt-1)``, capped, minus up to ``jitter`` of it.

    Tests shrink every number; ``lease_seconds`` must exceed the longest save (client timeout x retries).
    ``max_attempts`` bounds only saves that keep failing unexpectedly (a bug, an unreadable entry): that many
    unexpected failures give up on a save; with the defaults the last of 10 comes about half an hour after the
    first. A busy or unreachable wiki is retried for as long as it takes, and those retries count for nothing.
    """

    first_delay: float = 5.0
    multiplier: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.3
    poll_interval: float = 30.0
    lease_seconds: float = 300.0
    max_attempts: int = 10
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        base = min(self.max_delay, self.first_delay * self.multiplier ** max(attempts - 1, 0))
        base *= 1.0 - self.jitter * self.rng.random()
        if retry_after is not None:
            base = max(base, min(retry_after, self.max_delay))
        return base


@dataclass(frozen=True, slots=True)
class QueuedSaves:
    """The outbox at a glance (``kbbot check``, ``/metrics``): how many saves wait, since when the oldest."""

    count: int
    #: Unix time the longest-waiting save was queued (None: nothing waits, or no entry says when).
    oldest_queued_at: float | None = None


class ThreadSaver:
    """Saves threads as pages of ``kb``; one instance per process, shared by every adapter.

    ``start()``/``await stop()`` (or ``async with saver``) run the outbox worker; without it, ``save`` still
    works and queued saves wait for the next process that runs the worker (and listens for their platform).
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        thread_map: SavedThreadMap,
        outbox: Outbox,
        *,
        page_max_chars: int = 400_000,
        default_tags: Sequence[str] = (),
        retry: SaveRetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._kb = kb
        self._metrics: MetricsSink = metrics or NullMetrics()
        self._map = thread_map
        self._outbox = outbox
        self._renderer = PageRenderer(kb.content_format, max_chars=page_max_chars)
        self._default_tags = tuple(t for t in (_tag(tag) for tag in default_tags) if t)
        self._retry = retry or SaveRetryPolicy()
        self._listeners: dict[str, SavedCallback] = {}
        self._clock = clock
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Due saves left for another platform's process in the last pass, so each is logged once, not per pass.
        self._unserved: set[str] = set()

    # --- saving --------------------------------------------------------------------------------------------

    async def save(
        self, thread: Thread, title: str | None = None, tags: Iterable[str] | None = None, *, announce: bool = True
    ) -> SavedPage:
        """Save (or re-save) ``thread``. Returns ``pending=True`` when the wiki is unavailable and the save
        was queued; raises :class:`SaveError` when it cannot be saved at all. ``announce=False`` (imports):
        when a queued save lands later, nothing is posted in the conversation."""
        started = time.perf_counter()
        outcome = "failed"
        try:
            # Before anything is rendered, queued or logged. ~0.1 ms a message: a long thread goes to a worker
            # thread, like its rendering, so the event loop keeps serving other users.
            if len(thread.messages) > _RENDER_OFFLOAD_MESSAGES:
                masked, title = await asyncio.to_thread(mask_thread, thread, title)
            else:
                masked, title = mask_thread(thread, title)
            saved = await self._save(masked.thread, title, tags, masked=masked.count, announce=announce)
            if masked.count:  # the adapters' replies say it too (see kbbot.core.replies.masked_note)
                saved = dataclasses.replace(saved, extra={**saved.extra, "masked": masked.count})
            outcome = "queued" if saved.pending else "created" if saved.created else "updated"
            return saved
        finally:
            self._metrics.save(outcome, time.perf_counter() - started)

    async def _save(
        self, thread: Thread, title: str | None, tags: Iterable[str] | None, *, masked: int, announce: bool
    ) -> SavedPage:
        if not thread.messages:
            raise SaveError("There is nothing to save: the thread has no messages.")
        page_title = self.title_for(thread, title)
        page_tags = self.tags_for(thread, tags)
        render = functools.partial(self._renderer.render, thread, page_title, masked=masked)
        parts = await asyncio.to_thread(render) if len(thread.messages) > _RENDER_OFFLOAD_MESSAGES else render()
        map_key = f"{thread.platform}:{thread.key}"
        item = OutboxItem(
            key=map_key,
            platform=thread.platform,
            conversation_key=thread.key,
            digest=thread_digest(thread.platform, thread.key),
            title=page_title,
            tags=page_tags,
            retag=tags is not None,
            announce=announce,
            parts=tuple(OutboxPart(part.title, part.content) for part in parts),
            queued_at=self._clock(),
        )
        async with self._lock(map_key):
            await self._outbox.add(item, now=self._clock())
            claimed = await self._outbox.claim(
                map_key, now=self._clock(), lease_seconds=self._retry.lease_seconds
            )
            if claimed is None:  # another process is sending this thread right now; ours is queued behind it
                return await self._pending(map_key, page_title)
            try:
                return await self._attempt(claimed)
            except _TRANSIENT:
                self._wake.set()
                return await self._pending(map_key, page_title)

    def listen(self, platform: str, callback: SavedCallback) -> None:
        """Call ``callback`` when a queued save of a ``platform`` thread completes (the asker was told "will
        retry"; now they get the link, or why the wiki refused the page). The one way to hear about them.

        Each adapter registers for its own platform, so one shared saver can announce in Slack and Discord.
        Registering is also what lets this process's worker retry that platform's queued saves (see the module
        docstring): a process retries only the saves it can confirm.
        """
        self._listeners[platform] = callback

    def title_for(self, thread: Thread, title: str | None = None) -> str:
        """The page title: given, else the thread's hint, else the first message's first line, else a date."""
        for candidate in (title, thread.title_hint):
            if candidate and (cleaned := _title(candidate)):
                return cleaned
        for message in thread.messages:
            if not message.deleted and (cleaned := _title(message.text)):
                return cleaned
        channel = clean_title(thread.channel_name or "", max_chars=60)
        where = f"#{channel}" if channel else clean_title(thread.platform.capitalize(), max_chars=20)
        day = clean_title(thread.messages[0].timestamp[:10]) if thread.messages else ""
        return neutralize_mentions(f"Conversation in {where} {day}".strip())

    def tags_for(self, thread: Thread, tags: Iterable[str] | None = None) -> tuple[str, ...]:
        """Given tags (slugified), else the channel name plus the configured defaults; no duplicates."""
        if tags is not None:
            chosen: Iterable[str] = (_tag(tag) for tag in tags)
        else:
            chosen = (_tag(thread.channel_name or ""), *self._default_tags)
        return tuple(dict.fromkeys(tag for tag in chosen if tag))

    # --- the outbox worker ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start retrying queued saves in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kbbot-save-outbox")

    async def stop(self) -> None:
        """Stop the worker; a save in flight stays in the outbox and is retried by the next run."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def __aenter__(self) -> ThreadSaver:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def queued(self) -> int:
        """How many saves wait in the outbox."""
        return (await self.queued_saves()).count

    async def queued_saves(self) -> QueuedSaves:
        """The saves waiting in the outbox (also those another platform's process will send), for
        ``kbbot check`` and ``/metrics``."""
        items = await self._outbox.pending()
        since = [item.queued_at for item in items if item.queued_at is not None]
        return QueuedSaves(len(items), min(since) if since else None)

    async def retry_due(self) -> float | None:
        """One pass over the outbox: attempt every due save this process can confirm (see :meth:`listen`).
        Returns when the next one is due (or None). A save that fails unexpectedly fails alone (see
        :meth:`_retry_one`); only a failing outbox listing ends the pass early."""
        next_due: float | None = None
        unserved: set[str] = set()
        for item in await self._outbox.pending():
            raise_if_cancelled()  # a stop whose cancel a save lost ends the pass here, not after every due save
            if item.announce and item.platform not in self._listeners:
                unserved.add(item.key)
                if item.key not in self._unserved:
                    log.warning(
                        "a queued save of a %s thread waits for a process running the %s adapter (this one "
                        "runs: %s); it stays queued",
                        item.platform, item.platform, ", ".join(sorted(self._listeners)) or "none",
                    )
                continue  # not in next_due either: this worker would wake for a save it never takes
            if item.next_attempt_at > self._clock():
                next_due = item.next_attempt_at if next_due is None else min(next_due, item.next_attempt_at)
                continue
            outcome = await self._retry_one(item)
            if outcome is not None and (callback := self._listeners.get(item.platform)) is not None:
                try:
                    await callback(item.conversation_key, outcome)
                except Exception:
                    log.exception("a saved-page callback failed")
        self._unserved = unserved
        return next_due

    async def _retry_one(self, item: OutboxItem) -> SavedPage | SaveError | None:
        """One attempt at a due save; what its asker should hear, or None (nothing yet, or nobody asked).

        Never raises (but for cancellation): whatever goes wrong with one save, the pass goes on with the
        others. A store that fails on this entry is logged and the entry left for the next pass.
        """
        async with self._lock(item.key):
            try:
                claimed = await self._outbox.claim(
                    item.key, now=self._clock(), lease_seconds=self._retry.lease_seconds
                )
            except Exception:
                log.exception("could not take a queued save of a %s thread from the outbox", item.platform)
                return None
            if claimed is None:
                return None
            try:
                outcome: SavedPage | SaveError = await self._attempt(claimed)
            except _TRANSIENT:
                return None
            except _Refused as exc:  # the entry is gone: the asker, told "will retry", must hear the end
                log.warning("queued save of a %s thread failed: %s", item.platform, exc)
                outcome = SaveError(f"The queued save of {_named(claimed)} failed. {exc}")
            except SaveError as exc:  # auth/scope: kept for a retry once an operator has fixed it
                log.warning("queued save of a %s thread failed: %s", item.platform, exc)
                return None
            except Exception:  # a bug or an unreadable entry: _attempt has backed it off and counted it
                failures = claimed.failures + 1
                given_up = failures >= self._retry.max_attempts
                log.exception(
                    "queued save %s of a %s thread failed unexpectedly (failure %d of %d, attempt %d); %s",
                    claimed.key, claimed.platform, failures, self._retry.max_attempts, claimed.attempts,
                    "giving up on it" if given_up else "it will be retried",
                )
                try:
                    removed = given_up and await self._outbox.remove(claimed.key, claimed.revision)
                except Exception:
                    log.exception("could not drop queued save %s from the outbox", claimed.key)
                    return None
                if not removed:
                    return None  # (given up but not removed: a newer save of the thread is queued, and goes next)
                outcome = SaveError(
                    f"The queued save of {_named(claimed)} failed: kbbot ran into an internal error "
                    f"{failures} times (the operator has it in the log). Please save the thread again."
                )
        return outcome if claimed.announce else None

    async def _run(self) -> None:
        while True:
            try:
                next_due = await self.retry_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not kill the worker; try again after a poll interval
                log.exception("outbox pass failed")
                next_due = None
            wait = self._retry.poll_interval
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()

    # --- one attempt ---------------------------------------------------------------------------------------

    async def _attempt(self, item: OutboxItem) -> SavedPage:
        """Send a claimed entry. Success removes it; transient failures reschedule it and re-raise."""
        try:
            page = await self._deliver(item)
        except _TRANSIENT as exc:
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            delay = self._retry.delay(item.attempts, retry_after)
            await self._outbox.release(item.key, next_attempt_at=self._clock() + delay, error=str(exc))
            log.info("save of a %s thread queued for retry in %.0fs: %s", item.platform, delay, exc)
            raise
        except _HOPELESS as exc:
            await self._outbox.remove(item.key, item.revision)
            raise _Refused(f"The wiki refused the page: {exc}") from exc
        except KbbotError as exc:
            # Auth or scope problems: an operator must act. Keep the entry (nothing is lost), but tell the
            # requester now instead of promising a retry that cannot succeed until then.
            await self._outbox.release(
                item.key, next_attempt_at=self._clock() + self._retry.max_delay, error=str(exc)
            )
            raise SaveError(f"Could not save the thread: {exc}") from exc
        except asyncio.CancelledError:
            # Release the lease so the next pass (or process) can retry soon. (A dying process releases
            # nothing; the lease then expires after ``lease_seconds``.)
            with contextlib.suppress(Exception):
                await self._outbox.release(
                    item.key, next_attempt_at=self._clock() + self._retry.first_delay, error="interrupted"
                )
            raise
        except Exception as exc:
            # A bug, or an entry that cannot be read back: the usual backoff, so that it does not hog the
            # worker, and counted as a failure (retry_due gives up on it after max_attempts of them).
            with contextlib.suppress(Exception):
                await self._outbox.release(
                    item.key,
                    next_attempt_at=self._clock() + self._retry.delay(item.attempts),
                    error=f"internal error: {type(exc).__name__}: {exc}"[:500],
                    failed=True,
                )
            raise
        if not await self._outbox.remove(item.key, item.revision):
            # A newer save of the same thread arrived meanwhile (another process): send that one next.
            await self._outbox.release(item.key, next_attempt_at=self._clock(), error=None)
            self._wake.set()
        return page

    async def _deliver(self, item: OutboxItem) -> SavedPage:
        if item.unreadable is not None:
            raise _UnreadableEntry(f"the outbox entry cannot be read back: {item.unreadable}")
        mapped = list(await self._map.get(item.key) or ())
        created = False  # True when part 1 is a new page rather than an update of the mapped one
        # An earlier attempt for this key got as far as the API and may have created pages it never recorded.
        may_have_written = item.attempts > 1
        listing: list[PageSummary] | None = None
        ids: list[str] = []
        for number, part in enumerate(item.parts, start=1):
            page_id = mapped[number - 1] if number <= len(mapped) else None
            change = PageChange(
                title=part.title,
                rewrite=self._rewriter(part.content, item.digest, number),
                tags=item.tags if item.retag else None,
                summary=f"kbbot: saved thread “{item.title[:200]}”",
            )
            if page_id is not None:
                try:
                    await self._kb.update_page(page_id, change)
                except NotFound:
                    log.info("saved page %s is gone from the wiki; creating it again", page_id)
                    page_id = None
                else:
                    ids.append(page_id)
                    continue
            if may_have_written:
                if listing is None:
                    listing = await self._kb.list_pages()
                page_id = await self._find_orphan(listing, item, number, part.title)
                if page_id is not None:
                    await self._kb.update_page(page_id, change)
            if page_id is None:
                ref = await self._kb.create_page(part.title, part.content, item.tags)
                page_id = ref.id
            created = created or number == 1
            ids.append(page_id)
            await self._map.put(item.key, ids + mapped[len(ids) :])  # record each part as soon as it exists
        for number, stale in enumerate(mapped[len(item.parts) :], start=len(item.parts) + 1):
            await self._retire(stale, number, item)  # the thread got shorter: parts that no longer exist
        await self._map.put(item.key, ids)
        return self._result(ids, item.title, created=created, part_titles=[p.title for p in item.parts])

    def _rewriter(self, block: str, digest: str, part: int) -> Callable[[str], str]:
        """``PageChange.rewrite`` for a re-save: replace only our block in the page's latest content.

        A rewrite rather than the whole page as ``content``: text people added around the block stays, and a
        wiki with optimistic locking (MatHub) re-applies it on top of a concurrent edit instead of refusing
        or overwriting. See :mod:`kbbot.core.page_block` for what happens when the markers are gone.
        """
        kept_note = self._renderer.kept_note()
        return functools.partial(replace_block, block=block, digest=digest, part=part, kept_note=kept_note)

    async def _retire(self, page_id: str, number: int, item: OutboxItem) -> None:
        """Remove a part page the thread no longer needs; where the wiki cannot delete (MatHub), point it at
        the first part instead, so nobody reads a stale half of the conversation.

        Never fatal to the save: "cannot delete" and "cannot edit" are expected answers here, and a busy wiki
        (429, 5xx, a version conflict) raises a transient error that keeps the save in the outbox for a retry,
        which replaces the (marked) note again rather than stacking a second one.
        """
        try:
            await self._kb.delete_page(page_id)
        except NotFound:
            return
        except Unsupported:
            note = self._renderer.marked_note(
                f"This page used to hold part {number} of the saved conversation “{item.title}”, which now "
                f"fits on fewer pages: see “{item.parts[0].title}”.",
                item.digest,
                number,
            )
            change = PageChange(
                rewrite=self._rewriter(note, item.digest, number), summary="kbbot: part no longer needed"
            )
            try:
                await self._kb.update_page(page_id, change)
            except (NotFound, Unsupported, BadRequest) as exc:
                log.info("could not mark retired part page %s: %s", page_id, exc)

    async def _find_orphan(
        self, listing: list[PageSummary], item: OutboxItem, number: int, title: str
    ) -> str | None:
        """A page an interrupted attempt created: same title, and our marker for this part in its footer."""
        candidates = [page for page in listing if page.title == title][:_MAX_ORPHAN_CANDIDATES]
        for candidate in candidates:
            try:
                page = await self._kb.get_page(candidate.id)
            except NotFound:
                continue
            if find_marker(page.content, item.digest, number):
                log.info("adopting page %s created by an interrupted save", candidate.id)
                return candidate.id
        return None

    async def _pending(self, map_key: str, title: str) -> SavedPage:
        mapped = await self._map.get(map_key)
        page_id = mapped[0] if mapped else None
        url = self._kb.page_url(page_id, title) if page_id else None
        return SavedPage(id=page_id, url=url, created=False, pending=True, title=title)

    def _result(self, ids: list[str], title: str, *, created: bool, part_titles: list[str]) -> SavedPage:
        first = ids[0]
        extra: dict[str, object] = {}
        if len(ids) > 1:
            extra["parts"] = [
                {"id": page_id, "title": part_title, "url": self._kb.page_url(page_id, part_title)}
                for page_id, part_title in zip(ids, part_titles, strict=True)
            ]
        return SavedPage(
            id=first,
            url=self._kb.page_url(first, part_titles[0]),
            created=created,
            title=title,
            extra=extra,
        )

    def _lock(self, key: str) -> asyncio.Lock:
        # Striped locks: one key always maps to the same lock, and memory stays bounded however many threads
        # are saved over the process's life. Two keys sharing a stripe merely wait for each other.
        return self._locks[hash(key) % len(self._locks)]


class _Refused(SaveError):
    """The wiki refused the page for good: unlike an auth or scope failure, its outbox entry is gone."""


class _UnreadableEntry(Exception):
    """An outbox entry this version cannot read back (damaged, or written in a format it does not know)."""


def _named(item: OutboxItem) -> str:
    """How a message names a queued save: its page title, quoted."""
    return f"“{item.title}”" if item.title else "this thread"


def _title(text: str) -> str:
    # Mentions are made inert before cleaning (which drops the ``<>`` of ``<!channel>``) and after it
    # (which drops the zero-width space that made them inert).
    return neutralize_mentions(clean_title(neutralize_mentions(text)))


def _tag(text: str) -> str:
    """``#Dev Ops (EU)`` → ``dev-ops-eu``: a tag from a channel name or a given tag."""
    return slugify(text, max_length=50, fallback="", keep_unicode=True)
