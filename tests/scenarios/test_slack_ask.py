"""Scenarios: asking the wiki from Slack — mention in a channel, in a thread, a DM, /kb, share, feedback."""

from __future__ import annotations

import json

from kbbot.adapters.slack.rendering import NOT_FOUND_LABEL
from kbbot.core.models import Answer, Source
from kbbot.search.answerer import MAYBE_RELATED, NOT_FOUND
from tests.fakes.slack_api import BOT_USER_ID, block_action_payload, mention_event, message_error, message_event
from tests.scenarios.slack_support import ALICE, BOB, DM, GENERAL, slack_rig


def _all_text(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def test_mention_in_channel_answers_in_a_thread_with_eyes_reaction() -> None:
    async with slack_rig() as rig:
        response = await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000100.000100"))
        assert response.status_code == 200

        [post] = await rig.slack.await_for("chat.postMessage")
        params = post.params
        assert params["channel"] == GENERAL
        assert params["thread_ts"] == "1700000100.000100"  # a new thread under the question
        blocks = params["blocks"]
        rendered = _all_text(blocks)
        assert "VPN setup" in rendered and "<https://wiki.example/page/" in rendered
        assert "AI answer from the wiki" in rendered
        assert params["text"]  # plain fallback always present
        actions = next(b for b in blocks if b["type"] == "actions")["elements"]
        assert {a["action_id"] for a in actions} == {"kb_feedback_up", "kb_feedback_down"}

        [added] = await rig.slack.await_for("reactions.add")
        [removed] = await rig.slack.await_for("reactions.remove")
        assert added.params == {"channel": GENERAL, "timestamp": "1700000100.000100", "name": "eyes"}
        assert removed.params["name"] == "eyes"
        assert added.at <= post.at <= removed.at
        assert rig.pw.stats().queries == 1


async def test_mention_inside_a_thread_replies_to_that_thread() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "VPN is broken again"}])
        await rig.event(mention_event(GENERAL, ALICE, "vpn setup?", "1700000200.000200", thread_ts=root))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert post.params["thread_ts"] == root
        [added] = await rig.slack.await_for("reactions.add")
        assert added.params["timestamp"] == "1700000200.000200"  # the mention, not the root, gets the 👀


async def test_direct_message_is_answered_in_the_dm_and_not_twice() -> None:
    async with slack_rig() as rig:
        ts = "1700000300.000300"
        await rig.event(message_event(DM, ALICE, "expense policy receipts?", ts))
        # An @mention inside the DM arrives again as app_mention with another event_id: answered once.
        await rig.event(mention_event(DM, ALICE, "expense policy receipts?", ts))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert post.params["channel"] == DM
        assert "thread_ts" not in post.params
        assert "Expense policy" in _all_text(post.params["blocks"])
        await rig.quiet()
        assert len(rig.slack.calls("chat.postMessage")) == 1
        assert rig.pw.stats().queries == 1


async def test_bot_own_messages_and_edits_are_ignored() -> None:
    async with slack_rig() as rig:
        edited = message_event(DM, ALICE, "vpn?", "1700000301.000001")
        edited["subtype"] = "message_changed"
        await rig.event(edited)
        own = message_event(DM, BOT_USER_ID, "vpn?", "1700000301.000002")
        own["bot_id"] = "B0KBBOT01"
        await rig.event(own)
        await rig.event(message_event(GENERAL, ALICE, "vpn?", "1700000301.000003", channel_type="channel"))
        await rig.quiet()
        assert rig.slack.calls("chat.postMessage") == []
        assert rig.pw.stats().queries == 0


async def test_slash_command_answers_ephemerally_then_share_posts_publicly() -> None:
    async with slack_rig() as rig:
        response, url = await rig.command("how do I set up the VPN?")
        assert response.status_code == 200
        ack = response.json()
        assert ack["response_type"] == "ephemeral" and "Looking that up" in ack["text"]

        [answer] = await rig.wait_responses(url)
        assert answer["response_type"] == "ephemeral"
        rendered = _all_text(answer["blocks"])
        assert "VPN setup" in rendered
        actions = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"]
        share = next(a for a in actions if a["action_id"] == "kb_share")

        share_url = rig.slack.response_url()
        click = block_action_payload("kb_share", share["value"], user=ALICE, channel=GENERAL,
                                     response_url=share_url, ephemeral=True)
        assert (await rig.interaction(click)).status_code == 200
        delete, public = await rig.wait_responses(share_url, 2)
        assert delete["delete_original"] is True and not delete.get("blocks")
        assert public["response_type"] == "in_channel"
        public_text = _all_text(public["blocks"])
        assert "VPN setup" in public_text and "Shared by alice" in public_text
        assert "kb_share" not in public_text  # no share button on the public copy
        assert rig.pw.stats().queries == 1  # shared the same answer, did not ask again


async def test_slash_command_help_and_empty_question() -> None:
    async with slack_rig() as rig:
        response, _ = await rig.command("help")
        assert "Save a thread" in _all_text(response.json()["blocks"])
        response, url = await rig.command("   ")
        # An empty /kb is "help", answered in the ack itself.
        assert "Save a thread" in _all_text(response.json()["blocks"])
        response, url = await rig.command("???")
        [reply] = await rig.wait_responses(url)
        assert "type a question" in reply["text"]
        assert rig.pw.stats().queries == 0


async def test_feedback_buttons_are_stored_and_counted() -> None:
    async with slack_rig() as rig:
        for user, action in ((ALICE, "kb_feedback_up"), (BOB, "kb_feedback_down"), (ALICE, "kb_feedback_up")):
            url = rig.slack.response_url()
            payload = block_action_payload(action, "how do I set up the VPN?", user=user, channel=GENERAL,
                                           response_url=url, message_ts="1700000400.000400")
            assert (await rig.interaction(payload)).status_code == 200
            [thanks] = await rig.wait_responses(url)
            assert thanks["response_type"] == "ephemeral" and "Thanks" in thanks["text"]
        counts = await rig.feedback.counts()
        assert (counts.helpful, counts.not_helpful) == (1, 1)  # Alice's second vote replaced her first

        _response, url = await rig.command("status")
        [status] = await rig.wait_responses(url)
        text = _all_text(status["blocks"])
        assert "Engineering Docs" in text and "👍 1 · 👎 1" in text and "AI answers available" in text


async def test_empty_result_offers_to_save_the_thread() -> None:
    async with slack_rig() as rig:
        await rig.event(mention_event(GENERAL, ALICE, "quantum flux capacitor calibration?", "1700000500.000500"))
        [post] = await rig.slack.await_for("chat.postMessage")
        sections = [b["text"]["text"] for b in post.params["blocks"] if b["type"] == "section"]
        assert sections == [NOT_FOUND]  # the answer's own "don't know", said once (not NOTHING_FOUND on top)
        actions = next(b for b in post.params["blocks"] if b["type"] == "actions")["elements"]
        save = next(a for a in actions if a["action_id"] == "kb_save_thread")
        assert json.loads(save["value"])["ref"] == f"{GENERAL}:1700000500.000500"

        url = rig.slack.response_url()
        click = block_action_payload("kb_save_thread", save["value"], user=ALICE, channel=GENERAL,
                                     response_url=url, message_ts=post.params.get("ts", "1700000500.000501"))
        await rig.interaction(click)
        [opened] = await rig.slack.await_for("views.open")
        assert opened.params["view"]["callback_id"] == "kb_save_modal"


async def test_the_ais_dont_know_is_shown_as_one_with_the_closest_pages_not_as_an_ai_answer() -> None:
    async with slack_rig() as rig:
        rig.pw.ai_cannot_answer("on linux")  # Perfect Wiki's isEmptyResult, though the VPN page shares words
        await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN on Linux?", "1700000510.000500"))
        [post] = await rig.slack.await_for("chat.postMessage")
        assert rig.pw.stats().queries == 1  # the AI was asked…
        blocks = post.params["blocks"]
        sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
        contexts = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
        # …and said it doesn't know: kbbot's honest reply, the index's closest page, no claim of an AI answer.
        assert sections[0] == MAYBE_RELATED and "VPN setup" in sections[1]
        assert contexts == [NOT_FOUND_LABEL]
        assert "AI answer" not in _all_text(blocks) and "AI answer" not in post.params["text"]
        actions = next(b for b in blocks if b["type"] == "actions")["elements"]
        assert "kb_save_thread" in {a["action_id"] for a in actions}  # offered as for any "don't know"


async def test_quota_exhausted_answers_from_search_labelled() -> None:
    async with slack_rig() as rig:
        rig.pw.set_ai_quota(0)  # every AI query is now a 402
        await rig.event(mention_event(GENERAL, ALICE, "VPN setup help", "1700000600.000600"))
        [post] = await rig.slack.await_for("chat.postMessage")
        rendered = _all_text(post.params["blocks"])
        assert "AI answers are paused" in rendered  # the notice
        assert "Wiki search result (no AI)" in rendered  # the source label
        assert "VPN setup" in rendered
        assert "AI answers are paused" in post.params["text"]


async def test_knowledgebase_down_tells_only_the_asker() -> None:
    async with slack_rig() as rig:
        rig.pw.fail_next(20, status=503)
        await rig.event(mention_event(GENERAL, ALICE, "VPN?", "1700000700.000700"))
        [eph] = await rig.slack.await_for("chat.postEphemeral", timeout=20)
        assert eph.params["user"] == ALICE and "isn't reachable" in eph.params["text"]
        assert rig.slack.calls("chat.postMessage") == []
        await rig.slack.await_for("reactions.remove")


async def test_answer_that_cannot_be_posted_in_the_channel_reaches_the_asker_privately() -> None:
    # E.g. a channel where only admins may post: the asker gets the answer for their eyes only, not silence.
    async with slack_rig() as rig:
        rig.slack.fail_next("chat.postMessage", "restricted_action")
        await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000750.000750"))
        [eph] = await rig.slack.await_for("chat.postEphemeral")
        assert eph.params["user"] == ALICE and eph.params["channel"] == GENERAL
        assert eph.params["thread_ts"] == "1700000750.000750"
        assert "VPN setup" in _all_text(eph.params["blocks"])
        await rig.slack.await_for("reactions.remove")


async def test_long_answer_is_split_over_messages_each_within_slacks_limits() -> None:
    paragraph = "Lorem **ipsum** dolor sit amet, " * 40  # ~1,300 chars
    medium = "\n\n".join(f"## Part {i}\n{paragraph}" for i in range(12))  # ~15,600 chars: over 12,000 in one
    async with slack_rig(scripted=Answer(text=medium, source=Source.AI)) as rig:
        await rig.event(mention_event(GENERAL, ALICE, "tell me some", "1700000801.000800"))
        await rig.slack.await_for("chat.postMessage", 2)
        await rig.bot.drain()
        posts = rig.slack.calls("chat.postMessage")
        assert [message_error(p.params) for p in posts] == [None] * len(posts)  # every one accepted by Slack
        assert all(p.params["thread_ts"] == "1700000801.000800" for p in posts)
        shown = "\n".join(b["text"]["text"] for p in posts for b in p.params["blocks"] if b["type"] == "section")
        assert all(f"*Part {i}*" in shown for i in range(12))  # nothing dropped, in order
        assert shown.index("*Part 3*") < shown.index("*Part 11*")
        assert "actions" in [b["type"] for b in posts[-1].params["blocks"]]  # buttons once, on the last part
        assert sum("actions" in [b["type"] for b in p.params["blocks"]] for p in posts) == 1
        assert rig.slack.calls("chat.postEphemeral") == []


async def test_huge_answer_is_capped_with_a_note() -> None:
    paragraph = "Lorem **ipsum** dolor sit amet, " * 40
    huge = "\n\n".join(f"## Part {i}\n{paragraph}" for i in range(120))  # ~160,000 chars
    async with slack_rig(scripted=Answer(text=huge, source=Source.AI)) as rig:
        await rig.event(mention_event(GENERAL, ALICE, "tell me everything", "1700000800.000800"))
        await rig.slack.await_for("chat.postMessage", 2)
        await rig.bot.drain()
        posts = rig.slack.calls("chat.postMessage")
        assert 2 <= len(posts) <= 6
        assert [message_error(p.params) for p in posts] == [None] * len(posts)
        assert all(0 < len(p.params["text"]) <= 3000 for p in posts)
        shown = "\n".join(b["text"]["text"] for p in posts for b in p.params["blocks"] if b["type"] == "section")
        assert "answer truncated" in shown


async def test_blocks_slack_still_refuses_go_out_as_plain_text() -> None:
    answer = Answer(text="## VPN\nInstall **WireGuard**, then import the profile.", source=Source.AI)
    async with slack_rig(scripted=answer) as rig:
        rig.slack.fail_next("chat.postMessage", "msg_blocks_too_long")
        await rig.event(mention_event(GENERAL, ALICE, "vpn?", "1700000802.000800"))
        first, second = await rig.slack.await_for("chat.postMessage", 2)
        assert "blocks" in first.params
        assert "blocks" not in second.params and "WireGuard" in second.params["text"]
        assert second.params["thread_ts"] == "1700000802.000800"


async def test_share_survives_a_long_unicode_question_and_a_lost_cache() -> None:
    async with slack_rig() as rig:
        question = "VPN setup " + "ж\"\\ " * 480  # ~1,950 chars that escape to far more in JSON
        _, url = await rig.command(question)
        [answer] = await rig.wait_responses(url)
        actions = next(b for b in answer["blocks"] if b["type"] == "actions")["elements"]
        share = next(a for a in actions if a["action_id"] == "kb_share")
        assert len(share["value"]) <= 2000
        data = json.loads(share["value"])
        assert data["q"].startswith("VPN setup ж")

        rig.bot.handlers._shared.clear()  # another replica, or the entry expired: ask again (cached)
        share_url = rig.slack.response_url()
        await rig.interaction(block_action_payload("kb_share", share["value"], user=ALICE, channel=GENERAL,
                                                   response_url=share_url, ephemeral=True))
        _, public = await rig.wait_responses(share_url, 2)
        assert public["response_type"] == "in_channel" and "VPN setup" in _all_text(public["blocks"])

        broken_url = rig.slack.response_url()
        await rig.interaction(block_action_payload("kb_share", "{not json", user=ALICE, channel=GENERAL,
                                                   response_url=broken_url, ephemeral=True))
        [broken] = await rig.wait_responses(broken_url)
        assert "broken" in broken["text"] and broken["response_type"] == "ephemeral"


async def test_mentions_from_other_bots_are_ignored() -> None:
    async with slack_rig() as rig:
        event = mention_event(GENERAL, "U0OTHERBOT", "vpn?", "1700000990.000100")
        event["bot_id"] = "B0OTHER01"
        await rig.event(event)
        await rig.quiet()
        assert rig.slack.calls("chat.postMessage") == [] and rig.pw.stats().queries == 0


async def test_dm_with_a_file_is_still_a_question() -> None:
    async with slack_rig() as rig:
        event = message_event(DM, ALICE, "vpn setup? screenshot attached", "1700000995.000100")
        event["subtype"] = "file_share"
        event["files"] = [{"id": "F1", "name": "shot.png"}]
        await rig.event(event)
        [post] = await rig.slack.await_for("chat.postMessage")
        assert "VPN setup" in _all_text(post.params["blocks"])
