"""Scenarios: malformed, truncated or surprising input from Slack, and a Slack Web API that misbehaves."""

from __future__ import annotations

import json

from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    block_action_payload,
    command_payload,
    mention_event,
    message_event,
    view_submission_payload,
)
from tests.scenarios.slack_support import ALICE, DM, GENERAL, slack_rig


async def test_garbage_bodies_are_refused_without_side_effects() -> None:
    async with slack_rig() as rig:
        for body, content_type in (
            ("not json at all", "application/json"),
            ("{", "application/json"),
            ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
            ("", "application/json"),
            ('{"type": "event_callback"}', "application/json"),
            (json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}),
             "application/json"),
        ):
            headers = {"Content-Type": content_type, **rig.signer.sign(body)}
            response = await rig.http.post(rig.events_url, content=body, headers=headers)
            assert response.status_code < 500, (body, response.status_code, response.text)
        await rig.quiet()
        assert {c.method for c in rig.slack.calls()} <= {"auth.test"}
        assert rig.pw.stats().queries == 0


async def test_oversized_body_is_refused() -> None:
    async with slack_rig() as rig:
        body = json.dumps({"type": "event_callback", "padding": "x" * (1 << 20)})
        headers = {"Content-Type": "application/json", **rig.signer.sign(body)}
        response = await rig.http.post(rig.events_url, content=body, headers=headers)
        assert response.status_code == 413


async def test_huge_and_control_character_questions() -> None:
    async with slack_rig() as rig:
        await rig.event(mention_event(GENERAL, ALICE, "vpn " * 5000, "1700002000.000100"))
        [too_long] = await rig.slack.await_for("chat.postEphemeral")
        assert "please keep it to 2,000 at most" in too_long.params["text"] and too_long.params["user"] == ALICE

        await rig.event(message_event(DM, ALICE, "\x00\u200b\u202e VPN\x1b setup?", "1700002001.000100"))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert "VPN setup" in json.dumps(post.params["blocks"])
        assert rig.pw.stats().queries == 1


async def test_interactions_with_tampered_values() -> None:
    async with slack_rig() as rig:
        for action, value in (("kb_save_thread", "not json"), ("kb_save_thread", '{"ref": "C1:<!channel>"}'),
                              ("kb_share", '{"id": 1}'), ("kb_feedback_up", "")):
            url = rig.slack.response_url()
            response = await rig.interaction(block_action_payload(action, value, user=ALICE, channel=GENERAL,
                                                                  response_url=url))
            assert response.status_code == 200
        await rig.quiet()
        assert rig.slack.calls("views.open") == []
        assert rig.slack.calls("chat.postMessage") == []

        # A view submission whose private_metadata was tampered with asks the user to start again.
        view = {"type": "modal", "callback_id": "kb_save_modal", "private_metadata": '{"channel": "nope"}'}
        response = await rig.interaction(view_submission_payload(view, {"title": {"title_input": "T"}}, user=ALICE))
        assert response.json()["response_action"] == "errors"
        assert rig.saver.saved == []


async def test_unknown_command_text_and_stray_command_is_handled() -> None:
    async with slack_rig() as rig:
        body, headers = rig.signer.command(
            command_payload("vpn?", user=ALICE, channel=GENERAL, response_url=rig.slack.response_url(),
                            command="/other"))
        response = await rig.http.post(rig.events_url, content=body, headers=headers)
        assert response.status_code == 404  # Bolt: no listener for /other
        assert rig.pw.stats().queries == 0


async def test_slack_rate_limit_and_errors_on_post() -> None:
    async with slack_rig() as rig:
        rig.slack.fail_next("chat.postMessage", "ratelimited")  # HTTP 429, Retry-After: 0
        await rig.event(mention_event(GENERAL, ALICE, "vpn setup?", "1700002100.000100"))
        posts = await rig.slack.await_for("chat.postMessage", 2)
        assert posts[0].params == posts[1].params  # retried once, same message
        await rig.slack.await_for("reactions.remove")

        # reactions failing (missing scope, already reacted) never stop an answer
        rig.slack.fail_next("reactions.add", "already_reacted")
        rig.slack.fail_next("reactions.remove", "no_reaction")
        await rig.event(mention_event(GENERAL, ALICE, "expense policy?", "1700002101.000100"))
        await rig.slack.await_for("chat.postMessage", 3)

        # the ephemeral error path falls back to a DM when Slack refuses the ephemeral message
        rig.pw.fail_next(20, status=503)
        rig.slack.fail_next("chat.postEphemeral", "user_not_in_channel")
        await rig.event(mention_event(GENERAL, ALICE, "anything?", "1700002102.000100"))
        dm = await rig.slack.await_for("chat.postMessage", 4, timeout=20)
        assert dm[-1].params["channel"] == ALICE and "isn't reachable" in dm[-1].params["text"]


async def test_no_secret_ever_leaves_in_a_body() -> None:
    async with slack_rig() as rig:
        rig.pw.fail_next(1, status=401)
        await rig.event(mention_event(GENERAL, ALICE, "vpn?", "1700002200.000100"))
        await rig.slack.await_for("chat.postEphemeral")
        _, url = await rig.command("status")
        await rig.wait_responses(url)
        for body in rig.slack.outgoing_bodies():
            for secret in (BOT_TOKEN, SIGNING_SECRET, rig.pw.token):
                assert secret not in body


async def test_status_failure_is_reported_not_silent() -> None:
    async with slack_rig() as rig:

        async def broken_counts() -> None:
            raise RuntimeError("database is locked")

        rig.feedback.counts = broken_counts  # type: ignore[method-assign]
        response, url = await rig.command("status")
        assert response.status_code == 200
        [reply] = await rig.wait_responses(url)
        assert "went wrong" in reply["text"] and "database" not in reply["text"]
