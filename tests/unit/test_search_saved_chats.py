"""A saved chat never outranks the page it quotes, kbbot's marker lines never reach an answer, and a chat saved
without an answer does not answer its own question."""

from __future__ import annotations

from pathlib import Path

from kbbot.backends.local import LocalBackend
from kbbot.core.page_block import begin_marker_text, marker_text, strip_markers
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.extract import to_text
from kbbot.search.index import IndexedPage, SearchIndex
from kbbot.search.query import stem
from kbbot.search.saved_chats import below_their_sources, is_saved_chat, not_an_answer
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


def _chat(title: str, *messages: tuple[str, str]) -> str:
    """A saved chat page as the local backend stores it (the layout of ``SAVED_CHAT``)."""
    body = "".join(f"**{who}** · 2026-12-01 11:40 UTC\n\n{text}\n\n" for who, text in messages)
    return f'---\ntitle: "{title}"\ntags: ["terminal"]\n---\n\n{BEGIN}\n\n# {title}\n\n{body}---\n\n{END}\n'


QUESTION = "what is the capital of France?"
STEMS = {stem("capital"), stem("france")}


def test_rule_the_question_and_kbbots_dont_know_are_no_answer() -> None:
    # kbbot's don't-know in each wording it is saved with (search answer; Slack and Discord, + related pages).
    assert not_an_answer("I couldn't find this in the wiki.", STEMS)
    assert not_an_answer("I couldn\u2019t find this in the wiki. These pages may be related.", STEMS)
    assert not_an_answer("I couldn't find anything about that in the wiki.\nCapital of France: maybe", STEMS)
    # The question again, in other words, with more words, or only a "+1".
    assert not_an_answer(QUESTION, STEMS)
    assert not_an_answer("Same here, the capital of France", STEMS)
    assert not_an_answer("And what's the capital city of France? Or of Germany?", STEMS)
    assert not_an_answer("+1", STEMS)
    # What people replied answers, also when it ends by asking something.
    assert not not_an_answer("Paris is the capital of France.", STEMS)
    assert not not_an_answer("It's Paris. Does that help?", STEMS)
    assert not not_an_answer("```\ngrep -E 'capital|France?'\n```", STEMS)


async def _answer(tmp_path: Path, page: str, question: str = QUESTION) -> tuple[str, bool]:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "geography.md").write_text(page)
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        await IndexSyncer(LocalBackend(None, pages), index).sync()
        answer = await SearchAnswerer(index).answer(question)
    return answer.text, answer.empty


async def test_a_terminal_chat_saved_without_an_answer_does_not_answer_itself(tmp_path: Path) -> None:
    page = _chat("Geography", ("root", QUESTION), ("kbbot", "I couldn't find this in the wiki."))
    text, empty = await _answer(tmp_path, page)
    assert empty and QUESTION not in text


async def test_a_slack_thread_saved_without_an_answer_does_not_answer_itself(tmp_path: Path) -> None:
    # The Slack/Discord don't-know wording, then someone asking the same again.
    page = _chat(
        "Capital of France",
        ("alice", "Quick one: what is the capital of France?"),
        ("kbbot", "I couldn't find anything about that in the wiki.\nThese pages may be related."),
        ("bob", "+1, what's the capital of France?"),
    )
    text, empty = await _answer(tmp_path, page, "capital of France")
    assert empty and "capital" not in text


async def test_a_saved_chat_answers_with_what_people_replied(tmp_path: Path) -> None:
    page = _chat(
        "Geography",
        ("root", QUESTION),
        ("kbbot", "I couldn't find this in the wiki."),
        ("alice", "Paris has been the capital of France since 987."),
    )
    text, empty = await _answer(tmp_path, page)
    assert not empty
    assert "Paris has been the capital of France" in text and QUESTION not in text and "couldn't" not in text
