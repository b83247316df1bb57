"""Building the discord.py client: intents, commands, the persistent feedback view, command sync.

The client is assembled from injected services (AskService, ThreadSaver, FeedbackStore) and plain
:class:`DiscordOptions`; nothing here reads settings. The composition root owns its lifecycle::

    client = build_discord_client(ask=ask, saver=saver, feedback=feedback, options=options)
    await run_discord_client(client, token)  # until client.close()

Intents: the default intents, *without* the privileged Message Content intent: Discord still delivers the
content of messages that mention the bot, of DMs, and every slash/context-menu command. Message Content is
requested only when ``DISCORD_AUTO_CHANNELS`` is set (auto-answering ordinary messages needs their text), and
must then also be switched on in the Developer Portal. With ``DISCORD_SHARD_COUNT`` the client is an
``AutoShardedClient`` (Discord requires sharding from 2,500 guilds; from ~1,000 it is worth it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from kbbot.adapters.discord.feedback import feedback_view
from kbbot.adapters.discord.handlers import DiscordHandlers, Interaction
from kbbot.adapters.discord.sync import CommandSync
from kbbot.core.ports import Asking, FeedbackStore, Saving
from kbbot.errors import ConfigError, ShuttingDown

log = logging.getLogger(__name__)

#: What the bot needs in a channel: see it, read history (thread saving), answer (also in threads), embed
#: answers, add reactions.
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    read_message_history=True,
    add_reactions=True,
)

SAVE_MENU_NAME = "Save thread to wiki"


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot with its scopes and permissions."""
    return (
        "https://discord.com/oauth2/authorize"
        f"?client_id={application_id}&scope=bot+applications.commands&permissions={REQUIRED_PERMISSIONS.value}"
    )


def intents_for(auto_channels: Sequence[int]) -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = bool(auto_channels)
    return intents


async def run_discord_client(client: discord.Client, token: str) -> None:
    """Run ``client`` until it is closed (``await client.close()`` from elsewhere, or cancellation).

    Setup mistakes become a :class:`ConfigError` naming the setting to fix, instead of a discord.py traceback.
    """
    try:
        async with client:
            await client.start(token)
    except discord.LoginFailure:
        raise ConfigError(
            "DISCORD_BOT_TOKEN was rejected by Discord: reset it in the Developer Portal (Bot → Reset Token)"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(
            "DISCORD_AUTO_CHANNELS needs the Message Content intent: enable it in the Developer Portal "
            "(Bot → Privileged Gateway Intents) or unset DISCORD_AUTO_CHANNELS"
        ) from None


def point_rest_at(api_url: str) -> None:
    """Send every REST call (and interaction webhook) to ``api_url`` (``DISCORD_API_URL``, for tests).

    discord.py keeps the base URL in a class attribute, so this is process-wide, like the client itself.
    """
    discord.http.Route.BASE = api_url.rstrip("/")


async def point_gateway_from_rest(client: discord.Client) -> None:
    """Connect to the gateway that ``GET /gateway/bot`` names, as Discord's docs say clients should.

    discord.py's single-connection client otherwise always uses its built-in ``wss://gateway.discord.gg``.
    """
    _shards, url, _limits = await client.http.get_bot_gateway()
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)


InFlight = Callable[[], AbstractAsyncContextManager[object]]


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    """The ``DISCORD_*`` settings the adapter uses. ``data_dir`` keeps the command-sync fingerprint;
    ``api_url`` points REST and the gateway at a fake (tests)."""

    data_dir: Path
    guild_ids: Sequence[int] = ()
    save_roles: Sequence[str] = ()
    auto_channels: Sequence[int] = ()
    shard_count: int | None = None
    api_url: str | None = None


@asynccontextmanager
async def _untracked() -> AsyncIterator[None]:
    yield


def build_commands(
    tree: app_commands.CommandTree[discord.Client], handlers: DiscordHandlers, in_flight: InFlight = _untracked
) -> None:
    """Register ``/ask``, ``/save-thread`` and the "Save thread to wiki" message command on ``tree``.

    Each runs inside ``in_flight()`` so a stopping bot waits for it; once stopping, new commands are refused
    with a short "restarting" message instead of being cut off halfway."""

    async def tracked(interaction: Interaction, work: Callable[[], Awaitable[None]]) -> None:
        try:
            async with in_flight():
                await work()
        except ShuttingDown as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)

    @app_commands.command(name="ask", description="Ask the company knowledgebase a question")
    @app_commands.describe(question="What do you want to know?")
    async def ask(interaction: Interaction, question: app_commands.Range[str, 1, 2000]) -> None:
        await tracked(interaction, lambda: handlers.ask_interaction(interaction, question))

    @app_commands.command(name="save-thread", description="Save this thread or forum post as a wiki page")
    @app_commands.describe(title="Page title (default: the thread's name)", tags="Comma-separated tags")
    async def save_thread(
        interaction: Interaction,
        title: app_commands.Range[str, 1, 200] | None = None,
        tags: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        await tracked(interaction, lambda: handlers.save_interaction(interaction, title=title, tags=tags))

    async def save_from_message(interaction: Interaction, message: discord.Message) -> None:
        await tracked(interaction, lambda: handlers.save_interaction(interaction))

    tree.add_command(ask)
    tree.add_command(save_thread)
    tree.add_command(app_commands.ContextMenu(name=SAVE_MENU_NAME, callback=save_from_message))


def build_discord_client(
    *,
    ask: Asking,
    saver: Saving,
    feedback: FeedbackStore,
    options: DiscordOptions,
    sync_commands: bool = True,
    client_options: Mapping[str, object] | None = None,
    in_flight: InFlight = _untracked,
) -> discord.Client:
    """The Discord adapter, ready for ``client.start(token)``. Call inside the running event loop.

    ``client_options`` go to the discord.py client as is (tests shrink ``guild_ready_timeout``). ``in_flight``
    wraps every handled message and command (``TaskTracker.work`` in ``kbbot run``): a stopping bot finishes
    those answers before it closes the connection, and refuses new ones with a "restarting" reply.
    """
    client_kwargs: dict[str, object] = {
        "intents": intents_for(options.auto_channels),
        "allowed_mentions": discord.AllowedMentions.none(),
        "chunk_guilds_at_startup": False,
        **(client_options or {}),
    }
    client: discord.Client
    if options.shard_count:
        client = discord.AutoShardedClient(shard_count=options.shard_count, **client_kwargs)  # type: ignore[arg-type]
    else:
        client = discord.Client(**client_kwargs)  # type: ignore[arg-type]

    handlers = DiscordHandlers(
        client=client,
        ask=ask,
        saver=saver,
        feedback=feedback,
        save_roles=options.save_roles,
        auto_channels=options.auto_channels,
    )
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    build_commands(tree, handlers, in_flight)
    syncer = CommandSync(tree, data_dir=options.data_dir, guild_ids=options.guild_ids)

    if options.api_url:
        point_rest_at(options.api_url)

    async def setup_hook() -> None:
        if options.api_url:
            await point_gateway_from_rest(client)
        # Registered before the gateway connects, so clicks on answers sent before a restart still work.
        client.add_view(feedback_view(feedback))
        if sync_commands and client.application_id is not None:
            await syncer.sync(client.application_id)

    async def on_message(message: discord.Message) -> None:
        try:
            async with in_flight():
                await handlers.on_message(message)
        except ShuttingDown as exc:
            await handlers.refuse(message, exc)

    async def on_ready() -> None:
        log.info("Discord: connected as %s to %d servers", client.user, len(client.guilds))

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    client.event(on_message)
    client.event(on_ready)
    return client
