"""kbbot.backends.http: status mapping, JSON parsing and the retry policy, on scripted responses."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

import httpx
import pytest
from pydantic import BaseModel

from kbbot.backends.http import (
    RetryPolicy,
    TransportFailure,
    parse_json,
    parse_retry_after,
    raise_for_status,
    send_with_retries,
    transport_error,
)
from kbbot.errors import (
    BadRequest,
    BadResponse,
    Forbidden,
    KnowledgeBaseError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    Unavailable,
    VersionConflict,
)

SECRET = "sk-very-secret-token-123"
FAST = RetryPolicy(backoff_base=0.001, backoff_max=0.005, rng=random.Random(1))


def response(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("GET", "https://wiki.invalid/api", headers={"Authorization": f"Bearer {SECRET}"})
    return httpx.Response(status, content=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (402, QuotaExceeded),
        (403, Forbidden),
        (404, NotFound),
        (409, VersionConflict),
        (429, RateLimited),
        (500, Unavailable),
        (502, Unavailable),
        (503, Unavailable),
        (418, KnowledgeBaseError),
    ],
)
def test_status_maps_to_error_tree(status: int, error: type[Exception]) -> None:
    body = f'{{"error": "bad token {SECRET}"}}'.encode()
    with pytest.raises(error) as info:
        raise_for_status(response(status, body), service="Perfect Wiki")
    assert type(info.value) is error
    assert info.value.status == status  # type: ignore[attr-defined]
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert "Perfect Wiki" in message
    assert SECRET not in message  # the body echoed the token; it must not be shown


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_success_statuses_pass(status: int) -> None:
    raise_for_status(response(status))


def test_401_carries_hint() -> None:
    with pytest.raises(Unauthorized) as info:
        raise_for_status(response(401), unauthorized_hint="check PERFECTWIKI_API_TOKEN")
    assert str(info.value).endswith("check PERFECTWIKI_API_TOKEN")


def test_429_reads_retry_after_seconds_and_date() -> None:
    with pytest.raises(RateLimited) as info:
        raise_for_status(response(429, headers={"Retry-After": "7"}))
    assert info.value.retry_after == 7
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(RateLimited) as info:
        raise_for_status(response(429, headers={"Retry-After": later}))
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 121


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Mon, 99 Foo 2024 00:00:00"])
def test_retry_after_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after("-5") == 0
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0


class Thing(BaseModel):
    name: str
    count: int


def test_parse_json_ok_and_tolerates_extra_fields() -> None:
    thing = parse_json(response(200, b'{"name": "x", "count": 2, "new_field": [1]}'), Thing)
    assert thing == Thing(name="x", count=2)


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", b"{", b"\xff\xfe", '{"name": "\u2028'.encode()])
def test_parse_json_non_json_is_bad_response(body: bytes) -> None:
    with pytest.raises(BadResponse, match="not JSON"):
        parse_json(response(200, body), Thing, service="Perfect Wiki")


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"null",
        b'"text"',
        b'{"name": "x"}',
        b'{"name": 1, "count": 2}',
        b'{"name": "x", "count": "many"}',
    ],
)
def test_parse_json_wrong_shape_is_bad_response(body: bytes) -> None:
    with pytest.raises(BadResponse, match="unexpected shape"):
        parse_json(response(200, body), Thing)


def test_transport_errors_are_classified_without_their_text() -> None:
    request = httpx.Request("GET", f"https://user:{SECRET}@wiki.invalid/")
    cases = [
        (httpx.ConnectError(f"boom {SECRET}", request=request), False, False),
        (httpx.ConnectTimeout(f"slow {SECRET}", request=request), False, True),
        (httpx.PoolTimeout("pool", request=request), False, True),
        (httpx.ReadTimeout("read", request=request), True, True),
        (httpx.WriteTimeout("write", request=request), True, True),
        (httpx.ReadError("reset", request=request), True, False),
        (httpx.RemoteProtocolError("eof", request=request), True, False),
    ]
    for exc, sent, timed_out in cases:
        err = transport_error(exc, service="Perfect Wiki")
        assert isinstance(err, Unavailable)
        assert (err.request_sent, err.timed_out) == (sent, timed_out), type(exc)
        assert SECRET not in str(err)
        assert type(exc).__name__ in str(err)


# --- retries -----------------------------------------------------------------------------------------------


def scripted(
    *steps: int | type[httpx.HTTPError], headers: dict[str, str] | None = None
) -> tuple[Callable[[], object], list[int]]:
    """A send() that plays ``steps`` (a status, or an httpx exception class) and counts calls."""
    calls: list[int] = []

    async def send() -> httpx.Response:
        step = steps[min(len(calls), len(steps) - 1)]
        calls.append(1)
        request = httpx.Request("POST", "https://wiki.invalid/api")
        if isinstance(step, int):
            return httpx.Response(step, json={}, headers=headers, request=request)
        raise step("failed", request=request)

    return send, calls


async def run(
    send: Callable[[], object], *, idempotent: bool, policy: RetryPolicy = FAST, **kw: object
) -> int:
    result = await send_with_retries(send, policy=policy, idempotent=idempotent, **kw)  # type: ignore[arg-type]
    return result.status_code


@pytest.mark.parametrize("idempotent", [True, False])
async def test_429_retried_then_success_for_any_call(idempotent: bool) -> None:
    send, calls = scripted(429, 429, 200)
    assert await run(send, idempotent=idempotent) == 200
    assert len(calls) == 3


async def test_429_exhausted_is_rate_limited_after_bounded_attempts() -> None:
    send, calls = scripted(429)
    with pytest.raises(RateLimited):
        await run(send, idempotent=True, policy=RetryPolicy(rate_limit_attempts=4, backoff_base=0.001))
    assert len(calls) == 4


async def test_429_honours_retry_after() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    send, calls = scripted(429, 429, 200, headers={"Retry-After": "1.5"})
    assert await run(send, idempotent=False, sleep=sleep) == 200
    assert slept == [1.5, 1.5] and len(calls) == 3


async def test_429_with_huge_retry_after_is_not_waited_out() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    send, calls = scripted(429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimited) as info:
        await run(send, idempotent=True, sleep=sleep)
    assert info.value.retry_after == 3600
    assert slept == [] and len(calls) == 1


async def test_5xx_backoff_grows_and_is_capped() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(error_attempts=5, backoff_base=1.0, backoff_max=3.0, rng=random.Random(3))
    send, calls = scripted(500)
    with pytest.raises(Unavailable):
        await run(send, idempotent=True, policy=policy, sleep=sleep)
    assert len(calls) == 5
    assert len(slept) == 4
    assert 1.0 <= slept[0] <= 2.0 and 2.0 <= slept[1] <= 3.0
    assert all(s <= 3.0 for s in slept)


async def test_5xx_retried_for_idempotent_then_success() -> None:
    send, calls = scripted(500, 503, 200)
    assert await run(send, idempotent=True) == 200
    assert len(calls) == 3


async def test_5xx_exhausted_is_unavailable() -> None:
    send, calls = scripted(502)
    with pytest.raises(Unavailable) as info:
        await run(send, idempotent=True)
    assert info.value.status == 502
    assert len(calls) == FAST.error_attempts


async def test_5xx_not_retried_for_non_idempotent() -> None:
    send, calls = scripted(500, 200)
    with pytest.raises(Unavailable):
        await run(send, idempotent=False)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]
)
async def test_sent_failures_not_retried_for_non_idempotent(exc: type[httpx.HTTPError]) -> None:
    send, calls = scripted(exc, 200)
    with pytest.raises(Unavailable):
        await run(send, idempotent=False)
    assert len(calls) == 1


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_unsent_failures_retried_even_for_non_idempotent(exc: type[httpx.HTTPError]) -> None:
    send, calls = scripted(exc, 200)
    assert await run(send, idempotent=False) == 200
    assert len(calls) == 2


async def test_timeouts_retried_for_idempotent_unless_told_not_to() -> None:
    send, calls = scripted(httpx.ReadTimeout, 200)
    assert await run(send, idempotent=True) == 200
    assert len(calls) == 2
    send, calls = scripted(httpx.ReadTimeout, 200)
    with pytest.raises(TransportFailure) as info:
        await run(send, idempotent=True, retry_timeouts=False)
    assert info.value.timed_out and len(calls) == 1
    send, calls = scripted(500, 200)  # but a 5xx still is
    assert await run(send, idempotent=True, retry_timeouts=False) == 200


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409])
async def test_client_errors_never_retried(status: int) -> None:
    send, calls = scripted(status, 200)
    with pytest.raises(KnowledgeBaseError) as info:
        await run(send, idempotent=True)
    assert info.value.status == status
    assert len(calls) == 1


async def test_429_and_errors_have_separate_budgets() -> None:
    # 2 errors + 4 rate limits interleaved: within both bounds (3 error attempts, 5 rate-limit attempts).
    send, calls = scripted(500, 429, 429, 503, 429, 429, 200)
    assert await run(send, idempotent=True) == 200
    assert len(calls) == 7


async def test_retry_log_lines_name_the_service_not_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    send, _ = scripted(500, 200)
    await run(send, idempotent=True, service="Perfect Wiki", what="get page")
    assert "Perfect Wiki get page failed" in caplog.text
    assert SECRET not in caplog.text
