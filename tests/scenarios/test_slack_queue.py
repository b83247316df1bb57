"""Scenarios: a question that must wait for the Perfect Wiki token's rate budget tells the asker their place in
line — once, to the asker only — and the answer follows.

The real :class:`TokenRateLimiter` (with windows shrunk to fractions of a second, on simulated time) sits in
front of the real Perfect Wiki backend and the fake server. "Busy" is made the way it happens in production:
the budget of the window is used up and another caller is already waiting for the next slot, so a new
question is #2 in line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kbbot.core.ask import QueuePosition
from kbbot.store.limiter import TokenRateLimiter
from tests.fakes.slack_api import mention_event, message_event
from tests.limiting import SimClock, settle, take
from tests.scenarios.slack_support import ALICE, DM, GENERAL, Rig, slack_rig

NOTICE = "Lots of questions right now: you're #2 in line, about 1 s."


def tight_limiter(clock: SimClock) -> TokenRateLimiter:
    """One live request per 0.5 s window (on simulated time): the next caller waits about one window."""
    return TokenRateLimiter(
        "slack-queue-test", per_second=2, per_minute=2, headroom=1, second_window=0.25, minute_window=0.5,
        clock=clock, sleep=clock.sleep,
    )


@asynccontextmanager
async def backlog(limiter: TokenRateLimiter, clock: SimClock) -> AsyncIterator[None]:
    """The window's budget is spent and one more caller is waiting for it, as in a burst of questions. Time
    stands still inside the block: whoever queues stays queued until it ends."""
    await take(limiter)
    clock.hold()
    waiting = asyncio.create_task(take(limiter))
    try:
        await settle(lambda: limiter.queued() >= 1)
        yield
    finally:
        clock.release()
        await waiting


async def ephemerals(rig: Rig) -> list[str]:
    return [str(c.params.get("text", "")) for c in rig.slack.calls("chat.postEphemeral")]


async def test_queue_position_matches_the_core_message() -> None:
    # The notice below is QueuePosition's own text: #2 at 1 request per 0.5 s window is about 1 s.
    limiter = tight_limiter(SimClock())
    assert QueuePosition(2, limiter.estimate_wait(2)).message() == NOTICE


async def test_mention_while_the_budget_is_used_up_tells_the_asker_once_then_answers() -> None:
    clock = SimClock()
    limiter = tight_limiter(clock)
    async with slack_rig(limiter=limiter) as rig:
        async with backlog(limiter, clock):
            ts = "1700000500.000500"
            await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", ts))
            [notice] = await rig.slack.await_for("chat.postEphemeral")
            assert rig.slack.calls("chat.postMessage") == []  # told while still in line
        [post] = await rig.slack.await_for("chat.postMessage")
        assert notice.params["user"] == ALICE and notice.params["channel"] == GENERAL
        assert notice.params["thread_ts"] == ts  # shown where the answer will appear
        assert NOTICE in notice.params["text"]
        assert "blocks" not in notice.params or not notice.params["blocks"]
        assert notice.at < post.at
        assert post.params["thread_ts"] == ts and "VPN setup" in str(post.params["blocks"])
        await rig.quiet()
        assert len(rig.slack.calls("chat.postEphemeral")) == 1  # one notice per question
        assert rig.pw.stats().queries == 1


async def test_slash_command_queue_notice_goes_to_the_response_url_before_the_answer() -> None:
    clock = SimClock()
    limiter = tight_limiter(clock)
    async with slack_rig(limiter=limiter) as rig:
        async with backlog(limiter, clock):
            response, url = await rig.command("expense policy receipts?")
            assert response.status_code == 200 and "Looking that up" in response.json()["text"]
            [notice] = await rig.wait_responses(url)  # told while still in line
        notice, answer = await rig.wait_responses(url, 2)
        assert notice["response_type"] == "ephemeral" and NOTICE in notice["text"]
        assert notice.get("replace_original") is False
        assert answer["response_type"] == "ephemeral" and "Expense policy" in str(answer["blocks"])
        await rig.quiet()
        assert len(rig.slack.responses(url)) == 2
        assert rig.slack.calls("chat.postEphemeral") == []  # /kb replies through its response_url only


async def test_dm_question_gets_the_notice_in_the_dm() -> None:
    clock = SimClock()
    limiter = tight_limiter(clock)
    async with slack_rig(limiter=limiter) as rig:
        async with backlog(limiter, clock):
            await rig.event(message_event(DM, ALICE, "expense policy receipts?", "1700000600.000600"))
            [notice] = await rig.slack.await_for("chat.postEphemeral")
            assert rig.slack.calls("chat.postMessage") == []
        [post] = await rig.slack.await_for("chat.postMessage")
        assert notice.params["channel"] == DM and notice.params["user"] == ALICE
        assert NOTICE in notice.params["text"]
        assert post.params["channel"] == DM


async def test_no_notice_when_nobody_is_waiting_or_the_answer_is_cached() -> None:
    clock = SimClock()
    limiter = tight_limiter(clock)
    async with slack_rig(limiter=limiter) as rig:
        await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000700.000700"))
        await rig.slack.await_for("chat.postMessage")
        async with backlog(limiter, clock):
            # Same question again while others queue: a cache hit never waits, so nothing to tell.
            await rig.event(mention_event(GENERAL, ALICE, "How do I set up the VPN", "1700000701.000701"))
            await rig.slack.await_for("chat.postMessage", 2)
        assert rig.slack.calls("chat.postEphemeral") == []
        assert rig.pw.stats().queries == 1


async def test_a_refused_notice_falls_back_to_a_dm_and_the_answer_still_arrives() -> None:
    clock = SimClock()
    limiter = tight_limiter(clock)
    async with slack_rig(limiter=limiter) as rig:
        rig.slack.fail_next("chat.postEphemeral", "user_not_in_channel")
        async with backlog(limiter, clock):
            await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000800.000800"))
            [dm_notice] = await rig.slack.await_for("chat.postMessage")  # while the question is still in line
        posts = await rig.slack.await_for("chat.postMessage", 2)
        assert dm_notice.params["channel"] == ALICE
        assert NOTICE in dm_notice.params["text"]
        answer = next(p for p in posts if p.params["channel"] == GENERAL)
        assert "VPN setup" in str(answer.params["blocks"])
