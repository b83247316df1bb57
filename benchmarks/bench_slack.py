"""The public Slack endpoint under a flood of unsigned 1 MiB bodies (issue 13 item 9).

The real HTTP server (kbbot.ops.http.HttpServer) serves the real Slack route and Bolt app, talking to the fake Slack
Web API. Attacker processes post unsigned 1 MiB bodies in a loop over raw sockets; meanwhile signed events are sent
one after another and their acks timed. Reported: the server's CPU time per refused request (it used to be 0.36 s
of event-loop time, as Bolt parsed and logged the body before refusing it), the requests refused, and the acks'
latency under the flood (Slack gives up after 3 s).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import statistics
import time
from typing import Any

import httpx
from aiohttp import web

from kbbot.adapters.services import ChatServices
from kbbot.adapters.slack import build_slack, slack_routes, slack_web_client
from kbbot.adapters.slack.service import SlackCredentials
from kbbot.core.models import Answer, Question
from kbbot.ops.http import HttpServer
from kbbot.store.memory import MemoryDeduper, MemoryFeedbackStore
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack, SlackSigner, event_envelope, mention_event

ATTACKERS = 3
EVENTS = 40
BODY = b"x" * (1 << 20)


class _Echo:
    async def ask(self, question: Question, *, on_queued: Any = None) -> Answer:
        return Answer(text=f"echo: {question.text}")

    async def status(self) -> Any:
        raise NotImplementedError


class _NoSave:
    async def save(self, thread: Any, title: Any = None, tags: Any = None) -> Any:
        raise NotImplementedError


def _attack(port: int, stop: Any, sent: Any) -> None:
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: kbbot\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(head + BODY)
                sock.recv(4096)
        except OSError:
            pass  # refused before the body was read: the server closes while we still send
        with sent.get_lock():
            sent.value += 1


def _until_flooding(sent: Any) -> None:
    while sent.value < ATTACKERS * 3:  # a counter in shared memory: nothing to await
        time.sleep(0.05)


async def _run() -> dict[str, Any]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        client = slack_web_client(SlackCredentials(bot_token=BOT_TOKEN, api_url=slack.api_url))
        services = ChatServices(ask=_Echo(), saver=_NoSave(), feedback=MemoryFeedbackStore(), deduper=MemoryDeduper())
        bot = build_slack(client=client, services=services)
        app = web.Application()
        app.add_routes(slack_routes(bot.app, signing_secret=SIGNING_SECRET))
        async with HttpServer(app, "127.0.0.1", 0) as server:
            ctx = multiprocessing.get_context("spawn")
            stop, sent = ctx.Event(), ctx.Value("i", 0)
            attackers = [ctx.Process(target=_attack, args=(server.port, stop, sent)) for _ in range(ATTACKERS)]
            for process in attackers:
                process.start()
            await asyncio.to_thread(_until_flooding, sent)
            cpu_start, refused_start = time.process_time(), sent.value
            acks: list[float] = []
            signer = SlackSigner()
            async with httpx.AsyncClient(timeout=30) as http:
                for i in range(EVENTS):
                    body, headers = signer.event(event_envelope(mention_event("C1", "U1", f"q{i}", f"1.{i:06d}")))
                    started = time.perf_counter()
                    response = await http.post(f"{server.url}/slack/events", content=body, headers=headers)
                    acks.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.status_code
                    await asyncio.sleep(0.05)
            cpu, refused = time.process_time() - cpu_start, sent.value - refused_start
            stop.set()
            for process in attackers:
                process.join(timeout=30)
            await bot.drain()
        if client.session is not None:
            await client.session.close()
    acks.sort()
    return {
        "attackers": ATTACKERS,
        "unsigned_1mib_refused": refused,
        # Upper bound: the process's CPU also includes the signed events, their answers and the test client.
        "cpu_ms_per_refused_request": round(1000 * cpu / max(refused, 1), 2),
        "ack_p50_ms": round(1000 * statistics.median(acks), 1),
        "ack_p95_ms": round(1000 * acks[int(0.95 * (len(acks) - 1))], 1),
        "ack_max_ms": round(1000 * acks[-1], 1),
    }


def run() -> dict[str, Any]:
    return asyncio.run(_run())


if __name__ == "__main__":
    print(run())
