"""Application command sync, only when the command set changed.

Syncing overwrites every command through a rate-limited endpoint (a few per day globally before Discord
pushes back), so kbbot never syncs on every start: it hashes the exact payloads it would send, per
application and target (a guild, or global), and stores the hash in the data dir. Guild sync is instant;
global sync can take up to an hour to show in clients, so ``DISCORD_GUILD_IDS`` is the fast path for testing.

Moving from global to guild commands: Discord shows a guild's commands *and* the global ones, so a set synced
globally earlier would appear twice. When guild ids are configured and the hash file says we synced a global
set for this application, that set is cleared once (bulk overwrite with ``[]``), after the guild sync so the
commands never vanish. Global commands we never synced (no hash) are left alone: they may be someone else's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

HASH_FILE = "discord_commands.json"


def payload_hash(payloads: Sequence[dict[str, Any]]) -> str:
    """A stable hash of the command payloads (order-independent, key-order-independent)."""
    canonical = sorted(json.dumps(p, sort_keys=True, separators=(",", ":")) for p in payloads)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


class CommandSync:
    """Syncs ``tree`` to the configured guilds (or globally) when the stored hash differs."""

    def __init__(
        self, tree: app_commands.CommandTree[discord.Client], *, data_dir: Path, guild_ids: Sequence[int] = ()
    ) -> None:
        self._tree = tree
        self._path = data_dir / HASH_FILE
        self._guild_ids = tuple(guild_ids)

    def _payloads(self, guild: discord.abc.Snowflake | None) -> list[dict[str, Any]]:
        return [command.to_dict(self._tree) for command in self._tree.get_commands(guild=guild)]

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _store(self, hashes: dict[str, str]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(hashes, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._path)  # atomic: a crash never leaves half a file that would force a resync

    async def sync(self, application_id: int) -> list[str]:
        """Sync what changed; return the targets synced (``"global"``, ``"guild:<id>"``, and
        ``"global:cleared"`` when an old global set was removed)."""
        hashes = self._load()
        synced: list[str] = []
        failed = False
        targets: list[discord.Object | None] = (
            [discord.Object(id=gid) for gid in self._guild_ids] if self._guild_ids else [None]
        )
        for guild in targets:
            if guild is not None:
                self._tree.copy_global_to(guild=guild)
            name = "global" if guild is None else f"guild:{guild.id}"
            key = f"{application_id}:{name}"
            digest = payload_hash(self._payloads(guild))
            if hashes.get(key) == digest:
                log.debug("Discord commands for %s unchanged; not syncing", name)
                continue
            try:
                await self._tree.sync(guild=guild)
            except discord.HTTPException as exc:
                # Most often: the bot was invited without the applications.commands scope. Keep running; the
                # next start retries because no hash was stored.
                log.error("Discord command sync for %s failed (HTTP %s): %s", name, exc.status, exc.text)
                failed = True
                continue
            except Exception:
                # A sync problem must never keep the bot from answering with the commands it already has.
                log.exception("Discord command sync for %s failed", name)
                failed = True
                continue
            hashes[key] = digest
            self._store(hashes)
            synced.append(name)
            log.info("Discord commands synced to %s", name)
        # Only once every guild has its commands: clearing first would leave users with none.
        if self._guild_ids and not failed and await self._clear_stale_global(application_id, hashes):
            synced.append("global:cleared")
        return synced

    async def _clear_stale_global(self, application_id: int, hashes: dict[str, str]) -> bool:
        """Remove the global commands we synced before guild ids were configured (once: the hash is dropped)."""
        key = f"{application_id}:global"
        if key not in hashes:
            return False
        try:
            await self._tree.client.http.bulk_upsert_global_commands(application_id, payload=[])
        except discord.HTTPException as exc:
            # Left in the hash file, so the next start tries again.
            log.error("clearing the old global Discord commands failed (HTTP %s): %s", exc.status, exc.text)
            return False
        del hashes[key]
        self._store(hashes)
        log.info("old global Discord commands cleared (commands are now per guild)")
        return True
