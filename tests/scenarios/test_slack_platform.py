"""Scenarios: Slack as it really behaves — payloads in Slack's own shapes (copied from bolt-python's test suite,
see tests/fakes/slack_api.py), events nobody asked for, and Web API errors that must never end in silence."""

from __future__ import annotations

import json

import pytest

from kbbot.adapters.slack import rendering
from kbbot.core.models import Answer, Source
from tests.fakes.slack_api import (
    BOT_USER_ID,
    ENTERPRISE_ID,
    app_rate_limited_payload,
    block_action_payload,
    bot_message_event,
    classic_bot_message_event,
    mention_event,
    message_changed_event,
    message_deleted_event,
    message_event,
    message_shortcut_payload,
)
from tests.scenarios.slack_support import ALICE, DM, GENERAL, slack_rig


@pytest.mark.parametrize(
    ("error", "fields", "said"),
    [
        ("expired_trigger_id", {}, "took too long"),
        ("missing_scope", {"needed": "views:write", "provided": "chat:write"}, "`views:write`"),
        ("internal_error", {}, "`internal_error`"),
    ],
)
async def test_a_modal_that_fails_to_open_is_explained_to_the_user(error: str, fields: dict, said: str) -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "How do I reset MFA?"}])
        rig.slack.fail_next("views.open", error, **fields)
        shortcut = message_shortcut_payload(user=ALICE, channel=GENERAL, message_ts=root, text="How do I reset MFA?")
        response = await rig.interaction(shortcut)
        assert response.status_code == 200  # acknowledged, never "app did not respond"
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert told.params["user"] == ALICE and told.params["channel"] == GENERAL
        assert said in told.params["text"] and "/kb save" in told.params["text"]


async def test_the_save_button_whose_modal_fails_tells_the_user_too() -> None:
    async with slack_rig() as rig:
        rig.slack.fail_next("views.open", "expired_trigger_id")
        value = json.dumps({"ref": f"{GENERAL}:1700000000.000100", "title": "q"})
        payload = block_action_payload(rendering.ACTION_SAVE_THREAD, value, user=ALICE, channel=GENERAL,
                                       response_url=rig.slack.response_url(), message_ts="1700000000.000200")
        response = await rig.interaction(payload)
        assert response.status_code == 200
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert "took too long" in told.params["text"]


async def test_app_rate_limited_gets_200_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with slack_rig() as rig:
        body, headers = rig.signer.event(app_rate_limited_payload())
        with caplog.at_level("WARNING"):
            response = await rig.http.post(rig.events_url, content=body, headers=headers)
        assert response.status_code == 200
        assert "rate-limited this app's events" in caplog.text and "1518467820" in caplog.text


async def test_a_missing_scope_names_the_method_and_tells_what_to_add(caplog: pytest.LogCaptureFixture) -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "save me"}, {"user": ALICE, "text": "ok"}])
        rig.slack.revoke_scope("channels:history")
        with caplog.at_level("WARNING"):
            await rig.event(mention_event(GENERAL, ALICE, "save", "1700009000.000100", thread_ts=root))
            [told] = await rig.slack.await_for("chat.postEphemeral")
        assert "`channels:history`" in told.params["text"] and "admin" in told.params["text"]
        assert "conversations.replies: missing_scope (needed channels:history)" in caplog.text


async def test_an_enterprise_grid_mention_with_w_user_ids_is_answered() -> None:
    async with slack_rig() as rig:
        event = mention_event(GENERAL, "W0GRID001", "vpn setup?", "1700009100.000100")
        response = await rig.event(event)
        assert response.status_code == 200
        [post] = await rig.slack.await_for("chat.postMessage")
        assert "WireGuard" in json.dumps(post.params["blocks"])
        assert ENTERPRISE_ID  # the envelope carried enterprise_id and Grid authorizations


@pytest.mark.parametrize(
    "event",
    [
        message_changed_event(DM, ALICE, "vpn setup?", "1700009200.000100"),
        message_deleted_event(DM, ALICE, "1700009201.000100"),
        bot_message_event(DM, "vpn setup?", "1700009202.000100"),
        classic_bot_message_event(DM, "vpn setup?", "1700009203.000100"),
    ],
    ids=["message_changed", "message_deleted", "bot", "bot_message"],
)
async def test_message_subtypes_in_a_dm_are_not_questions(event: dict) -> None:
    async with slack_rig() as rig:
        response = await rig.event(event)
        assert response.status_code == 200
        # A real question afterwards is answered, so the quiet above was not a crash.
        await rig.event(message_event(DM, ALICE, "vpn setup?", "1700009300.000100"))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert post.params["channel"] == DM
        await rig.bot.drain()
        assert len(rig.slack.calls("chat.postMessage")) == 1
        assert BOT_USER_ID not in post.params["text"]


async def test_questions_and_titles_carry_names_not_ids_or_broadcasts() -> None:
    async with slack_rig(scripted=Answer(text="Use WireGuard.", source=Source.AI)) as rig:
        text = "<!here> how did <@U0BOB0001> set up the VPN for <@W0GRID001|grace>? <!channel>"
        await rig.event(mention_event(GENERAL, ALICE, text, "1700009400.000100"))
        await rig.slack.await_for("chat.postMessage")
        [question] = rig.bot.handlers.services.ask.questions  # type: ignore[attr-defined]
        assert question.text == "how did @bob set up the VPN for @grace?"

        _, url = await rig.command("what does <@U0BOB0001> know about <!everyone> expenses?")
        await rig.wait_responses(url)
        asked = rig.bot.handlers.services.ask.questions[-1]  # type: ignore[attr-defined]
        assert asked.text == "what does @bob know about expenses?"

        said = "<!here> <@U0BOB0001> and <@U0NOBODY1> fixed it"
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": said}])
        shortcut = message_shortcut_payload(user=ALICE, channel=GENERAL, message_ts=root, text=said)
        await rig.interaction(shortcut)
        [opened] = await rig.slack.await_for("views.open")
        title = opened.params["view"]["blocks"][0]["element"]["initial_value"]
        assert title == "@bob and fixed it"
        assert "<" not in title and "here" not in title and "U0" not in title
