"""Slack Web API errors, read once: the error code, a log line naming the method, and what to tell a user.

Slack answers ``{"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "…"}``; slack_sdk
raises that as :class:`~slack_sdk.errors.SlackApiError` whose ``response`` keeps the body and the URL called.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

#: The trigger_id of a click is valid for 3 s and once; these say it was too late or already used.
TRIGGER_ERRORS = frozenset({"expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id"})


def error_code(exc: SlackApiError) -> str:
    response = exc.response
    return str(response.get("error") or "unknown") if response is not None else "unknown"


def api_method(exc: SlackApiError) -> str:
    """``chat.postMessage`` from the URL the failed call went to."""
    url = getattr(exc.response, "api_url", "") or ""
    return str(url).rstrip("/").rsplit("/", 1)[-1] or "?"


def needed_scope(exc: SlackApiError) -> str | None:
    response = exc.response
    needed = response.get("needed") if response is not None and error_code(exc) == "missing_scope" else None
    return str(needed) if needed else None


def describe(exc: SlackApiError) -> str:
    """For logs: ``chat.postMessage: missing_scope (needed chat:write)``; never the token or the body."""
    needed = needed_scope(exc)
    return f"{api_method(exc)}: {error_code(exc)}" + (f" (needed {needed})" if needed else "")


def scope_hint(exc: SlackApiError) -> str | None:
    """What a workspace admin must do about a missing scope (None for any other error)."""
    needed = needed_scope(exc)
    if needed is None:
        return None
    return (
        f"The Slack app lacks the `{needed}` permission. A workspace admin must add it under "
        "*OAuth & Permissions → Bot Token Scopes* and reinstall the app."
    )
