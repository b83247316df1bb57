"""Who may save a Discord thread to the wiki.

Saving publishes a conversation to a wiki the whole company reads, so it is limited to people with a stake in
the thread or moderation rights: the thread's creator, members with Manage Threads in that channel (admins
have it implicitly), and members holding one of ``DISCORD_SAVE_ROLES`` (role names, case-insensitive, or ids).
And because a save reveals the thread's whole history, the saver must also be able to read it: View Channel
and Read Message History in that thread (:func:`can_read_history`; a save role alone is not enough).
"""

from __future__ import annotations

from collections.abc import Sequence

import discord


def may_save(
    *,
    thread: discord.Thread,
    user: discord.abc.User,
    permissions: discord.Permissions,
    save_roles: Sequence[str] = (),
) -> bool:
    if thread.owner_id == user.id:
        return True
    if permissions.manage_threads or permissions.administrator:
        return True
    if save_roles and isinstance(user, discord.Member):
        wanted = {role.strip().casefold() for role in save_roles if role.strip()}
        return any(role.name.casefold() in wanted or str(role.id) in wanted for role in user.roles)
    return False


def denied_text(save_roles: Sequence[str] = ()) -> str:
    who = "the thread's creator or members who can manage threads"
    if save_roles:
        who += " (or have one of these roles: " + ", ".join(save_roles) + ")"
    return f"Only {who} can save this thread to the wiki."


def can_read_history(permissions: discord.Permissions) -> bool:
    """View Channel and Read Message History, as computed by Discord for the thread (overwrites included)."""
    return permissions.administrator or (permissions.view_channel and permissions.read_message_history)
