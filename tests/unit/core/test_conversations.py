"""Conversations: the decision for each reply in a thread, over the real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kbbot.core.conversations import KEEP_QUESTIONS, Conversations, Reply
from kbbot.core.ports import Conversation
from kbbot.store.conversations import SqliteConversations
from kbbot.store.memory import MemoryDeduper

T = "slack:C0GENERAL:1700000100.000100"


@pytest.fixture
async def conversations(tmp_path: Path) -> AsyncIterator[Conversations]:
    store = SqliteConversations(tmp_path / "c.sqlite3")
    yield Conversations(store, MemoryDeduper())
    await store.aclose()


async def test_foreign_threads_are_left_alone(conversations: Conversations) -> None:
    assert (await conversations.decide(T, "and on a Mac?")).reply is Reply.IGNORE


async def test_follow_up_gets_the_earlier_questions(conversations: Conversations) -> None:
    await conversations.answered(T, "How do I set up the VPN?", empty=False)
    decision = await conversations.decide(T, "and on a Mac?")
    assert decision.reply is Reply.ANSWER and decision.earlier == ("How do I set up the VPN?",)
    assert (await conversations.decide(T, "thanks!")).reply is Reply.ACKNOWLEDGED


async def test_after_an_empty_answer_a_person_answering_gets_one_save_offer(conversations: Conversations) -> None:
    await conversations.answered(T, "Where is the printer?", empty=True)
    assert (await conversations.decide(T, "It's on the 3rd floor, next to the kitchen")).reply is Reply.OFFER_SAVE
    assert (await conversations.decide(T, "And it needs a badge to print")).reply is Reply.QUIET
    # A question there is still a follow-up.
    assert (await conversations.decide(T, "which floor?")).reply is Reply.ANSWER


async def test_downvote_and_stop(conversations: Conversations) -> None:
    assert not await conversations.stop(T)  # never answered there
    await conversations.answered(T, "How do I set up the VPN?", empty=False, messages=["slack:msg:C1:1.2"])
    assert await conversations.thread_of("slack:msg:C1:1.2") == T
    await conversations.downvoted(T)
    assert (await conversations.decide(T, "Use the new portal instead")).reply is Reply.OFFER_SAVE
    assert await conversations.stop(T)
    assert (await conversations.decide(T, "and on a Mac?")).reply is Reply.IGNORE


async def test_a_good_answer_after_an_empty_one_clears_the_need(conversations: Conversations) -> None:
    await conversations.answered(T, "printer?", empty=True)
    await conversations.answered(T, "How do I set up the VPN?", empty=False)
    assert (await conversations.decide(T, "I use WireGuard")).reply is Reply.ANSWER


async def test_only_the_last_questions_are_kept(conversations: Conversations) -> None:
    for i in range(KEEP_QUESTIONS + 3):
        await conversations.answered(T, f"question {i}", empty=False)
    assert len(await conversations.earlier(T)) == KEEP_QUESTIONS


class Broken:
    async def get(self, key: str) -> Conversation | None:
        raise ConnectionError("redis went away")

    async def put(self, key: str, conversation: Conversation, ttl_seconds: int) -> None:
        raise ConnectionError("redis went away")

    async def link(self, message_key: str, key: str, ttl_seconds: int) -> None:
        raise ConnectionError("redis went away")

    async def thread_of(self, message_key: str) -> str | None:
        raise ConnectionError("redis went away")

    async def aclose(self) -> None:
        return None


async def test_a_store_outage_leaves_replies_alone_and_never_raises() -> None:
    conversations = Conversations(Broken(), MemoryDeduper())
    await conversations.answered(T, "vpn?", empty=False)
    assert (await conversations.decide(T, "and on a Mac?")).reply is Reply.IGNORE
    assert await conversations.thread_of("x") is None
    assert not await conversations.stop(T)


async def test_the_save_offer_stays_made_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = SqliteConversations(path)
    await Conversations(store, MemoryDeduper()).answered(T, "Where is the printer?", empty=True)
    assert (await Conversations(store, MemoryDeduper()).decide(T, "Third floor")).reply is Reply.OFFER_SAVE
    await store.aclose()
    again = SqliteConversations(path)  # a restart: the in-memory deduper is new
    assert (await Conversations(again, MemoryDeduper()).decide(T, "Next to the kitchen")).reply is Reply.QUIET
    await again.aclose()
