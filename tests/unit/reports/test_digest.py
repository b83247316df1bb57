"""The weekly gaps digest: due from Monday 09:00 UTC, posted once per week across replicas (claimed through
the shared deduper), one platform's failure does not stop the other's; and the Slack poster against the fake
Slack Web API."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.discord.gaps import digest_poster as discord_digest_poster
from kbbot.adapters.slack.gaps import digest_poster
from kbbot.core.models import Answer, Source
from kbbot.core.outcomes import OutcomeRecorder
from kbbot.reports.digest import GapsReport, GapsSummary, Poster, WeeklyDigest, digest_week
from kbbot.store.memory import MemoryDeduper
from kbbot.store.sqlite_outcomes import SqliteOutcomeLog
from tests.fakes.discord_api import SEND_MESSAGES, VIEW_CHANNEL, FakeDiscord, discord_pointed_at
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack

MONDAY_0859 = 1_765_789_140.0  # 2025-12-15T08:59:00Z (a Monday, ISO week 51)


def test_digest_week() -> None:
    assert digest_week(MONDAY_0859) is None
    assert digest_week(MONDAY_0859 + 60) == "2025-W51"
    assert digest_week(MONDAY_0859 + 6 * 86400) == "2025-W51"  # Sunday: still that week's
    assert digest_week(MONDAY_0859 + 7 * 86400) is None  # next Monday before 09:00


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_posted_once_per_week_across_replicas(tmp_path: Path) -> None:
    clock = Clock(MONDAY_0859)
    log = SqliteOutcomeLog(tmp_path / "o.sqlite3")
    recorder = OutcomeRecorder(log, knowledgebase="kb", clock=clock)
    await recorder.answered(platform="slack", channel="C1", question="where is the zeppelin",
                            answer=Answer("I couldn't find this.", source=Source.SEARCH, empty=True))
    got: list[GapsSummary] = []

    async def broken(summary: GapsSummary) -> None:
        raise RuntimeError("the platform said no")

    async def record(summary: GapsSummary) -> None:
        got.append(summary)

    shared = MemoryDeduper()  # Redis in production: one for every replica
    posters = {"slack": broken, "discord": record}
    replicas = [WeeklyDigest(GapsReport(recorder), posters, shared, clock=clock) for _ in range(2)]
    assert [await r.post_if_due() for r in replicas] == [False, False]  # 08:59
    clock.now += 60
    assert [await r.post_if_due() for r in replicas] == [True, False]
    assert await replicas[0].post_if_due() is False
    [summary] = got
    assert summary.days == 7 and summary.gaps[0].question == "where is the zeppelin"
    clock.now += 7 * 86400
    assert await replicas[1].post_if_due() is True and len(got) == 2
    await log.aclose()


async def test_each_platform_is_claimed_on_its_own(tmp_path: Path) -> None:
    # Kubernetes: Slack replicas (deployment.yaml) and the one Discord pod (discord.yaml) share Redis. With one claim
    # for the week, whichever checked first took it and the other platform's channel got no digest.
    clock = Clock(MONDAY_0859 + 60)
    log = SqliteOutcomeLog(tmp_path / "o.sqlite3")
    recorder = OutcomeRecorder(log, knowledgebase="kb", clock=clock)
    posted: list[str] = []

    def poster(platform: str) -> Poster:
        async def post(summary: GapsSummary) -> None:
            posted.append(platform)

        return post

    shared = MemoryDeduper()
    slack_pods = [WeeklyDigest(GapsReport(recorder), {"slack": poster("slack")}, shared, clock=clock) for _ in "ab"]
    discord_pod = WeeklyDigest(GapsReport(recorder), {"discord": poster("discord")}, shared, clock=clock)
    assert [await d.post_if_due() for d in (*slack_pods, discord_pod)] == [True, False, True]
    assert posted == ["slack", "discord"]
    await log.aclose()


async def test_a_channel_the_bot_is_not_in_is_logged_and_that_weeks_digest_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Slack's chat.postMessage without chat:write.public (deploy/slack/manifest.yml does not ask for it) in a channel
    # the bot was not invited to: {"ok": false, "error": "not_in_channel"} (slack-ruby/slack-api-ref,
    # methods/chat/chat.postMessage.json, "errors").
    clock = Clock(MONDAY_0859 + 60)
    log = SqliteOutcomeLog(tmp_path / "o.sqlite3")
    recorder = OutcomeRecorder(log, knowledgebase="kb", clock=clock)
    with FakeSlack() as slack:
        slack.add_channel("C0DIGEST1", "wiki-team")
        slack.fail_next("chat.postMessage", "not_in_channel")
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        digest = WeeklyDigest(GapsReport(recorder), {"slack": digest_poster(client, "C0DIGEST1")}, MemoryDeduper(),
                              clock=clock)  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="kbbot.reports.digest"):
            assert await digest.post_if_due() is True
        clock.now += 3600
        assert await digest.post_if_due() is False  # claimed: not retried (and not re-logged) until next Monday
        assert len(slack.calls("chat.postMessage")) == 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage() == "could not post the weekly gaps digest to slack"
    assert record.exc_info is not None and "'error': 'not_in_channel'" in str(record.exc_info[1])
    await log.aclose()


@pytest.mark.parametrize(
    ("deny", "code"),
    [
        (VIEW_CHANNEL, "(error code: 50001): Missing Access"),
        (SEND_MESSAGES, "(error code: 50013): Missing Permissions"),
    ],
)
async def test_a_discord_channel_the_bot_may_not_post_in_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, deny: int, code: str
) -> None:
    # The fake's permission rules (tests/fakes/discord_api.py; discord-api-docs developers/topics/permissions.mdx,
    # opcodes-and-status-codes.mdx 50001/50013), through discord.py's REST client as kbbot's poster uses it.
    clock = Clock(MONDAY_0859 + 60)
    log = SqliteOutcomeLog(tmp_path / "o.sqlite3")
    recorder = OutcomeRecorder(log, knowledgebase="kb", clock=clock)
    with FakeDiscord() as fake, discord_pointed_at(fake):
        guild = fake.add_guild()
        channel = fake.add_channel(guild, "wiki-team")
        fake.overwrite(channel, fake.bot_role(guild)["id"], deny=deny, kind=0)
        client = discord.Client(intents=discord.Intents.none())
        await client.login(fake.token)
        try:
            post = discord_digest_poster(client, int(channel["id"]))
            digest = WeeklyDigest(GapsReport(recorder), {"discord": post}, MemoryDeduper(), clock=clock)
            with caplog.at_level(logging.WARNING, logger="kbbot.reports.digest"):
                assert await digest.post_if_due() is True
        finally:
            await client.close()
    [record] = [r for r in caplog.records if r.name == "kbbot.reports.digest"]
    assert record.getMessage() == "could not post the weekly gaps digest to discord"
    assert record.exc_info is not None and str(record.exc_info[1]) == f"403 Forbidden {code}"
    await log.aclose()


@pytest.mark.parametrize("gaps", [0, 1])
async def test_slack_digest_is_one_escaped_message(tmp_path: Path, gaps: int) -> None:
    clock = Clock(MONDAY_0859 + 3600)
    log = SqliteOutcomeLog(tmp_path / "o.sqlite3")
    recorder = OutcomeRecorder(log, knowledgebase="kb", clock=clock)
    if gaps:
        await recorder.failed(platform="slack", channel="C1", question="<!here> & <b>why</b>?")
    with FakeSlack() as slack:
        slack.add_channel("C0DIGEST1", "wiki-team")
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
        await digest_poster(client, "C0DIGEST1")(await GapsReport(recorder).top())
        [post] = slack.calls("chat.postMessage")
    text = str(post.params["blocks"])
    assert post.params["channel"] == "C0DIGEST1" and "Weekly knowledge gaps, last 7 days" in text
    if gaps:
        assert "<!here>" not in text and "&amp; &lt;b&gt;why&lt;/b&gt;?" in text and "(error)" in text
    else:
        assert "No gaps" in text
    await log.aclose()
