"""One error tree for the whole bot.

    KbbotError                      anything kbbot raises on purpose; str() is safe to show a user
    ├── ConfigError                 a setting is missing or wrong (names the variable, says how to fix it)
    ├── InvalidQuestion             empty or oversized question
    ├── SaveError                   a thread could not be saved (and was not queued for retry)
    ├── ShuttingDown                new work refused because the bot is stopping
    └── KnowledgeBaseError          the wiki API said no, or could not be reached
        ├── BadRequest              400
        ├── Unauthorized            401 (token wrong or regenerated)
        ├── QuotaExceeded           402 (monthly AI quota used up; never retried)
        ├── Forbidden               403 (token lacks a scope)
        ├── NotFound                404
        ├── VersionConflict         409 (optimistic locking lost, after bounded retries)
        ├── RateLimited             429 (after bounded retries); carries retry_after
        ├── Unavailable             5xx, network error, timeout
        ├── BadResponse             the body is not JSON or not the documented shape
        └── Unsupported             the backend cannot do this (e.g. AI query on MatHub)

httpx exceptions never leave a backend: backends translate them into this tree. No message ever contains a
token: messages are built from status codes and our own words, never from request headers.
"""

from __future__ import annotations


class KbbotError(Exception):
    """Base of every error kbbot raises on purpose. ``str(err)`` is a short, user-safe sentence."""


class ConfigError(KbbotError):
    """A setting is missing or invalid."""


class InvalidQuestion(KbbotError):
    """The question cannot be asked as given (empty, too long)."""


class SaveError(KbbotError):
    """A thread could not be saved."""


class ShuttingDown(KbbotError):
    """New work was refused because the bot is stopping (SIGTERM); the asker should try again shortly."""

    def __init__(self) -> None:
        super().__init__("The bot is restarting: please ask again in a minute.")


class KnowledgeBaseError(KbbotError):
    """The knowledgebase API failed. ``status`` is the HTTP status when there was one."""

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

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Unavailable(KnowledgeBaseError):
    """5xx, network error or timeout."""


class BadResponse(KnowledgeBaseError):
    """The response was not JSON, or not the documented shape."""


class Unsupported(KnowledgeBaseError):
    """The backend cannot do this at all."""
