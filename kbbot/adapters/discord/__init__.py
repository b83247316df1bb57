"""Discord adapter (discord.py 2.x): answers on @mention, DM and ``/ask``; saves threads with ``/save-thread``
and the "Save thread to wiki" message command. Entry point: :func:`build_discord_client`."""

from kbbot.adapters.discord.client import (
    REQUIRED_PERMISSIONS,
    DiscordOptions,
    build_discord_client,
    invite_url,
    run_discord_client,
)
from kbbot.adapters.discord.saved import saved_poster

__all__ = [
    "REQUIRED_PERMISSIONS",
    "DiscordOptions",
    "build_discord_client",
    "invite_url",
    "run_discord_client",
    "saved_poster",
]
