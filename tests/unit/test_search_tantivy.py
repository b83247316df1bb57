"""SEARCH_ENGINE=tantivy: the ranking follows every write, survives a crash between SQLite and tantivy, and says
clearly when the library is missing. (The shared contract runs on both engines in test_search_index.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kbbot.cli import exit_code
from kbbot.errors import ConfigError
from kbbot.search.index import IndexedPage, SearchIndex, SearchIndexError
from kbbot.search.sync import IndexSyncer
from tests.fakes.sync_kb import SyncKnowledgeBase


async def found(index: SearchIndex, question: str) -> list[str]:
    return [hit.id for hit in await index.search(question)]


async def test_updates_and_deletes_reach_the_ranking(tmp_path: Path) -> None:
    async with SearchIndex(tmp_path / "index.sqlite3", engine="tantivy") as index:
        await index.upsert_many([IndexedPage(id="k", title="Cluster access", text="Install kubectl first.")])
        assert await found(index, "kubectl") == ["k"]
        assert await found(index, "how do I use kube") == ["k"]  # the last word is also a prefix
        await index.upsert(IndexedPage(id="k", title="Cluster access", text="Use the web console."))
        assert await found(index, "kubectl") == [] and await found(index, "console") == ["k"]
        assert await index.delete(["k"]) == 1
        assert await found(index, "console") == []


async def test_the_ranking_is_rebuilt_from_sqlite_when_it_missed_writes(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path, engine="tantivy") as index:
        await index.upsert(IndexedPage(id="a", title="Expenses", text="Receipts go to finance."))
    # Written without the ranking (another engine), and a write whose ranking commit never happened (a crash
    # between the two): both are caught when the index opens.
    async with SearchIndex(path) as index:
        await index.upsert(IndexedPage(id="b", title="Travel", text="Book hotels early."))
    async with SearchIndex(path, engine="tantivy") as index:
        assert await found(index, "hotels") == ["b"] and await found(index, "receipts") == ["a"]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE pages SET body = 'Flights need approval.' WHERE id = 'b'")
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tantivy_dirty', '1')")
    async with SearchIndex(path, engine="tantivy") as index:
        assert await found(index, "flights") == ["b"] and await found(index, "hotels") == []


async def test_a_missing_library_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kbbot.search.index.tantivy_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'kbbot\[tantivy\]'") as raised:
        await SearchIndex(tmp_path / "index.sqlite3", engine="tantivy").open()
    assert exit_code(raised.value) == 2  # a setting to fix, like every other settings error


def test_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown search engine"):
        SearchIndex(tmp_path / "index.sqlite3", engine="lucene")


async def test_two_processes_take_turns_writing_and_read_each_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path, engine="tantivy") as bot, SearchIndex(path, engine="tantivy") as cli:
        await bot.upsert(IndexedPage(id="a", title="Expenses", text="Receipts go to finance."))
        # The bot has not committed its ranking yet (it holds the writer): the other one cannot write now,
        # and says so in one line; it can read.
        with pytest.raises(SearchIndexError, match="another kbbot process"):
            await cli.upsert(IndexedPage(id="b", title="Travel", text="Book hotels early."))
        assert await found(bot, "receipts") == ["a"]  # a search commits first: the writer is free again
        assert await found(cli, "receipts") == ["a"]
        await cli.upsert(IndexedPage(id="b", title="Travel", text="Book hotels early."))
        assert await found(cli, "hotels") == ["b"] and await found(bot, "hotels") == ["b"]


async def test_a_finished_sync_or_an_idle_write_leaves_the_writer_free(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    kb = SyncKnowledgeBase()
    kb.put("p1", "Travel", "Book hotels early.")
    async with SearchIndex(path, engine="tantivy") as bot, SearchIndex(path, engine="tantivy") as cli:
        await IndexSyncer(kb, bot).sync()
        await cli.upsert(IndexedPage(id="a", title="Expenses", text="Receipts go to finance."))
        await cli.flush()
        await bot.upsert(IndexedPage(id="a", title="Expenses", text="Receipts go to finance."))  # unchanged
        await cli.delete(["nothing-here"])
        assert await found(bot, "hotels") == ["p1"] and await found(cli, "receipts") == ["a"]
