"""Planted secrets (every kind) never reach a page: Perfect Wiki and MatHub fakes over HTTP with the real
clients, and the local Markdown backend; a live-style thread and an imported Slack export alike. Raw HTML in
``$…$`` is inert on the Markdown backends.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from kbbot.backends.http import RetryPolicy
from kbbot.backends.local import LocalBackend
from kbbot.backends.mathub import MatHubBackend, build_write_limiter
from kbbot.backends.perfectwiki import PerfectWikiBackend
from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.core.page_render import masked_text
from kbbot.core.replies import masked_note
from kbbot.core.threads import SaveRetryPolicy
from kbbot.formats.slack_export import read_slack_export
from kbbot.store.limiter import TokenRateLimiter
from tests.fakes.mathub import DEFAULT_KEY, FakeMatHub
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.saver_support import SaverWiring
from tests.planted_secrets import LEAKS, PLANTED

RETRY = SaveRetryPolicy(first_delay=0.05, max_delay=0.2, poll_interval=0.05, lease_seconds=30)
FILE_LINK = "https://files.slack.com/files-pri/T0AB-F0CD/dump.sql?t=xoxe-123456789012-AbCdEf0123456789"
Pages = Callable[[], list[str]]


@asynccontextmanager
async def backend(kind: str, tmp_path: Path) -> AsyncIterator[tuple[SaverWiring[object, object], Pages]]:
    db = tmp_path / "data" / "threads.sqlite3"
    db.parent.mkdir(exist_ok=True)
    if kind == "local":
        (tmp_path / "kb").mkdir(exist_ok=True)
        local = LocalBackend(tmp_path / "kb", tmp_path / "data" / "pages")
        wiring: SaverWiring[object, object] = SaverWiring(None, db, local, RETRY)
        try:
            yield wiring, lambda: [p.read_text("utf-8") for p in (tmp_path / "data" / "pages").glob("*.md")]
        finally:
            await wiring.aclose()
        return
    async with httpx.AsyncClient(timeout=5) as http:
        if kind == "perfectwiki":
            with FakePerfectWiki() as pw:
                kb = PerfectWikiBackend(
                    http, pw.token, limiter=TokenRateLimiter(pw.token, per_second=100, per_minute=1000),
                    base_url=pw.url, retry=RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(1)),
                )
                wiring = SaverWiring(pw, db, kb, RETRY)
                try:
                    yield wiring, lambda: [str(p["content"]) for p in pw.pages()]
                finally:
                    await wiring.aclose()
        else:
            with FakeMatHub(writes_per_window=1000) as mh:
                mkb = MatHubBackend(
                    http, api_key=DEFAULT_KEY, base_url=mh.url, project=mh.project,
                    write_limiter=build_write_limiter(DEFAULT_KEY, 1000),
                    retry_policy=RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(2)),
                )
                wiring = SaverWiring(mh, db, mkb, RETRY)
                try:
                    yield wiring, lambda: [p.content for p in mh.pages()]
                finally:
                    await wiring.aclose()


def planted_thread() -> Thread:
    messages = [
        ThreadMessage(f"person{i % 3}", f"U{i % 3}", f"2026-01-05T09:{i:02d}:00+00:00", f"my {kind}: {value} oops")
        for i, (kind, value) in enumerate(sorted(PLANTED.items()))
    ]
    messages.append(
        ThreadMessage(
            "ops", "U9", "2026-01-05T10:00:00+00:00", "db dump", attachments=(Attachment("dump.sql", FILE_LINK),)
        )
    )
    messages.append(
        ThreadMessage("ops", "U9", "2026-01-05T10:01:00+00:00", "clone https://deploy:hunter2hunter2@git.example.com/r")
    )
    return Thread("slack", "C1:1736067600.000100", tuple(messages), channel_name="ops")


def assert_clean(content: str) -> None:
    for kind, leak in LEAKS.items():
        assert leak not in content, kind
    assert "xoxe" not in content and "hunter2" not in content and "BEGIN RSA PRIVATE KEY" not in content


@pytest.mark.parametrize("kind", ["perfectwiki", "mathub", "local"])
async def test_no_planted_secret_reaches_the_page(kind: str, tmp_path: Path) -> None:
    async with backend(kind, tmp_path) as (wiring, pages):
        thread = planted_thread()
        saved = await wiring.saver.save(thread, title=f"incident {PLANTED['aws']}")
        # Distinct secrets: every planted kind, the file-link token, the URL password (the title repeats one).
        expected = len(PLANTED) + 2
        assert saved.extra["masked"] == expected
        assert masked_note(saved) == masked_text(expected)
        [content] = pages()
        assert_clean(content)
        assert PLANTED["aws"] not in saved.title
        assert f"{expected} secrets (access tokens, keys or passwords) were masked" in content
        assert "files.slack.com/files-pri/T0AB-F0CD/dump.sql" in content  # the link stays, without its token
        # A re-save (e.g. more replies) masks again: still nothing on the page.
        await wiring.saver.save(thread)
        [content] = pages()
        assert_clean(content)


@pytest.mark.parametrize("kind", ["perfectwiki", "mathub", "local"])
async def test_imported_slack_export_with_secrets(kind: str, tmp_path: Path) -> None:
    export = tmp_path / "export"
    (export / "general").mkdir(parents=True)
    (export / "channels.json").write_text(json.dumps([{"id": "C0GENERAL1", "name": "general"}]))
    (export / "users.json").write_text(json.dumps([{"id": "U1", "name": "ada", "profile": {"display_name": "Ada"}}]))
    day = [
        {"type": "message", "user": "U1", "ts": "1736067600.000100", "thread_ts": "1736067600.000100",
         "text": f"bot token is {PLANTED['slack bot']}, app token {PLANTED['slack app']}"},
        {"type": "message", "user": "U1", "ts": "1736067660.000200", "thread_ts": "1736067600.000100",
         "files": [{"name": "dump.sql", "url_private": FILE_LINK}]},
        {"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "CI", "ts": "1736067720.000300",
         "thread_ts": "1736067600.000100", "text": "",
         "attachments": [{"title": "Deploy failed", "text": f"DISCORD_BOT_TOKEN={PLANTED['discord']}",
                          "fields": [{"title": "key", "value": PLANTED["private key"]}]}]},
    ]
    (export / "general" / "2025-01-05.json").write_text(json.dumps(day))
    [thread] = read_slack_export(export).threads
    async with backend(kind, tmp_path) as (wiring, pages):
        saved = await wiring.saver.save(thread)
        assert saved.extra["masked"] == 4  # the file link's token went at conversion, before the saver
        [content] = pages()
        assert_clean(content)
        assert "Deploy failed" in content and "Ada" in content


@pytest.mark.parametrize("kind", ["mathub", "local", "perfectwiki"])
async def test_raw_html_in_math_is_inert(kind: str, tmp_path: Path) -> None:
    text = "see $<img src=x onerror=alert(1)>$ and $$</p><script>alert(2)</script>$$ but $a<b$ stays"
    thread = Thread("discord", "42", (ThreadMessage("eve", "1", "2026-01-05T09:00:00+00:00", text),))
    async with backend(kind, tmp_path) as (wiring, pages):
        await wiring.saver.save(thread, title="math")
        [content] = pages()
    assert "<img" not in content and "<script" not in content and "</p><script" not in content
    if kind != "perfectwiki":
        assert "$\\lt img src=x onerror=alert(1)>$" in content and "$a<b$" in content
