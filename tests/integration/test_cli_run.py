"""`kbbot run` itself, as an operator starts it: Slack in HTTP mode against the fake Slack Web API, the
ops endpoints on the same port, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes.perfectwiki import FakePerfectWiki
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.integration.cli_support import ROOT


def test_run_serves_slack_and_ops_then_stops_on_sigterm(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    with FakeSlack() as fake_slack:
        _run_and_stop(fake_pw, fake_slack, tmp_path)


def _run_and_stop(fake_pw: FakePerfectWiki, fake_slack: FakeSlack, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PERFECTWIKI_API_TOKEN": fake_pw.token,
        "PERFECTWIKI_BASE_URL": fake_pw.url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "INDEX_REFRESH_SECONDS": "0",
        "KBBOT_DATA_DIR": str(tmp_path / "data"),
    }
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kbbot", "run"], cwd=tmp_path, env=env, stderr=log)
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"HTTP on 127\.0\.0\.1:(\d+)", log_path.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.05)
        assert port is not None, log_path.read_text()[-2000:]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        while ready.status_code != 200 and "connecting to Slack" in ready.text and time.monotonic() < deadline:
            time.sleep(0.05)  # the start-up auth.test runs in the background
            ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["slack"] == "ok"
        assert "kbbot_questions_total" in httpx.get(f"{base}/metrics").text
        unsigned = httpx.post(f"{base}/slack/events", json={"type": "url_verification", "challenge": "x"})
        assert unsigned.status_code == 401  # no valid signature, no entry
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert "Traceback" not in output
    for secret in (fake_pw.token, BOT_TOKEN, SIGNING_SECRET):
        assert secret not in output
