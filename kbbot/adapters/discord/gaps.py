"""``/gaps`` in Discord (members with Manage Server) and the weekly digest: the top knowledge gaps as one
message. Questions are user text: markdown escaped, mentions made inert, sent with mentions disabled."""

from __future__ import annotations

import discord
from discord import app_commands

from kbbot.adapters.discord.render import safe, truncate
from kbbot.reports.digest import GapsReport, GapsSummary, Poster

MAX_MESSAGE_CHARS = 2000
NONE = discord.AllowedMentions.none()
REFUSAL = "Only members with the Manage Server permission can see the knowledge gaps."


def render_gaps(summary: GapsSummary, *, title: str = "Top knowledge gaps") -> str:
    heading = f"**{title}, last {summary.days} days**"
    if not summary.gaps:
        return f"{heading}\nNo gaps: every question got an answer nobody downvoted. 🎉"
    lines = [heading]
    for n, gap in enumerate(summary.gaps, 1):
        question = discord.utils.escape_markdown(safe(truncate(gap.question, 150)))
        times = "once" if gap.count == 1 else f"{gap.count}×"
        line = f"{n}. {question} — asked {times} ({', '.join(gap.reasons)})"
        if sum(len(x) + 1 for x in lines) + len(line) > MAX_MESSAGE_CHARS - 120:
            break
        lines.append(line)
    lines.append("-# Fill one by writing a page, or save a thread that answered it with /save-thread.")
    return "\n".join(lines)


def gaps_command(report: GapsReport) -> app_commands.Command[app_commands.Group, ..., None]:
    """``/gaps``: hidden from members without Manage Server by default, and checked again when run (server
    admins can change who sees a command)."""

    @app_commands.command(name="gaps", description="Questions the wiki could not answer lately (admins)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def gaps(interaction: discord.Interaction[discord.Client]) -> None:
        if not interaction.permissions.manage_guild:
            await interaction.response.send_message(REFUSAL, ephemeral=True, allowed_mentions=NONE)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(render_gaps(await report.top()), ephemeral=True, allowed_mentions=NONE)

    return gaps


def digest_poster(client: discord.Client, channel_id: int) -> Poster:
    async def post(summary: GapsSummary) -> None:
        channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise ValueError(f"Discord channel {channel_id} cannot take messages")
        await channel.send(render_gaps(summary, title="Weekly knowledge gaps"), allowed_mentions=NONE)

    return post
