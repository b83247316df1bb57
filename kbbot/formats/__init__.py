"""Chat data as the platforms write it → the neutral models: no network, no platform SDK.

    slack.py           one Slack message (Web API or export JSON) → ThreadMessage; live saves and imports share it
    slack_export.py    a Slack workspace export (zip or folder) → one Thread per thread
    discord_export.py  DiscordChatExporter JSON (every format version, split parts) → Thread
"""
