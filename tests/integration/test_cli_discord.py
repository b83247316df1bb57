"""`kbbot run` and `kbbot check` with Discord configured, as an operator runs them: one line and the README's
exit code for a rejected token (3) and an unreachable Discord (4); `check` reports the token, the privileged
intents switched on in the portal and the servers the bot is in. The fake Discord runs on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.fakes.discord_api import FakeDiscord
from tests.integration.cli_support import kbbot_in_process, run_kbbot


def _env(tmp_path: Path, api_url: str, token: str, **extra: str) -> dict[str, str]:
    return {
        "DISCORD_BOT_TOKEN": token,
        "DISCORD_API_URL": api_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "INDEX_REFRESH_SECONDS": "0",
        "KBBOT_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("kbbot: ")]
    return line


def test_run_with_a_rejected_token_exits_3_with_one_line(tmp_path: Path) -> None:
    with FakeDiscord() as fake:
        done = run_kbbot("run", env=_env(tmp_path, fake.api_url, "not-the-token"), cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "DISCORD_BOT_TOKEN was rejected" in _error_line(done.stderr)
    assert "not-the-token" not in done.stderr


def test_run_with_discord_unreachable_exits_4_with_one_line(tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{_closed_port()}/api/v10"
    done = run_kbbot("run", env=_env(tmp_path, api, "some-token"), cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    assert "could not reach Discord" in _error_line(done.stderr)


def test_run_requiring_message_content_that_is_off_exits_2_naming_the_switch(tmp_path: Path) -> None:
    with FakeDiscord() as fake:
        fake.privileged_intents = 0
        env = _env(tmp_path, fake.api_url, fake.token, DISCORD_REQUIRE_MESSAGE_CONTENT="true")
        done = run_kbbot("run", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Privileged Gateway Intents → MESSAGE CONTENT INTENT" in _error_line(done.stderr)


def test_check_reports_token_intents_and_servers(tmp_path: Path) -> None:
    with FakeDiscord() as fake:
        acme = fake.add_guild(name="Acme")
        other = fake.add_guild(name="Strangers")
        env = _env(tmp_path, fake.api_url, fake.token, DISCORD_ALLOWED_GUILDS=acme["id"])
        report = run_kbbot("check", "--json", env=env, cwd=tmp_path)
        # The same command twice more, in this process: what it reports is tested, not the process again.
        fake.privileged_intents = 0
        text = kbbot_in_process("check", env=env, cwd=tmp_path)
        rejected = kbbot_in_process("check", env=_env(tmp_path, fake.api_url, "wrong"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    status = json.loads(report.stdout)["discord"]
    assert status["bot"] == "kbbot" and status["public"] is True
    assert status["intents"] == {"message_content": True, "server_members": True, "presence": False}
    assert status["guilds"] == [[int(acme["id"]), "Acme"], [int(other["id"]), "Strangers"]]
    assert status["outside_allowlist"] == [[int(other["id"]), "Strangers"]]
    assert text.returncode == 0, text.stderr
    assert "privileged intents on: none" in text.stdout
    assert "MESSAGE CONTENT INTENT" in text.stdout and "Strangers" in text.stdout
    assert rejected.returncode == 3 and "DISCORD_BOT_TOKEN was rejected" in _error_line(rejected.stderr)
