from __future__ import annotations

import argparse
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kbbot.backends.local import LocalBackend
from kbbot.commands import index as index_cmd
from kbbot.core.ports import KnowledgeBase
from kbbot.errors import Unavailable
from kbbot.search.index import SearchIndex
from kbbot.search.sync import IndexSyncer
from tests.fakes.sync_kb import SyncKnowledgeBase


@dataclass
class Runtime:
    settings: Any
    kb: KnowledgeBase
    index: SearchIndex
    console: Console

    @property
    def syncer(self) -> IndexSyncer:
        return IndexSyncer(self.kb, self.index)

    @property
    def output(self) -> str:
        file = self.console.file
        assert isinstance(file, io.StringIO)
        return file.getvalue()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kbbot")
    index_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with SearchIndex(tmp_path / "index.sqlite3") as index:
        console = Console(file=io.StringIO(), width=120, force_terminal=False)
        yield Runtime(settings=None, kb=LocalBackend(None, tmp_path / "pages"), index=index, console=console)


async def run(rt: Runtime, *argv: str) -> int:
    args = parse(*argv)
    return int(await args.handler(args, rt))


async def test_sync_then_search(rt: Runtime) -> None:
    assert await run(rt, "index", "sync") == 0
    assert "Index up to date: 20 pages listed, 20 fetched" in rt.output
    assert await run(rt, "index", "search", "wireguard handshake") == 0
    lines = rt.output.splitlines()
    first = next(line for line in lines if line.startswith("1. "))
    assert first.startswith("1. VPN setup")
    assert any(line.strip().startswith("file://") for line in lines)


async def test_sync_json_and_full(rt: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(rt, "index", "sync", "--json") == 0
    assert await run(rt, "index", "sync", "--full", "--json") == 0
    reports = [json.loads(line) for line in rt.output.splitlines()]
    assert reports[0]["fetched"] == 20 and reports[0]["changed"] == 20
    assert reports[1]["fetched"] == 20 and reports[1]["changed"] == 0
    assert "Indexing" not in rt.output  # progress goes to stderr with --json


async def test_search_json_on_empty_index_syncs_first(rt: Runtime) -> None:
    assert await run(rt, "index", "search", "how do I reset my password", "--json", "--limit", "2") == 0
    results = json.loads(rt.output)
    assert len(results) == 2
    assert set(results[0]) == {"id", "title", "url", "score", "snippet"}
    assert results[0]["id"] == "password-reset"
    assert results[0]["url"].startswith("file://")
    assert "\x02" not in results[0]["snippet"]


@pytest.mark.parametrize("query", ['"', "NEAR(", "*", "-", ":", "((", "🤖", "title:vpn AND", "x" * 100_000])
async def test_hostile_queries(rt: Runtime, query: str) -> None:
    code = await run(rt, "index", "search", query, "--json")
    if code == 0:
        assert isinstance(json.loads(rt.output), list)
    else:
        assert code == 2 and rt.output == ""


async def test_no_results_and_no_words(rt: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    await run(rt, "index", "sync")
    assert await run(rt, "index", "search", "flibbertigibbet") == 0
    assert rt.output.rstrip().endswith("No pages match.")
    assert await run(rt, "index", "search", "how do I") == 2
    assert "Nothing to search for" in capsys.readouterr().err


async def test_brackets_in_titles_are_not_rich_markup(tmp_path: Path) -> None:
    kb = SyncKnowledgeBase(url_template=None)
    kb.put("x", "[bold]Not bold[/bold] [link=evil]", "The [red]snippet[/red] about zebras.")
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        rt = Runtime(None, kb, index, Console(file=io.StringIO(), width=200))
        assert await run(rt, "index", "search", "zebras") == 0
    assert "[bold]Not bold[/bold] [link=evil]" in rt.output
    assert "[red]snippet[/red]" in rt.output


async def test_a_folder_of_one_page_shows_no_meaningless_score(tmp_path: Path) -> None:
    # bm25's idf with one page is about 0: every hit showed "score 0.00". The order is all a score says there.
    kb = SyncKnowledgeBase(url_template=None)
    kb.put("z", "Zebra care", "Feed the zebras twice a day.")
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        rt = Runtime(None, kb, index, Console(file=io.StringIO(), width=200))
        assert await run(rt, "index", "search", "zebras") == 0
    assert rt.output.startswith("1. Zebra care\n") and "score" not in rt.output


async def test_scores_are_shown_where_they_say_something(rt: Runtime) -> None:
    assert await run(rt, "index", "search", "wireguard handshake") == 0
    first = next(line for line in rt.output.splitlines() if line.startswith("1. "))
    assert re.fullmatch(r"1\. VPN setup  score \d+\.\d\d", first) and not first.endswith(" 0.00")


async def test_sync_failures_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = SyncKnowledgeBase()
    kb.put("a", "A", "alpha")
    kb.put("b", "B", "beta")
    kb.failures["b"] = [Unavailable("The wiki is unavailable (HTTP 503).", status=503)]
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        rt = Runtime(None, kb, index, Console(file=io.StringIO(), width=200))
        assert await run(rt, "index", "sync") == 1
    assert "1 failed" in rt.output
    assert "failed: b: The wiki is unavailable (HTTP 503)." in capsys.readouterr().err


def test_limit_is_validated(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "101", "x"):
        with pytest.raises(SystemExit):
            parse("index", "search", "vpn", "--limit", bad)
    assert parse("index", "search", "vpn").limit == 10
