"""Building the discord.py client: intents, commands, the persistent feedback view, command sync.

The client is assembled from the injected :class:`~kbbot.adapters.services.ChatServices` and plain
:class:`DiscordOptions`; nothing here reads settings. The composition root owns its lifecycle::

    client = build_discord_client(services, options=options)
    await run_discord_client(client, token)  # until client.close()

Intents: the default intents, plus the privileged Message Content intent when saving threads
(``DISCORD_SAVE_THREADS``, on by default) or auto-answer channels are enabled. Without it Discord blanks the
text of every message that does not mention the bot, in events *and* in REST history, so a saved page would be
empty; questions by mention, DM and slash command work without it. The intent must also be switched on in the
Developer Portal: before connecting, the application's flags say whether it is; when it is not, the bot either
runs without those features (the default) or refuses to start (``DISCORD_REQUIRE_MESSAGE_CONTENT``). With
``DISCORD_SHARD_COUNT`` the client is an ``AutoShardedClient`` (Discord requires sharding from 2,500 guilds;
from ~1,000 it is worth it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from kbbot.adapters.discord.error_hook import on_app_command_error
from kbbot.adapters.discord.failures import INTENT_SWITCH, startup_errors
from kbbot.adapters.discord.feedback import feedback_view
from kbbot.adapters.discord.gaps import gaps_command
from kbbot.adapters.discord.guilds import GuildGate
from kbbot.adapters.discord.handlers import NONE, DiscordHandlers, Interaction
from kbbot.adapters.discord.render import render_text
from kbbot.adapters.discord.sync import CommandSync
from kbbot.adapters.services import ChatServices
from kbbot.errors import ConfigError, ShuttingDown

log = logging.getLogger(__name__)

#: What the bot needs in a channel: see it, read history (thread saving), answer (also in threads), embed
#: answers, add reactions (👀 on a question while it works on the answer).
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


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    """The ``DISCORD_*`` settings the adapter uses, as plain values. ``data_dir`` keeps the command-sync
    fingerprint; ``api_url`` points REST and the gateway at a fake (tests)."""

    data_dir: Path
    guild_ids: Sequence[int] = ()
    guild_allowlist: Sequence[int] = ()
    save_roles: Sequence[str] = ()
    save_threads: bool = True
    auto_channels: Sequence[int] = ()
    auto_min_relevance: float = 0.8
    require_message_content: bool = False
    shard_count: int | None = None
    api_url: str | None = None


def content_features(options: DiscordOptions) -> list[str]:
    """What needs the Message Content intent, as the settings that turn it on."""
    features = ["DISCORD_SAVE_THREADS"] if options.save_threads else []
    return features + (["DISCORD_AUTO_CHANNELS"] if options.auto_channels else [])


def intents_for(options: DiscordOptions) -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = bool(content_features(options))
    return intents


def silence_voice_warnings() -> None:
    """kbbot never joins a voice channel: discord.py's "PyNaCl / davey is not installed, voice will NOT be
    supported" warnings at every start would only send people looking for a dependency kbbot does not need."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


async def run_discord_client(client: discord.Client, token: str) -> None:
    """Run ``client`` until it is closed (``await client.close()`` from elsewhere, or cancellation).

    Setup problems become one line instead of a discord.py traceback: a rejected token is
    :class:`Unauthorized` (exit 3), an unreachable Discord :class:`Unavailable` (exit 4), a Message Content
    intent that is required but not enabled a :class:`ConfigError` (exit 2).
    """
    with startup_errors():
        async with client:
            await client.start(token)


def settle_message_content(client: discord.Client, options: DiscordOptions) -> None:
    """Before connecting: drop the Message Content intent when the portal switch is off (and it is not
    required), so the bot still answers mentions, DMs and slash commands instead of failing with 4014.

    The application's flags (GATEWAY_MESSAGE_CONTENT or its _LIMITED variant below 100 servers) are what
    the portal switch sets; discord.py fetched them at login (``/oauth2/applications/@me``).
    """
    if not client.intents.message_content or client.application is None:
        return
    flags = client.application.flags
    if flags.gateway_message_content or flags.gateway_message_content_limited:
        return
    line = INTENT_SWITCH.format(features=" and ".join(content_features(options)))
    if options.require_message_content:
        raise ConfigError(line + "; or set DISCORD_REQUIRE_MESSAGE_CONTENT=false to run without saving")
    log.warning("%s; running without saving and auto-answer until then", line)
    _drop_message_content(client)


def _drop_message_content(client: discord.Client) -> None:
    # discord.py reads the intents from its connection state when it IDENTIFYs; there is no public setter.
    client._connection._intents.message_content = False


def fall_back_on_4014(client: discord.Client, options: DiscordOptions) -> None:
    """When the gateway still refuses the intent (close code 4014: the switch was turned off after the flags
    were read), connect again without it — unless it is required. A single-connection client is still open
    after a 4014; a sharded one has closed itself, so it stops with the one-line error."""
    connect = client.connect

    async def connect_or_fall_back(*, reconnect: bool = True) -> None:
        try:
            await connect(reconnect=reconnect)
        except discord.PrivilegedIntentsRequired:
            if options.require_message_content or client.is_closed():
                raise
            line = INTENT_SWITCH.format(features=" and ".join(content_features(options)))
            log.warning("%s; connecting again without it: saving and auto-answer are off", line)
            _drop_message_content(client)
            await connect(reconnect=reconnect)

    client.connect = connect_or_fall_back  # type: ignore[method-assign]


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


@asynccontextmanager
async def _untracked() -> AsyncIterator[None]:
    yield


def build_commands(
    tree: app_commands.CommandTree[discord.Client], handlers: DiscordHandlers, services: ChatServices, *, saving: bool
) -> None:
    """Register ``/ask`` and (with ``saving``) ``/save-thread`` and the "Save thread to wiki" message command.

    Each runs inside ``services.in_flight()`` so a stopping bot waits for it; once stopping, new commands are refused
    (``ShuttingDown``) with a short "restarting" message by the tree's error hook instead of being cut off
    halfway. Every failure of a command ends there: :func:`on_app_command_error`."""
    tree.error(on_app_command_error)
    in_flight, router = services.in_flight or _untracked, services.router

    async def tracked(interaction: Interaction, work: Callable[[], Awaitable[None]]) -> None:
        async with in_flight():
            await work()

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
        # The message the menu was used on arrives with its content even without the Message Content intent.
        await tracked(interaction, lambda: handlers.save_interaction(interaction, target=message))

    tree.add_command(ask)
    if router is not None and len(router.names) > 1:
        # Only where there is something to choose: a one-knowledgebase bot keeps its command list.
        @app_commands.command(name="use", description="Choose the knowledgebase your direct messages ask")
        @app_commands.describe(knowledgebase="Its name (leave empty to see the choices)")
        async def use(interaction: Interaction, knowledgebase: app_commands.Range[str, 0, 40] = "") -> None:
            text = await router.use("discord", str(interaction.user.id), knowledgebase)
            await interaction.response.send_message(render_text(text)[0], ephemeral=True, allowed_mentions=NONE)

        tree.add_command(use)
    if services.gaps is not None:
        tree.add_command(gaps_command(services.gaps))
    if saving:
        tree.add_command(save_thread)
        tree.add_command(app_commands.ContextMenu(name=SAVE_MENU_NAME, callback=save_from_message))


def build_discord_client(
    services: ChatServices,
    *,
    options: DiscordOptions,
    sync_commands: bool = True,
    client_options: Mapping[str, object] | None = None,
) -> discord.Client:
    """The Discord adapter, ready for ``client.start(token)``. Call inside the running event loop.

    ``client_options`` go to the discord.py client as is (tests shrink ``guild_ready_timeout``).
    ``services.in_flight`` wraps every handled message and command (``TaskTracker.work`` in ``kbbot run``): a
    stopping bot finishes those answers before it closes the connection, and refuses new ones with a
    "restarting" reply.
    """
    silence_voice_warnings()
    client_kwargs: dict[str, object] = {
        "intents": intents_for(options),
        "allowed_mentions": discord.AllowedMentions.none(),
        "chunk_guilds_at_startup": False,
        **(client_options or {}),
    }
    client: discord.Client
    if options.shard_count:
        client = discord.AutoShardedClient(shard_count=options.shard_count, **client_kwargs)  # type: ignore[arg-type]
    else:
        client = discord.Client(**client_kwargs)  # type: ignore[arg-type]

    gate = GuildGate(client, options.guild_allowlist)
    handlers = DiscordHandlers(
        client=client,
        services=services,
        gate=gate,
        save_roles=options.save_roles,
        auto_channels=options.auto_channels,
        auto_min_relevance=options.auto_min_relevance,
    )
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    tree.interaction_check = gate.interaction_check  # type: ignore[method-assign]
    build_commands(tree, handlers, services, saving=options.save_threads)
    in_flight = services.in_flight or _untracked
    syncer = CommandSync(tree, data_dir=options.data_dir, guild_ids=options.guild_ids)

    if options.api_url:
        point_rest_at(options.api_url)

    async def setup_hook() -> None:
        if options.api_url:
            await point_gateway_from_rest(client)
        settle_message_content(client, options)
        gate.warn_if_public()
        # Registered before the gateway connects, so clicks on answers sent before a restart still work.
        client.add_view(feedback_view(services.feedback, on_vote=handlers.on_vote))
        if sync_commands and client.application_id is not None:
            await syncer.sync(client.application_id)

    async def on_message(message: discord.Message) -> None:
        try:
            async with in_flight():
                await handlers.on_message(message)
        except ShuttingDown as exc:
            await handlers.refuse(message, exc)

    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        async with in_flight():
            await handlers.on_reaction(payload)

    async def on_ready() -> None:
        log.info("Discord: connected as %s to %d servers", client.user, len(client.guilds))
        await gate.leave_others()

    async def on_guild_join(guild: discord.Guild) -> None:
        await gate.leave_if_not_allowed(guild)

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    fall_back_on_4014(client, options)
    client.event(on_message)
    client.event(on_ready)
    client.event(on_raw_reaction_add)
    client.event(on_guild_join)
    return client
