"""Several knowledgebases behind one bot: which one answers a question, and which one keeps a saved thread.

Adapters keep talking to one :class:`~kbbot.core.ports.Asking` and one :class:`~kbbot.core.ports.Saving`;
:class:`KnowledgebaseRouter` is both, and hands each question or thread to the knowledgebase its place routes
to: the first of :attr:`Question.places` (most specific first: channel, parent channel, server) that has a
route, else — in a direct message — the knowledgebase the person chose, else the default. Nothing else is
shared: each knowledgebase keeps its own cache, quota breaker, limiter, index and outbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from kbbot.core.models import Answer, Question, SavedPage, Thread
from kbbot.core.ports import Asking, Saving

if TYPE_CHECKING:
    from kbbot.core.ask import AskStatus, QueueListener


class ChoiceStore(Protocol):
    """The knowledgebase each person chose for direct messages, durable across restarts and replicas."""

    async def get(self, person: str) -> str | None: ...

    async def set(self, person: str, knowledgebase: str | None) -> None: ...

    async def aclose(self) -> None: ...


class KnowledgebaseRouter:
    """Routes questions, status requests and saves to one of several knowledgebases (see the module doc)."""

    def __init__(
        self,
        asks: Mapping[str, Asking],
        savers: Mapping[str, Saving],
        *,
        default: str,
        routes: Mapping[str, Mapping[str, str]],
        choices: ChoiceStore | None = None,
        named: bool = True,
    ) -> None:
        self._asks = dict(asks)
        self._savers = dict(savers)
        self.default = default
        self._routes = {platform: dict(table) for platform, table in routes.items()}
        self._choices = choices
        #: Answers and status name the knowledgebase (off for the environment's single knowledgebase).
        self.named = named

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._asks)

    async def route(self, platform: str, places: Sequence[str], *, person: str | None, direct: bool) -> str:
        """The knowledgebase for a question asked at ``places`` on ``platform`` (see the module doc)."""
        table = self._routes.get(platform, {})
        for place in places:
            if place in table:
                return table[place]
        if direct and person and self._choices is not None:
            chosen = await self._choices.get(f"{platform}:{person}")
            if chosen in self._asks:  # a choice of a knowledgebase since removed from the file falls back
                return chosen
        return self.default

    async def route_question(self, question: Question) -> str:
        person = question.asker.id if question.asker else None
        return await self.route(question.platform, question.places, person=person, direct=question.direct)

    # --- Asking -------------------------------------------------------------------------------------------

    async def ask(self, question: Question, *, on_queued: QueueListener | None = None) -> Answer:
        name = await self.route_question(question)
        answer = await self._asks[name].ask(question, on_queued=on_queued)
        return dataclasses.replace(answer, knowledgebase=name) if self.named else answer

    async def status(self, where: Question | None = None) -> AskStatus:
        """The status of the knowledgebase that answers at ``where`` (the default without it)."""
        name = await self.route_question(where) if where is not None else self.default
        status = await self._asks[name].status()
        return dataclasses.replace(status, knowledgebase=name) if self.named else status

    # --- Saving -------------------------------------------------------------------------------------------

    async def save(
        self, thread: Thread, title: str | None = None, tags: Sequence[str] | None = None, *, announce: bool = True
    ) -> SavedPage:
        # A thread is saved where its channel's questions are answered; DMs go to the default, never to a
        # person's choice (the saver of a DM thread is not necessarily the one who chose).
        name = await self.route(thread.platform, thread.places, person=None, direct=False)
        return await self._savers[name].save(thread, title=title, tags=tags, announce=announce)

    # --- choosing -----------------------------------------------------------------------------------------

    async def chosen(self, platform: str, person: str) -> str:
        """The knowledgebase ``person``'s direct messages ask."""
        return await self.route(platform, (), person=person, direct=True)

    async def use(self, platform: str, person: str, argument: str) -> str:
        """`/kb use NAME` (Slack), `/use` (Discord): remember ``person``'s knowledgebase for direct messages and
        say so (Markdown); without a name, say which one they use and which there are."""
        names = ", ".join(f"`{n}`" for n in self.names)
        if self._choices is None or len(self._asks) < 2:
            return f"This bot answers from one knowledgebase only (`{self.default}`); there is nothing to choose."
        name = argument.strip()
        if not name:
            current = await self.chosen(platform, person)
            return f"Your direct messages ask `{current}`. Knowledgebases: {names}."
        if name not in self._asks:
            shown = "".join(c for c in name[:40] if c.isascii() and (c.isalnum() or c in "-_."))
            which = f"`{shown}`" if shown else "of that name"
            return f"There is no knowledgebase {which}. Choose one of: {names}."
        await self._choices.set(f"{platform}:{person}", name)
        return f"Your direct messages now ask `{name}`. Channels keep their own knowledgebase."
