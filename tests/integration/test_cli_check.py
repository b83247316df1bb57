"""`kbbot check` is fast and strict: bounded on a hung wiki, placeholders named before any network call."""

from __future__ import annotations

import argparse
import io
import json
import socket
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from kbbot.commands import check
from kbbot.config import load_settings
from kbbot.core.ports import OutboxItem, OutboxPart
from kbbot.errors import Unavailable
from kbbot.runtime import open_runtime
from tests.fakes.hung import HungServer
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.cli_support import ROOT, kbbot_in_process, run_kbbot


async def test_check_on_a_hung_wiki_stops_at_its_deadline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The real deadline is check.CHECK_SECONDS (10 s; benchmarks/bench_check.py measures a whole `kbbot check`
    # process against this server); shortened here so the suite does not wait for it.
    monkeypatch.setattr(check, "CHECK_SECONDS", 0.5)
    with HungServer() as hung:
        settings = load_settings(
            _env_file=None,
            perfectwiki_api_token="pw-hung-token",
            perfectwiki_base_url=f"{hung.url}/api",
            kbbot_data_dir=tmp_path / "data",
        )
        async with open_runtime(settings) as rt:
            with pytest.raises(Unavailable) as caught:
                await check.handle(argparse.Namespace(json=False), rt)
        assert hung.accepted >= 1  # it connected and waited for an answer that never came
    message = str(caught.value)
    assert "no answer within 0.5 s" in message and "PERFECTWIKI_BASE_URL" in message
    assert "pw-hung-token" not in message


def test_placeholders_from_the_k8s_secret_are_named_before_any_request(
    fake_pw: FakePerfectWiki, tmp_path: Path
) -> None:
    secret = yaml.safe_load((ROOT / "deploy" / "k8s" / "secret.yaml").read_text())["stringData"]
    placeholders = sorted(name for name, value in secret.items() if value == "replace-me")
    assert placeholders  # the template still ships them
    env = {**dict.fromkeys(placeholders, "replace-me"), "PERFECTWIKI_BASE_URL": fake_pw.url}
    result = run_kbbot("check", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(name in lines[0] for name in placeholders), result.stderr
    assert "placeholder" in lines[0]
    assert fake_pw.stats().total_requests == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MATHUB_BASE_URL", "https://your-mathub.com/api/bot/v1"),  # .env.example's own example
        ("SLACK_BOT_TOKEN", "xoxb-your-bot-token"),
        ("DISCORD_BOT_TOKEN", "<your bot token>"),
        ("PERFECTWIKI_API_TOKEN", "changeme"),
    ],
)
def test_placeholder_values_are_flagged(tmp_path: Path, name: str, value: str) -> None:
    env = {name: value}
    if name == "MATHUB_BASE_URL":
        env.update(KB_BACKEND="mathub", MATHUB_API_KEY="bot_0123456789abcdef", MATHUB_PROJECT="eng")
    result = kbbot_in_process("check", env=env, cwd=tmp_path)  # the k8s test above runs it as a process
    assert result.returncode == 2, result.stderr
    assert name in result.stderr and value not in result.stderr  # named, never echoed (it may be a real secret)


def test_misspelled_settings_are_named(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    # PERFECTWIKI_TOKEN in .env was ignored without a word: the bot ran over the bundled sample instead.
    # A name KBBOT_CONFIG reads as an env: secret is meant, however close to a setting's name it is.
    (tmp_path / ".env").write_text("PERFECTWIKI_TOKEN=abc\nlog_level=INFO\n")
    (tmp_path / "kbbot.toml").write_text(
        f'[knowledgebases.eng]\nbackend = "perfectwiki"\napi_token = "env:PERFECTWIKI_API_TOKEN2"\n'
        f'base_url = "{fake_pw.url}"\n\n[routes]\ndefault = "eng"\n'
    )
    env = {"PERFECTWIKI_API_TOKEN2": fake_pw.token, "SLACK_BOT_TOKN": "xoxb-1"}
    report = run_kbbot("check", "--json", env=env, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["misspelled_settings"] == {
        "PERFECTWIKI_TOKEN": "PERFECTWIKI_API_TOKEN", "SLACK_BOT_TOKN": "SLACK_BOT_TOKEN",
    }
    shown = " ".join(run_kbbot("check", env=env, cwd=tmp_path).stdout.split())
    assert "! PERFECTWIKI_TOKEN is not a kbbot setting (ignored): did you mean PERFECTWIKI_API_TOKEN?" in shown
    assert "abc" not in shown and "xoxb-1" not in shown


def test_a_local_folder_without_markdown_is_named(tmp_path: Path) -> None:
    # LOCAL_KB_DIR at a folder of .txt notes: check said ✓ and every question got "I couldn't find this".
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "parking.txt").write_text("The garage code is 4711.\n")
    env = {"LOCAL_KB_DIR": str(tmp_path / "notes")}
    report = json.loads(run_kbbot("check", "--json", env=env, cwd=tmp_path).stdout)
    [warning] = report["warnings"]
    assert warning == f"LOCAL_KB_DIR {tmp_path / 'notes'} holds no .md files (the only pages kbbot reads): " + (
        "questions find nothing there"
    )
    (tmp_path / "notes" / "parking.md").write_text("# Parking\n\nThe garage code is 4711.\n")
    assert "warnings" not in json.loads(run_kbbot("check", "--json", env=env, cwd=tmp_path).stdout)


def test_an_unreachable_wiki_names_the_setting_with_its_address(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {"PERFECTWIKI_API_TOKEN": "pw-0123456789", "PERFECTWIKI_BASE_URL": f"http://127.0.0.1:{closed}/api"}
    result = run_kbbot("check", env=env, cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip().splitlines() == [
        "kbbot: could not reach Perfect Wiki (ConnectError): check PERFECTWIKI_BASE_URL and the network"
    ]


async def test_check_says_how_many_saves_wait_and_since_when(fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        perfectwiki_api_token=fake_pw.token,
        perfectwiki_base_url=fake_pw.url,
        kbbot_data_dir=tmp_path / "data",
    )
    out = io.StringIO()
    async with open_runtime(settings, console=Console(file=out, width=300, color_system=None)) as rt:
        assert await check.handle(argparse.Namespace(json=False), rt) == 0
        assert "waiting to be retried" not in out.getvalue()  # nothing queued: no line
        # Two saves the wiki did not take, the older one queued three hours ago (a restart since: still there).
        now = time.time()
        for key, queued_at in (("slack:C1:1.1", now - 3 * 3600), ("discord:42", now - 60)):
            platform, conversation = key.split(":", 1)
            item = OutboxItem(key, platform, conversation, "d" * 16, "Notes", (), (OutboxPart("Notes", "<p>x</p>"),),
                              queued_at=queued_at)
            await rt.stores.outbox.add(item, now=now)
        assert await check.handle(argparse.Namespace(json=False), rt) == 0
        printed = out.getvalue()
        out.truncate(0)
        out.seek(0)
        assert await check.handle(argparse.Namespace(json=True), rt) == 0
        report = json.loads(out.getvalue())
    assert "  ! 2 thread saves waiting to be retried (the oldest queued 3 h ago): `kbbot run` sends them" in printed
    [(name, queued)] = report["queued_saves"].items()
    assert name == "default" and queued["count"] == 2 and queued["oldest_age_seconds"] >= 3 * 3600
