"""Scenarios: what a live Slack save puts on the page — integration posts (attachments, blocks), a deleted root,
bot credit, file links — and that secrets in the thread are masked, with the reply saying how many.

Payload shapes: python-slack-sdk's model tests (tests/fixtures/exports/slack/sdk_shapes.json, see the README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.slack_api import mention_event
from tests.planted_secrets import LEAKS, PLANTED
from tests.scenarios.slack_support import ALICE, BOB, GENERAL, slack_rig

SHAPES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "exports" / "slack" / "sdk_shapes.json").read_text()
)


def _shape(word: str) -> dict[str, Any]:
    message = dict(next(s["message"] for s in SHAPES if word in s["comment"]))
    message.pop("ts")  # the fake gives each message of a thread its own ts
    return message


async def test_integration_posts_deleted_root_and_secrets_on_a_live_save() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [
            {"user": "USLACKBOT", "subtype": "tombstone", "hidden": True, "text": "This message was deleted."},
            {"user": BOB, "text": f"the deploy token is {PLANTED['slack bot']}, do not share"},
            _shape("test_attachments"),
            _shape("HeaderBlockTests"),
            {"user": ALICE, "text": "", "files": [
                {"name": "dump.sql", "permalink": "https://acme.slack.com/files/U1/F1/dump.sql",
                 "url_private": "https://files.slack.com/files-pri/T1-F1/dump.sql?t=xoxe-1-abcdef0123"}]},
        ])
        await rig.event(mention_event(GENERAL, ALICE, "save Deploy token incident", "1700000900.000900",
                                      thread_ts=root))
        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert ":lock: 1 secret (access tokens, keys or passwords) was masked before saving." in note.params["text"]
        [page] = [p for p in rig.pw.pages() if p["title"] == "Deploy token incident"]
        content = page["content"]
        assert LEAKS["slack bot"] not in content and "xoxe" not in content
        assert "[secret masked]" in content
        assert "<em>(deleted message)</em>" in content  # no invented author for the deleted root
        for piece in ("some_pretext", "field_4_value", "and a footer", "Budget Performance", "Dogpatch"):
            assert piece in content  # integration content that is not in "text"
        assert "<strong>Deploy Bot</strong>" in content and "<strong>Budget Bot</strong>" in content
        assert "https://acme.slack.com/files/U1/F1/dump.sql" in content
