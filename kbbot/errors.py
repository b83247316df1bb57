"""One error tree for the whole bot.

    KbbotError                      anything kbbot raises on purpose; str() is safe to show a user
    ├── ConfigError                 a setting is missing or wrong (names the variable, says how to fix it)
    │   └── DataDirError            KBBOT_DATA_DIR is full, read-only, not ours, or a file in it is damaged
    ├── InvalidQuestion             empty or oversized question
    ├── SaveError                   a thread could not be saved (and was not queued for retry)
    │   └── TranscriptError         a transcript file kbbot cannot read (also a ValueError)
    │       └── ExportError         a Slack export or DiscordChatExporter JSON kbbot cannot read
    ├── SearchIndexError            the search index file cannot be opened, read or written
    ├── ShuttingDown                new work refused because the bot is stopping
    ├── OverAiBudget                a shared AI flight's asker had no AI budget left (never reaches a user)
    └── KnowledgeBaseError          the wiki API said no, or could not be reached
        ├── BadRequest              400
        ├── Unauthorized            401 (token wrong or regenerated)
        ├── QuotaExceeded           402 (monthly AI quota used up; never retried)
        ├── Forbidden               403 (token lacks a scope)
        ├── NotFound                404
        ├── VersionConflict         409 (optimistic locking lost, after bounded retries)
        ├── RateLimited             429 (after bounded retries); carries retry_after
        ├── Unavailable             5xx, network error, timeout
        │   └── TransportFailure    below HTTP: network error or timeout (says whether the request left)
        ├── BadResponse             the body is not JSON or not the documented shape
        └── Unsupported             the backend cannot do this (e.g. AI query on MatHub)

httpx exceptions never leave a backend: backends translate them into this tree. No message ever contains a
token: messages are built from status codes and our own words, never from request headers.

An error one replica raised inside a shared single flight reaches the others through Redis:
:func:`error_payload` and :func:`rebuild_error` carry its class, message and fields, so the waiters see the
very same error (and the same user message) as the replica that asked.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


class KbbotError(Exception):
    """Base of every error kbbot raises on purpose. ``str(err)`` is a short, user-safe sentence."""


class ConfigError(KbbotError):
    """A setting is missing or invalid."""


class DataDirError(ConfigError):
    """The data folder cannot be used: full, read-only, not ours, or a file in it is damaged."""


class InvalidQuestion(KbbotError):
    """The question cannot be asked as given (empty, too long)."""


class SaveError(KbbotError):
    """A thread could not be saved."""


class TranscriptError(SaveError, ValueError):
    """The file is not a transcript kbbot can read. The message says which file and what is wrong."""


class ExportError(TranscriptError):
    """The path is not a Slack export or DiscordChatExporter export kbbot can read (the message says why)."""


class SearchIndexError(KbbotError):
    """The index file could not be opened, read or written. ``str()`` names the file and the fix."""


class ShuttingDown(KbbotError):
    """New work was refused because the bot is stopping (SIGTERM); the asker should try again shortly."""

    def __init__(self) -> None:
        super().__init__("The bot is restarting: please ask again in a minute.")


class OverAiBudget(KbbotError):
    """The asker who led a shared AI flight was over their AI budget, so no AI call was made. That asker is
    answered from search; everybody who joined the flight asks again on their own budget. A KbbotError so it
    reaches the joiners on other replicas too (:func:`rebuild_error`)."""

    def __init__(self) -> None:
        super().__init__("The asker of this question has no AI answers left for now.")


class KnowledgeBaseError(KbbotError):
    """The knowledgebase API failed. ``status`` is the HTTP status when there was one."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BadRequest(KnowledgeBaseError):
    """400: missing or invalid parameters."""


class Unauthorized(KnowledgeBaseError):
    """401: the token is missing, wrong or was regenerated."""


class QuotaExceeded(KnowledgeBaseError):
    """402: the monthly AI quota is used up. Never retried."""


class Forbidden(KnowledgeBaseError):
    """403: the token lacks a scope."""


class NotFound(KnowledgeBaseError):
    """404: the page does not exist or is not visible."""


class VersionConflict(KnowledgeBaseError):
    """409: someone else edited the page; bounded re-fetch-and-retry did not win."""


class RateLimited(KnowledgeBaseError):
    """429 after bounded retries. ``retry_after`` is seconds to wait, when the server said."""

    retry_after: float | None = None

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Unavailable(KnowledgeBaseError):
    """5xx, network error or timeout."""


class TransportFailure(Unavailable):
    """The request failed below HTTP (network, timeout). ``request_sent`` is False when it provably never left
    this process (connect error, connect/pool timeout), which is what makes retrying a POST safe."""

    request_sent: bool = True
    timed_out: bool = False

    def __init__(self, message: str, *, request_sent: bool, timed_out: bool) -> None:
        super().__init__(message, status=None)
        self.request_sent = request_sent
        self.timed_out = timed_out


class BadResponse(KnowledgeBaseError):
    """The response was not JSON, or not the documented shape."""


class Unsupported(KnowledgeBaseError):
    """The backend cannot do this at all."""


def error_payload(exc: KbbotError) -> dict[str, Any]:
    """JSON-ready: the class name, the (user-safe) message and the error's plain fields."""
    fields = {k: v for k, v in vars(exc).items() if v is None or isinstance(v, bool | int | float | str)}
    return {"error": type(exc).__name__, "message": str(exc), "fields": fields}


def rebuild_error(payload: Mapping[str, Any]) -> KbbotError:
    """The error :func:`error_payload` described, as the same class with the same message and fields. Built
    without calling the class's constructor, whose arguments differ per class. A name this version does not
    know (a newer replica's) becomes :class:`Unavailable`."""
    cls = getattr(sys.modules[__name__], str(payload.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, KbbotError)):
        cls = Unavailable
    error = cls.__new__(cls)
    Exception.__init__(error, str(payload.get("message") or "the knowledgebase request failed"))
    fields = payload.get("fields")
    for name, value in (fields.items() if isinstance(fields, Mapping) else ()):
        if hasattr(error, name):
            setattr(error, name, value)
    return error
