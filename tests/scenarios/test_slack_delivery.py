"""Scenarios: Slack delivery rules — signatures, redelivery, ack within 3 s, Socket Mode, hostile text."""

from __future__ import annotations

import asyncio
import json
import re
import time

from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack import socket_mode_handler
from kbbot.core.models import Answer, PageRef, Source
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    SlackSigner,
    command_payload,
    event_envelope,
    mention_event,
    message_event,
    message_shortcut_payload,
    view_submission_payload,
)
from tests.scenarios.slack_support import ALICE, DM, GENERAL, slack_rig

PINGS = re.compile(r"<!(channel|here|everyone|subteam)|<@[UW][A-Z0-9]+", re.IGNORECASE)


async def test_bad_signature_is_rejected_and_nothing_happens() -> None:
    async with slack_rig() as rig:
        envelope = event_envelope(mention_event(GENERAL, ALICE, "VPN?", "1700001000.000100"))
        body, headers = SlackSigner("wrong-secret").event(envelope)
        assert (await rig.http.post(rig.events_url, content=body, headers=headers)).status_code == 401

        body, headers = rig.signer.event(envelope)
        stale = {**headers, **rig.signer.sign(body, timestamp=int(time.time()) - 3600)}
        assert (await rig.http.post(rig.events_url, content=body, headers=stale)).status_code == 401

        tampered = body.replace("VPN?", "<!channel>")
        assert (await rig.http.post(rig.events_url, content=tampered, headers=headers)).status_code == 401

        unsigned = {"Content-Type": "application/json"}
        assert (await rig.http.post(rig.events_url, content=body, headers=unsigned)).status_code == 401
        await rig.quiet()
        assert rig.slack.calls() == [] or {c.method for c in rig.slack.calls()} <= {"auth.test"}
        assert rig.pw.stats().queries == 0


async def test_url_verification_challenge() -> None:
    async with slack_rig() as rig:
        body, headers = rig.signer.event({"type": "url_verification", "challenge": "abc123", "token": "x"})
        response = await rig.http.post(rig.events_url, content=body, headers=headers)
        assert response.status_code == 200 and response.json() == {"challenge": "abc123"}


async def test_redelivered_event_is_answered_once() -> None:
    async with slack_rig() as rig:
        event = mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700001100.000100")
        first = await rig.event(event, event_id="Ev0REDELIVER")
        again = await rig.event(event, event_id="Ev0REDELIVER", retry_num=1)
        third = await rig.event(event, event_id="Ev0REDELIVER", retry_num=2)
        assert {first.status_code, again.status_code, third.status_code} == {200}
        await rig.slack.await_for("chat.postMessage")
        await rig.quiet()
        assert len(rig.slack.calls("chat.postMessage")) == 1
        assert len(rig.slack.calls("reactions.add")) == 1
        assert rig.pw.stats().queries == 1


async def test_ack_never_waits_for_the_wiki() -> None:
    # Slack wants the ack within 3 s; the wiki may take longer. Here it answers only when the test says so:
    # both acks arrive while both questions are still held at the wiki, so the ack waits for nothing.
    async with slack_rig() as rig:
        rig.pw.hold("query")
        response = await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700001200.000100"))
        assert response.status_code == 200

        response, url = await rig.command("expense policy receipts?")
        assert response.status_code == 200 and "Looking that up" in response.json()["text"]

        await rig.pw.held(2)  # both are at the wiki, unanswered, after both acks
        assert rig.slack.calls("chat.postMessage") == [] and rig.slack.responses(url) == []
        # …and the answers still arrive once the wiki replies.
        rig.pw.release()
        await rig.slack.await_for("chat.postMessage")
        [answer] = await rig.wait_responses(url)
        assert "Expense policy" in json.dumps(answer["blocks"])


async def test_hostile_text_never_pings_anyone() -> None:
    hostile = (
        "<!channel> <!here> <!everyone> <!subteam^S0TEAM|@ops> <@U0BOB0001> <@W0ENT01|boss> @everyone @here "
        "[click](!channel) [x](<@U0BOB0001>) <script>alert(1)</script> & **bold** \u202e\x00"
    )
    answer = Answer(
        text=hostile,
        related_pages=(PageRef("p1", "<!channel> page", "https://wiki.example/p1?a=1&b=<@U1>"),
                       PageRef("p2", "<!here|here> title", None)),
        source=Source.SEARCH,
        notice="<!everyone> notice",
    )
    async with slack_rig(scripted=answer) as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "<!channel> look <@U0BOB0001>"}])
        await rig.event(mention_event(GENERAL, ALICE, "<!here> " + hostile, "1700001300.000100", thread_ts=root))
        await rig.event(message_event(DM, ALICE, hostile, "1700001301.000100"))
        response, url = await rig.command(hostile)
        await rig.wait_responses(url)
        # Save a thread full of pings: the page gets names, Slack gets no pings.
        await rig.interaction(message_shortcut_payload(user=ALICE, channel=GENERAL, message_ts=root, text=hostile))
        [opened] = await rig.slack.await_for("views.open")
        await rig.interaction(view_submission_payload(opened.params["view"],
                                                      {"title": {"title_input": "<!channel> title"}}, user=ALICE))
        await rig.slack.await_for("chat.postMessage", 3)
        await rig.bot.drain()

        bodies = rig.slack.outgoing_bodies()
        assert len(bodies) > 5
        for body in bodies:
            decoded = json.loads(body) if body.startswith("{") else body
            text = json.dumps(decoded, ensure_ascii=False)
            assert not PINGS.search(text), text[:500]
            assert "<script>" not in text
        assert "<!channel>" not in json.dumps(response.json())
        # The hostile words are still shown, just inert (a zero-width space after the @).
        shown = "".join(json.dumps(json.loads(b), ensure_ascii=False) for b in bodies if b.startswith("{"))
        for word in ("channel", "here", "everyone", "subteam", "boss"):
            assert "@\u200b" + word in shown, word
        assert "&lt;script&gt;" in shown
        for page in rig.pw.pages():
            assert "<!channel>" not in page["content"]


async def test_socket_mode_envelope_is_acked_and_answered() -> None:
    async with slack_rig() as rig:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=rig.slack.api_url)
        handler = socket_mode_handler(rig.bot.app, app_token=APP_TOKEN, web_client=client)
        await handler.connect_async()
        try:
            await asyncio.to_thread(rig.slack.wait_socket)
            opened = rig.slack.calls("apps.connections.open")
            assert len(opened) == 1

            envelope = event_envelope(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700001400.000100"))
            rig.pw.hold("query")  # the wiki answers only when released: the ack cannot be waiting for it
            envelope_id = rig.slack.send_envelope("events_api", envelope)
            ack = await asyncio.to_thread(rig.slack.wait_ack, envelope_id)
            assert ack["envelope_id"] == envelope_id
            await rig.pw.held()
            assert rig.slack.calls("chat.postMessage") == []
            rig.pw.release()
            [post] = await rig.slack.await_for("chat.postMessage")
            assert post.params["thread_ts"] == "1700001400.000100"
            [ack_call] = rig.slack.calls("socket_ack")
            assert ack_call.at < post.at  # acked first; the answer came after the wiki replied

            # The same event redelivered over the socket is acked but not answered again.
            again = rig.slack.send_envelope("events_api", envelope, retry_attempt=1)
            await asyncio.to_thread(rig.slack.wait_ack, again)

            # A slash command over the socket: the ack carries the response payload.
            url = rig.slack.response_url()
            command_id = rig.slack.send_envelope(
                "slash_commands", command_payload("help", user=ALICE, channel=GENERAL, response_url=url))
            command_ack = await asyncio.to_thread(rig.slack.wait_ack, command_id)
            assert "Save a thread" in json.dumps(command_ack["payload"])
            await rig.quiet()  # the redelivery's and the command's listeners are done: no second answer
            assert len(rig.slack.calls("chat.postMessage")) == 1
        finally:
            await handler.close_async()


async def test_drain_lets_in_flight_answers_finish() -> None:
    async with slack_rig() as rig:
        rig.pw.hold("query")
        response = await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700001500.000100"))
        assert response.status_code == 200
        await rig.slack.await_for("reactions.add")
        await rig.pw.held()  # the listener has started and now waits on the wiki
        assert rig.slack.calls("chat.postMessage") == []
        drained = asyncio.create_task(rig.bot.drain())
        await asyncio.sleep(0)  # the drain has begun before the wiki answers
        rig.pw.release()
        await drained
        assert len(rig.slack.calls("chat.postMessage")) == 1
        assert len(rig.slack.calls("reactions.remove")) == 1
