"""The Slack part of ``kbbot check``: is ``SLACK_BOT_TOKEN`` accepted (``auth.test``), is ``SLACK_APP_TOKEN``
when set (``apps.connections.open``, which only hands out a websocket URL), and which mode will ``kbbot run`` use
(Socket Mode with an app token; HTTP mode, which needs ``SLACK_SIGNING_SECRET``, otherwise)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kbbot.adapters.slack.connection import Unreachable, call
from kbbot.adapters.slack.service import SlackCredentials, slack_web_client
from kbbot.errors import Unavailable


@dataclass(frozen=True, slots=True)
class SlackStatus:
    #: "socket" or "http": what ``kbbot run`` will use.
    mode: str
    bot: str
    team: str
    bot_user_id: str
    enterprise_id: str | None = None
    warnings: list[str] = field(default_factory=list)


async def slack_status(credentials: SlackCredentials) -> SlackStatus:
    """Ask Slack. Raises :class:`~kbbot.errors.Unauthorized` for a rejected token (naming it),
    :class:`Unavailable` when Slack cannot be reached, :class:`ConfigError` when neither mode is set up."""
    mode, app_token, secret = credentials.mode, credentials.app_token, credentials.signing_secret
    client = slack_web_client(credentials)
    try:
        auth = await call(client.auth_test, "SLACK_BOT_TOKEN")
        if app_token:
            await call(client.apps_connections_open, "SLACK_APP_TOKEN", app_token=app_token)
    except Unreachable as exc:
        raise Unavailable(f"could not reach Slack ({exc}): check the network, proxy and SLACK_API_URL") from None
    finally:
        if client.session is not None:
            await client.session.close()
    warnings = []
    if app_token and secret:
        warnings.append("SLACK_SIGNING_SECRET is unused: with SLACK_APP_TOKEN set, kbbot runs in Socket Mode")
    return SlackStatus(
        mode=mode,
        bot=str(auth.get("user") or "?"),
        team=str(auth.get("team") or "?"),
        bot_user_id=str(auth.get("user_id") or ""),
        enterprise_id=str(auth["enterprise_id"]) if auth.get("enterprise_id") else None,
        warnings=warnings,
    )
