"""Scenarios: a failure in any Slack flow ends in exactly one private message to the person who asked, worded by
the one error hook (``app.error`` and the listener guard), with the ack kept; a bug logs one traceback and tells
the user something generic, never its details."""

from __future__ import annotations

import logging

import pytest

from kbbot.adapters.slack.rendering import render_error
from kbbot.core.replies import error_reply
from tests.fakes.slack_api import BOT_TOKEN, mention_event
from tests.scenarios.error_cases import check_logged, failures
from tests.scenarios.slack_support import ALICE, GENERAL, slack_rig

#: What a bug might carry: internals and a token-shaped string that must never reach a user.
LEAKY = RuntimeError(f"KeyError in _flight_lock at 0x7f3a (token {BOT_TOKEN})")

FAILURES = failures(LEAKY)



@pytest.mark.parametrize("error", FAILURES)
async def test_slash_command_failure_is_one_ephemeral_reply_and_the_ack_stands(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with slack_rig(scripted=error) as rig:
        response, url = await rig.command("how do I set up the VPN?")
        # The listener raised right after acking: the ack (Slack's 3 s answer) still went out.
        assert response.status_code == 200 and "Looking that up" in response.text
        await rig.wait_responses(url)
        await rig.quiet()
        [reply] = rig.slack.responses(url)
        assert reply["text"] == render_error(error_reply(error)).text
        assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
        assert rig.slack.calls("chat.postMessage") == [] and rig.slack.calls("chat.postEphemeral") == []
        sent = "\n".join(rig.slack.outgoing_bodies())
        assert "_flight_lock" not in sent and BOT_TOKEN not in sent.replace(f"Bearer {BOT_TOKEN}", "")
    check_logged(error, caplog)


@pytest.mark.parametrize("error", FAILURES)
async def test_mention_failure_is_one_ephemeral_message_in_the_thread(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with slack_rig(scripted=error) as rig:
        response = await rig.event(mention_event(GENERAL, ALICE, "vpn setup?", "1700009000.000100"))
        assert response.status_code == 200
        await rig.slack.await_for("chat.postEphemeral")
        await rig.quiet()
        [eph] = rig.slack.calls("chat.postEphemeral")
        assert eph.params["channel"] == GENERAL and eph.params["user"] == ALICE
        assert eph.params["thread_ts"] == "1700009000.000100"
        assert eph.params["text"] == render_error(error_reply(error)).text
        assert rig.slack.calls("chat.postMessage") == []
        assert len(rig.slack.calls("reactions.remove")) == 1  # the 👀 still goes
        assert "_flight_lock" not in "\n".join(rig.slack.outgoing_bodies())
    check_logged(error, caplog)
