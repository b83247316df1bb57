"""Each rule of the fake Slack Web API (tests/fakes/slack_api.py) matches what Slack does, driven by the real
slack_sdk AsyncWebClient. The sources of each rule are named in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import APP_ID, APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER_ID, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel("C1", "general")
        yield fake


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    # No retry handlers: each test sees Slack's first answer.
    web = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url, retry_handlers=[])
    yield web
    if web.session is not None:
        await web.session.close()


def _section(chars: int) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": "x" * chars}}


async def _refusal(call) -> SlackApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def test_blocks_past_12000_text_characters_are_msg_blocks_too_long(client: AsyncWebClient) -> None:
    # slackapi/bolt-js#2509 and #2867: Slack sums the text strings of all blocks; ~12,000 is the documented budget.
    await client.chat_postMessage(channel="C1", text="ok", blocks=[_section(2900)] * 4)  # 11,600: accepted
    refused = await _refusal(client.chat_postMessage(channel="C1", text="x", blocks=[_section(2900)] * 5))
    assert refused.response["error"] == "msg_blocks_too_long"
    ephemeral = await _refusal(client.chat_postEphemeral(channel="C1", user="U1", text="x",
                                                         blocks=[_section(2900)] * 5))
    assert ephemeral.response["error"] == "msg_blocks_too_long"


async def test_more_than_50_blocks_or_a_long_section_is_invalid_blocks(client: AsyncWebClient) -> None:
    # docs.slack.dev/reference/block-kit/blocks: up to 50 blocks per message; section text at most 3000 characters.
    await client.chat_postMessage(channel="C1", text="ok", blocks=[_section(10)] * 50)
    assert (await _refusal(client.chat_postMessage(channel="C1", text="x", blocks=[_section(10)] * 51))
            ).response["error"] == "invalid_blocks"
    assert (await _refusal(client.chat_postMessage(channel="C1", text="x", blocks=[_section(3001)]))
            ).response["error"] == "invalid_blocks"
    assert (await _refusal(client.chat_postMessage(channel="C1", text="x" * 40_001))
            ).response["error"] == "msg_too_long"


async def test_missing_scope_names_needed_and_provided(slack: FakeSlack, client: AsyncWebClient) -> None:
    # Shape {"ok": false, "error": "missing_scope", "needed": …, "provided": …}: docs.slack.dev method pages;
    # slack_sdk models the same fields (python-slack-sdk slack_sdk/audit_logs/v1/logs.py, LogsResponse).
    slack.revoke_scope("chat:write")
    refused = await _refusal(client.chat_postMessage(channel="C1", text="hi"))
    assert refused.response["error"] == "missing_scope"
    assert refused.response["needed"] == "chat:write"
    assert "chat:write" not in refused.response["provided"].split(",")
    assert "users:read" in refused.response["provided"].split(",")
    assert refused.response.api_url.endswith("/chat.postMessage")
    await client.auth_test()  # needs no scope


async def test_tokens_of_the_wrong_kind_or_bad_tokens(slack: FakeSlack) -> None:
    # apps.connections.open takes only an app-level token (docs.slack.dev/reference/methods/apps.connections.open:
    # invalid_auth, not_allowed_token_type); an xapp- token is refused by the bot's methods the same way.
    async def call(token: str, method: str) -> str:
        web = AsyncWebClient(token=token, base_url=slack.api_url, retry_handlers=[])
        try:
            await web.api_call(method)
        except SlackApiError as exc:
            return str(exc.response["error"])
        finally:
            if web.session is not None:
                await web.session.close()
        return "ok"

    assert await call(APP_TOKEN, "apps.connections.open") == "ok"
    assert await call(BOT_TOKEN, "apps.connections.open") == "not_allowed_token_type"
    assert await call("xapp-1-revoked", "apps.connections.open") == "invalid_auth"
    assert await call(APP_TOKEN, "auth.test") == "not_allowed_token_type"
    assert await call("xoxb-revoked", "auth.test") == "invalid_auth"


async def test_ratelimited_is_http_429_with_retry_after(slack: FakeSlack, client: AsyncWebClient) -> None:
    # python-slack-sdk tests/slack_sdk/web/mock_web_api_handler.py answers "ratelimited" with 429 + Retry-After.
    slack.fail_next("users.info", "ratelimited")
    refused = await _refusal(client.users_info(user="U1"))
    assert refused.response.status_code == 429
    assert refused.response.headers["Retry-After"] == "0"


async def test_server_errors_are_5xx_without_json(slack: FakeSlack, client: AsyncWebClient) -> None:
    # What slack_sdk's AsyncServerErrorRetryHandler retries (python-slack-sdk
    # slack_sdk/http_retry/builtin_async_handlers.py: status 500 or 503).
    slack.fail_next("users.info", "internal_error", status=503)
    refused = await _refusal(client.users_info(user="U1"))
    assert refused.response.status_code == 503


async def test_replies_repeat_the_root_first_on_every_page(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.add_thread("C1", [{"user": "U1", "text": f"m{i}"} for i in range(7)])
    pages, cursor = [], None
    while True:
        kwargs = {"cursor": cursor} if cursor else {}
        page = await client.conversations_replies(channel="C1", ts=root, limit=3, **kwargs)
        pages.append([m["text"] for m in page["messages"]])
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages == [["m0", "m1", "m2", "m3"], ["m0", "m4", "m5", "m6"]]
    assert all(p[0] == "m0" for p in pages)


async def test_the_bots_own_posts_come_back_as_an_apps_messages(slack: FakeSlack, client: AsyncWebClient) -> None:
    # A message posted with the bot token carries user, bot_id, app_id and bot_profile {id, app_id, name, icons,
    # deleted, team_id}: bolt-python tests/slack_bolt/request/test_payload_utils.py (bot_im_thread_message_body),
    # tests/scenario_tests/test_message_bot.py (bot_message_event_payload); users.info knows the bot user.
    root = slack.add_thread("C1", [{"user": "U1", "text": "question"}])
    posted = await client.chat_postMessage(channel="C1", thread_ts=root, text="answer")
    [_, reply] = (await client.conversations_replies(channel="C1", ts=root))["messages"]
    for message in (posted["message"], reply):
        assert (message["user"], message["bot_id"], message["app_id"]) == (BOT_USER_ID, BOT_ID, APP_ID)
        profile = message["bot_profile"]
        assert {"id", "app_id", "name", "icons", "deleted", "team_id"} <= set(profile)
        assert (profile["id"], profile["app_id"], profile["name"], profile["deleted"]) == (BOT_ID, APP_ID, "kbbot",
                                                                                            False)
        assert profile["icons"]["image_48"].startswith("https://")
    user = (await client.users_info(user=BOT_USER_ID))["user"]
    assert user["is_bot"] and user["profile"]["bot_id"] == BOT_ID
