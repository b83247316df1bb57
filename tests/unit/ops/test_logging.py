"""Logging: secrets never reach a log line, JSON lines are well-formed, request ids follow the work."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from kbbot.config import Settings
from kbbot.ops.logging import REDACTED, Redactor, request_context, request_id_var, setup_logging

PW_TOKEN = "pw_live_9f8e7d6c5b4a3210fedcba"
SLACK_BOT = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUv"
SLACK_APP = "xapp-1-A0123456789-1234567890123-abcdef0123456789"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
DISCORD = "MTA4OTk5OTk5OTk5OTk5OTk5OQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB"
REDIS_URL = "redis://:hunter2-redis-pass@redis.internal:6379/0"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        perfectwiki_api_token=PW_TOKEN,
        slack_bot_token=SLACK_BOT,
        slack_app_token=SLACK_APP,
        slack_signing_secret=SIGNING,
        discord_bot_token=DISCORD,
        redis_url=REDIS_URL,
    )


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)


def _emit_everything(secret_values: list[str]) -> None:
    log = logging.getLogger("kbbot.test.deep.child")
    pw, slack, app, signing, discord, redis_url = secret_values
    log.info("calling API with token %s", pw)
    log.info(f"f-string leak {slack} and {app}")
    log.warning("headers: %r", {"Authorization": f"Bearer {pw}", "X-Slack-Signature": signing})
    log.info("json body %s", json.dumps({"token": discord}))
    log.info("connecting to %s", redis_url)
    log.info("percent-encoded ?next=%s", quote(redis_url, safe=""))
    log.info("extra field", extra={"token_field": slack, "count": 3})
    log.debug("debug line with %s", discord)
    logging.getLogger("httpx").info("HTTP Request: GET https://api/x?token=%s", pw)
    try:
        raise RuntimeError(f"upstream said no to {pw} / {discord}")
    except RuntimeError:
        log.exception("request failed for %s", signing)
    try:
        try:
            raise ValueError(redis_url)
        except ValueError as inner:
            raise KeyError(app) from inner
    except KeyError:
        log.error("chained", exc_info=True)
    log.info("stack", stack_info=True)
    log.info("bad format %s %s", pw)  # too few args: must still be logged, and still redacted
    # Secrets never configured here, but shaped like credentials:
    log.info("other tokens Bearer abcdef0123456789xyz xoxp-9999-8888-ffff xoxa-2-abc123def456")
    log.info("unconfigured discord-like NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I in text")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_configured_secret_in_any_log_line(settings: Settings, fmt: str, restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging("DEBUG", fmt, settings.secrets(), stream=stream)  # type: ignore[arg-type]
    _emit_everything([PW_TOKEN, SLACK_BOT, SLACK_APP, SIGNING, DISCORD, REDIS_URL])
    output = stream.getvalue()
    assert output.count("\n") >= 14
    secrets = [*settings.secrets(), "hunter2-redis-pass", quote(REDIS_URL, safe="")]
    for line in output.splitlines():
        for secret in secrets:
            assert secret not in line, f"secret leaked in: {line[:200]}"
    for leaked in ("abcdef0123456789xyz", "xoxp-9999", "xoxa-2-abc", "Ovy4MCQywSkoMRRclStW4xAYK7I"):
        assert leaked not in output
    assert REDACTED in output
    # Non-secret text survives, so logs stay useful.
    assert "calling API with token" in output and "request failed for" in output
    assert "RuntimeError" in output and "KeyError" in output


def test_json_lines_shape_and_request_id(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", [PW_TOKEN], stream=stream)
    log = logging.getLogger("kbbot.core.ask")
    log.info("outside")
    with request_context("Ev01ABC"):
        log.info("answered %d pages", 3, extra={"platform": "slack", "latency": 0.25})
    with request_context('evil\nid"{}' + "x" * 500) as rid:
        log.info("sanitized")
    assert "\n" not in rid and len(rid) <= 64
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["message"] for r in records] == ["outside", "answered 3 pages", "sanitized"]
    first, second, third = records
    assert first["request_id"] is None
    assert second["request_id"] == "Ev01ABC"
    assert second["platform"] == "slack" and second["latency"] == 0.25
    assert second["level"] == "INFO" and second["logger"] == "kbbot.core.ask"
    assert second["time"].endswith("+00:00")
    assert third["request_id"] == rid
    assert request_id_var.get() is None


async def test_request_id_follows_tasks(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "text", [], stream=stream)
    log = logging.getLogger("kbbot.adapters")

    async def handle(event_id: str) -> None:
        with request_context(event_id):
            await asyncio.sleep(0.01)
            await asyncio.create_task(asyncio.to_thread(lambda: None))
            log.info("handled")

    await asyncio.gather(handle("EvA"), handle("EvB"))
    lines = stream.getvalue().splitlines()
    assert sorted(line.split("[")[1].split("]")[0] for line in lines) == ["EvA", "EvB"]


def test_setup_twice_does_not_duplicate_lines(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", "text", [], stream=first)
    setup_logging("INFO", "text", [], stream=second)
    logging.getLogger("kbbot").info("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1


def test_redactor_edge_cases() -> None:
    redact = Redactor(["", "abc.def+ghi", "short-secret", "short-secret-longer"])
    assert redact("x abc.def+ghi y") == f"x {REDACTED} y"
    assert "abcXdef" in redact("abcXdef+ghi")  # regex metacharacters are literal
    assert redact("short-secret-longer") == REDACTED  # longest first, no half-redacted tails
    assert redact("no secrets here, bot answered fine") == "no secrets here, bot answered fine"
    assert Redactor()("postgres://u:p4ss@db/x") == f"postgres://u:{REDACTED}@db/x"
    assert Redactor()("ünïcødé ✓ plain") == "ünïcødé ✓ plain"
