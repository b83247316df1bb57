"""Posting the page link into a Discord thread once a queued save goes through (or why it could not).

When the wiki is down, ``ThreadSaver.save`` queues the thread in its durable outbox and the requester is told
it will be saved later. The outbox worker may finish that save minutes (or a restart) later, long after the
interaction token has expired, so the link goes into the thread itself as an ordinary bot message. Register
the callback once at startup::

    rt.saver.listen("discord", saved_poster(discord_client))
"""

from __future__ import annotations

import asyncio
import logging

import discord

from kbbot.adapters.discord.render import CONTENT_LIMIT, safe, truncate
from kbbot.core.models import SavedPage
from kbbot.core.threads import SavedCallback
from kbbot.errors import SaveError

log = logging.getLogger(__name__)

def retried_saved_text(saved: SavedPage) -> str:
    """What the thread reads when a queued save has landed."""
    title = safe(saved.title.replace("[", "(").replace("]", ")")) or "this thread"
    if saved.url:
        return f"Saved: [{title}]({saved.url}) — the wiki is back and this thread is now a page."
    return f"Saved to the wiki as “{title}” — the wiki is back and this thread is now a page."


def retried_failed_text(error: SaveError) -> str:
    """What the thread reads when the wiki finally refused a queued save."""
    return truncate(f"⚠️ {safe(str(error))}", CONTENT_LIMIT)


def saved_poster(client: discord.Client, *, ready_timeout: float = 30.0) -> SavedCallback:
    """``ThreadSaver`` callback ``(conversation_key, saved)`` for Discord threads: the key is the thread's id.

    The outbox worker starts with the process and may finish a queued save before the client has logged in;
    the callback then waits for the client (at most ``ready_timeout`` seconds) rather than lose the link. A
    partial messageable avoids a channel fetch (the thread may not be in the cache after a restart). A failure
    to post is logged, never raised: the save itself is over either way.
    """

    async def on_saved(conversation_key: str, saved: SavedPage | SaveError) -> None:
        try:
            thread_id = int(conversation_key)
        except ValueError:
            log.warning("retried Discord save has a conversation key that is not a thread id")
            return
        try:
            async with asyncio.timeout(ready_timeout):
                await _ready(client)
        except TimeoutError:
            log.warning("Discord is not connected; the link to a retried save was not posted in %s", thread_id)
            return
        channel = client.get_partial_messageable(thread_id)
        text = retried_failed_text(saved) if isinstance(saved, SaveError) else retried_saved_text(saved)
        try:
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post a retried save's outcome in Discord thread %s (HTTP %s)", thread_id, exc.status)

    return on_saved


async def _ready(client: discord.Client) -> None:
    """Return once the client is connected. Polled on purpose: discord.py's ``wait_until_ready`` raises
    RuntimeError when called before the client has started, which is exactly the case this waits out."""
    while not client.is_ready():  # noqa: ASYNC110
        await asyncio.sleep(0.1)
