from __future__ import annotations

import pytest

from kbbot.core.replies import error_reply
from kbbot.errors import BadResponse, InvalidQuestion, RateLimited, Unauthorized, Unavailable


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (InvalidQuestion("Please type a question"), "Please type a question"),
        (Unauthorized("401 secret-token-xyz"), "API token was rejected"),
        (RateLimited("429"), "busy"),
        (Unavailable("boom"), "isn't reachable"),
        (BadResponse("junk"), "couldn't read"),
        (RuntimeError("Traceback secret-token-xyz"), "something went wrong"),
    ],
)
def test_error_reply(exc: BaseException, expected: str) -> None:
    reply = error_reply(exc)
    assert expected in reply
    assert "secret-token-xyz" not in reply
