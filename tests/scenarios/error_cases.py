"""The failures both adapters' error hooks are tested with, and how each must be logged (shared by
test_slack_errors and test_discord_errors)."""

from __future__ import annotations

from typing import Any

import pytest

from kbbot.errors import RateLimited, ShuttingDown, Unavailable


def failures(leaky: RuntimeError) -> list[Any]:
    """Expected failures (each a one-line reply) and ``leaky``, a bug carrying internals and a token."""
    return [
        pytest.param(Unavailable("the knowledgebase did not answer (HTTP 503)", status=503), id="unavailable"),
        pytest.param(RateLimited("the knowledgebase answered 429", retry_after=30), id="rate-limited"),
        pytest.param(ShuttingDown(), id="shutting-down"),
        pytest.param(leaky, id="unexpected"),
    ]


def check_logged(error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    """A bug is logged with its one traceback; an expected failure is one log line, not a traceback."""
    tracebacks = [r for r in caplog.records if r.exc_info]
    if isinstance(error, RuntimeError):
        assert len(tracebacks) == 1 and tracebacks[0].exc_info and tracebacks[0].exc_info[1] is error
    else:
        assert tracebacks == []
