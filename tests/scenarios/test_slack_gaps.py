"""Scenarios: knowledge gaps from Slack — a 👎 is recorded as ``downvoted``, a "don't know" as ``empty``, and
``/kb gaps`` shows them to SLACK_ADMIN_USERS only; ``/kb status`` shows the AI quota when one is set."""

from __future__ import annotations

from kbbot.adapters.slack import SlackOptions
from tests.fakes.slack_api import block_action_payload, mention_event
from tests.scenarios.slack_support import ALICE, BOB, GENERAL, slack_rig
from tests.scenarios.test_slack_ask import _all_text

XSS = "<!channel> <script>alert(1)</script> parking?"


async def test_thumbs_down_and_dont_know_are_gaps_admins_can_list() -> None:
    async with slack_rig(options=SlackOptions(admin_users=(ALICE,))) as rig:
        await rig.event(mention_event(GENERAL, BOB, "quantum flux capacitor calibration?", "1700000500.000500"))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert _all_text(post.params["blocks"]).count("couldn't find") == 1  # one "don't know", not two
        for question in ("how do I set up the VPN?", XSS):
            url = rig.slack.response_url()
            payload = block_action_payload("kb_feedback_down", question, user=BOB, channel=GENERAL,
                                           response_url=url, message_ts="1700000400.000400")
            assert (await rig.interaction(payload)).status_code == 200
            await rig.wait_responses(url)

        _response, url = await rig.command("gaps", user=BOB)
        [refused] = await rig.wait_responses(url)
        assert "Only kbbot admins" in refused["text"] and "quantum" not in str(refused)

        _response, url = await rig.command("gaps", user=ALICE)
        [listed] = await rig.wait_responses(url)
        text = _all_text(listed["blocks"])
        assert "Top knowledge gaps, last 7 days" in text
        assert "quantum flux capacitor calibration? — asked once (empty)" in text
        assert "how do I set up the VPN? — asked once (downvoted)" in text
        # User text stays text: no live broadcast, no raw markup.
        assert "<!channel>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; parking?" in text
        assert listed["response_type"] == "ephemeral"


async def test_gaps_by_mention_is_admin_only_too() -> None:
    async with slack_rig() as rig:  # no SLACK_ADMIN_USERS: nobody
        await rig.event(mention_event(GENERAL, ALICE, "gaps", "1700000600.000600"))
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert "Only kbbot admins" in str(told.params)


def test_status_shows_the_ai_quota_forecast() -> None:
    from datetime import date

    from kbbot.adapters.slack.rendering import render_status
    from kbbot.core.ask import AskStatus
    from kbbot.core.ports import CacheStats, FeedbackCounts, QuotaState
    from kbbot.core.quota_forecast import QuotaForecast

    def status(ai_quota: QuotaForecast | None = None) -> str:
        asked = AskStatus(kb_kind="perfectwiki", kb_name="Acme", cache=CacheStats(3, 1, 1),
                          quota=QuotaState(paused=False), queued=0, ai_quota=ai_quota)
        return _all_text(render_status(asked, FeedbackCounts(helpful=1, not_helpful=0)).blocks)

    text = status(QuotaForecast(850, 1000, 50.0, date(2025, 12, 20)))
    assert "*AI quota this month:* :warning: 850 of 1,000 billed calls (85%), runs out on 2025-12-20" in text
    text = status(QuotaForecast(10, 1000, 1.0, None))
    assert "10 of 1,000 billed calls (1%), runs out after this month" in text and ":warning:" not in text
    assert "AI quota this month" not in status()


async def test_gaps_in_a_direct_message() -> None:
    from tests.fakes.slack_api import message_event
    from tests.scenarios.slack_support import DM

    async with slack_rig(options=SlackOptions(admin_users=(ALICE,))) as rig:
        await rig.event(message_event(DM, ALICE, "gaps", "1700000700.000700"))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert post.params["channel"] == DM and "Top knowledge gaps, last 7 days" in str(post.params["blocks"])
        assert rig.pw.stats().queries == 0  # a command, not a question
