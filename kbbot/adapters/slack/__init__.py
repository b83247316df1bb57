"""Slack adapter (slack-bolt, async): answers in channels, DMs and ``/kb``; saves threads as wiki pages.

    app.py        Bolt listeners → handlers (ack first, work after)
    handlers.py   the flows: ask, share, feedback, save, help, status
    rendering.py  pure: Markdown → Block Kit + mrkdwn, mention-safe
    history.py    conversations.replies (paged) + users.info (cached) → neutral Thread; membership checks
    parsing.py    pure: mention text → command, message permalink → thread
    views.py      the "Save thread to wiki" modal
    server.py     HTTP routes (/slack/events, signature checked on the raw bytes first) and the Socket Mode handler
    connection.py start-up token checks, Socket Mode connect with backoff, the state /readyz shows
    errors.py     Slack Web API errors read once: code, method, needed scope, what to tell the user
    check.py      the Slack part of `kbbot check`
    service.py    connection values → running adapter in the right mode (what the composition root calls)
"""

from __future__ import annotations

from kbbot.adapters.slack.app import SlackBot, build_slack
from kbbot.adapters.slack.handlers import SlackOptions
from kbbot.adapters.slack.server import slack_routes, slack_web_app, socket_mode_handler
from kbbot.adapters.slack.service import SlackCredentials, SlackService, slack_service, slack_web_client

__all__ = [
    "SlackBot",
    "SlackCredentials",
    "SlackOptions",
    "SlackService",
    "build_slack",
    "slack_routes",
    "slack_service",
    "slack_web_app",
    "slack_web_client",
    "socket_mode_handler",
]
