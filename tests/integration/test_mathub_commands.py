"""`kbbot pages …` and `kbbot index sync|search` with KB_BACKEND=mathub, at the command-handler level.

Parsers come from each command's ``register`` and handlers are awaited as ``kbbot.cli`` does; the runtime is
the few attributes those handlers use, taken from the runtime the composition root builds for MatHub.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from rich.console import Console

from kbbot.commands import index as index_command
from kbbot.commands import pages
from kbbot.config import Settings
from kbbot.core.ports import KnowledgeBase
from kbbot.errors import Unsupported
from kbbot.runtime import open_runtime
from kbbot.search.index import SearchIndex
from kbbot.search.sync import IndexSyncer
from tests.fakes.mathub import FakeMatHub, mathub_settings


@dataclass
class Runtime:
    settings: Settings
    kb: KnowledgeBase
    index: SearchIndex
    syncer: IndexSyncer
    console: Console
    out: io.StringIO

    def take(self) -> str:
        text = self.out.getvalue()
        self.out.truncate(0)
        self.out.seek(0)
        return text


@pytest.fixture
async def rt(fake_mathub: FakeMatHub) -> AsyncIterator[Runtime]:
    settings = mathub_settings(fake_mathub, mathub_page_url_template="https://mathub.example/wiki/{slug}")
    out = io.StringIO()
    console = Console(file=out, width=300)
    async with open_runtime(settings, console=console) as real:
        yield Runtime(settings, real.kb, real.index, real.syncer, console, out)


async def run(rt: Runtime, *argv: str) -> tuple[int, Any]:
    parser = argparse.ArgumentParser(prog="kbbot")
    sub = parser.add_subparsers(dest="command", required=True)
    pages.register(sub)
    index_command.register(sub)
    args = parser.parse_args(list(argv))
    code = await args.handler(args, rt)
    text = rt.take()
    return code, json.loads(text) if "--json" in argv else text


async def test_pages_commands(rt: Runtime, fake_mathub: FakeMatHub) -> None:
    for n in range(120):
        fake_mathub.add_page(f"Lemma {n}", f"Proof of lemma {n}.", slug=f"lemma-{n}")
    code, listed = await run(rt, "pages", "list", "--json")
    assert code == 0 and len(listed) == 120
    assert listed[0]["slug"] == "lemma-0" and listed[0]["url"] == "https://mathub.example/wiki/lemma-0"

    code, created = await run(
        rt, "pages", "create", "--title", "Lemma 0", "--content", "Again: $x^2$", "--json"
    )
    assert code == 0 and created["url"] == "https://mathub.example/wiki/lemma-0-2"
    code, page = await run(rt, "pages", "get", created["id"], "--json")
    assert page["content"] == "Again: $x^2$" and page["version"] == 1 and page["slug"] == "lemma-0-2"

    code, _ = await run(rt, "pages", "update", created["id"], "--content", "Revised: $x^3$", "--json")
    assert code == 0 and fake_mathub.page(created["id"]).version == 2
    with pytest.raises(Unsupported, match="rename"):
        await run(rt, "pages", "update", created["id"], "--title", "New name")
    with pytest.raises(Unsupported, match="delete"):
        await run(rt, "pages", "delete", created["id"], "--yes")
    assert fake_mathub.page(created["id"]).content == "Revised: $x^3$"


async def test_index_sync_and_search_commands(rt: Runtime, fake_mathub: FakeMatHub) -> None:
    fake_mathub.add_page("Hopf fibration", "The Hopf fibration $S^3 \\to S^2$ has fibre $S^1$.", slug="hopf")
    for n in range(110):
        fake_mathub.add_page(f"Note {n}", f"Unrelated note {n}.")
    code, report = await run(rt, "index", "sync", "--json")
    assert code == 0 and report["listed"] == 111 and report["fetched"] == 111 and report["failed"] == 0
    code, again = await run(rt, "index", "sync", "--json")
    assert again["fetched"] == 0  # incremental: nothing changed, nothing fetched
    code, hits = await run(rt, "index", "search", "hopf fibre", "--json")
    assert code == 0 and hits[0]["title"] == "Hopf fibration"
    assert hits[0]["url"] == "https://mathub.example/wiki/hopf"
