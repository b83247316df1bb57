"""Fixtures for the integration tests (real clients against the fake servers in tests/fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A real httpx client for a backend under test (closed after the test)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client
