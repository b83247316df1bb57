"""The one place a failed Discord request becomes a message: the command tree's error handler for app commands
(``tree.on_error``) and :func:`failure_text` for message events, which the tree's handler uses too.

The flows raise; this logs each failure once (a :class:`KbbotError` as one line, a Discord API error by its
status, anything else with its traceback) and words it with :func:`error_reply`, which gives a bug a generic
line, never its details.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from kbbot.adapters.discord.render import render_text
from kbbot.core.replies import error_reply
from kbbot.errors import KbbotError

log = logging.getLogger(__name__)

NONE = discord.AllowedMentions.none()


def failure_text(error: BaseException) -> str:
    """Log ``error`` once and return what the asker is told."""
    if isinstance(error, KbbotError):
        log.info("Discord request failed: %s: %s", type(error).__name__, error)
    elif isinstance(error, discord.HTTPException):
        log.error("Discord API error %s while handling a request", error.status)
    else:
        log.error("unexpected error while handling a Discord request", exc_info=error)
    return error_reply(error)


async def on_app_command_error(
    interaction: discord.Interaction[discord.Client], error: app_commands.AppCommandError
) -> None:
    """``CommandTree.on_error``: the command's own exception (discord.py wraps it in ``CommandInvokeError``)
    answered privately when nothing was sent yet, else in place of the deferred "thinking…" (or the queue
    notice shown in it), the rest of a long text as follow-ups."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    chunks = render_text(failure_text(original))
    private = not interaction.response.is_done()
    try:
        if private:
            await interaction.response.send_message(chunks[0], ephemeral=True, allowed_mentions=NONE)
        else:
            await interaction.edit_original_response(content=chunks[0], embeds=[], view=None, allowed_mentions=NONE)
        for chunk in chunks[1:]:
            await interaction.followup.send(chunk, ephemeral=private, allowed_mentions=NONE)
    except discord.HTTPException as exc:  # the interaction expired or Discord is failing: logged above already
        log.warning("Discord: could not tell the user about a failure (HTTP %s)", exc.status)
