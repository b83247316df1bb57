"""Scenarios: follow-ups in Slack threads through the real Bolt app, AskService and the fake Perfect Wiki.

Event payloads are the fakes' (bolt-python tests' shapes; ``reaction_added`` as in Slack's event reference).
Nothing here sleeps: a scenario that expects silence waits for the adapter's in-flight work to finish
(``bot.drain()``, which waits for every listener the events started) and then looks.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.slack_api import (
    BOT_USER_ID,
    block_action_payload,
    mention_event,
    message_event,
    reaction_event,
)
from tests.scenarios.slack_support import ALICE, BOB, GENERAL, MALLORY, SECRET, Rig, slack_rig

VPN_Q = "How do I set up the VPN?"
T1, T2 = "1700001000.000100", "1700002000.000100"


def reply(channel: str, user: str, text: str, ts: str, thread_ts: str) -> dict[str, Any]:
    """A person's reply in a thread, as ``message.channels`` / ``message.groups`` deliver it."""
    kind = "group" if channel.startswith("G") else "channel"
    return message_event(channel, user, text, ts, channel_type=kind, thread_ts=thread_ts)


async def ask_in_channel(rig: Rig, text: str, ts: str, *, channel: str = GENERAL) -> None:
    """A mention at the top of ``channel``: kbbot answers in a new thread under it."""
    before = len(rig.slack.calls("chat.postMessage"))
    await rig.event(mention_event(channel, ALICE, text, ts))
    await rig.slack.await_for("chat.postMessage", before + 1)
    await settled(rig)  # the thread is remembered once the listener is done


def posts_in(rig: Rig, thread_ts: str) -> list[dict[str, Any]]:
    return [c.params for c in rig.slack.calls("chat.postMessage") if c.params.get("thread_ts") == thread_ts]


def kbbot_messages(rig: Rig, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in rig.slack.thread(channel, thread_ts) if m.get("user") == BOT_USER_ID]


async def settled(rig: Rig) -> None:
    """Every listener started so far has finished (no sleeping)."""
    await rig.bot.drain()


async def test_reply_without_mention_is_answered_in_the_thread_with_the_topic() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        await rig.event(reply(GENERAL, BOB, "and on a Mac?", "1700001000.000300", T1))
        await rig.slack.await_for("chat.postMessage", 2)
        follow_up = posts_in(rig, T1)[-1]
        assert "VPN setup" in json.dumps(follow_up["blocks"])
        # What went upstream stands on its own: the thread's topic words and the follow-up's.
        upstream = rig.pw.asked()[-1]
        assert "VPN" in upstream and "Mac" in upstream and "set up" in upstream
        assert rig.pw.asked() == [VPN_Q, "and on a Mac (set up VPN)?"]
        # The answer says what the wiki was asked, so nobody wonders why it answered about the VPN.
        assert "Asked the wiki: “and on a Mac (set up VPN)?”" in json.dumps(follow_up["blocks"], ensure_ascii=False)


async def test_follow_ups_in_private_channels_too() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1, channel=SECRET)
        await rig.event(reply(SECRET, BOB, "does it work offline?", "1700001000.000300", T1))
        await rig.slack.await_for("chat.postMessage", 2)
        assert "VPN" in rig.pw.asked()[-1] and "offline" in rig.pw.asked()[-1]


async def test_the_same_follow_up_in_two_threads_costs_one_billed_call() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        await ask_in_channel(rig, "how do i set up the vpn", T2)  # another thread, from the cache
        await rig.event(reply(GENERAL, BOB, "and on a Mac?", "1700001000.000300", T1))
        await rig.slack.await_for("chat.postMessage", 3)
        await rig.event(reply(GENERAL, MALLORY, "And on a Mac", "1700002000.000300", T2))
        await rig.slack.await_for("chat.postMessage", 4)
        assert rig.pw.stats().billed_queries == 2  # the VPN question once, its follow-up once
        assert len(posts_in(rig, T2)) == 2
        assert "cached" in json.dumps(posts_in(rig, T2)[-1]["blocks"]).lower()


async def test_acknowledgements_get_no_answer_and_no_ai_call() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        for n, text in enumerate(["thanks!", "ok", "got it, thanks", "perfect, that worked", "👍", ":pray:"]):
            await rig.event(reply(GENERAL, BOB, text, f"1700001000.0003{n:02d}", T1))
        await settled(rig)
        assert rig.pw.stats().queries == 1
        assert len(rig.slack.calls("chat.postMessage")) == 1
        assert len(rig.slack.calls("reactions.add")) == 1  # not even the 👀


async def test_foreign_threads_and_top_level_messages_are_left_alone() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "Anyone know the VPN server?"}])
        await rig.event(reply(GENERAL, ALICE, "How do I set up the VPN?", "1700003000.000200", root))
        await rig.event(message_event(GENERAL, ALICE, "How do I set up the VPN?", "1700003000.000300",
                                      channel_type="channel"))
        await settled(rig)
        assert rig.slack.calls("chat.postMessage") == [] and rig.slack.calls("reactions.add") == []
        assert rig.pw.stats().queries == 0


async def test_a_follow_up_that_mentions_the_bot_is_answered_once_with_the_topic() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        ts = "1700001000.000400"
        # Slack sends the mention twice: as message.channels and as app_mention (other event ids).
        as_message = reply(GENERAL, BOB, f"<@{BOT_USER_ID}> and on a Mac?", ts, T1)
        await rig.event(as_message)
        await rig.event(mention_event(GENERAL, BOB, "and on a Mac?", ts, thread_ts=T1))
        await rig.slack.await_for("chat.postMessage", 2)
        await settled(rig)
        assert len(rig.slack.calls("chat.postMessage")) == 2
        assert rig.pw.asked()[-1] == "and on a Mac (set up VPN)?"


async def test_a_redelivered_follow_up_is_answered_once() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        event = reply(GENERAL, BOB, "and on a Mac?", "1700001000.000500", T1)
        await rig.event(event, event_id="Ev0FOLLOW1")
        await rig.event(event, event_id="Ev0FOLLOW1", retry_num=1)
        await rig.slack.await_for("chat.postMessage", 2)
        await settled(rig)
        assert len(rig.slack.calls("chat.postMessage")) == 2
        assert rig.pw.stats().queries == 2


async def test_bots_and_edits_in_an_answered_thread_are_not_follow_ups() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        other_bot = reply(GENERAL, "UB111", "and on a Mac?", "1700001000.000600", T1)
        other_bot["bot_id"] = "B999"
        edited = reply(GENERAL, BOB, "and on a Mac?", "1700001000.000601", T1)
        edited["subtype"] = "message_changed"
        await rig.event(other_bot)
        await rig.event(edited)
        await settled(rig)
        assert len(rig.slack.calls("chat.postMessage")) == 1


async def test_after_an_empty_answer_a_person_answering_gets_one_save_offer() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, "Where is the printer on floor 3?", T1)
        [answer] = posts_in(rig, T1)
        assert "couldn't find" in json.dumps(answer["blocks"])
        await rig.event(reply(GENERAL, BOB, "It is next to the kitchen, badge in first", "1700001000.000700", T1))
        await rig.slack.await_for("chat.postMessage", 2)
        offer = posts_in(rig, T1)[-1]
        [button] = next(b for b in offer["blocks"] if b["type"] == "actions")["elements"]
        assert button["action_id"] == "kb_save_thread"
        assert json.loads(button["value"]) == {"ref": f"{GENERAL}:{T1}", "title": "Where is the printer on floor 3?"}
        # Offered once: more of the same in the thread gets nothing.
        await rig.event(reply(GENERAL, MALLORY, "Yes, and the code is on the wall", "1700001000.000701", T1))
        await settled(rig)
        assert len(rig.slack.calls("chat.postMessage")) == 2
        assert rig.pw.stats().queries == 1
        # The button opens the existing save form for this thread.
        click = block_action_payload("kb_save_thread", button["value"], user=BOB, channel=GENERAL,
                                     response_url=rig.slack.response_url(), message_ts="1700001000.000702")
        await rig.interaction(click)
        [opened] = await rig.slack.await_for("views.open")
        view = opened.params["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert json.loads(view["private_metadata"]) == {"channel": GENERAL, "thread_ts": T1}


async def test_after_a_thumbs_down_a_person_answering_gets_the_save_offer() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        [answer] = kbbot_messages(rig, GENERAL, T1)
        url = rig.slack.response_url()
        down = block_action_payload("kb_feedback_down", VPN_Q, user=ALICE, channel=GENERAL, response_url=url,
                                    message_ts=answer["ts"])
        await rig.interaction(down)
        await rig.wait_responses(url)
        await settled(rig)  # the vote's listener is done (it marks the thread after thanking)
        correction = "That page is old, use the new portal at vpn.example"
        await rig.event(reply(GENERAL, BOB, correction, "1700001000.000800", T1))
        await rig.slack.await_for("chat.postMessage", 2)
        assert "Save this thread" in json.dumps(posts_in(rig, T1)[-1]["blocks"])
        assert rig.pw.stats().queries == 1


async def test_stop_mention_ends_follow_ups_in_that_thread_only() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        await ask_in_channel(rig, VPN_Q, T2)
        await rig.event(mention_event(GENERAL, BOB, "stop", "1700001000.000900", thread_ts=T1))
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert "stop answering" in told.params["text"] and told.params["thread_ts"] == T1
        await rig.event(reply(GENERAL, BOB, "and on a Mac?", "1700001000.000901", T1))
        await settled(rig)
        assert len(rig.slack.calls("chat.postMessage")) == 2
        # Another thread still has follow-ups, and a mention in the stopped one is still answered.
        await rig.event(reply(GENERAL, BOB, "and on a Mac?", "1700002000.000901", T2))
        await rig.event(mention_event(GENERAL, BOB, "and on Windows?", "1700001000.000902", thread_ts=T1))
        await rig.slack.await_for("chat.postMessage", 4)


async def test_stop_sign_reaction_on_the_answer_ends_follow_ups() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        [answer] = kbbot_messages(rig, GENERAL, T1)
        await rig.event(reaction_event(GENERAL, ALICE, "octagonal_sign", answer["ts"]))
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert told.params["user"] == ALICE and told.params["thread_ts"] == T1
        await rig.event(reply(GENERAL, BOB, "and on a Mac?", "1700001000.001000", T1))
        # Other reactions change nothing.
        await rig.event(reaction_event(GENERAL, ALICE, "+1", answer["ts"]))
        await settled(rig)
        assert len(rig.slack.calls("chat.postMessage")) == 1 and len(rig.slack.calls("chat.postEphemeral")) == 1
        assert rig.pw.stats().queries == 1


async def test_stop_outside_a_thread_explains_itself() -> None:
    async with slack_rig() as rig:
        await rig.event(mention_event(GENERAL, ALICE, "stop", "1700001000.001100"))
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert "in a thread where I answered" in told.params["text"]
        assert rig.pw.stats().queries == 0


async def test_hostile_follow_ups() -> None:
    async with slack_rig() as rig:
        await ask_in_channel(rig, VPN_Q, T1)
        # A broadcast and markup never reach the wiki or the thread as such.
        hostile = "<!channel> and on a Mac <script>alert(1)</script>?"
        await rig.event(reply(GENERAL, BOB, hostile, "1700001000.001200", T1))
        await rig.slack.await_for("chat.postMessage", 2)
        upstream = rig.pw.asked()[-1]
        assert "<!channel>" not in upstream and "@channel" not in upstream and "VPN" in upstream
        assert "<!channel>" not in json.dumps(posts_in(rig, T1)[-1])
        # Far too long: the asker is told, privately; nothing is billed.
        await rig.event(reply(GENERAL, BOB, "why " + "x" * 50_000, "1700001000.001201", T1))
        [told] = await rig.slack.await_for("chat.postEphemeral")
        assert told.params["user"] == BOB and "characters long" in told.params["text"]
        # Control characters and unicode only: an acknowledgement, or cleaned.
        await rig.event(reply(GENERAL, BOB, "\u200b\u202e🙏\x00", "1700001000.001202", T1))
        await settled(rig)
        assert rig.pw.stats().queries == 2 and len(rig.slack.calls("chat.postMessage")) == 2
