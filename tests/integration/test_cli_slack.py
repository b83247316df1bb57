"""`kbbot run` and `kbbot check` with Slack configured, as an operator runs them (subprocess, fake Slack on
127.0.0.1): a rejected token is one line naming it and exit 3; an unreachable Slack is retried with backoff while
/healthz answers and /readyz says why; SIGTERM ends the process at any moment, also mid-connect."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.integration.cli_support import ROOT, kbbot_in_process, run_kbbot


def _env(tmp_path: Path, api_url: str, **slack: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": api_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "INDEX_REFRESH_SECONDS": "0",
        "KBBOT_DATA_DIR": str(tmp_path / "data"),
        **slack,
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("kbbot: ")]
    return line


def test_run_with_a_rejected_app_token_exits_3_naming_it(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        revoked = run_kbbot("run", env=_env(tmp_path, fake.api_url, SLACK_APP_TOKEN="xapp-1-revoked-0"), cwd=tmp_path)
        # The bot token where the app token belongs: Slack says not_allowed_token_type.
        swapped = run_kbbot("run", env=_env(tmp_path, fake.api_url, SLACK_APP_TOKEN=BOT_TOKEN), cwd=tmp_path)
    assert revoked.returncode == 3, revoked.stderr
    assert "SLACK_APP_TOKEN was rejected by Slack (invalid_auth)" in _error_line(revoked.stderr)
    assert swapped.returncode == 3, swapped.stderr
    assert "SLACK_APP_TOKEN was rejected by Slack (not_allowed_token_type)" in _error_line(swapped.stderr)
    for done in (revoked, swapped):
        assert "xapp-1-revoked-0" not in done.stderr and BOT_TOKEN not in done.stderr


def test_run_with_a_rejected_bot_token_exits_3_naming_it(tmp_path: Path) -> None:
    with FakeSlack(bot_token="xoxb-the-real-one") as fake:
        done = run_kbbot("run", env=_env(tmp_path, fake.api_url, SLACK_SIGNING_SECRET=SIGNING_SECRET), cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "SLACK_BOT_TOKEN was rejected by Slack (invalid_auth)" in _error_line(done.stderr)


def test_run_while_slack_is_unreachable_retries_serves_healthz_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(ROOT),
        **_env(tmp_path, f"http://127.0.0.1:{_closed_port()}/api/", SLACK_APP_TOKEN=APP_TOKEN),
    }
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kbbot", "run"], cwd=tmp_path, env=env, stderr=log)
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
        # The first attempt's line: auth.test failed after slack_sdk's own retries, the next attempt is due in a
        # second or two (backing off from one attempt to the next is test_slack_connection's, on injected sleeps).
        while "cannot reach Slack" not in log_path.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.05)
        found = re.search(r"HTTP on 127\.0\.0\.1:(\d+)", log_path.read_text())
        assert found is not None, log_path.read_text()[-2000:]
        base = f"http://127.0.0.1:{found.group(1)}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert "cannot reach Slack" in ready.json()["checks"]["slack"]
        proc.send_signal(signal.SIGTERM)  # mid-backoff
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert "Traceback" not in output
    attempts = [line for line in output.splitlines() if "cannot reach Slack" in line]
    assert re.search(r"attempt 1, next in \d+ s", attempts[0])
    # Within that attempt auth.test was retried twice on the connection errors (kbbot's idempotent-call retries).
    first_attempt = output[: output.index("cannot reach Slack")]
    assert "auth.test failed (ClientConnectorError); retrying (1 of 2)" in first_attempt, first_attempt
    assert "auth.test failed (ClientConnectorError); retrying (2 of 2)" in first_attempt, first_attempt
    assert APP_TOKEN not in output and BOT_TOKEN not in output


def test_check_validates_both_tokens_and_names_the_mode(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        socket_mode = run_kbbot("check", "--json", env=_env(tmp_path, fake.api_url, SLACK_APP_TOKEN=APP_TOKEN),
                                cwd=tmp_path)
        # The same command three more times, in this process: what it reports is tested, not the process again.
        http_text = kbbot_in_process(
            "check", env=_env(tmp_path, fake.api_url, SLACK_SIGNING_SECRET=SIGNING_SECRET), cwd=tmp_path
        )
        rejected = kbbot_in_process(
            "check", env=_env(tmp_path, fake.api_url, SLACK_APP_TOKEN="xapp-1-nope"), cwd=tmp_path
        )
        neither = kbbot_in_process("check", env=_env(tmp_path, fake.api_url), cwd=tmp_path)
        opened = len(fake.calls("apps.connections.open"))
    assert socket_mode.returncode == 0, socket_mode.stderr
    report = json.loads(socket_mode.stdout)["slack"]
    assert report["mode"] == "socket" and report["bot"] == "kbbot" and report["team"] == "Acme"
    assert http_text.returncode == 0, http_text.stderr
    assert "kbbot run will use: HTTP mode" in http_text.stdout
    assert rejected.returncode == 3 and "SLACK_APP_TOKEN was rejected" in _error_line(rejected.stderr)
    assert neither.returncode == 2 and "SLACK_SIGNING_SECRET" in _error_line(neither.stderr)
    assert opened == 2  # the app token is checked only when set


def test_ops_port_serves_readyz_and_metrics_apart_from_the_public_port(tmp_path: Path) -> None:
    ops_port = _closed_port()
    with FakeSlack() as fake:
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "PYTHONPATH": str(ROOT),
            **_env(tmp_path, fake.api_url, SLACK_SIGNING_SECRET=SIGNING_SECRET, OPS_PORT=str(ops_port)),
        }
        log_path = tmp_path / "run.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "kbbot", "run"], cwd=tmp_path, env=env, stderr=log)
        try:
            deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
            found = None
            while found is None and proc.poll() is None:
                assert time.monotonic() < deadline, log_path.read_text()[-2000:]
                found = re.search(r"HTTP on 127\.0\.0\.1:(\d+); ops \(/readyz, /metrics\) on port (\d+)",
                                  log_path.read_text())
                time.sleep(0.05)
            assert found is not None and int(found.group(2)) == ops_port, log_path.read_text()[-2000:]
            public, ops = f"http://127.0.0.1:{found.group(1)}", f"http://127.0.0.1:{ops_port}"
            assert httpx.get(f"{public}/healthz").status_code == 200
            assert httpx.get(f"{public}/readyz").status_code == 404
            assert httpx.get(f"{public}/metrics").status_code == 404
            assert httpx.get(f"{ops}/readyz").status_code in (200, 503)
            assert "kbbot_questions_total" in httpx.get(f"{ops}/metrics").text
            assert httpx.post(f"{ops}/slack/events", content="{}").status_code == 404  # Slack only on the public one
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log_path.read_text()
    assert "Traceback" not in output
    assert " WARNING " not in output and " ERROR " not in output, output  # a clean start says nothing alarming
