"""Scenarios: one Slack bot, three knowledgebases routed by channel (KBBOT_CONFIG), through the real Bolt app.

Two fake Perfect Wikis with their own tokens and pages and a fake MatHub; the runtime is the real composition
root over a parsed config file; events are signed and posted over HTTP like Slack's (see slack_support).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kbbot.config import Settings
from kbbot.runtime import Runtime, open_runtime, open_slack
from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    SlackSigner,
    block_action_payload,
    command_payload,
    event_envelope,
    mention_event,
    message_event,
)
from tests.scenarios.knowledgebases_support import (
    SLACK_ENG,
    SLACK_MATHS,
    Wikis,
    knowledgebases,
    savers_running,
    several_runtime,
    three_wikis,
)
from tests.scenarios.slack_support import ALICE, BOB, DM, GENERAL, loopback_client, seed_workspace, serve_events


@dataclass
class Rig:
    slack: FakeSlack
    wikis: Wikis
    rt: Runtime
    http: httpx.AsyncClient
    url: str
    signer: SlackSigner

    async def command(self, text: str, *, channel: str) -> tuple[dict[str, Any], str]:
        """``/kb text`` in ``channel``: the ack's body and the response URL later replies go to."""
        url = self.slack.response_url()
        body, headers = self.signer.command(command_payload(text, user=ALICE, channel=channel, response_url=url))
        response = await self.http.post(self.url, content=body, headers=headers)
        assert response.status_code == 200
        return (response.json() if response.content else {}), url

    async def replies(self, url: str, count: int = 1) -> list[dict[str, Any]]:
        """What the bot sent to ``url``, once it sent ``count`` payloads (Slack's fake records each POST)."""
        return await asyncio.to_thread(self.slack.wait_responses, url, count)

    async def event(self, event: dict[str, Any]) -> None:
        body, headers = self.signer.event(event_envelope(event))
        response = await self.http.post(self.url, content=body, headers=headers)
        assert response.status_code == 200


@asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    with FakeSlack() as slack, three_wikis() as wikis:
        seed_workspace(slack)
        slack.add_channel(SLACK_ENG, "engineering", members=[ALICE, BOB])
        slack.add_channel(SLACK_MATHS, "maths", members=[ALICE, BOB])
        base = Settings(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.api_url,
            kbbot_data_dir=tmp_path / "data", cache_ttl_seconds=600,
        )
        kbs = knowledgebases(wikis, base, tmp_path)
        async with (
            several_runtime(base, kbs) as rt,
            loopback_client() as http,
            open_slack(rt) as service,
            savers_running(rt),
            serve_events(service.routes) as events_url,
        ):
            yield Rig(slack, wikis, rt, http, events_url, SlackSigner())
            await service.drain()


def _blocks(call: Any) -> str:
    return json.dumps(call.params.get("blocks", []), ensure_ascii=False)


async def test_each_channel_is_answered_by_its_own_wiki_with_its_links(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.event(mention_event(SLACK_ENG, ALICE, "how do I set up the VPN?", "1700000100.000100"))
        [eng_post] = await r.slack.await_for("chat.postMessage", channel=SLACK_ENG)
        await r.event(mention_event(GENERAL, ALICE, "how do I set up the VPN?", "1700000101.000100"))
        [hr_post] = await r.slack.await_for("chat.postMessage", channel=GENERAL)

    eng, hr = _blocks(eng_post), _blocks(hr_post)
    assert "https://eng.example.com/" in eng and "VPN setup" in eng and "handbook.example.com" not in eng
    assert "https://handbook.example.com/" in hr and "eng.example.com" not in hr
    assert "from `engineering`" in eng and "from `handbook`" in hr  # the context line names the knowledgebase
    # The same question in two channels routed to two wikis: one billed call on each, no shared cache.
    assert r.wikis.eng.stats().billed_queries == 1 and r.wikis.hr.stats().billed_queries == 1
    assert r.wikis.eng.stats().statuses("query") == [200]


async def test_a_402_on_one_wiki_leaves_the_other_answering_with_ai(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.wikis.hr.set_ai_quota(0)  # the handbook's monthly AI quota is used up
        await r.event(mention_event(GENERAL, ALICE, "how many holiday days do we get?", "1700000200.000100"))
        [hr_post] = await r.slack.await_for("chat.postMessage", channel=GENERAL)
        await r.event(mention_event(SLACK_ENG, ALICE, "what is in the deploy checklist?", "1700000201.000100"))
        [eng_post] = await r.slack.await_for("chat.postMessage", channel=SLACK_ENG)
        hr_status = await r.rt.stacks["handbook"].ask.status()
        eng_status = await r.rt.stacks["engineering"].ask.status()

    assert "30 holiday days" in _blocks(hr_post) and "AI answers are paused" in _blocks(hr_post)
    assert "AI answer from the wiki" not in _blocks(hr_post)  # answered from search
    assert "AI answer from the wiki" in _blocks(eng_post)
    assert hr_status.quota.paused and not eng_status.quota.paused
    assert r.wikis.hr.stats().quota_exceeded == 1 and r.wikis.eng.stats().billed_queries == 1


async def test_a_saved_thread_lands_in_its_channels_wiki(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        eng_root = r.slack.add_thread(SLACK_ENG, [{"user": BOB, "text": "The build cache lives in S3"}])
        await r.event(mention_event(SLACK_ENG, ALICE, "save Build cache", "1700000300.000100", thread_ts=eng_root))
        [eng_note] = await r.slack.await_for("chat.postMessage", thread_ts=eng_root)
        maths_root = r.slack.add_thread(SLACK_MATHS, [{"user": BOB, "text": "Van Kampen computes $\\pi_1$"}])
        await r.event(mention_event(SLACK_MATHS, ALICE, "save Van Kampen", "1700000301.000100",
                                    thread_ts=maths_root))
        [maths_note] = await r.slack.await_for("chat.postMessage", thread_ts=maths_root)

    eng_titles = [p["title"] for p in r.wikis.eng.pages()]
    assert "Build cache" in eng_titles
    assert "Build cache" not in [p["title"] for p in r.wikis.hr.pages()]
    [saved] = [p for p in r.wikis.eng.pages() if p["title"] == "Build cache"]
    assert "engineering" in saved["tags"]  # that knowledgebase's own save tags
    assert "https://eng.example.com/" in eng_note.params["text"] + _blocks(eng_note)
    assert [p.title for p in r.wikis.maths.pages() if p.title == "Van Kampen"] == ["Van Kampen"]
    assert "maths.example.com" in maths_note.params["text"] + _blocks(maths_note)
    assert len(r.wikis.hr.pages()) == 2  # the default wiki got nothing


async def test_kb_use_in_a_dm_is_remembered_per_person(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.event(message_event(DM, ALICE, "fundamental group?", "1700000400.000100"))
        [first] = await r.slack.await_for("chat.postMessage", channel=DM)
        assert "from `handbook`" in _blocks(first)  # no choice yet: the default

        await r.event(message_event(DM, ALICE, "use maths", "1700000401.000100"))
        [_, reply] = await r.slack.await_for("chat.postMessage", 2, channel=DM)
        assert "now ask `maths`" in reply.params["text"]
        await r.event(message_event(DM, ALICE, "fundamental group?", "1700000402.000100"))
        [*_, answer] = await r.slack.await_for("chat.postMessage", 3, channel=DM)
        assert "from `maths`" in _blocks(answer) and "maths.example.com/fundamental-group" in _blocks(answer)

        await r.event(message_event(DM, ALICE, "use nonsense", "1700000403.000100"))
        [*_, unknown] = await r.slack.await_for("chat.postMessage", 4, channel=DM)
        assert "no knowledgebase `nonsense`" in unknown.params["text"]
        # Channels keep their routes whatever a person chose for DMs.
        await r.event(mention_event(GENERAL, ALICE, "holiday days?", "1700000404.000100"))
        [general] = await r.slack.await_for("chat.postMessage", channel=GENERAL)
        assert "from `handbook`" in _blocks(general)
    # Remembered durably: a restarted bot (same data folder) still knows; opening it makes no network call.
    restarted = Settings(kbbot_data_dir=tmp_path / "data")
    async with open_runtime(restarted, knowledgebases=knowledgebases(r.wikis, restarted, tmp_path)) as again:
        assert await again.router.chosen("slack", ALICE) == "maths"
        assert await again.router.chosen("slack", BOB) == "handbook"


async def test_kb_status_names_the_channels_knowledgebase(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.event(mention_event(SLACK_ENG, ALICE, "status", "1700000500.000100"))
        [status] = await r.slack.await_for("chat.postEphemeral", channel=SLACK_ENG)
    assert "`engineering`" in status.params["text"] + _blocks(status)
    assert "Engineering" in _blocks(status)  # and the wiki's own name


async def test_slash_use_and_help_list_the_knowledgebases(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        helped, _ = await r.command("help", channel=GENERAL)
        assert "use NAME" in json.dumps(helped) and "`engineering`, `handbook`, `maths`" in json.dumps(helped)
        _, url = await r.command("use engineering", channel=DM)
        [reply] = await r.replies(url)
        assert "now ask `engineering`" in json.dumps(reply)
        assert await r.rt.router.chosen("slack", ALICE) == "engineering"


async def test_share_asks_again_in_its_channels_knowledgebase_when_the_answer_was_forgotten(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        url = r.slack.response_url()
        # Another replica showed this answer (or it expired here): the button carries the question only.
        value = json.dumps({"id": "not-kept-here", "q": "how do I set up the VPN?"})
        payload = block_action_payload("kb_share", value, user=ALICE, channel=SLACK_ENG, response_url=url,
                                       ephemeral=True, message_ts="1700000600.000100")
        body, headers = r.signer.interaction(payload)
        assert (await r.http.post(r.url, content=body, headers=headers)).status_code == 200
        # Two posts: the ephemeral copy's delete_original, then the shared answer (read after the first alone,
        # on a loaded machine, the answer was not there yet).
        shared = json.dumps(await r.replies(url, count=2))
    assert "eng.example.com" in shared and "from `engineering`" in shared
    assert r.wikis.eng.stats().billed_queries == 1 and r.wikis.hr.stats().billed_queries == 0
