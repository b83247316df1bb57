"""Fixtures for the integration tests (real clients against the fake servers in tests/fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kbbot.backends.http import RetryPolicy


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A real httpx client for a backend under test (closed after the test)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wiki client's retry waits a hundredth as long (same attempts, same exponential shape), for tests
    of what happens after the retries, run in this process (kbbot_in_process): a dead wiki costs a command
    ~2 s of real backoff otherwise. The waits themselves are tests/unit/test_http_errors.py's."""
    backoff = RetryPolicy.backoff
    monkeypatch.setattr(RetryPolicy, "backoff", lambda policy, retry: backoff(policy, retry) / 100)
