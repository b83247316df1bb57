"""The app manifest asks for exactly what the adapter uses: its command, shortcut, events and scopes."""

from __future__ import annotations

from pathlib import Path

import yaml

from kbbot.adapters.slack import SlackOptions
from kbbot.adapters.slack.app import SAVE_SHORTCUT_CALLBACK

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack" / "manifest.yml"

# Web API method → scope it needs (chat.getPermalink, views.open, auth.test need none).
SCOPES_BY_USE = {
    "app_mention event": "app_mentions:read",
    "chat.postMessage / chat.postEphemeral": "chat:write",
    "slash command + shortcut": "commands",
    "reactions.add / reactions.remove": "reactions:write",
    "reaction_added event (🛑 ends follow-ups)": "reactions:read",
    "users.info": "users:read",
    "conversations.replies (public) + message.channels (follow-ups)": "channels:history",
    "conversations.replies (private) + message.groups (follow-ups)": "groups:history",
    "conversations.replies (DM) + message.im": "im:history",
    "conversations.replies (group DM)": "mpim:history",
    "conversations.info/members (public)": "channels:read",
    "conversations.info/members (private)": "groups:read",
    "conversations.info (DM)": "im:read",
    "conversations.info (group DM)": "mpim:read",
}


def test_manifest_matches_the_code() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    features, settings = manifest["features"], manifest["settings"]

    [command] = features["slash_commands"]
    assert command["command"] == SlackOptions().command
    assert command["should_escape"] is False
    [shortcut] = features["shortcuts"]
    assert (shortcut["type"], shortcut["callback_id"]) == ("message", SAVE_SHORTCUT_CALLBACK)

    assert sorted(settings["event_subscriptions"]["bot_events"]) == [
        "app_mention", "message.channels", "message.groups", "message.im", "reaction_added",
    ]
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(set(SCOPES_BY_USE.values()))
    assert "user" not in manifest["oauth_config"]["scopes"]

    urls = {command["url"], settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]}
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    assert features["app_home"]["messages_tab_enabled"] is True
