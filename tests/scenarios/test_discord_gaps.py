"""Scenarios: knowledge gaps from Discord — a 👎 click is recorded as ``downvoted`` (with its channel, without
the user), and ``/gaps`` lists gaps to members with Manage Server only, escaped and without pings."""

from __future__ import annotations

from pathlib import Path

from kbbot.core.outcomes import Kind, OutcomeRecorder, RecordingFeedback
from kbbot.reports.digest import GapsReport
from kbbot.store.memory import MemoryFeedbackStore
from kbbot.store.sqlite_outcomes import SqliteOutcomeLog
from tests.scenarios.test_discord import (  # noqa: F401 - `world` is a fixture
    DOWN_ID,
    World,
    assert_no_ping,
    callbacks,
    followups,
    message_posts,
    running,
    world,
)

MANAGE_GUILD = 1 << 5  # developers/topics/permissions.mdx "Bitwise Permission Flags"


async def test_thumbs_down_is_downvoted_and_gaps_is_for_server_managers(
    world: World,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    fake = world.fake
    log = SqliteOutcomeLog(tmp_path / "outcomes.sqlite3")
    recorder = OutcomeRecorder(log, knowledgebase="kb")
    feedback = RecordingFeedback(MemoryFeedbackStore(), recorder)
    managers = fake.add_role(world.guild, "managers", permissions=MANAGE_GUILD)
    boss = fake.add_member(world.guild, "Boss", roles=[managers])
    try:
        async with running(world, feedback=feedback, gaps=GapsReport(recorder), data_dir=tmp_path):
            msg = fake.message_payload(world.general, world.ana, f"<@{fake.app_id}> @everyone vpn?",
                                       mentions=[fake.bot_user])
            fake.dispatch("MESSAGE_CREATE", msg)
            await fake.await_for(lambda: len(message_posts(fake, world.general)) == 1)
            answer = fake.channel_messages(world.general["id"])[-1]
            click = fake.interaction_payload(channel=world.general, member=world.bob, kind=3, message=answer,
                                             data={"custom_id": DOWN_ID, "component_type": 2})
            fake.dispatch("INTERACTION_CREATE", click)
            await fake.await_for(lambda: callbacks(fake, click))

            [down] = await log.since(0)
            assert (down.platform, down.channel, down.kind) == ("discord", world.general["id"], Kind.DOWNVOTED)
            assert world.bob["user"]["id"] not in repr(down)
            assert down.question and "vpn?" in down.question

            refused = fake.interaction_payload(channel=world.general, member=world.bob, data=fake.slash("gaps"))
            fake.dispatch("INTERACTION_CREATE", refused)
            await fake.await_for(lambda: callbacks(fake, refused))
            [no] = callbacks(fake, refused)
            assert "Manage Server" in no.body["data"]["content"] and no.body["data"]["flags"] & 64

            asked = fake.interaction_payload(channel=world.general, member=boss, data=fake.slash("gaps"))
            fake.dispatch("INTERACTION_CREATE", asked)
            await fake.await_for(lambda: followups(fake, asked))
            [listing] = followups(fake, asked)
            content = listing.body["content"]
            assert "Top knowledge gaps, last 7 days" in content and "asked once (downvoted)" in content
            assert listing.body["flags"] & 64  # only the manager sees it
            assert_no_ping(listing.body)
    finally:
        await log.aclose()


def test_the_gaps_command_is_hidden_from_members_by_default() -> None:
    from kbbot.adapters.discord.gaps import gaps_command

    command = gaps_command(GapsReport(OutcomeRecorder(None, knowledgebase="kb")))  # type: ignore[arg-type]
    assert command.default_permissions is not None and command.default_permissions.manage_guild
    assert command.guild_only
