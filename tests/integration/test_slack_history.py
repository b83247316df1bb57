"""History reading and membership checks with the real slack_sdk client against the fake Slack Web API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.history import (
    DEFAULT_MAX_MESSAGES,
    Membership,
    ThreadReader,
    UserDirectory,
    title_hint,
    truncation_text,
)
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


def _long_thread(slack: FakeSlack, count: int) -> str:
    return slack.add_thread("C1", [{"user": "U1" if i % 2 else "U2", "text": f"msg {i:04d}"} for i in range(count)])


async def test_a_thread_longer_than_the_cap_is_cut_with_a_note_on_the_page(slack: FakeSlack) -> None:
    root = _long_thread(slack, 250)
    reader = ThreadReader(_client(slack), UserDirectory(_client(slack)), page_size=100, max_messages=150)
    read = await reader.read_capped(ThreadRef("C1", root))

    assert read.truncated and read.max_messages == 150
    texts = [m.text for m in read.thread.messages]
    assert texts[:150] == [f"msg {i:04d}" for i in range(150)]
    assert len(texts) == 151 and texts[-1] == truncation_text(150)
    assert "more than 150 messages; only the first 150 were saved" in texts[-1]
    assert read.thread.messages[-1].author_name == "kbbot"
    assert read.thread.messages[-1].timestamp == read.thread.messages[-2].timestamp  # stays last when sorted
    # Paging stops at the cap instead of reading the whole thread: the second call asks only for what is left.
    calls = slack.calls("conversations.replies")
    assert len(calls) == 2 and int(calls[1].params["limit"]) <= 51


async def test_a_thread_of_exactly_the_cap_is_complete_and_has_no_note(slack: FakeSlack) -> None:
    root = _long_thread(slack, 150)
    reader = ThreadReader(_client(slack), UserDirectory(_client(slack)), page_size=100, max_messages=150)
    read = await reader.read_capped(ThreadRef("C1", root))
    assert not read.truncated
    assert [m.text for m in read.thread.messages] == [f"msg {i:04d}" for i in range(150)]


async def test_the_default_cap_is_ten_thousand_messages(slack: FakeSlack) -> None:
    client = _client(slack)
    assert DEFAULT_MAX_MESSAGES == 10_000
    assert ThreadReader(client, UserDirectory(client)).max_messages == 10_000
    assert truncation_text(10_000).startswith("This thread has more than 10,000 messages")
    with pytest.raises(ValueError):
        ThreadReader(client, UserDirectory(client), max_messages=0)


async def test_failed_users_info_falls_back_to_the_names_in_the_message(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    # user_profile as Slack attaches it to user messages in conversations.replies; bot_profile and the classic
    # bot_message's username as in bolt-python tests/scenario_tests_async/test_message_bot.py.
    root = slack.add_thread("C1", [
        {"user": "U0GONE001", "text": "who rotates the keys?",
         "user_profile": {"display_name": "Gone Guest", "real_name": "Gone G", "name": "gone"}},
        {"user": "UB111", "bot_id": "B999", "text": "Deploy finished",
         "bot_profile": {"id": "B999", "deleted": False, "name": "other-app", "app_id": "A222"}},
        {"subtype": "bot_message", "bot_id": "B888", "username": "classic-bot", "text": "CI green"},
    ])
    client = _client(slack)
    with caplog.at_level("WARNING"):
        thread = await ThreadReader(client, UserDirectory(client)).read(ThreadRef("C1", root))
    assert [m.author_name for m in thread.messages] == ["Gone Guest", "other-app", "classic-bot"]
    assert "users.info failed for U0GONE001: users.info: user_not_found" in caplog.text


async def test_pages_never_repeat_the_root(slack: FakeSlack) -> None:
    root = slack.add_thread("C1", [{"user": "U1", "text": f"m{i}"} for i in range(25)])
    client = _client(slack)
    thread = await ThreadReader(client, UserDirectory(client), page_size=4).read(ThreadRef("C1", root))
    assert [m.text for m in thread.messages] == [f"m{i}" for i in range(25)]
    pages = slack.calls("conversations.replies")
    assert len(pages) == 6  # 24 replies, 4 a page, the root repeated first on each


async def test_reads_are_retried_after_a_server_error(slack: FakeSlack) -> None:
    from kbbot.adapters.slack.service import retry_handlers

    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url, retry_handlers=retry_handlers())
    slack.fail_next("users.info", "internal_error", status=503)
    assert await UserDirectory(client).name("U1") == "alice"
    assert len(slack.calls("users.info")) == 2
    # A post is not repeated after a 5xx: it may have landed.
    slack.fail_next("chat.postMessage", "internal_error", status=500)
    with pytest.raises(Exception, match="500"):
        await client.chat_postMessage(channel="C1", text="hi")
    assert len(slack.calls("chat.postMessage")) == 1
    if client.session is not None:
        await client.session.close()


async def test_a_missing_users_read_scope_is_logged_once_with_the_scope(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.revoke_scope("users:read")
    users = UserDirectory(_client(slack))
    with caplog.at_level("WARNING"):
        assert await users.names({"U1", "U2"}) == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "users.info: missing_scope (needed users:read)" in warnings[0]
