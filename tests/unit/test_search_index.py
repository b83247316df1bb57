from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbbot.search.index import (
    ENGINES,
    MARK_CLOSE,
    MARK_OPEN,
    IndexedPage,
    SearchIndex,
    SearchIndexError,
    index_path,
)


@pytest.fixture(params=ENGINES)
async def index(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SearchIndex]:
    """Every test runs on both rankings: the contract is the same."""
    async with SearchIndex(tmp_path / "data" / "index.sqlite3", engine=request.param) as idx:
        yield idx


@pytest.fixture
async def sqlite_index(tmp_path: Path) -> AsyncIterator[SearchIndex]:
    """For what only FTS5's ranking does."""
    async with SearchIndex(tmp_path / "data" / "index.sqlite3") as idx:
        yield idx


PAGES = [
    IndexedPage(id="vpn", title="VPN setup", tags=("network",), text="Install WireGuard and import the config."),
    IndexedPage(
        id="travel",
        title="Business travel",
        tags=("travel",),
        text="Hotel Wi-Fi may block UDP. Use the VPN profile over TCP when travelling. " * 3,
    ),
    IndexedPage(
        id="deploy",
        title="Deploying services",
        tags=("deploys", "kubernetes"),
        text="Merge to main, then promote with ./scripts/promote. Rollback by reverting the promotion.",
    ),
]


async def test_title_outranks_body_and_tags_outrank_body(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    hits = await index.search("vpn")
    assert [h.id for h in hits] == ["vpn", "travel"]  # title match first, though the body mentions it 3x
    hits = await index.search("kubernetes")
    assert [h.id for h in hits] == ["deploy"]
    assert hits[0].score > 0
    assert hits[0].tags == ("deploys", "kubernetes")


async def test_snippet_marks_matches(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    [hit] = await index.search("rollback", snippets=True)
    assert f"{MARK_OPEN}Rollback{MARK_CLOSE}" in hit.marked_snippet
    assert MARK_OPEN not in hit.snippet and "Rollback by reverting" in hit.snippet
    assert hit.to_json() == {
        "id": "deploy",
        "title": "Deploying services",
        "url": None,
        "score": round(hit.score, 4),
        "snippet": hit.snippet,
    }


async def test_no_snippet_or_text_unless_asked(index: SearchIndex) -> None:
    # The answer path quotes passages from the page text and never shows excerpts: cutting them was wasted.
    await index.upsert_many(PAGES)
    [hit] = await index.search("rollback")
    assert hit.marked_snippet == "" and hit.text is None


async def test_texts_come_with_the_first_hits(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    hits = await index.search("vpn", texts=1)
    assert [h.id for h in hits] == ["vpn", "travel"]
    assert hits[0].text == "Install WireGuard and import the config." and hits[1].text is None
    assert hits[0].page_text().text == hits[0].text and hits[0].page_text().title == "VPN setup"
    assert [h.text is not None for h in await index.search("vpn", texts=99)] == [True, True]


async def test_a_word_on_most_pages_does_not_change_the_ranking(sqlite_index: SearchIndex) -> None:
    index = sqlite_index
    # "guide" is on 5 of 8 pages: bm25 clamps its idf to ~0, so the pages with the rarer word are ranked by
    # it alone (the title boost still counts "guide"), and the guide-only pages follow when there is room.
    pages = [
        IndexedPage(id="a", title="Guide", text="guide guide guide. nothing else"),
        IndexedPage(id="b", title="Other", text="the wireguard guide for laptops"),
        IndexedPage(id="c", title="Wireguard guide", text="wireguard setup"),
        IndexedPage(id="e", title="Guide two", text="guide"),
        IndexedPage(id="f", title="Guide three", text="guide"),
        *(IndexedPage(id=f"x{n}", title="Unrelated", text="hotel booking") for n in range(3)),
    ]
    await index.upsert_many(pages)
    hits = await index.search("wireguard guide")
    assert [h.id for h in hits[:2]] == ["c", "b"] and {h.id for h in hits[2:]} == {"a", "e", "f"}
    assert {h.id for h in await index.search("guide")} == {"a", "b", "c", "e", "f"}
    # The common word is dropped from the middle; the last word keeps its prefix match.
    assert [h.id for h in await index.search("guide wiregu", limit=2)] == ["c", "b"]


async def test_stemming_and_last_term_prefix(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    assert [h.id for h in await index.search("deploying")] == ["deploy"]
    assert [h.id for h in await index.search("how to promo")] == ["deploy"]  # last word as typed so far


HOSTILE = [
    '"',
    '""',
    "*",
    "vpn*",
    "NEAR(",
    "NEAR(vpn travel, 2)",
    "-",
    "-vpn",
    ":",
    "title:vpn",
    "^vpn",
    "(",
    ")",
    "((vpn",
    "vpn))",
    "AND",
    "OR",
    "NOT",
    "vpn AND",
    "OR vpn NOT",
    "🤖",
    "vpn 🚀🔥",
    "'; DROP TABLE pages; --",
    "\x00\x01vpn\x7f",
    "\u202evpn\u202c",
    "ｖｐｎ",
    "{col1 col2}: vpn",
    "vpn + travel",
    "",
    "   ",
    "?",
    "a" * 5000,
    "vpn " * 25_000,
]


@pytest.mark.parametrize("question", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_questions_never_raise(index: SearchIndex, question: str) -> None:
    await index.upsert_many(PAGES)
    hits = await index.search(question)
    if "vpn" in question.casefold() and "title:" not in question:
        assert "vpn" in [h.id for h in hits]


async def test_100kb_question(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    hits = await index.search("rollback " + "lorem ipsum dolor " * 6000)
    assert [h.id for h in hits] == ["deploy"]


async def test_unchanged_page_is_not_rewritten(index: SearchIndex) -> None:
    assert await index.upsert(PAGES[0]) is True
    assert await index.upsert(PAGES[0]) is False
    changed = IndexedPage(id="vpn", title="VPN setup", tags=("network",), text="Now with OpenVPN too.")
    assert await index.upsert(changed) is True
    assert [h.id for h in await index.search("openvpn")] == ["vpn"]
    assert await index.search("wireguard") == []  # old text gone from FTS
    assert await index.count() == 1


async def test_delete_states_texts_urls_meta(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    states = await index.states()
    assert set(states) == {"vpn", "travel", "deploy"}
    assert states["deploy"].tags == ("deploys", "kubernetes")
    await index.set_urls({"vpn": "https://wiki.example/vpn"})
    [text] = await index.texts(["vpn"])
    assert text.url == "https://wiki.example/vpn" and text.text.startswith("Install WireGuard")
    assert [t.id for t in await index.texts(["deploy", "missing", "vpn"])] == ["deploy", "vpn"]
    assert await index.delete(["vpn", "missing"]) == 1
    assert await index.search("wireguard") == []
    await index.set_meta("last_sync", "123")
    assert await index.get_meta("last_sync") == "123"
    assert await index.get_meta("nope") is None


async def test_hits_carry_the_url_as_it_changes(index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    # The tantivy ranking holds each hit's row: a URL changed without the content (a new URL template, a
    # renamed slug) must reach it as SQLite's does.
    from dataclasses import replace

    from kbbot.search import index as index_module

    monkeypatch.setattr(index_module, "_URL_BATCH", 2)  # a big template change goes a few pages at a time
    await index.upsert_many(PAGES)
    await index.set_urls({"vpn": "https://wiki.example/v", "travel": "https://wiki.example/t", "deploy": None})
    hits = {h.id: h.url for h in await index.search("vpn travel deploying")}
    assert hits == {"vpn": "https://wiki.example/v", "travel": "https://wiki.example/t", "deploy": None}
    assert await index.upsert(replace(PAGES[0], url="https://wiki.example/vpn-setup")) is False  # same content
    [hit] = await index.search("wireguard")
    assert (hit.id, hit.title, hit.tags) == ("vpn", "VPN setup", ("network",))
    assert hit.url == "https://wiki.example/vpn-setup"
    await index.set_urls({})
    assert (await index.search("wireguard"))[0].url == "https://wiki.example/vpn-setup"


async def test_survives_reopen(tmp_path: Path) -> None:
    path = index_path(tmp_path, "local")
    async with SearchIndex(path) as first:
        await first.upsert_many(PAGES)
    async with SearchIndex(path) as second:
        assert await second.count() == 3


async def test_corrupt_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    async with SearchIndex(path) as index:
        assert await index.count() == 0
        await index.upsert(PAGES[0])
    assert list(tmp_path.glob("index.sqlite3.broken-*"))


async def test_old_schema_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT); "
        "INSERT INTO meta VALUES ('schema_version', '0'); CREATE TABLE pages(x);"
    )
    conn.close()
    async with SearchIndex(path) as index:
        await index.upsert(PAGES[0])
        assert [h.id for h in await index.search("vpn")] == ["vpn"]


async def test_runs_off_the_event_loop_thread(sqlite_index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    # (SEARCH_ENGINE=tantivy runs a search it can plan from memory on the caller's thread: test_search_tantivy.py.)
    index = sqlite_index
    threads: set[str] = set()
    original = SearchIndex._search_sync

    def spy(self: SearchIndex, *args: object):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchIndex, "_search_sync", spy)
    await index.upsert_many(PAGES)
    await asyncio.gather(*(index.search("vpn") for _ in range(5)))
    assert threads and all(name.startswith("kbbot-index") for name in threads)


async def test_closed_index_refuses(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "i.sqlite3")
    with pytest.raises(RuntimeError):
        await index.search("vpn")
    await index.open()
    await index.aclose()
    await index.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await index.count()


async def test_unicode_and_diacritics(index: SearchIndex) -> None:
    await index.upsert(IndexedPage(id="cafe", title="Café opening hours", text="Das Café öffnet um 8 Uhr. 日本語"))
    assert [h.id for h in await index.search("cafe")] == ["cafe"]
    assert [h.id for h in await index.search("offnet")] == ["cafe"]


async def test_lone_surrogates_are_stored_not_fatal(index: SearchIndex) -> None:
    await index.upsert(IndexedPage(id="s", title="Broken \ud800 title", tags=("t\udfff",), text="zebra \ud83d"))
    [hit] = await index.search("zebra")
    assert hit.title == "Broken ? title" and hit.tags == ("t?",)


async def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(SearchIndexError) as caught:
        await SearchIndex(blocker / "index.sqlite3").open()
    assert "KBBOT_DATA_DIR" in str(caught.value) and str(blocker) in str(caught.value)


async def test_broken_file_while_open_degrades_search_and_names_the_file(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    await index.upsert_many(PAGES)

    def broken(*args: object) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(SearchIndex, "_states_sync", broken)
    with pytest.raises(SearchIndexError) as caught:
        await index.states()
    assert str(index.path) in str(caught.value) and "delete the file" in str(caught.value)
    await index._run(lambda: index._db.execute("DROP TABLE pages_fts"))
    assert await index.search("vpn") == []  # the answer pipeline keeps going


async def test_ranking_without_the_common_words_is_the_full_rankings(
    sqlite_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = sqlite_index
    # Enough pages hold the rarer words for the cheaper expression to be used: same pages, same order, scores
    # within the 1e-6 idf of each common word (pages of distinct lengths: a tie could go either way).
    pages = [
        IndexedPage(
            id=f"w{n}",
            title=f"Wireguard {'guide' if n % 3 else 'notes'} {n}",
            text="wireguard " * (n % 5 + 1) + "guide " * (n % 4) + "laptop" + " filler" * n,  # no two alike
        )
        for n in range(20)
    ] + [IndexedPage(id=f"g{n}", title="Guide", text="guide " * (n + 1)) for n in range(25)]
    await index.upsert_many(pages)
    questions = ["wireguard guide", "guide for a wireguard laptop", "guide wiregu", "laptop guide"]
    cheap = [await index.search(q, limit=5) for q in questions]
    monkeypatch.setattr("kbbot.search.index._ranking_match", lambda plan: None)
    full = [await index.search(q, limit=5) for q in questions]
    assert [[h.id for h in hits] for hits in cheap] == [[h.id for h in hits] for hits in full]
    assert [h.score for hits in cheap for h in hits] == pytest.approx(
        [h.score for hits in full for h in hits], abs=1e-4
    )
    assert all(len(hits) == 5 for hits in cheap)


async def test_a_question_on_many_pages_ranks_a_smaller_set_first(
    sqlite_index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first pass for big wikis, at a budget small enough for a test: the pages holding every word come
    # first (FTS5's AND, with their full bm25), then the pages of the rarest word; pages that hold only the
    # commoner words are not scored.
    index = sqlite_index
    monkeypatch.setattr("kbbot.search.index._EXACT_PAGES", 5)
    pages = (
        [IndexedPage(id=f"a{n}", title=f"Alpha notes {n}", text="alpha " * (n + 1)) for n in range(8)]
        + [IndexedPage(id=f"b{n}", title=f"Beta notes {n}", text="beta " * (n + 1)) for n in range(8)]
        + [IndexedPage(id="all", title="Reference", text="alpha beta gamma")]
        + [IndexedPage(id="g", title="Gamma", text="gamma rays")]
        + [IndexedPage(id=f"f{n}", title=f"Filler {n}", text="nothing to see") for n in range(20)]
    )
    await index.upsert_many(pages)
    statements: list[str] = []
    await index._run(lambda: index._db.set_trace_callback(statements.append))
    hits = await index.search("alpha beta gamma", limit=2)
    assert {h.id for h in hits} == {"all", "g"}
    ranked = [sql for sql in statements if "bm25" in sql]
    assert len(ranked) == 2 and '"gamma"* AND "alpha" AND "beta"' in ranked[0]  # rarest first
    assert "MATCH '\"gamma\"*'" in ranked[1]  # the 16 alpha or beta pages are never scored
    # Too few pages for the limit: the full ranking, as on a small wiki.
    statements.clear()
    hits = await index.search("alpha beta gamma", limit=5)
    assert {h.id for h in hits[:2]} == {"all", "g"} and len(hits) == 5
    assert any('"alpha" OR "beta" OR "gamma"' in sql for sql in statements)


async def test_cached_word_counts_follow_writes(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    assert await index.search("zeppelin") == []
    await index.upsert(IndexedPage(id="z", title="Airships", text="The zeppelin hangar."))
    assert [h.id for h in await index.search("zeppelin")] == ["z"]
    await index.delete(["z"])
    assert await index.search("zeppelin") == []


async def test_the_plans_page_counts_follow_writes(index: SearchIndex) -> None:
    # A word's Term is made once per page count (kept until the index changes).
    await index.upsert(IndexedPage(id="z", title="Airships", text="The zeppelin hangar."))
    assert [t.docs for t in (await index.query("zeppelin hangar")).plan.terms] == [1, 1]
    assert [t.docs for t in (await index.query("zeppelin hangar")).plan.terms] == [1, 1]
    await index.upsert(IndexedPage(id="y", title="Zeppelins", text="More about the zeppelin."))
    assert [t.docs for t in (await index.query("zeppelin hangar")).plan.terms] == [2, 1]
    await index.delete(["z"])
    assert [(t.stem, t.docs) for t in (await index.query("zeppelin")).plan.terms] == [("zeppelin", 1)]


async def test_the_vocabulary_read_at_flush_serves_every_word_count(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    await index.flush()  # the end of a sync: every word's page count is read once
    statements: list[str] = []
    await index._run(lambda: index._db.set_trace_callback(statements.append))
    assert [h.id for h in await index.search("promote rollback")] == ["deploy"]
    assert [h.id for h in await index.search("wireguad")] == ["vpn"]  # a typo, corrected from memory
    assert [h.id for h in await index.search("how do I deplo")] == ["deploy"]  # a prefix, counted from memory
    assert not [sql for sql in statements if "pages_vocab" in sql]
    # A flush with nothing written reads nothing again.
    statements.clear()
    await index.flush()
    assert not [sql for sql in statements if "pages_vocab" in sql]


async def test_how_an_unknown_word_is_read_follows_writes(index: SearchIndex) -> None:
    await index.upsert_many(PAGES)
    await index.flush()
    assert await index.search("zeppelin") == []
    assert await index.search("zepelin") == []  # nothing close: remembered as found nowhere
    await index.upsert(IndexedPage(id="z", title="Airships", text="The zeppelin hangar."))
    assert [h.id for h in await index.search("zeppelin")] == ["z"]
    assert [h.id for h in await index.search("zepelin")] == ["z"]  # now a typo of a word the index has
    await index.flush()
    assert [h.id for h in await index.search("zepelin")] == ["z"]
    await index.delete(["z"])
    assert await index.search("zeppelin") == [] and await index.search("zepelin") == []


async def test_word_caches_follow_another_processs_writes(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path) as bot, SearchIndex(path) as cli:
        await bot.upsert_many(PAGES)
        await bot.flush()
        assert await bot.search("zeppelin") == []
        await cli.upsert(IndexedPage(id="z", title="Airships", text="The zeppelin hangar."))
        assert [h.id for h in await bot.search("zeppelin")] == ["z"]  # PRAGMA data_version moved


async def test_word_caches_stay_bounded(index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    from kbbot.search import index as index_module

    monkeypatch.setattr(index_module, "_MAX_CACHED_WORDS", 10)
    await index.upsert_many(PAGES)
    await index.flush()
    for n in range(60):  # a flood of words no page has (a pasted log, a bot spamming)
        assert await index.search(f"qzx{n}word vpn") != []
        assert len(index._unknown) <= 11 and len(index._word_docs) <= 11 + 2


def test_title_boost_reads_only_the_titles_that_can_reach_the_top() -> None:
    import random

    from kbbot.search import index as index_module
    from kbbot.search.query import matched_terms, word_stems
    from kbbot.search.tantivy_ranking import Candidate

    rng = random.Random(5)
    words = ["vpn", "laptop", "deploy", "guide", "notes"]
    stemmed = {"vpn", "laptop"}
    for _ in range(50):
        titles = {n: " ".join(rng.sample(words, 2)) for n in range(30)}
        ranked = [Candidate(n, rng.uniform(0.1, 10.0) / (n + 1), False) for n in range(30)]
        expected = sorted(
            (
                (c.score * (1 + index_module.TITLE_BOOST * len(matched_terms(titles[c.rowid], stemmed)) / 2), c.rowid)
                for c in ranked
            ),
            reverse=True,
        )[:5]
        read: list[int] = []

        def title_words(c: Candidate, read: list[int] = read, titles: dict[int, str] = titles) -> list[str]:
            read.append(c.rowid)
            return word_stems(titles[c.rowid])

        got = index_module._title_boosted(ranked, title_words, stemmed, 5, every=False)[:5]
        assert [(round(score, 9), c.rowid) for score, c in got] == [(round(s, 9), r) for s, r in expected]
        assert len(read) < len(ranked)  # the tail's titles are never read


async def test_irregular_forms_and_hyphenated_compounds_find_their_pages(index: SearchIndex) -> None:
    await index.upsert_many(
        [
            IndexedPage(id="retention", title="Data retention", tags=(), text="Slack messages are kept for 2 years."),
            IndexedPage(id="rota", title="On-call", tags=(), text="The rotation starts on Mondays."),
            IndexedPage(id="phone", title="Phones", tags=(), text="Call the helpdesk."),
        ]
    )
    assert [h.id for h in await index.search("how long do we keep slack messages")][:1] == ["retention"]
    assert [h.id for h in await index.search("who is on call")][:1] == ["rota"]


@pytest.mark.parametrize("old_version", ["4", "5.000000000000"])
async def test_an_index_of_an_older_schema_is_rebuilt_for_the_word_forms(tmp_path: Path, old_version: str) -> None:
    # An index written before base forms (schema 4), or with another table of them, holds other words: it must
    # be emptied so the next sync writes every page again, not searched with "keep" and silently miss.
    path = tmp_path / "index.sqlite3"
    async with SearchIndex(path) as index:
        await index.upsert(IndexedPage(id="r", title="Retention", tags=(), text="Kept for 2 years."))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (old_version,))
    conn.commit()
    conn.close()
    async with SearchIndex(path) as index:
        assert await index.count() == 0
        await index.upsert(IndexedPage(id="r", title="Retention", tags=(), text="Kept for 2 years."))
        assert [h.id for h in await index.search("keep")] == ["r"]
