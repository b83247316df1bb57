"""A saved chat never outranks the page it quotes, and kbbot's marker lines never reach an answer."""

from __future__ import annotations

from pathlib import Path

from kbbot.backends.local import LocalBackend
from kbbot.core.page_block import begin_marker_text, marker_text, strip_markers
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.extract import to_text
from kbbot.search.index import IndexedPage, SearchIndex
from kbbot.search.saved_chats import below_their_sources, is_saved_chat
from kbbot.search.sync import IndexSyncer

BEGIN, END = begin_marker_text("abf5f4902726bef4cf20", 1), marker_text("abf5f4902726bef4cf20", 1)

# The page kbbot writes when a terminal chat is saved (local backend, Markdown), trimmed.
SAVED_CHAT = f"""---
title: "Rollback chat"
tags: ["terminal"]
---

{BEGIN}

# Rollback chat

**root** · 2026-12-01 09:38 UTC

how do I roll back a deploy

**kbbot** · 2026-12-01 09:38 UTC

From the wiki:

> Rolling back
> Argo CD keeps the last ten revisions. The fastest rollback is to revert the promotion pull request:
> ```
> ./scripts/promote <service> --rollback
> ```

— **Deploying services**

Related pages: Deploying services

---

{END}
"""


def test_markers_are_stripped_from_markdown_and_html() -> None:
    assert strip_markers(f"a\n\n{BEGIN}\n\nb\n\n{END}\n") == "a\n\nb\n\n"
    html = f"<p><small>{BEGIN}</small></p><p>body</p><p><small>{END}</small></p>"
    assert to_text(html, "html") == "body"
    assert "kbbot-thread" not in to_text(SAVED_CHAT, "markdown")
    # A person's text that merely names the word is not a marker and stays.
    assert strip_markers("see kbbot-thread: docs") == "see kbbot-thread: docs"
    assert is_saved_chat(SAVED_CHAT) and not is_saved_chat("plain page")


def test_rule_places_a_chat_right_below_the_page_it_quotes() -> None:
    page = (5.0, 1, ("deploys", "Deploying services", None, "[]", 0))
    other = (4.0, 2, ("x", "Welcome", None, "[]", 0))
    chat = (9.0, 3, ("chat", "Rollback chat", None, "[]", 1))
    lone = (8.0, 4, ("chat2", "Lunch chat", None, "[]", 1))
    below = (3.0, 5, ("chat3", "Old chat", None, "[]", 1))
    bodies = {3: "— Deploying services … — Welcome", 4: "pizza", 5: "— Deploying services"}
    ranked = below_their_sources([chat, lone, page, other, below], bodies)
    # Below the best page it quotes (not below every one); a chat quoting nothing found keeps its place.
    assert [r[1] for r in ranked] == [4, 1, 3, 2, 5]
    assert ranked[2][0] == 5.0  # capped at its source's score: scores still read best first


async def test_saved_chat_ranks_below_its_source_and_answers_quote_no_marker(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "rollback-chat.md").write_text(SAVED_CHAT)
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        await IndexSyncer(LocalBackend(None, pages), index).sync()
        hits = await index.search("how do I roll back a deploy")
        titles = [hit.title for hit in hits]
        assert titles.index("Deploying services") < titles.index("Rollback chat")
        answer = await SearchAnswerer(index).answer("how do I roll back a deploy")
    assert answer.related_pages[0].title == "Deploying services"
    assert "kbbot-thread" not in answer.text
    assert all("kbbot-thread" not in hit.snippet for hit in hits)


async def test_an_old_schema_index_is_rebuilt(tmp_path: Path) -> None:
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        await index.upsert(IndexedPage(id="a", title="A", text="alpha"))
        await index.set_meta("schema_version", "1")
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        assert await index.count() == 0  # emptied: the next sync refills it with the saved-chat flags
