"""Which Discord servers the bot serves: ``DISCORD_ALLOWED_GUILDS`` (default ``DISCORD_GUILD_IDS``).

A bot whose application has **Public Bot** on can be added to any server by anyone with its invite link, and
its answers and saves reach *your* knowledgebase. With an allowlist, the bot ignores everything from other
servers (no answer, no save), logs it, and leaves them — on connect and whenever it is added to one. An
interaction from elsewhere gets one short ephemeral refusal, because Discord would otherwise show "The
application did not respond". Without an allowlist every server is served, and a public bot says so at start.

DMs and commands in DMs come from no server; with an allowlist they are served only to members of an allowed
server (the member cache, else ``GET /guilds/{id}/members/{user}``; remembered for 10 minutes), so a stranger
who once shared a server with the bot cannot keep asking in private.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import discord
from cachetools import TTLCache

log = logging.getLogger(__name__)

REFUSED = "This bot only works in its own organisation's servers."


class GuildGate:
    def __init__(self, client: discord.Client, allowed: Sequence[int]) -> None:
        self._client = client
        self._allowed = frozenset(allowed)
        self._members: TTLCache[int, bool] = TTLCache(maxsize=10_000, ttl=600)

    def allows(self, guild_id: int | None) -> bool:
        """Whether a message or interaction from ``guild_id`` is served (None, a DM: see :meth:`serves`)."""
        return not self._allowed or guild_id is None or guild_id in self._allowed

    async def serves(self, guild_id: int | None, user_id: int) -> bool:
        """Whether to serve ``user_id`` here: in an allowed server, or in a DM when they are a member of one."""
        if not self._allowed:
            return True
        if guild_id is not None:
            return guild_id in self._allowed
        known = self._members.get(user_id)
        if known is None:
            known = await self._member_of_an_allowed_server(user_id)
            if known is not None:
                self._members[user_id] = known
        return bool(known)

    async def _member_of_an_allowed_server(self, user_id: int) -> bool | None:
        """True/False, or None when Discord could not say (not remembered; the DM is not served)."""
        for guild_id in self._allowed:
            guild = self._client.get_guild(guild_id)
            if guild is None:
                continue
            if guild.get_member(user_id) is not None:
                return True
            try:
                await guild.fetch_member(user_id)
            except discord.NotFound:
                continue
            except discord.HTTPException as exc:
                log.warning("Discord: could not check a DM sender's server membership (HTTP %s)", exc.status)
                return None
            return True
        return False

    async def interaction_check(self, interaction: discord.Interaction[discord.Client]) -> bool:
        """``CommandTree.interaction_check``: commands from other servers (or from strangers in DMs) are
        refused before they run."""
        if await self.serves(interaction.guild_id, interaction.user.id):
            return True
        log.warning(
            "Discord: refused a command from %s, not in DISCORD_ALLOWED_GUILDS",
            f"server {interaction.guild_id}" if interaction.guild_id else f"user {interaction.user.id} in a DM",
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
