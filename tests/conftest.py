"""Shared fixtures. Every test runs with a clean environment and its own data dir: no real tokens, no `.env`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefixes of every variable kbbot reads (see kbbot/config.py); cleared so a developer's shell or .env never
# leaks into a test, and so no test can reach a real API by accident.
_PREFIXES = (
    "KB_", "PERFECTWIKI_", "MATHUB_", "LOCAL_KB", "KBBOT_", "CACHE_", "QUOTA_", "QUESTION_", "REQUEST_",
    "INDEX_", "SAVE_", "PAGE_", "REDIS_", "SLACK_", "DISCORD_", "HTTP_", "LOG_",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    # Run from an empty directory so a developer's .env is never read, and data files land in tmp.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KBBOT_DATA_DIR", str(tmp_path / "data"))
    yield


# --- Perfect Wiki fake (tests/fakes/perfectwiki.py) ---------------------------------------------------------
from tests.fakes.perfectwiki import FakePerfectWiki  # noqa: E402


@pytest.fixture
def fake_pw() -> Iterator[FakePerfectWiki]:
    """A running fake Perfect Wiki API: ``fake_pw.url`` (base URL, ends in ``/api``), ``fake_pw.token``."""
    with FakePerfectWiki() as fake:
        yield fake


# --- MatHub (issue 7) ---------------------------------------------------------------------------------------
from tests.fakes.mathub import FakeMatHub  # noqa: E402  (appended section; this shared file is append-only)


@pytest.fixture
def fake_mathub() -> Iterator[FakeMatHub]:
    """A local MatHub bot API (tests/fakes/mathub.py) with one project and a read+write key: ``.url``,
    ``.api_key``, ``.project``."""
    with FakeMatHub() as server:
        yield server


# --- Logging state (appended) -------------------------------------------------------------------------------
import logging  # noqa: E402


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """CLI tests run `setup_logging`, which sets the root level (ERROR for one-shot commands), its handler and
    the levels of noisy libraries' loggers; put them back so no later test's ``caplog`` depends on the order."""
    root = logging.getLogger()
    level, handlers, factory = root.level, list(root.handlers), logging.getLogRecordFactory()
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    logging.setLogRecordFactory(factory)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))
    logging.captureWarnings(False)
