"""Operations under load, on a real `kbbot run` process (Slack HTTP mode) against the fake Perfect Wiki with the
real limits (10/s, 60/min per token, 200 ms per AI answer) and the fake Slack Web API:

- **flood**: one person sends 300 DMs at once; meanwhile another person asks one question. Measured: how long
  the other person waits for their answer (goal: seconds, not the flood's minutes), with the default
  per-person AI budget and with it switched off (then the flood really queues for the token's rate; the other
  question is asked once the flood has used the token's whole first minute).
- **shutdown**: 300 people each ask one question, so most wait for the token's budget; then SIGTERM. Measured:
  time to exit (goal: within SHUTDOWN_GRACE_SECONDS = 20 s, under the orchestrators' 30 s) and how many askers
  got an answer, were told "restarting, ask again", or heard nothing (goal 0).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.bot_process import RESTARTING, SLOW_DOWN, Bot, running_bot, user_id, wait_until

QUESTIONS = 300


def _final(bot: Bot, user: str) -> list[dict[str, Any]]:
    return [r for r in bot.replies(user) if "in line" not in r["text"]]


async def _flood(tmp: Path, env: dict[str, str], *, after_queries: int) -> dict[str, Any]:
    with running_bot(tmp, env=env) as bot:
        flooder, other = user_id(1), user_id(2)
        bot.add_askers([flooder, other])
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as http:
            await asyncio.gather(
                *(bot.ask(http, flooder, f"flood question {n}", f"1700000000.{n:06d}") for n in range(QUESTIONS))
            )
            await wait_until(lambda: bot.pw.stats().queries >= after_queries, what="the flood reaching the AI")
            asked = time.monotonic()
            await bot.ask(http, other, "how do I set up the VPN?", "1700000001.000001")
            await wait_until(lambda: _final(bot, other), what="the other person's answer")
            latency = time.monotonic() - asked
        flood_done = len(_final(bot, flooder))
        slowed = sum(1 for r in _final(bot, flooder) if SLOW_DOWN in r["text"])
        billed = bot.pw.stats().billed_queries
        bot.stop()
    return {
        "other_answer_seconds": round(latency, 2),
        "flood_replies_before_it": flood_done,
        "flood_told_to_slow_down": slowed,
        "billed_queries": billed,
    }


async def _shutdown(tmp: Path) -> dict[str, Any]:
    with running_bot(tmp) as bot:
        users = [user_id(n) for n in range(QUESTIONS)]
        bot.add_askers(users)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as http:
            await asyncio.gather(
                *(bot.ask(http, u, f"how do I set up the VPN on device {n}?", f"1700000000.{n:06d}")
                  for n, u in enumerate(users))
            )
        await wait_until(lambda: bot.reactions_added() == QUESTIONS, what="all questions picked up")
        await wait_until(lambda: bot.pw.stats().queries >= 10, what="the first AI answers")
        answered_before = sum(1 for u in users if _final(bot, u))
        seconds = bot.stop()
        outcome = {"answered": 0, "told_restarting": 0, "never_told": 0}
        for user in users:
            final = _final(bot, user)
            if not final:
                outcome["never_told"] += 1
            elif RESTARTING in final[0]["text"]:
                outcome["told_restarting"] += 1
            else:
                outcome["answered"] += 1
        return {
            "exit_seconds": round(seconds, 2),
            "exit_code": bot.proc.returncode,
            "waiting_at_sigterm": QUESTIONS - answered_before,
            **outcome,
        }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, tempfile.TemporaryDirectory() as c:
        return {
            "flood_default_budget": asyncio.run(_flood(Path(a), {}, after_queries=5)),
            # Asked once the flood has spent the token's whole first minute (59 requests): the worst moment.
            "flood_no_budget": asyncio.run(_flood(Path(b), {"AI_USER_LIMIT": "off"}, after_queries=59)),
            "shutdown_300_queued": asyncio.run(_shutdown(Path(c))),
        }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
