"""Saving chat threads into MatHub through ThreadSaver: create with a slug, re-save edits with ``version``,
conflicts and outages keep the save in the outbox, and a burst of saves respects 5 writes/min."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kbbot.backends.mathub import MatHubBackend, build_write_limiter
from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.threads import SaveRetryPolicy, ThreadSaver
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.mathub import DEFAULT_KEY, FakeMatHub
from tests.integration.test_mathub_backend import FAST_CLIENT_WINDOW, FAST_SERVER_WINDOW

TEMPLATE = "https://mathub.example/p/algebraic-topology/wiki/{slug}"
POLICY = SaveRetryPolicy(first_delay=10, max_delay=100, jitter=0.0, poll_interval=0.05, lease_seconds=60)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _no_sleep(seconds: float) -> None:
    return None


def thread(*texts: str, key: str = "C1:1700000000.000100") -> Thread:
    messages = tuple(
        ThreadMessage(f"user{i % 2}", f"U{i % 2}", f"2026-01-05T09:{i:02d}:00+00:00", text)
        for i, text in enumerate(texts)
    )
    return Thread("slack", key, messages, "https://team.slack.com/archives/C1/p1", "topology")


@dataclass
class Env:
    server: FakeMatHub
    backend: MatHubBackend
    saver: ThreadSaver
    outbox: SqliteOutbox
    thread_map: SqliteSavedThreadMap
    clock: Clock


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    # 5 writes per 0.25 s on the server, 5 per 0.3 s in the client's limiter: the production 5/min (60 s vs
    # 62 s) at a clock fast enough for a test (why a client window a little over the server's is enough on one
    # clock: test_mathub_backend.FAST_SERVER_WINDOW).
    with FakeMatHub(write_window_seconds=FAST_SERVER_WINDOW) as server:
        async with httpx.AsyncClient(timeout=5.0) as http:
            backend = MatHubBackend(
                http,
                api_key=DEFAULT_KEY,
                base_url=server.url,
                project=server.project,
                page_url_template=TEMPLATE,
                write_limiter=build_write_limiter(DEFAULT_KEY, 5, window=FAST_CLIENT_WINDOW),
                sleep=_no_sleep,
            )
            path = tmp_path / "threads.sqlite3"
            thread_map, outbox = SqliteSavedThreadMap(path), SqliteOutbox(path)
            clock = Clock()
            saver = ThreadSaver(backend, thread_map, outbox, retry=POLICY, clock=clock)
            saver.listen("slack", _slack_adapter)  # a process running Slack: its worker retries Slack saves
            yield Env(server, backend, saver, outbox, thread_map, clock)
            await saver.stop()
            await thread_map.aclose()
            await outbox.aclose()


async def _slack_adapter(key: str, outcome: object) -> None:
    return None


async def test_save_creates_a_markdown_page_with_a_slug(env: Env) -> None:
    saved = await env.saver.save(thread("How do I compute $\\pi_3(S^2)$?", "Use the Hopf fibration."))
    assert saved.created and not saved.pending
    page = env.server.page(saved.id or "")
    assert page.slug == "how-do-i-compute-pi-3-s-2"
    assert saved.url == TEMPLATE.format(slug=page.slug)
    assert "Use the Hopf fibration." in page.content and "$\\pi_3(S^2)$" in page.content
    assert "<p>" not in page.content  # Markdown, not HTML


async def test_resave_edits_the_same_page_with_its_version(env: Env) -> None:
    first = await env.saver.save(thread("Question about K(Z,2)", "It is CP^infinity."))
    env.server.reset_log()
    second = await env.saver.save(thread("Question about K(Z,2)", "It is CP^infinity.", "Thanks!"))
    assert second.id == first.id and not second.created
    page = env.server.page(first.id or "")
    assert page.version == 2 and "Thanks!" in page.content
    patches = [r for r in env.server.requests if r.method == "PATCH"]
    assert [(r.status, r.body["version"]) for r in patches] == [(200, 1)]
    assert env.server.count("POST") == 0 and len(env.server.pages()) == 1


async def test_concurrent_edit_during_resave_keeps_both(env: Env) -> None:
    first = await env.saver.save(thread("Spectral sequences", "first answer"))
    page_id = first.id or ""
    # Another editor saves between the backend's read and its PATCH: MatHub answers 409, the backend
    # re-fetches and re-applies ThreadSaver's rewrite (replace only kbbot's block) on top of their edit.
    env.server.inject_concurrent_edit(page_id, "\n\nAn editor's note.")
    second = await env.saver.save(thread("Spectral sequences", "first answer", "second answer"))
    assert not second.pending and second.id == page_id
    content = env.server.page(page_id).content
    assert "second answer" in content and content.endswith("An editor's note.")
    assert await env.outbox.pending() == []
    patches = [(r.status, r.body["version"]) for r in env.server.requests if r.method == "PATCH"]
    assert patches == [(409, 1), (200, 2)]


async def test_conflicts_beyond_the_retries_stay_queued_and_never_overwrite(env: Env) -> None:
    first = await env.saver.save(thread("Chern classes", "first answer"))
    page_id = first.id or ""
    env.server.inject_concurrent_edit(page_id, "\n\nNote {n}.", times=4)  # every in-line attempt loses
    pending = await env.saver.save(thread("Chern classes", "first answer", "second answer"))
    assert pending.pending and len(await env.outbox.pending()) == 1
    content = env.server.page(page_id).content
    assert "second answer" not in content and content.count("Note {n}.") == 4
    # The outbox worker's later pass lands it on top of all four edits.
    env.clock.now += 1000
    await env.saver.retry_due()
    content = env.server.page(page_id).content
    assert "second answer" in content and content.count("Note {n}.") == 4
    assert await env.outbox.pending() == []


async def test_outage_on_first_save_is_retried_from_the_outbox(env: Env) -> None:
    env.server.fail_next(1, 503, method="POST")
    pending = await env.saver.save(thread("Homotopy groups of spheres", "see Toda"))
    assert pending.pending and pending.id is None and env.server.pages() == []
    env.clock.now += 1000
    await env.saver.retry_due()
    [page] = env.server.pages()
    assert page.slug == "homotopy-groups-of-spheres" and "see Toda" in page.content


async def test_twelve_saves_in_a_row_none_draws_a_429(env: Env) -> None:
    results = [
        await env.saver.save(
            thread(f"Exercise {n}", "solution", key=f"C1:{n}"), title="Exercise on cohomology"
        )
        for n in range(12)
    ]
    assert [(r.pending, r.created) for r in results] == [(False, True)] * 12
    assert env.server.count(status=429) == 0
    slugs = sorted(p.slug for p in env.server.pages())
    assert slugs == sorted(["exercise-on-cohomology"] + [f"exercise-on-cohomology-{n}" for n in range(2, 13)])
