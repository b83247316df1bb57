"""Scenarios: a failure in a Discord command or question ends in exactly one clear reply, worded by the one error
hook (the command tree's ``on_error``, and the same wording for message events); a bug logs one traceback and
tells the user something generic, never its details. Real discord.py against the fake gateway and REST API."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kbbot.core.replies import error_reply
from kbbot.errors import ShuttingDown
from kbbot.ops.shutdown import TaskTracker
from tests.scenarios import test_discord
from tests.scenarios.error_cases import check_logged, failures
from tests.scenarios.test_discord import (
    ScriptedAsk,
    World,
    assert_no_ping,
    callbacks,
    followups,
    message_posts,
    original_edits,
    running,
)

world = test_discord.world  # the fake Discord server with its guild, channels and members

#: What a bug might carry: internals and a token-shaped string that must never reach a user.
LEAKY = RuntimeError("KeyError in _flight_lock at 0x7f3a (token MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.secret)")

FAILURES = failures(LEAKY)

INTERNALS = ("_flight_lock", "secret", "Traceback", "RuntimeError")



@pytest.mark.parametrize("error", FAILURES)
async def test_slash_ask_failure_fills_the_thinking_placeholder_once(
    world: World, tmp_path: Path, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    fake, tracker = world.fake, TaskTracker()
    caplog.set_level(logging.INFO)
    async with running(world, ask=ScriptedAsk(error=error), data_dir=tmp_path, tracker=tracker):
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="vpn?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        await fake.await_for(lambda: original_edits(fake, interaction))
        await tracker.idle(10)
        [defer] = callbacks(fake, interaction)
        [edit] = original_edits(fake, interaction)
    assert defer.body["type"] == 5  # acknowledged in time, then the one message
    assert edit.body["content"] == error_reply(error)
    assert_no_ping(edit.body)
    assert followups(fake, interaction) == [] and message_posts(fake, world.general) == []
    assert not any(word in repr(edit.body) for word in INTERNALS)
    check_logged(error, caplog)


@pytest.mark.parametrize("error", FAILURES)
async def test_mention_failure_is_one_reply_to_the_question(
    world: World, tmp_path: Path, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    fake, tracker = world.fake, TaskTracker()
    caplog.set_level(logging.INFO)
    async with running(world, ask=ScriptedAsk(error=error), data_dir=tmp_path, tracker=tracker):
        msg = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> vpn?", mentions=[fake.bot_user])
        fake.dispatch("MESSAGE_CREATE", msg)
        await fake.await_for(lambda: message_posts(fake, world.general))
        await tracker.idle(10)
        [post] = message_posts(fake, world.general)
    assert post.body["content"] == error_reply(error)
    assert post.body["message_reference"]["message_id"] == int(msg["id"])
    assert_no_ping(post.body)
    assert not any(word in repr(post.body) for word in INTERNALS)
    check_logged(error, caplog)


async def test_command_while_stopping_is_refused_privately_by_the_tree_hook(world: World, tmp_path: Path) -> None:
    fake, tracker = world.fake, TaskTracker()
    ask = ScriptedAsk()
    async with running(world, ask=ask, data_dir=tmp_path, tracker=tracker):
        tracker.close()  # SIGTERM: new work is refused (ShuttingDown) before anything is deferred
        interaction = fake.interaction_payload(
            channel=world.general, member=world.ana, data=fake.slash("ask", question="vpn?")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [refusal] = await fake.await_for(lambda: callbacks(fake, interaction))
    assert refusal.body["type"] == 4 and refusal.body["data"]["flags"] & 64  # a message only the asker sees
    assert refusal.body["data"]["content"] == error_reply(ShuttingDown())
    assert ask.questions == [] and original_edits(fake, interaction) == [] and followups(fake, interaction) == []
