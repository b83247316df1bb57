"""History reading and membership checks with the real slack_sdk client against the fake Slack Web API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.history import Membership, ThreadReader, UserDirectory, title_hint
from kbbot.adapters.slack.parsing import ThreadRef
from kbbot.errors import SaveError
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user("U1", "alice", real_name="Alice Adams")
        fake.add_user("U2", "bob", display_name="", real_name="Bob Brown")
        fake.add_channel("C1", "general", members=["U1", "U2"])
        fake.add_channel("G1", "secret", private=True, members=[f"U{i}" for i in range(500)])
        fake.add_channel("D1", "", im_user="U1")
        yield fake


def _client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)


async def test_reads_all_pages_once_each_and_converts(slack: FakeSlack) -> None:
    messages = [{"user": "U1", "text": "Root *bold* <@U2> in <#C1|general> &lt;tag&gt;",
                 "files": [{"name": "log.txt", "permalink": "https://acme.slack.com/files/U1/F1/log.txt"}]}]
    messages += [{"user": "U2", "text": f"reply {i}"} for i in range(249)]
    messages.append({"bot_id": "B9", "username": "deploybot", "text": "deployed", "edited": {"user": "B9"}})
    messages.append({"user": "U1", "subtype": "tombstone", "text": "This message was deleted."})
    root = slack.add_thread("C1", messages)
    client = _client(slack)
    users = UserDirectory(client)
    thread = await ThreadReader(client, users, page_size=100).read(ThreadRef("C1", root), channel_name="general")

    assert len(slack.calls("conversations.replies")) == 3
    assert len(thread.messages) == 252
    assert [m.text for m in thread.messages[1:4]] == ["reply 0", "reply 1", "reply 2"]
    first = thread.messages[0]
    assert first.author_name == "alice" and first.author_id == "U1"
    assert "@Bob Brown" in first.text and "#general" in first.text and "<tag>" in first.text
    assert first.attachments[0].name == "log.txt"
    assert first.timestamp.endswith("+00:00")
    bot = thread.messages[-2]
    assert bot.author_name == "deploybot" and bot.edited
    assert thread.messages[-1].deleted and thread.messages[-1].text == ""
    assert thread.key == f"C1:{root}" and thread.channel_name == "general" and thread.platform == "slack"
    assert thread.title_hint and thread.title_hint.startswith("Root")
    # users.info once per user, then cached
    assert sorted(c.params["user"] for c in slack.calls("users.info")) == ["U1", "U2"]
    await ThreadReader(client, users).read(ThreadRef("C1", root))
    assert len(slack.calls("users.info")) == 2


async def test_link_to_a_reply_reads_its_thread(slack: FakeSlack) -> None:
    root = slack.add_thread("C1", [{"user": "U1", "text": "root"}, {"user": "U2", "text": "reply"}])
    reply_ts = slack.thread("C1", root)[1]["ts"]
    client = _client(slack)
    thread = await ThreadReader(client, UserDirectory(client)).read(ThreadRef("C1", reply_ts))
    assert [m.text for m in thread.messages] == ["root", "reply"]
    assert thread.key == f"C1:{root}"


@pytest.mark.parametrize(
    ("error", "message"),
    [("not_in_channel", "invite me"), ("channel_not_found", "invite me"), ("thread_not_found", "doesn't exist"),
     ("ratelimited", "rate-limiting"), ("fatal_error", "couldn't read")],
)
async def test_history_errors_become_save_errors(slack: FakeSlack, error: str, message: str) -> None:
    root = slack.add_thread("C1", [{"user": "U1", "text": "root"}])
    slack.fail_next("conversations.replies", error)
    client = _client(slack)
    with pytest.raises(SaveError, match=message):
        await ThreadReader(client, UserDirectory(client)).read(ThreadRef("C1", root))


async def test_unknown_users_keep_their_id_and_are_retried(slack: FakeSlack) -> None:
    client = _client(slack)
    users = UserDirectory(client)
    assert await users.name("U404") == "U404"
    assert await users.name("U404") == "U404"
    assert len(slack.calls("users.info")) == 2  # failures are not cached


async def test_membership(slack: FakeSlack) -> None:
    membership = Membership(_client(slack), page_size=100)
    assert (await membership.check("C1", "U999"))["name"] == "general"  # public: anyone
    assert (await membership.check("G1", "U499"))["name"] == "secret"  # found on the 5th members page
    assert len(slack.calls("conversations.members")) == 5
    with pytest.raises(SaveError, match="Only members"):
        await membership.check("G1", "U999")
    await membership.check("D1", "U1")
    with pytest.raises(SaveError, match="Only the people"):
        await membership.check("D1", "U2")
    with pytest.raises(SaveError, match="invite me"):
        await membership.check("C404", "U1")


def test_title_hint() -> None:
    assert title_hint("\n\n  ## *How to deploy*  \nmore") == "How to deploy"
    assert title_hint("") == "Slack thread"
    assert len(title_hint("x" * 500)) == 120
