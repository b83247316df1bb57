"""The Discord part of ``kbbot check``: is ``DISCORD_BOT_TOKEN`` accepted, which privileged intents are
switched on in the Developer Portal, and which servers is the bot in (and are they all allowed)?

REST only (no gateway connection): ``GET /users/@me`` validates the token, ``GET /oauth2/applications/@me``
carries the portal switches as application flags, ``GET /users/@me/guilds`` lists the servers (200 a page).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import discord
import discord.http

from kbbot.adapters.discord.client import DiscordOptions
from kbbot.adapters.discord.failures import startup_errors

_GUILDS_PAGE = 200  # the endpoint's maximum


@dataclass(frozen=True, slots=True)
class DiscordStatus:
    bot: str
    public: bool
    #: Privileged intents switched on in the portal: message_content, server_members, presence.
    intents: dict[str, bool]
    guilds: list[tuple[int, str]]
    outside_allowlist: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def discord_status(token: str, options: DiscordOptions) -> DiscordStatus:
    """Ask Discord. A rejected token or an unreachable Discord raise one-line errors (see ``failures.py``)."""
    if options.api_url:
        discord.http.Route.BASE = options.api_url
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        with startup_errors():
            user = await http.static_login(token)
            app = await http.application_info()
            guilds = await _all_guilds(http)
    finally:
        await http.close()
    flags = discord.ApplicationFlags._from_value(int(app.get("flags", 0)))
    intents = {
        "message_content": flags.gateway_message_content or flags.gateway_message_content_limited,
        "server_members": flags.gateway_guild_members or flags.gateway_guild_members_limited,
        "presence": flags.gateway_presence or flags.gateway_presence_limited,
    }
    allowed = set(options.guild_allowlist)
    outside = [g for g in guilds if allowed and g[0] not in allowed]
    public = bool(app.get("bot_public"))
    warnings = []
    uses = (("saving threads", options.save_threads), ("auto-answer", options.auto_channels))
    needs_content = [name for name, on in uses if on]
    if needs_content and not intents["message_content"]:
        warnings.append(
            f"Message Content intent is off, so {' and '.join(needs_content)} will not work: switch on Developer "
            "Portal → Bot → Privileged Gateway Intents → MESSAGE CONTENT INTENT"
        )
    if outside:
        warnings.append(f"in {len(outside)} server(s) outside DISCORD_ALLOWED_GUILDS: the bot leaves them at start")
    if public and not allowed:
        warnings.append(
            "Public Bot is on and DISCORD_ALLOWED_GUILDS is unset: anyone can add the bot and read the knowledgebase"
        )
    name = str(user.get("username", "?"))
    return DiscordStatus(name, public, intents, guilds, outside, warnings)


async def _all_guilds(http: discord.http.HTTPClient) -> list[tuple[int, str]]:
    guilds: list[tuple[int, str]] = []
    after: int | None = None
    while True:
        page = await http.get_guilds(_GUILDS_PAGE, after=after, with_counts=False)
        guilds += [(int(g["id"]), str(g.get("name", ""))) for g in page]
        if len(page) < _GUILDS_PAGE:
            return guilds
        after = int(page[-1]["id"])
