"""Errors → one short sentence for the person who asked. Every adapter's error hook calls this."""

from __future__ import annotations

from kbbot.core.models import SavedPage
from kbbot.core.page_render import masked_text
from kbbot.errors import (
    BadResponse,
    ConfigError,
    Forbidden,
    InvalidQuestion,
    KbbotError,
    NotFound,
    RateLimited,
    SaveError,
    ShuttingDown,
    Unauthorized,
    Unavailable,
    VersionConflict,
)

#: What an adapter shows for an empty answer that carries no text of its own (the answerers word theirs).
NOTHING_FOUND = "I couldn't find anything about that in the wiki."

_BY_TYPE: tuple[tuple[type[KbbotError], str], ...] = (
    (Unauthorized, "I can't sign in to the knowledgebase: its API token was rejected. An admin needs to update it."),
    (Forbidden, "The bot's API key isn't allowed to do that in the knowledgebase. An admin needs to fix its scopes."),
    (RateLimited, "The knowledgebase is busy right now. Please try again in a minute."),
    (Unavailable, "The knowledgebase isn't reachable right now. Please try again shortly."),
    (BadResponse, "The knowledgebase sent a reply I couldn't read. Please try again later."),
    (NotFound, "That page no longer exists in the wiki."),
)


def error_reply(exc: BaseException) -> str:
    """A short, token-free message for the asker. Unknown errors get a generic line (details go to the log)."""
    if isinstance(exc, InvalidQuestion | SaveError | VersionConflict | ConfigError | ShuttingDown):
        return str(exc)
    for kind, message in _BY_TYPE:
        if isinstance(exc, kind):
            return message
    if isinstance(exc, KbbotError):
        return f"Sorry, that didn't work: {exc}"
    return "Sorry, something went wrong on my side. The error was logged for the bot's admins."


def masked_note(saved: SavedPage) -> str:
    """What a save reply adds when secrets were masked on the page ("" when none were)."""
    count = saved.extra.get("masked")
    return masked_text(count) if isinstance(count, int) and count > 0 else ""
