"""The weekly gaps digest: due from Monday 09:00 UTC, posted once per week across replicas (claimed through
the shared deduper), one platform's failure does not stop the other's; and the Slack poster against the fake
Slack Web API."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.gaps import digest_poster
from kbbot.core.models import Answer, Source
from kbbot.core.outcomes import OutcomeRecorder
from kbbot.reports.digest import GapsReport, GapsSummary, WeeklyDigest, digest_week
from kbbot.store.memory import MemoryDeduper
from kbbot.store.sqlite_outcomes import SqliteOutcomeLog
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
    replicas = [WeeklyDigest(GapsReport(recorder), [broken, record], shared, clock=clock) for _ in range(2)]
    assert [await r.post_if_due() for r in replicas] == [False, False]  # 08:59
    clock.now += 60
    assert [await r.post_if_due() for r in replicas] == [True, False]
    assert await replicas[0].post_if_due() is False
    [summary] = got
    assert summary.days == 7 and summary.gaps[0].question == "where is the zeppelin"
    clock.now += 7 * 86400
    assert await replicas[1].post_if_due() is True and len(got) == 2
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
