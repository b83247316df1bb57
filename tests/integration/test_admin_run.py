"""`kbbot run` serves GET /admin next to /metrics when KBBOT_ADMIN_TOKEN is set (404 when not), and a Slack
question asked over real HTTP shows up on it, with the AI quota gauge in /metrics."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from tests.integration.bot_process import running_bot, user_id, wait_until

TOKEN = "dashboard-secret-9f8e7d6c5b4a"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode()}


async def test_dashboard_and_quota_gauge_in_kbbot_run(tmp_path: Path) -> None:
    env = {"KBBOT_ADMIN_TOKEN": TOKEN, "PERFECTWIKI_AI_QUOTA_MONTHLY": "4", "LOG_LEVEL": "INFO"}
    with running_bot(tmp_path, env=env, ai_latency=0) as bot:
        asker = user_id(1)
        bot.add_askers([asker])
        async with httpx.AsyncClient() as http:
            for n, question in enumerate(["how do I set up the VPN?", "what about the VPN on linux", "vpn token"]):
                assert await bot.ask(http, asker, question, f"1700000000.00010{n}") == 200
            await wait_until(lambda: len(bot.replies(asker)) >= 3, what="three answers")
            assert (await http.get(bot.base + "/admin")).status_code == 401
            page = await http.get(bot.base + "/admin", headers=AUTH)
            metrics = (await http.get(bot.base + "/metrics")).text
        bot.stop()
    assert page.status_code == 200, page.text
    text = " ".join(page.text.split())
    assert "3 of 4 billed AI calls used this month (75%)" in text  # the forecast itself depends on the date
    assert "kbbot_ai_quota_used_ratio 0.75" in metrics
    assert TOKEN not in bot.log.read_text()


async def test_no_token_no_dashboard(tmp_path: Path) -> None:
    with running_bot(tmp_path, ai_latency=0) as bot:
        async with httpx.AsyncClient() as http:
            assert (await http.get(bot.base + "/admin", headers=AUTH)).status_code == 404
            assert (await http.get(bot.base + "/healthz")).status_code == 200
        bot.stop()


async def test_with_ops_port_the_dashboard_is_only_on_the_internal_port(tmp_path: Path) -> None:
    import re

    with running_bot(tmp_path, env={"KBBOT_ADMIN_TOKEN": TOKEN, "OPS_PORT": "0"}, ai_latency=0) as bot:
        await wait_until(lambda: "on port" in bot.log.read_text(), what="the ops port in the log")
        found = re.search(r"ops \(/readyz, /metrics\) on port (\d+)", bot.log.read_text())
        assert found is not None
        ops = f"http://127.0.0.1:{found.group(1)}"
        async with httpx.AsyncClient() as http:
            assert (await http.get(bot.base + "/admin", headers=AUTH)).status_code == 404  # the public port
            assert (await http.get(ops + "/admin")).status_code == 401
            assert (await http.get(ops + "/admin", headers=AUTH)).status_code == 200
        bot.stop()
