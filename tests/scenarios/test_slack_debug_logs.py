"""At LOG_LEVEL=DEBUG the libraries log request URLs and bodies; a Slack ``response_url`` is a bearer
credential (anyone holding it can post as the app for 30 minutes), so its secret part never reaches the log.
A retried Slack call is one line of kbbot's own; slack_sdk's "A retry handler found" only shows at DEBUG."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from kbbot.ops.logging import setup_logging
from tests.fakes.slack_api import block_action_payload, mention_event
from tests.scenarios.slack_support import ALICE, GENERAL, slack_rig


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    stream = io.StringIO()
    setup_logging("DEBUG", "json", [], stream=stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)


async def test_debug_logs_never_contain_response_url_secrets(debug_log: io.StringIO) -> None:
    async with slack_rig() as rig:
        response, command_url = await rig.command("how do I set up the VPN")
        assert response.status_code == 200
        await rig.wait_responses(command_url)
        button_url = rig.slack.response_url()
        click = block_action_payload("kb_feedback_up", "how do I set up the VPN", user=ALICE, channel=GENERAL,
                                     response_url=button_url, message_ts="1700000400.000400")
        assert (await rig.interaction(click)).status_code == 200
        await rig.wait_responses(button_url)
    output = debug_log.getvalue()
    assert "slack_sdk" in output  # the libraries did log at DEBUG (the URLs went by)
    for url in (command_url, button_url):
        secret = url.rsplit("/", 1)[1]
        assert secret not in output
        assert url.rsplit("/", 1)[0] in output  # the rest of the URL stays, for debugging


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_a_retried_call_is_one_line_of_kbbots_and_slack_sdks_own_only_at_debug(level: str) -> None:
    root = logging.getLogger()
    handlers, old_level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    stream = io.StringIO()
    setup_logging(level, "text", [], stream=stream)
    try:
        async with slack_rig() as rig:
            rig.slack.fail_next("reactions.add", "internal_error", status=503)  # retried: an idempotent call
            await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000100.000100"))
            await rig.slack.await_for("reactions.add", count=2)
            await rig.slack.await_for("chat.postMessage")
    finally:
        root.handlers[:] = handlers
        root.setLevel(old_level)
        logging.setLogRecordFactory(factory)
    lines = stream.getvalue().splitlines()
    ours = [line for line in lines if "Slack reactions.add failed" in line]
    assert len(ours) == 1 and "WARNING" in ours[0] and "failed (HTTP 503); retrying (1 of 2)" in ours[0]
    theirs = [line for line in lines if "A retry handler found" in line]
    assert len(theirs) == (1 if level == "DEBUG" else 0)
