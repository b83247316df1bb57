"""Threads kbbot answered in: which replies there are follow-ups, and when to offer saving the thread.

Adapters call this with neutral keys (a thread: ``slack:C1:1700000000.000100``; one of kbbot's answer
messages: ``slack:msg:C1:1700000000.000200``) and act on the :class:`Decision`; the platform rules (what a
thread is, who may be answered, mentions) stay in the adapters. For a reply without a mention:

* a thread kbbot never answered in, or one where someone said "@kbbot stop" (or reacted 🛑): left alone;
* an acknowledgement ("thanks!", 👍): no answer, no AI call;
* after an empty or 👎'd answer, a person's reply that is not a question is someone answering where kbbot
  could not: kbbot offers, once per thread, to save the thread to the wiki;
* anything else is a follow-up, answered with the thread's earlier questions as its topic.

The store is a port (SQLite, or Redis shared by every replica); when it fails, replies are left alone (never
answered in a thread kbbot cannot tell is its own) and answers still go out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kbbot.core.followups import is_acknowledgement, is_question
from kbbot.core.ports import Conversation, ConversationStore, Deduper

log = logging.getLogger(__name__)

#: How long a thread is remembered after kbbot's last answer there.
DEFAULT_TTL_SECONDS = 30 * 24 * 3600
#: How many of a thread's questions are kept as its topic.
KEEP_QUESTIONS = 5


class Reply(StrEnum):
    IGNORE = "ignore"
    ACKNOWLEDGED = "acknowledged"
    ANSWER = "answer"
    OFFER_SAVE = "offer_save"
    #: A person answered after an empty answer, and saving was offered there already.
    QUIET = "quiet"


@dataclass(frozen=True, slots=True)
class Decision:
    reply: Reply
    #: For ``ANSWER``: the thread's earlier questions (``Question.earlier``); for ``OFFER_SAVE``: its questions.
    earlier: tuple[str, ...] = ()


class Conversations:
    """See the module doc. ``deduper`` makes the save offer once per thread across replicas."""

    def __init__(
        self, store: ConversationStore, deduper: Deduper, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self._store = store
        self._deduper = deduper
        self._ttl = ttl_seconds

    async def _get(self, key: str) -> Conversation | None:
        try:
            return await self._store.get(key)
        except Exception as exc:  # the store is down: behave as if kbbot never answered there
            log.warning("conversation store unavailable (%s); thread replies are left alone", type(exc).__name__)
            return None

    async def earlier(self, key: str) -> tuple[str, ...]:
        """The questions kbbot answered in thread ``key`` (for a mention there, which is asked like a
        follow-up)."""
        conversation = await self._get(key)
        return conversation.questions if conversation is not None else ()

    async def decide(self, key: str, text: str) -> Decision:
        """What to do with a person's reply ``text`` (no mention of kbbot) in thread ``key``."""
        conversation = await self._get(key)
        if conversation is None or conversation.stopped:
            return Decision(Reply.IGNORE)
        if is_acknowledgement(text):
            return Decision(Reply.ACKNOWLEDGED)
        if conversation.needs_help and not is_question(text):
            if conversation.save_offered:
                return Decision(Reply.QUIET)
            # The deduper settles a race between replicas; the stored flag keeps it once across restarts.
            if not await self._deduper.first_seen(f"followups:offer:{key}", self._ttl):
                return Decision(Reply.QUIET)
            await self._update(key, lambda c: dataclasses.replace(c, save_offered=True))
            return Decision(Reply.OFFER_SAVE, conversation.questions)
        return Decision(Reply.ANSWER, conversation.questions)

    async def answered(
        self, key: str, question: str, *, empty: bool, messages: Sequence[str] = ()
    ) -> None:
        """kbbot answered ``question`` in thread ``key`` (``messages``: the keys of its answer's messages, so a
        reaction on or a reply to one of them finds the thread)."""
        try:
            before = await self._store.get(key) or Conversation()
            questions = (*before.questions, question)[-KEEP_QUESTIONS:]
            await self._store.put(key, dataclasses.replace(before, questions=questions, needs_help=empty), self._ttl)
            for message in messages:
                await self._store.link(message, key, self._ttl)
        except Exception as exc:  # the answer is out; only the follow-ups in this thread are lost
            log.warning("could not remember the thread answered in (%s)", type(exc).__name__)

    async def thread_of(self, message_key: str) -> str | None:
        """The thread of one of kbbot's answer messages, or None."""
        try:
            return await self._store.thread_of(message_key)
        except Exception as exc:
            log.warning("conversation store unavailable (%s)", type(exc).__name__)
            return None

    async def downvoted(self, key: str) -> None:
        """kbbot's answer in thread ``key`` got a 👎: the next person's answer there is worth saving."""
        await self._update(key, lambda c: dataclasses.replace(c, needs_help=True))

    async def stop(self, key: str) -> bool:
        """End follow-ups in thread ``key``; False when kbbot never answered there (nothing to stop)."""
        return await self._update(key, lambda c: dataclasses.replace(c, stopped=True))

    async def _update(self, key: str, change: Callable[[Conversation], Conversation]) -> bool:
        try:
            conversation = await self._store.get(key)
            if conversation is None:
                return False
            await self._store.put(key, change(conversation), self._ttl)
            return True
        except Exception as exc:
            log.warning("could not update the conversation (%s)", type(exc).__name__)
            return False
