"""What the composition root hands a chat adapter (Slack, Discord): one object, passed on as is through the
adapter's layers (service → app → handlers), so no layer restates the list. Built by ``Runtime.chat_services``."""

from __future__ import annotations

from dataclasses import dataclass

from kbbot.core.conversations import Conversations
from kbbot.core.ports import Asking, Deduper, FeedbackStore, Saving
from kbbot.core.routing import KnowledgebaseRouter
from kbbot.ops.shutdown import InFlight
from kbbot.reports.digest import GapsReport


@dataclass(frozen=True, slots=True)
class ChatServices:
    ask: Asking
    saver: Saving
    feedback: FeedbackStore
    #: Redelivered events are answered once (Slack; Discord's gateway does not redeliver).
    deduper: Deduper
    #: Marks each handled event as in flight (``TaskTracker.work`` in ``kbbot run``: one drain for every
    #: adapter); None: the adapter tracks its own (Slack) or none (Discord).
    in_flight: InFlight | None = None
    #: Several knowledgebases: ``use NAME`` and ``status`` of the channel's one; None: ask/saver are the only one.
    router: KnowledgebaseRouter | None = None
    #: The knowledge-gaps report for admins; None: not offered.
    gaps: GapsReport | None = None
    #: Threads kbbot answered in, which turns on follow-ups; None: replies without a mention are not answered.
    conversations: Conversations | None = None
