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


def _create_the_app(readme: Path, heading: str) -> str:
    text = readme.read_text(encoding="utf-8")
    start = text.index(heading)
    steps = text[text.index("1. **Create the app", start):]
    return steps[: steps.index("\n\n", steps.index("5. **Invite the bot"))]


def test_both_readmes_give_the_same_steps_as_the_manifest() -> None:
    # deploy/slack/README.md had fallen behind (no reactions:read, no follow-up events): it is now the main
    # README's section word for word, and that section names every scope and event of the manifest.
    root = MANIFEST.parents[2]
    main = _create_the_app(root / "README.md", "### Create the Slack app")
    deploy = _create_the_app(MANIFEST.parent / "README.md", "## Create the Slack app")
    assert deploy == main.replace("(deploy/slack/manifest.yml)", "(manifest.yml)")
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    prose = " ".join(main.split())
    for scope in manifest["oauth_config"]["scopes"]["bot"]:
        assert f"`{scope}`" in prose or f"`*:{scope.split(':')[1]}`" in prose, scope
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        assert f"`{event}`" in prose, event
