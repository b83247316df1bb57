"""Scenarios: one Discord bot, three knowledgebases routed by channel, parent channel and server (KBBOT_CONFIG),
through the real discord.py client against the fake Discord gateway + REST (see test_discord.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord

from kbbot.config import Settings
from kbbot.runtime import Runtime, discord_client
from tests.fakes.discord_api import Call, FakeDiscord, discord_pointed_at
from tests.scenarios.knowledgebases_support import Wikis, knowledgebases, savers_running, several_runtime, three_wikis


@dataclass
class World:
    fake: FakeDiscord
    wikis: Wikis
    rt: Runtime
    general: dict[str, Any]  # Acme's #general: not routed → the default (handbook)
    eng: dict[str, Any]  # Acme's #engineering → engineering
    eng_thread: dict[str, Any]  # a thread in #engineering: its parent's route
    lounge: dict[str, Any]  # a channel of the Maths server, routed by server → maths
    ana: dict[str, Any]
    bob: dict[str, Any]
    max: dict[str, Any]  # a member of the Maths server


@asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    with FakeDiscord() as fake, discord_pointed_at(fake), three_wikis() as wikis:
        acme = fake.add_guild(name="Acme")
        maths_guild = fake.add_guild(name="Maths club")
        general = fake.add_channel(acme, "general")
        eng = fake.add_channel(acme, "engineering")
        lounge = fake.add_channel(maths_guild, "lounge")
        ana = fake.add_member(acme, "Ana")
        bob = fake.add_member(acme, "Bob")
        max_ = fake.add_member(maths_guild, "Max")
        eng_thread = fake.add_thread(acme, eng, "Build cache", owner=ana)
        base = Settings(discord_bot_token=fake.token, kbbot_data_dir=tmp_path / "data", cache_ttl_seconds=600)
        kbs = knowledgebases(wikis, base, tmp_path, discord={eng["id"]: "engineering", maths_guild["id"]: "maths"})
        async with several_runtime(base, kbs) as rt:
            # discord.py waits guild_ready_timeout (2 s) after the last GUILD_CREATE; the fake sends them at once.
            client = discord_client(rt, in_flight=_untracked, client_options={"guild_ready_timeout": 0.05})
            async with _connected(fake, client), savers_running(rt):
                yield World(fake, wikis, rt, general, eng, eng_thread, lounge, ana, bob, max_)


@asynccontextmanager
async def _untracked() -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def _connected(fake: FakeDiscord, client: discord.Client) -> AsyncIterator[None]:
    async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s between shard IDENTIFYs (Discord's rate); the fake has no such limit."""

    client.before_identify_hook = identify_at_once  # type: ignore[method-assign]
    task = asyncio.create_task(client.start(fake.token))
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        assert ready.done(), "client did not become ready"
        yield
    finally:
        ready.cancel()
        await client.close()
        await asyncio.wait_for(task, 10)


def posts(fake: FakeDiscord, channel: dict[str, Any]) -> list[Call]:
    return fake.calls_to("POST", f"/channels/{channel['id']}/messages")


def followups(fake: FakeDiscord, interaction: dict[str, Any]) -> list[Call]:
    return fake.calls_to("POST", f"/webhooks/{fake.app_id}/{interaction['token']}")


def callbacks(fake: FakeDiscord, interaction: dict[str, Any]) -> list[Call]:
    return fake.calls_to("POST", f"/interactions/{interaction['id']}/")


async def _ask(w: World, channel: dict[str, Any], author: dict[str, Any], text: str, count: int = 1) -> str:
    fake = w.fake
    fake.dispatch("MESSAGE_CREATE", fake.message_payload(channel, author, f"<@{fake.app_id}> {text}",
                                                         mentions=[fake.bot_user]))
    calls = await fake.await_for(lambda: len(posts(fake, channel)) >= count and posts(fake, channel), timeout=10)
    return json.dumps(calls[count - 1].body, ensure_ascii=False)


async def test_channel_then_parent_then_server_then_default(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        eng = await _ask(w, w.eng, w.ana, "how do I set up the VPN?")
        thread = await _ask(w, w.eng_thread, w.ana, "what is in the deploy checklist?")
        general = await _ask(w, w.general, w.bob, "how many holiday days?")
        lounge = await _ask(w, w.lounge, w.max, "what is the fundamental group?")
    assert "eng.example.com" in eng and "from engineering" in eng
    assert "eng.example.com" in thread and "from engineering" in thread  # a thread follows its parent channel
    assert "handbook.example.com" in general and "from handbook" in general
    assert "maths.example.com/fundamental-group" in lounge and "from maths" in lounge  # routed by server
    assert w.wikis.eng.stats().billed_queries == 2 and w.wikis.hr.stats().billed_queries == 1


async def test_save_thread_lands_in_the_wiki_of_the_threads_channel(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        fake = w.fake
        for text in ("The build cache lives in S3", "Keys rotate monthly"):
            fake.message_payload(w.eng_thread, w.ana, text)
        interaction = fake.interaction_payload(
            channel=w.eng_thread, member=w.ana, data=fake.slash("save-thread", title="Build cache notes")
        )
        fake.dispatch("INTERACTION_CREATE", interaction)
        [follow] = await fake.await_for(lambda: followups(fake, interaction), timeout=10)
    assert "eng.example.com" in follow.body["content"]
    assert "Build cache notes" in [p["title"] for p in w.wikis.eng.pages()]
    assert "Build cache notes" not in [p["title"] for p in w.wikis.hr.pages()]


async def test_use_in_a_dm_switches_that_persons_knowledgebase(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        fake = w.fake
        dm = fake.dm_channel(w.bob["user"])
        before = await _ask_dm(w, dm, "fundamental group?", 1)
        interaction = fake.interaction_payload(channel=dm, member=w.bob, data=fake.slash("use", knowledgebase="maths"))
        fake.dispatch("INTERACTION_CREATE", interaction)
        [reply] = await fake.await_for(lambda: callbacks(fake, interaction), timeout=10)
        after = await _ask_dm(w, dm, "fundamental group?", 2)
        commands = [c["name"] for c in fake.commands()]
    assert "from handbook" in before
    assert "now ask `maths`" in reply.body["data"]["content"] and reply.body["data"]["flags"] & 64  # ephemeral
    assert "from maths" in after and "maths.example.com/fundamental-group" in after
    assert "use" in commands  # registered because there is something to choose


async def _ask_dm(w: World, dm: dict[str, Any], text: str, count: int) -> str:
    fake = w.fake
    fake.dispatch("MESSAGE_CREATE", fake.message_payload(dm, w.bob["user"], text))
    calls = await fake.await_for(lambda: len(posts(fake, dm)) >= count and posts(fake, dm), timeout=10)
    return json.dumps(calls[count - 1].body, ensure_ascii=False)
