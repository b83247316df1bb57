"""Honest fallbacks through the real CLI: a wiki that cannot be searched is said as such (``notice`` in
``kbbot ask --json``, a warning in the log), never "I couldn't find anything"; after a 402 on a fresh install
the fallback still finds pages by their titles and tags."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.fakes.mathub import FakeMatHub
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.cli_support import kbbot_in_process, run_kbbot


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_402_on_a_fresh_install_still_finds_pages_by_title(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    fake_pw.seed_pages(
        [
            {"title": "Password Management", "tags": ["security"], "content": "<p>Open Settings → Reset.</p>"},
            {"title": "VPN setup", "tags": ["it", "network"], "content": "<p>Install WireGuard.</p>"},
        ]
    )
    fake_pw.set_ai_quota(0)  # every AI query answers 402
    env = {"PERFECTWIKI_API_TOKEN": fake_pw.token, "PERFECTWIKI_BASE_URL": fake_pw.url,
           "KBBOT_DATA_DIR": str(tmp_path / "data")}
    result = run_kbbot("ask", "how do I set up the vpn?", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "search" and not data["empty"]
    assert data["related_pages"][0]["title"] == "VPN setup"  # found by title, before any sync
    assert "AI answers are paused" in data["notice"] and "only look at page titles" in data["notice"]
    assert "couldn't find anything" not in data["answer"]
    # Tags count too, and the titles are kept for the next question without listing again.
    again = json.loads(kbbot_in_process("ask", "network", "--json", env=env, cwd=tmp_path).stdout)
    assert again["related_pages"][0]["title"] == "VPN setup"


@pytest.mark.usefixtures("fast_retries")  # in this process, so MatHub's retries wait a hundredth as long
def test_unreachable_mathub_never_synced_says_so(tmp_path: Path) -> None:
    env = {"KB_BACKEND": "mathub", "MATHUB_API_KEY": "bot_0123456789abcdef", "MATHUB_PROJECT": "eng",
           "MATHUB_BASE_URL": f"http://127.0.0.1:{_closed_port()}/api/bot/v1", "KBBOT_DATA_DIR": str(tmp_path / "d"),
           "REQUEST_TIMEOUT_SECONDS": "5"}
    result = kbbot_in_process("ask", "what is a spectral sequence?", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["empty"] is True and data["related_pages"] == []
    assert "MatHub isn't reachable right now" in data["notice"]
    assert "couldn't find anything" not in data["answer"]
    # (The warning in the log: tests/unit/test_search_fallback.py; one-shot commands log errors only.)


def test_synced_mathub_answers_as_before_with_a_null_notice(fake_mathub: FakeMatHub, tmp_path: Path) -> None:
    fake_mathub.add_page("Spectral sequences", "A spectral sequence is a tool for computing homology.")
    env = {"KB_BACKEND": "mathub", "MATHUB_API_KEY": fake_mathub.api_key, "MATHUB_PROJECT": fake_mathub.project,
           "MATHUB_BASE_URL": fake_mathub.url, "KBBOT_DATA_DIR": str(tmp_path / "d")}
    assert kbbot_in_process("index", "sync", env=env, cwd=tmp_path).returncode == 0
    data = json.loads(run_kbbot("ask", "what is a spectral sequence?", "--json", env=env, cwd=tmp_path).stdout)
    assert data["notice"] is None and data["related_pages"][0]["title"] == "Spectral sequences"


@pytest.mark.usefixtures("fast_retries")  # in this process, so MatHub's retries wait a hundredth as long
def test_synced_mathub_that_is_down_now_says_the_answer_is_from_the_index(tmp_path: Path) -> None:
    server = FakeMatHub().start()
    server.add_page("Spectral sequences", "A spectral sequence is a tool for computing homology.")
    env = {"KB_BACKEND": "mathub", "MATHUB_API_KEY": server.api_key, "MATHUB_PROJECT": server.project,
           "MATHUB_BASE_URL": server.url, "KBBOT_DATA_DIR": str(tmp_path / "d"), "REQUEST_TIMEOUT_SECONDS": "5"}
    try:
        assert kbbot_in_process("index", "sync", env=env, cwd=tmp_path).returncode == 0
    finally:
        server.stop()  # the wiki goes down after the sync
    result = kbbot_in_process("ask", "what is a spectral sequence?", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["related_pages"][0]["title"] == "Spectral sequences" and not data["empty"]  # the index answers
    assert data["notice"].startswith("MatHub isn't reachable right now: this answer comes from its pages, as "
                                     "indexed 1 min ago (")
    assert data["notice"].endswith(" UTC).")
    plain = kbbot_in_process("ask", "what is a spectral sequence?", env=env, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    shown = " ".join(plain.stdout.split())  # however the terminal width wrapped it
    assert shown.startswith(data["notice"]) and "computing homology" in shown
