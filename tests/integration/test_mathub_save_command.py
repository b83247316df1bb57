"""`kbbot save FILE` with KB_BACKEND=mathub, at the command-handler level.

The parser comes from the command's own ``register`` and the handler is awaited exactly as ``kbbot.cli`` does
(``await args.handler(args, rt)``). The runtime here is built the way the startup function is expected to
build it for MatHub (Settings → httpx client → ``MatHubBackend.from_settings`` → ThreadSaver over the SQLite
stores), since ``kbbot.runtime`` belongs to the integrator.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from kbbot.backends.mathub import MatHubBackend, build_write_limiter
from kbbot.commands import save
from kbbot.config import Settings
from kbbot.core.threads import ThreadSaver
from kbbot.errors import SaveError
from kbbot.store.sqlite_threads import SqliteOutbox, SqliteSavedThreadMap
from tests.fakes.mathub import DEFAULT_KEY, FakeMatHub, mathub_settings


@dataclass
class Runtime:
    settings: Settings
    saver: ThreadSaver
    console: Console


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kbbot")
    save.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["save", *argv])


async def test_kbbot_save_creates_then_updates_with_version(fake_mathub: FakeMatHub, tmp_path: Path) -> None:
    transcript = tmp_path / "thread.txt"
    transcript.write_text("Ana: How do we cite [[serre-spectral-sequence]]?\nBo: Use $E_2^{p,q}$ notation.\n")
    settings = mathub_settings(fake_mathub, mathub_page_url_template="https://mathub.example/wiki/{slug}")
    out = io.StringIO()
    path = settings.kbbot_data_dir / "threads.sqlite3"
    async with httpx.AsyncClient(timeout=settings.request_timeout_seconds) as http:
        backend = MatHubBackend.from_settings(
            settings, http, write_limiter=build_write_limiter(DEFAULT_KEY, settings.mathub_writes_per_minute)
        )
        thread_map, outbox = SqliteSavedThreadMap(path), SqliteOutbox(path)
        rt = Runtime(settings, ThreadSaver(backend, thread_map, outbox), Console(file=out, width=200))
        try:
            args = parse(str(transcript), "--title", "Citing the Serre spectral sequence", "--json")
            assert await args.handler(args, rt) == 0
            created = json.loads(out.getvalue())
            assert created["created"] is True
            assert created["url"] == "https://mathub.example/wiki/citing-the-serre-spectral-sequence"
            page = fake_mathub.page(created["id"])
            assert "$E_2^{p,q}$" in page.content and page.version == 1

            transcript.write_text(transcript.read_text() + "Ana: Thanks!\n")
            out.truncate(0)
            out.seek(0)
            args = parse(str(transcript), "--title", "Citing the Serre spectral sequence", "--json")
            assert await args.handler(args, rt) == 0
            updated = json.loads(out.getvalue())
            assert updated == {**created, "created": False}
            assert fake_mathub.page(created["id"]).version == 2
            assert "Thanks!" in fake_mathub.page(created["id"]).content
            assert [r.body["version"] for r in fake_mathub.requests if r.method == "PATCH"] == [1]
            assert len(fake_mathub.pages()) == 1
        finally:
            await thread_map.aclose()
            await outbox.aclose()


async def test_kbbot_save_with_a_read_only_key_says_which_scope(
    fake_mathub: FakeMatHub, tmp_path: Path
) -> None:
    fake_mathub.add_key("bot_reader", {"wiki.read"})
    transcript = tmp_path / "t.txt"
    transcript.write_text("Ana: hello\n")
    settings = mathub_settings(fake_mathub, mathub_api_key="bot_reader")
    path = settings.kbbot_data_dir / "threads.sqlite3"
    async with httpx.AsyncClient(timeout=5.0) as http:
        thread_map, outbox = SqliteSavedThreadMap(path), SqliteOutbox(path)
        saver = ThreadSaver(MatHubBackend.from_settings(settings, http), thread_map, outbox)
        try:
            args = parse(str(transcript))
            # The CLI prints str(exc) as its one stderr line.
            with pytest.raises(SaveError, match=r"wiki\.write") as caught:
                await args.handler(args, Runtime(settings, saver, Console(file=io.StringIO())))
            assert "bot_reader" not in str(caught.value)
        finally:
            await thread_map.aclose()
            await outbox.aclose()
