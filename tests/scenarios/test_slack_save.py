"""Scenarios: saving Slack threads as wiki pages — shortcut → modal → submit, permalink, @mention, private channels."""

from __future__ import annotations

from kbbot.adapters.slack import SlackOptions
from tests.fakes.slack_api import BOT_USER_ID, mention_event, message_shortcut_payload, view_submission_payload
from tests.scenarios.slack_support import ALICE, BOB, GENERAL, MALLORY, SECRET, Rig, slack_rig


def _seed_long_thread(rig: Rig, channel: str = GENERAL, replies: int = 249) -> str:
    messages = [{"user": ALICE, "text": "How do we rotate the *staging* DB password? <@U0BOB0001> knows"}]
    messages += [
        {"user": BOB if i % 2 else ALICE, "text": f"step {i}: do the thing &amp; check"} for i in range(replies)
    ]
    return rig.slack.add_thread(channel, messages)


def _page_with_title(rig: Rig, title: str) -> dict:
    pages = [p for p in rig.pw.pages() if p["title"] == title]
    assert len(pages) == 1, [p["title"] for p in rig.pw.pages()]
    return pages[0]


async def test_shortcut_modal_submit_saves_every_message_to_the_wiki() -> None:
    async with slack_rig() as rig:
        root = _seed_long_thread(rig)  # 250 messages → 3 pages of conversations.replies
        reply_ts = rig.slack.thread(GENERAL, root)[5]["ts"]
        shortcut = message_shortcut_payload(user=ALICE, channel=GENERAL, message_ts=reply_ts,
                                            thread_ts=root, text="step 4: do the thing")
        response = await rig.interaction(shortcut)
        assert response.status_code == 200

        [opened] = await rig.slack.await_for("views.open")
        view = opened.params["view"]
        assert opened.params["trigger_id"] == shortcut["trigger_id"]
        assert view["blocks"][0]["element"]["initial_value"] == "step 4: do the thing"

        submit = view_submission_payload(
            view, {"title": {"title_input": "Rotating the staging DB password"},
                   "tags": {"tags_input": "ops, #db, ops"}}, user=ALICE)
        response = await rig.interaction(submit)
        assert response.status_code == 200 and response.text == ""  # closes the modal

        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert note.params["channel"] == GENERAL
        assert "<https://wiki.example/page/" in note.params["text"] and "Saved this thread" in note.params["text"]

        replies = rig.slack.calls("conversations.replies")
        assert len(replies) == 3 and all(int(c.params["limit"]) <= 100 for c in replies)
        assert "cursor" not in replies[0].params and replies[1].params["cursor"]

        page = _page_with_title(rig, "Rotating the staging DB password")
        assert page["tags"] == ["ops", "db"]
        for i in range(249):
            assert f"step {i}: do the thing" in page["content"]
        assert "Alice Adams" in page["content"] or "alice" in page["content"]
        [thread] = rig.saver.saved
        assert len(thread.messages) == 250
        assert thread.key == f"{GENERAL}:{root}"
        assert thread.permalink and thread.permalink.startswith("https://acme.slack.com/archives/")
        assert thread.channel_name == "general"
        assert "@bob" in thread.messages[0].text  # mentions resolved to names via users.info
        assert "step 0: do the thing & check" in thread.messages[1].text
        # users.info is cached: one call per distinct user
        assert len(rig.slack.calls("users.info")) == len({c.params["user"] for c in rig.slack.calls("users.info")})


async def test_modal_submit_without_title_returns_field_error() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "hello"}])
        await rig.interaction(message_shortcut_payload(user=ALICE, channel=GENERAL, message_ts=root, text="hello"))
        [opened] = await rig.slack.await_for("views.open")
        response = await rig.interaction(
            view_submission_payload(opened.params["view"], {"title": {"title_input": "  "}}, user=ALICE))
        body = response.json()
        assert body["response_action"] == "errors" and "title" in body["errors"]
        assert rig.saver.saved == []


async def test_permalink_save_via_slash_command() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "Deploys are frozen on Fridays"},
                                              {"user": ALICE, "text": "even hotfixes?"},
                                              {"user": BOB, "text": "hotfixes need a second reviewer"}])
        reply = rig.slack.thread(GENERAL, root)[2]["ts"]
        link = (f"<https://acme.slack.com/archives/{GENERAL}/p{reply.replace('.', '')}"
                f"?thread_ts={root}&amp;cid={GENERAL}>")
        response, _ = await rig.command(f"save {link} Deploy freeze rules")
        assert response.status_code == 200 and "Saving" in response.json()["text"]
        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert "Deploy freeze rules" in note.params["text"]
        page = _page_with_title(rig, "Deploy freeze rules")
        assert "hotfixes need a second reviewer" in page["content"]

        # Saving the same thread again updates the same page (and says so).
        response, _url = await rig.command(f"save https://acme.slack.com/archives/{GENERAL}/p{root.replace('.', '')}")
        notes = await rig.slack.await_for("chat.postMessage", 2, thread_ts=root)
        assert "Updated" in notes[1].params["text"]
        assert len(rig.pw.pages()) == 3  # two seeded + one saved thread


async def test_permalink_save_rejects_bad_links_with_usage() -> None:
    async with slack_rig() as rig:
        for text in ("save", "save not-a-link", "save https://evil.example/archives/C1/p1700000000000100",
                     "save https://acme.slack.com/archives/C0GENERAL/pXYZ"):
            response, _ = await rig.command(text)
            assert "Usage" in response.json()["text"], text
        assert rig.saver.saved == []


async def test_mention_save_inside_a_thread() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "Where are the on-call docs?"},
                                              {"user": ALICE, "text": "In the runbook folder"}])
        await rig.event(mention_event(GENERAL, ALICE, "save On-call docs location", "1700000900.000900",
                                      thread_ts=root))
        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert "On-call docs location" in note.params["text"]
        page = _page_with_title(rig, "On-call docs location")
        assert "In the runbook folder" in page["content"]
        assert rig.pw.stats().queries == 0  # a save is not a question

        # Outside a thread: a hint, privately.
        await rig.event(mention_event(GENERAL, ALICE, "save", "1700000901.000900"))
        [hint] = await rig.slack.await_for("chat.postEphemeral")
        assert "inside a thread" in hint.params["text"] and hint.params["user"] == ALICE


async def test_resave_keeps_the_conversation_and_kbbots_answer_not_its_save_notes() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "Anyone know the VPN setup?"}])
        rig.slack.add_reply(GENERAL, root, {"user": ALICE, "text": f"<@{BOT_USER_ID}> how do I set up the VPN?"})
        await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000950.000100",
                                      thread_ts=root))
        [answer] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert any(b.get("block_id", "").startswith("kb_answer") for b in answer.params["blocks"])
        for count, reply in enumerate(("Worked for me, thanks", "Note: use the EU gateway"), start=1):
            rig.slack.add_reply(GENERAL, root, {"user": BOB, "text": reply})
            await rig.event(mention_event(GENERAL, ALICE, "save VPN how-to", f"170000096{count}.000100",
                                          thread_ts=root))
            await rig.slack.await_for("chat.postMessage", count=1 + count, thread_ts=root)
        notes = [m for m in rig.slack.thread(GENERAL, root) if "this thread to the wiki" in m.get("text", "")]
        assert [n["text"].split(" this thread")[0] for n in notes] == [":white_check_mark: Saved",
                                                                     ":white_check_mark: Updated"]
        content = _page_with_title(rig, "VPN how-to")["content"]
        assert "Anyone know the VPN setup?" in content and "Note: use the EU gateway" in content
        assert "VPN setup" in content.split("Worked for me")[0]  # kbbot's answer stays, where it was said
        assert "this thread to the wiki" not in content and "5 messages" in content  # 2 notes left off


async def test_saved_page_names_bots_by_their_profile_names_not_their_ids() -> None:
    # Another app's post without a user (an app posting through its own token, as the GitHub app does): the
    # bot_message shape of bolt-python tests/scenario_tests/test_message_bot.py, its user left out.
    github = {"type": "message", "subtype": "bot_message", "text": "Pull request #42 opened: VPN docs",
              "bot_id": "B0GITHUB1", "app_id": "A0GITHUB1",
              "bot_profile": {"id": "B0GITHUB1", "deleted": False, "name": "GitHub", "updated": 1607307935,
                              "app_id": "A0GITHUB1", "icons": {"image_36": "https://a.slack-edge.com/gh_36.png"},
                              "team_id": "T0TEAM001"}}
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "Anyone know the VPN setup?"}, github])
        rig.slack.add_reply(GENERAL, root, {"user": ALICE, "text": f"<@{BOT_USER_ID}> how do I set up the VPN?"})
        await rig.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000950.000100",
                                      thread_ts=root))
        await rig.slack.await_for("chat.postMessage", thread_ts=root)
        await rig.event(mention_event(GENERAL, ALICE, "save VPN how-to", "1700000961.000100", thread_ts=root))
        await rig.slack.await_for("chat.postMessage", count=2, thread_ts=root)
        content = _page_with_title(rig, "VPN how-to")["content"]
    [thread] = rig.saver.saved
    assert [m.author_name for m in thread.messages] == ["bob", "GitHub", "alice", "kbbot"]
    assert "participants: bob, GitHub, alice, kbbot" in content
    assert "<strong>GitHub</strong>" in content and "<strong>kbbot</strong>" in content
    assert "@kbbot how do I set up the VPN?" in content
    assert BOT_USER_ID not in content and "B0GITHUB1" not in content


async def test_thread_longer_than_the_cap_is_saved_up_to_it_and_says_so() -> None:
    async with slack_rig(options=SlackOptions(history_max_messages=120)) as rig:
        root = _seed_long_thread(rig, replies=199)  # 200 messages, 120 kept
        await rig.event(mention_event(GENERAL, ALICE, "save Password rotation", "1700000990.000100",
                                      thread_ts=root))
        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        # The requester (and the thread) learn the page is partial, next to the link.
        assert "<https://wiki.example/page/" in note.params["text"]
        assert "more than 120 messages; only the first 120 were saved" in note.params["text"]
        page = _page_with_title(rig, "Password rotation")
        assert "step 118: do the thing" in page["content"] and "step 119: do the thing" not in page["content"]
        # The page itself says so too, at its end.
        assert "only the first 120 were saved" in page["content"]
        assert page["content"].rfind("only the first 120") > page["content"].rfind("step 118")
        [thread] = rig.saver.saved
        assert len(thread.messages) == 121


async def test_private_channel_only_members_can_save() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(SECRET, [{"user": ALICE, "text": "launch codes are in the vault"}])
        link = f"https://acme.slack.com/archives/{SECRET}/p{root.replace('.', '')}"
        _, url = await rig.command(f"save {link} Secret", user=MALLORY)
        [refusal] = await rig.wait_responses(url)
        assert refusal["response_type"] == "ephemeral" and "Only members" in refusal["text"]
        assert rig.slack.calls("conversations.replies") == []  # never read the thread for a non-member
        assert rig.saver.saved == []

        _response, url = await rig.command(f"save {link} Secret", user=BOB)
        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert note.params["channel"] == SECRET
        assert _page_with_title(rig, "Secret")


async def test_save_errors_go_to_the_requester_only() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "hi"}])
        rig.slack.fail_next("conversations.replies", "not_in_channel")
        await rig.interaction(message_shortcut_payload(user=ALICE, channel=GENERAL, message_ts=root, text="hi"))
        [opened] = await rig.slack.await_for("views.open")
        await rig.interaction(view_submission_payload(opened.params["view"], {"title": {"title_input": "Hi"}},
                                                      user=ALICE))
        [eph] = await rig.slack.await_for("chat.postEphemeral")
        assert eph.params["user"] == ALICE and "invite me" in eph.params["text"]
        await rig.quiet()
        assert rig.slack.calls("chat.postMessage") == []

        rig.pw.fail_next(10, status=401, endpoint="create")
        await rig.interaction(view_submission_payload(opened.params["view"], {"title": {"title_input": "Hi"}},
                                                      user=ALICE))
        ephs = await rig.slack.await_for("chat.postEphemeral", 2, timeout=20)
        assert "rejected the API token" in ephs[1].params["text"] and ephs[1].params["user"] == ALICE
        assert rig.slack.calls("chat.postMessage") == []


async def test_save_while_the_wiki_is_down_is_queued_then_linked() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "Where is the wifi password?"},
                                              {"user": BOB, "text": "On the fridge"}])
        rig.pw.fail_next(2, status=503, endpoint="create")
        await rig.event(mention_event(GENERAL, ALICE, "save Wifi password", "1700000950.000100", thread_ts=root))
        pending, done = await rig.slack.await_for("chat.postMessage", 2, thread_ts=root, timeout=20)
        assert "the wiki is busy, will retry" in pending.params["text"]
        assert "Saved this thread" in done.params["text"] and "<https://wiki.example/page/" in done.params["text"]
        assert "On the fridge" in _page_with_title(rig, "Wifi password")["content"]


async def test_queued_save_the_wiki_then_refuses_is_reported_in_the_thread() -> None:
    """The asker was told "will retry": when the retry ends in a refusal (400), the thread hears that too."""
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": ALICE, "text": "Where is the wifi password?"}])
        rig.pw.fail_next(2, status=503, endpoint="create")
        rig.pw.fail_next(1, status=400, endpoint="create")
        await rig.event(mention_event(GENERAL, ALICE, "save Wifi password", "1700000960.000100", thread_ts=root))
        pending, failed = await rig.slack.await_for("chat.postMessage", 2, thread_ts=root, timeout=20)
        assert "the wiki is busy, will retry" in pending.params["text"]
        assert failed.params["channel"] == GENERAL
        assert failed.params["text"] == (
            ":warning: The queued save of “Wifi password” failed. The wiki refused the page: Perfect Wiki "
            "rejected the request as invalid (HTTP 400)"
        )
        assert not [page for page in rig.pw.pages() if page["title"] == "Wifi password"]
        assert await rig.saver.inner.queued() == 0


async def test_permalink_save_accepts_punctuated_keyword() -> None:
    async with slack_rig() as rig:
        root = rig.slack.add_thread(GENERAL, [{"user": BOB, "text": "Lunch is at noon"}])
        link = f"https://acme.slack.com/archives/{GENERAL}/p{root.replace('.', '')}"
        response, _ = await rig.command(f"Save: {link}")
        assert "Saving" in response.json()["text"]
        [note] = await rig.slack.await_for("chat.postMessage", thread_ts=root)
        assert "Lunch is at noon" in note.params["text"]  # title from the thread's first line
