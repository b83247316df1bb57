"""SEARCH_ENGINE=tantivy: the ranking follows every write, survives a crash between SQLite and tantivy, and says
clearly when the library is missing. (The shared contract runs on both engines in test_search_index.py.)"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kbbot.cli import exit_code
from kbbot.errors import ConfigError
from kbbot.search.index import IndexedPage, SearchIndex, SearchIndexError
from kbbot.search.sync import IndexSyncer
from kbbot.search.word_forms import index_text
from tests.fakes.sync_kb import SyncKnowledgeBase


@pytest.fixture
def search_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each search ran: "index" (the index thread) or "here" (the caller's thread)."""
    threads: list[str] = []
    original = SearchIndex._search_sync
    here = threading.current_thread().name

    def spy(self: SearchIndex, *args: object):  # type: ignore[no-untyped-def]
        name = threading.current_thread().name
        threads.append("index" if name.startswith("kbbot-index") else "here" if name == here else name)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchIndex, "_search_sync", spy)
    return threads


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
        db.create_function("kbbot_index_text", 1, index_text)  # as every connection of kbbot's: the triggers use it
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


async def test_a_search_of_known_words_runs_here_when_the_index_thread_is_idle(
    tmp_path: Path, search_threads: list[str]
) -> None:
    # Handing a tantivy search to the index thread costs about what the search does; reading page texts or
    # writes to commit go to the index thread as before. The first search there read every word's page count
    # (the vocabulary), so a typo is corrected here too once the English word lists are loaded.
    from kbbot.search.spelling import is_english

    is_english("loaded")  # read from disk at the first call, whichever test makes it
    async with SearchIndex(tmp_path / "index.sqlite3", engine="tantivy") as index:
        await index.upsert_many([IndexedPage(id="v", title="VPN setup", text="Install WireGuard.")])
        assert await found(index, "vpn setup") == ["v"]  # writes to commit, words not yet seen
        assert await found(index, "vpn setup") == ["v"]
        assert await found(index, "wireguad") == ["v"]  # a typo
        assert [h.id for h in await index.search("vpn", texts=1)] == ["v"]
        await index.upsert(IndexedPage(id="w", title="VPN on Windows", text="Install the client."))
        assert set(await found(index, "vpn")) == {"v", "w"}  # the write is committed first
        assert set(await found(index, "vpn")) == {"v", "w"}
    assert search_threads == ["index", "here", "here", "index", "index", "here"]


async def test_a_reopened_index_reads_every_page_count_at_its_first_new_word(
    tmp_path: Path, search_threads: list[str]
) -> None:
    # Opened without a sync (a restart), the index knows no word's page count: the first search with a word
    # not yet seen reads them all on the index thread, so the next questions, new words and all, run here.
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path, engine="tantivy") as index:
        await index.upsert_many(
            [
                IndexedPage(id="v", title="VPN setup", text="Install WireGuard."),
                IndexedPage(id="p", title="Printers", text="Add the office printer."),
            ]
        )
    reads: list[str] = []
    async with SearchIndex(path, engine="tantivy") as index:
        index._db.set_trace_callback(reads.append)  # opened: its connection exists now
        assert await found(index, "vpn") == ["v"]
        assert await found(index, "office printer") == ["p"]
        assert await found(index, "wireguard") == ["v"]
    assert search_threads == ["index", "here", "here"]
    assert sum("pages_vocab" in sql for sql in reads) == 1  # all counts at once, not word by word


def test_tantivy_threads_share_two_malloc_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    # glibc's per-thread arenas kept what tantivy's finished writers freed (214 MB peak at 50,000 pages in
    # make bench, 117 MB with two arenas): the ranking limits them before tantivy starts a thread.
    from kbbot.search import tantivy_ranking

    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(tantivy_ranking.sys, "platform", "linux")
    monkeypatch.setattr(tantivy_ranking.ctypes, "CDLL", lambda name: Libc())
    tantivy_ranking._limit_malloc_arenas()
    assert calls == [(-8, 2)]  # M_ARENA_MAX (glibc malloc.h), 2
    monkeypatch.setattr(tantivy_ranking.ctypes, "CDLL", lambda name: object())  # no mallopt: musl
    tantivy_ranking._limit_malloc_arenas()


async def test_a_ranking_from_an_older_kbbot_is_rebuilt(tmp_path: Path) -> None:
    import tantivy

    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path, engine="tantivy") as index:
        await index.upsert(IndexedPage(id="a", title="Expenses", text="Receipts go to finance."))
    # The schema kbbot wrote before its ranking held title words (positions, no fast fields).
    folder = path.with_name(path.name + ".tantivy")
    for child in folder.iterdir():
        child.unlink()
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("rowid", stored=True, indexed=True)
    for name in ("title", "tags", "body"):
        builder.add_text_field(name, stored=False, tokenizer_name="whitespace")
    old = tantivy.Index(builder.build(), path=str(folder))
    writer = old.writer(heap_size=15_000_000, num_threads=1)
    writer.add_document(tantivy.Document(rowid=1, title="expens", tags="", body="receipt go to financ"))
    writer.commit()
    writer.wait_merging_threads()
    del writer, old
    async with SearchIndex(path, engine="tantivy") as index:
        hits = await index.search("receipts")
        assert [(h.id, h.title) for h in hits] == [("a", "Expenses")]


async def test_word_clauses_follow_the_index(tmp_path: Path) -> None:
    # The ranking leaves out the fields a word is in no page's of (kept until the index changes): a word
    # later written into a title must count there.
    async with SearchIndex(tmp_path / "index.sqlite3", engine="tantivy") as index:
        await index.upsert(IndexedPage(id="body", title="Hangars", text="A zeppelin hangar. " * 5))
        assert await found(index, "zeppelin") == ["body"]
        await index.upsert(IndexedPage(id="title", title="Zeppelin", text="Airships."))
        assert await found(index, "zeppelin") == ["title", "body"]
        await index.upsert(IndexedPage(id="title", title="Airships", text="Zeppelins and blimps."))
        assert await found(index, "zeppelin") == ["body", "title"]


async def test_a_search_after_a_sync_runs_here_and_another_processs_commit_goes_to_the_index_thread(
    tmp_path: Path, search_threads: list[str]
) -> None:
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path, engine="tantivy") as bot, SearchIndex(path, engine="tantivy") as cli:
        await bot.upsert_many([IndexedPage(id="v", title="VPN setup", text="Install WireGuard.")])
        await bot.flush()  # the end of a sync: committed, every word's page count in memory
        assert await found(bot, "wireguard") == ["v"]  # a word never searched before
        await cli.upsert(IndexedPage(id="w", title="VPN on Windows", text="Install the client."))
        await cli.flush()
        assert set(await found(bot, "vpn")) == {"v", "w"}  # counts read again, the new commit seen
        assert set(await found(bot, "vpn")) == {"v", "w"}
    assert search_threads == ["here", "index", "here"]


async def test_saved_chats_keep_their_place_with_tantivy(tmp_path: Path) -> None:
    # A saved chat among the candidates needs every candidate's row: read from SQLite as with FTS5.
    async with SearchIndex(tmp_path / "index.sqlite3", engine="tantivy") as index:
        await index.upsert_many(
            [
                IndexedPage(id="page", title="VPN setup", text="Install WireGuard and import the config."),
                IndexedPage(
                    id="chat",
                    title="VPN setup question",
                    text="How do I set up the VPN? See VPN setup: install WireGuard, import the config.",
                    saved_chat=True,
                ),
            ]
        )
        hits = await index.search("vpn setup wireguard")
        assert [(h.id, h.saved_chat) for h in hits] == [("page", False), ("chat", True)]


async def test_a_candidates_stored_page_is_read_once_until_the_index_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The title boost reads a candidate's title words and the hit's row from one stored value (a stored
    # document costs a few µs to read), kept while the searcher is the same: a hit's row is not read again,
    # nor a page that is a candidate again; a page written since (here or by another process) is read anew.
    import kbbot.search.tantivy_ranking as tantivy_ranking

    reads: list[str] = []  # the page ids of the stored values decoded
    original = tantivy_ranking.msgpack.unpackb

    def spy(packed: bytes) -> list[object]:
        value: list[object] = original(packed)
        reads.append(str(value[0]))
        return value

    monkeypatch.setattr(tantivy_ranking.msgpack, "unpackb", spy)
    pages = [
        IndexedPage(id=f"e{n}", title=f"Expense report {n}", url=f"https://kb.example/e{n}", text="Receipts. " * n)
        for n in range(1, 13)
    ]
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path, engine="tantivy") as index, SearchIndex(path, engine="tantivy") as other:
        await index.upsert_many(pages)
        await index.flush()
        hits = await index.search("expense receipts", limit=5)
        assert len(hits) == 5 and len(reads) == len(set(reads)) >= 5
        by_id = {page.id: page for page in pages}
        assert all((hit.title, hit.url) == (by_id[hit.id].title, by_id[hit.id].url) for hit in hits)
        reads.clear()
        assert await index.search("expense receipts", limit=5) == hits and reads == []
        # The same page (same rowid), its URL moved here, then its title changed by another process.
        moved = IndexedPage(id="e12", title="Expense report 12", url="https://kb.example/moved", text="Receipts. " * 12)
        await index.upsert(moved)
        assert {hit.id: hit.url for hit in await index.search("expense receipts", limit=12)}["e12"] == moved.url
        await other.upsert(IndexedPage(id="e12", title="Expense report twelve", text="Receipts. " * 12))
        await other.flush()
        titles = {hit.id: hit.title for hit in await index.search("expense receipts", limit=12)}
        assert titles["e12"] == "Expense report twelve"


SCORED = [
    IndexedPage(
        id="travel",
        title="Business travel",
        text="Book every trip in TripDesk. TripDesk holds the trip's receipts. Meals on a trip are covered.",
    ),
    IndexedPage(
        id="expenses",
        title="Expenses",
        text="Meals cost up to 60 EUR per day. Submit receipts for every expense within a month.",
    ),
    IndexedPage(
        id="cards",
        title="Company cards",
        tags=("expenses",),
        text="Ask finance for a card. A card is for travel and expenses.",
    ),
    IndexedPage(
        id="vpn", title="VPN setup", text="Install WireGuard. Ask IT for a config. The VPN is needed every day."
    ),
    IndexedPage(id="leave", title="Leave", text="Ask your manager for every day off. Sick days need a note."),
]


@pytest.mark.parametrize(
    "question",
    [
        "company card",  # title and tags: ten and four body hits, saturated together
        "card for travel",  # a title word on one page, in the body of another
        "vpn day",  # "day" is on most pages: FTS5's idf for it is about 0
        "meals per day on a trip",  # "trip" also as a prefix: "tripdesk" on the same page counts once
    ],
)
async def test_the_ranking_scores_as_fts5s_bm25(tmp_path: Path, question: str) -> None:
    # The answerer weighs each page's bm25 score against the best one's: the same pages in the same order with
    # about the same scores give the same answers whichever engine ranks (per field, tantivy scored "company
    # card" 81 against FTS5's 13, and a word on every page counted).
    async with (
        SearchIndex(tmp_path / "fts5.sqlite3") as fts5,
        SearchIndex(tmp_path / "tantivy.sqlite3", engine="tantivy") as tantivy,
    ):
        await fts5.upsert_many(SCORED)
        await tantivy.upsert_many(SCORED)
        expected, ranked = await fts5.search(question), await tantivy.search(question)
    assert [hit.id for hit in ranked] == [hit.id for hit in expected]
    for ours, theirs in zip(ranked, expected, strict=True):
        assert ours.score == pytest.approx(theirs.score, rel=0.15, abs=1e-3), ours.id


def test_fts5s_idf_says_nothing_of_a_word_on_half_of_the_pages_or_more() -> None:
    from math import log

    from kbbot.search.tantivy_ranking import fts5_idf, tantivy_idf

    assert fts5_idf(1, 5) == pytest.approx(log(4.5 / 1.5))
    assert fts5_idf(3, 5) == fts5_idf(5, 5) == fts5_idf(9, 5) == 1e-6  # half of the pages or more: nothing
    assert tantivy_idf(5, 5) == pytest.approx(log(1 + 0.5 / 5.5))  # tantivy's never reaches 0
