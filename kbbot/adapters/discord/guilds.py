"""Which Discord servers the bot serves: ``DISCORD_ALLOWED_GUILDS`` (default ``DISCORD_GUILD_IDS``).

A bot whose application has **Public Bot** on can be added to any server by anyone with its invite link, and
its answers and saves reach *your* knowledgebase. With an allowlist, the bot ignores everything from other
servers (no answer, no save), logs it, and leaves them — on connect and whenever it is added to one. An
interaction from elsewhere gets one short ephemeral refusal, because Discord would otherwise show "The
application did not respond". Without an allowlist every server is served, and a public bot says so at start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import discord

log = logging.getLogger(__name__)

REFUSED = "This bot only works in its own organisation's servers."


class GuildGate:
    def __init__(self, client: discord.Client, allowed: Sequence[int]) -> None:
        self._client = client
        self._allowed = frozenset(allowed)

    def allows(self, guild_id: int | None) -> bool:
        """Whether a message or interaction from ``guild_id`` (None: a DM) is served."""
        return not self._allowed or guild_id is None or guild_id in self._allowed

    async def interaction_check(self, interaction: discord.Interaction[discord.Client]) -> bool:
        """``CommandTree.interaction_check``: commands from other servers are refused before they run."""
        if self.allows(interaction.guild_id):
            return True
        log.warning(
            "Discord: refused a command from server %s, which is not in DISCORD_ALLOWED_GUILDS", interaction.guild_id
        )
        await interaction.response.send_message(
            REFUSED, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )
        if interaction.guild is not None:
            await self.leave_if_not_allowed(interaction.guild)
        return False

    def warn_if_public(self) -> None:
        """At login: without an allowlist, a public bot serves whoever adds it; say so once."""
        app = self._client.application
        if not self._allowed and app is not None and app.bot_public:
            log.warning(
                "Discord: Public Bot is on and DISCORD_ALLOWED_GUILDS is unset: anyone can add this bot to "
                "their server and read your knowledgebase through it (switch Public Bot off, or set the allowlist)"
            )

    async def leave_others(self) -> None:
        """On connect: leave every server outside the allowlist."""
        if not self._allowed:
            return
        for guild in list(self._client.guilds):
            await self.leave_if_not_allowed(guild)

    async def leave_if_not_allowed(self, guild: discord.abc.Snowflake) -> None:
        if self.allows(guild.id):
            return
        log.warning("Discord: leaving server %s: it is not in DISCORD_ALLOWED_GUILDS", guild.id)
        try:
            await self._client.http.leave_guild(guild.id)
        except discord.HTTPException as exc:
            log.error("Discord: could not leave server %s (HTTP %s)", guild.id, exc.status)
