"""The real CLI against the fake Perfect Wiki server: the `kbbot ask --json` contract, pages, check, errors.

The contract and the unauthorized one-line error run as real processes; the other commands run
``kbbot.cli.main`` in this process (kbbot_in_process), since what they test is what the command does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.perfectwiki import FakePerfectWiki
from tests.integration.cli_support import kbbot_in_process, run_kbbot


@pytest.fixture
def env(fake_pw: FakePerfectWiki, tmp_path: Path) -> dict[str, str]:
    fake_pw.seed_pages(
        [
            {
                "title": "Password Management",
                "tags": ["security"],
                "content": "<p>To reset your password, open Settings.</p>",
            },
            {"title": "VPN setup", "tags": ["it"], "content": "<p>Install WireGuard and import the profile.</p>"},
        ]
    )
    return {
        "PERFECTWIKI_API_TOKEN": fake_pw.token,
        "PERFECTWIKI_BASE_URL": fake_pw.url,
        "PERFECTWIKI_PAGE_URL_TEMPLATE": "https://wiki.example/page/{id}",
        "KBBOT_DATA_DIR": str(tmp_path / "data"),
    }


def test_ask_json_contract(env: dict[str, str], fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    result = run_kbbot("ask", "How do I reset my password?", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"answer", "related_pages", "source", "empty", "notice"}
    assert data["source"] == "ai" and data["empty"] is False and data["answer"]
    assert data["related_pages"] and set(data["related_pages"][0]) == {"id", "title", "url"}
    page = data["related_pages"][0]
    assert page["url"] == f"https://wiki.example/page/{page['id']}"
    assert fake_pw.stats().queries == 1


def test_ask_without_page_template_gives_null_urls(env: dict[str, str], tmp_path: Path) -> None:
    del env["PERFECTWIKI_PAGE_URL_TEMPLATE"]
    data = json.loads(kbbot_in_process("ask", "vpn setup", "--json", env=env, cwd=tmp_path).stdout)
    assert all(page["url"] is None for page in data["related_pages"])


def test_ask_402_answers_from_the_index(env: dict[str, str], fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    assert kbbot_in_process("index", "sync", env=env, cwd=tmp_path).returncode == 0
    fake_pw.set_ai_quota(0)
    result = kbbot_in_process("ask", "how do I install the vpn", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "search" and not data["empty"]
    assert "WireGuard" in data["answer"]
    assert data["related_pages"][0]["title"] == "VPN setup"


def test_unauthorized_is_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    env["PERFECTWIKI_API_TOKEN"] = "wrong-token-abc123"
    result = run_kbbot("ask", "anything", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout == ""
    assert "PERFECTWIKI_API_TOKEN" in result.stderr and "regenerated" in result.stderr
    assert "wrong-token-abc123" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("fast_retries")
def test_network_failure_is_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    env["PERFECTWIKI_BASE_URL"] = "http://127.0.0.1:9/api"  # discard port: nothing listens
    # In this process, for the shortened retry waits (the unauthorized test above is the real process's one line).
    result = kbbot_in_process("ask", "anything", env=env, cwd=tmp_path)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_setting_names_the_variable(env: dict[str, str], tmp_path: Path) -> None:
    env["CACHE_TTL_SECONDS"] = "forever"
    result = kbbot_in_process("ask", "x", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "CACHE_TTL_SECONDS" in result.stderr


@pytest.mark.parametrize("question", ["", "   ", "x" * 100_000])
def test_hostile_questions_rejected(
    env: dict[str, str], fake_pw: FakePerfectWiki, tmp_path: Path, question: str
) -> None:
    result = kbbot_in_process("ask", question, "--json", env=env, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("kbbot: ")
    assert fake_pw.stats().queries == 0


def test_pages_crud_round_trip(env: dict[str, str], fake_pw: FakePerfectWiki, tmp_path: Path) -> None:
    created = kbbot_in_process("pages", "create", "--title", "Runbook", "--content", "<p>step 1</p>",
                               "--tags", "ops,db", "--json", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    page_id = json.loads(created.stdout)["id"]

    got = json.loads(kbbot_in_process("pages", "get", page_id, "--json", env=env, cwd=tmp_path).stdout)
    assert got["title"] == "Runbook" and got["tags"] == ["ops", "db"] and got["content"] == "<p>step 1</p>"

    updated = kbbot_in_process("pages", "update", page_id, "--title", "Runbook v2", "--json", env=env, cwd=tmp_path)
    assert updated.returncode == 0
    assert fake_pw.page(page_id)["title"] == "Runbook v2"  # type: ignore[index]
    assert fake_pw.page(page_id)["content"] == "<p>step 1</p>"  # type: ignore[index]  # partial update

    listed = json.loads(kbbot_in_process("pages", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert page_id in {p["id"] for p in listed}

    refused = kbbot_in_process("pages", "delete", page_id, env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert kbbot_in_process("pages", "delete", page_id, "--yes", env=env, cwd=tmp_path).returncode == 0
    missing = kbbot_in_process("pages", "get", page_id, env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "not" in missing.stderr.lower()


def test_check_reports_name_and_budget(env: dict[str, str], tmp_path: Path) -> None:
    result = kbbot_in_process("check", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["knowledgebase"] == "Engineering Docs" and data["backend"] == "perfectwiki"
    assert isinstance(data["requests_left_minute"], int)
