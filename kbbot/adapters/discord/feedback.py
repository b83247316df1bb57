"""👍/👎 buttons under answers, as a persistent view.

A persistent view (``timeout=None``, fixed ``custom_id``s, registered with ``Client.add_view`` at startup) keeps
buttons on old answers working after a restart: discord.py routes any click with a known ``custom_id`` to it.
Because nothing is kept in memory per message, the question is read back from the answer's embed title.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from kbbot.core.ports import FeedbackStore

log = logging.getLogger(__name__)

#: Hears a recorded vote: the answer message voted on, and whether it was 👍.
OnVote = Callable[[discord.Message | None, bool], Awaitable[None]]

UP_ID = "kbbot:feedback:up"
DOWN_ID = "kbbot:feedback:down"

THANKS = {True: "Thanks! Glad it helped.", False: "Thanks for telling us; the wiki's editors will look at it."}


class VoteButton(discord.ui.Button[discord.ui.View]):
    """One of the two vote buttons; records the vote and answers the click ephemerally."""

    def __init__(self, *, helpful: bool, store: FeedbackStore, on_vote: OnVote | None = None) -> None:
        super().__init__(
            style=discord.ButtonStyle.secondary,
            emoji="👍" if helpful else "👎",
            custom_id=UP_ID if helpful else DOWN_ID,
        )
        self._helpful = helpful
        self._store = store
        self._on_vote = on_vote

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        question = question_of(interaction.message)
        try:
            await self._store.record(
                platform="discord", question=question, user_id=str(interaction.user.id), helpful=self._helpful,
                channel=str(interaction.channel_id or ""),
            )
        except Exception:
            log.exception("could not record feedback")
            await interaction.response.send_message(
                "Sorry, I couldn't record that vote.", ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
            return
        if self._on_vote is not None:
            # Before the thanks (a few ms of store writes, well within the 3 s): once the click is answered,
            # the vote has taken effect on the conversation too.
            await self._on_vote(interaction.message, self._helpful)
        await interaction.response.send_message(
            THANKS[self._helpful], ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )


def question_of(message: discord.Message | None) -> str:
    """The question an answer message answers: its first titled embed; else the message id (still unique)."""
    if message is None:
        return "unknown"
    for embed in message.embeds:
        if embed.title:
            return embed.title
    return f"message:{message.id}"


def feedback_view(store: FeedbackStore, on_vote: OnVote | None = None) -> discord.ui.View:
    """The view to attach to answers and to register once with ``client.add_view`` at startup (``on_vote``
    hears each recorded vote: a 👎 makes the next human answer in that conversation worth saving)."""
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(helpful=True, store=store, on_vote=on_vote))
    view.add_item(VoteButton(helpful=False, store=store, on_vote=on_vote))
    return view


def answer_buttons(store: FeedbackStore) -> discord.ui.View:
    """The buttons to attach to one answer: a *stopped* copy of the view.

    discord.py keeps every live view it sends in memory, keyed by message id, forever (timeout=None). A
    stopped view is still rendered into the message's components but not stored; clicks are routed by
    ``custom_id`` to the one view registered with ``add_view`` at startup. Memory stays flat however many
    answers are sent.
    """
    view = feedback_view(store)
    view.stop()
    return view
