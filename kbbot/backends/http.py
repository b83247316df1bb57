"""HTTP plumbing shared by the wiki clients (Perfect Wiki, MatHub): status → errors, JSON → models, retries.

Why one module: every backend must behave the same way on a 401, a 429 or a dead network, and every one
must keep tokens out of messages. So the messages here are built only from the service name, the HTTP status
and our own words, never from request headers, URLs with credentials or exception text.

Retry rules (:func:`send_with_retries`):

- 429 is retried for every call, idempotent or not: the server refused the request before doing anything.
  ``Retry-After`` is honoured when present (a wait longer than ``RetryPolicy.retry_after_max`` is not waited
  out: :class:`~kbbot.errors.RateLimited` is raised at once, carrying it), else exponential backoff + jitter.
- 5xx, timeouts and broken connections are retried only for idempotent calls: a POST that creates a page may
  have succeeded before the connection broke, and retrying it would create a duplicate.
- Errors where the request provably never left (connect error, connect or pool timeout) are retried for every
  call, since nothing can have happened on the server.
- 400/401/402/403/404/409 and malformed bodies are never retried: asking again gets the same answer (402 in
  particular is the monthly AI quota; retrying it only burns time).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from kbbot.core.ports import MetricsSink
from kbbot.errors import (
    BadRequest,
    BadResponse,
    Forbidden,
    KnowledgeBaseError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    TransportFailure,
    Unauthorized,
    Unavailable,
    VersionConflict,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. Backoff numbers are injectable so tests run in milliseconds."""

    #: Total attempts (first try included) when the server answers 429.
    rate_limit_attempts: int = 5
    #: Total attempts for 5xx / network errors / timeouts (idempotent calls only, see module docstring).
    error_attempts: int = 3
    #: Exponential backoff: ``backoff_base * 2**(n-1)``, plus up to ``backoff_base`` of jitter, capped.
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    #: A ``Retry-After`` longer than this is not waited out: the caller gets ``RateLimited`` at once.
    retry_after_max: float = 30.0
    #: Seeded in tests; the default draws from the module RNG.
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based)."""
        exp: float = self.backoff_base * 2.0 ** max(retry_number - 1, 0)
        jitter: float = self.rng.uniform(0.0, self.backoff_base)
        return min(self.backoff_max, exp + jitter)


# --- status → error ---------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def raise_for_status(
    response: httpx.Response,
    *,
    service: str = "the knowledgebase",
    unauthorized_hint: str | None = None,
) -> None:
    """Raise the error-tree exception for a non-2xx response; return quietly for 2xx.

    Messages name ``service`` and the status only: response bodies can echo request data and are not shown.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 400:
        raise BadRequest(f"{service} rejected the request as invalid (HTTP 400)", status=status)
    if status == 401:
        message = f"{service} rejected the API token (HTTP 401)"
        if unauthorized_hint:
            message += f"; {unauthorized_hint}"
        raise Unauthorized(message, status=status)
    if status == 402:
        raise QuotaExceeded(
            f"{service}: the AI query allowance of this plan is used up (HTTP 402)", status=status
        )
    if status == 403:
        raise Forbidden(f"{service} refused access: the token lacks a permission (HTTP 403)", status=status)
    if status == 404:
        raise NotFound(f"{service}: page not found or not visible (HTTP 404)", status=status)
    if status == 409:
        raise VersionConflict(f"{service}: the page was changed by someone else (HTTP 409)", status=status)
    if status == 429:
        raise RateLimited(
            f"{service} is rate limiting us (HTTP 429); try again shortly",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise Unavailable(f"{service} had a server error (HTTP {status})", status=status)
    raise KnowledgeBaseError(f"{service} answered with unexpected HTTP {status}", status=status)


def parse_json(response: httpx.Response, model: type[M], *, service: str = "the knowledgebase") -> M:
    """Parse a success body into ``model``; :class:`BadResponse` when it is not JSON or not that shape."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A JSON syntax error is reported by pydantic as type "json_invalid".
        if any(error.get("type") == "json_invalid" for error in exc.errors()):
            raise BadResponse(
                f"{service} sent a response that is not JSON (HTTP {response.status_code})",
                status=response.status_code,
            ) from None
        fields = sorted({".".join(str(p) for p in error.get("loc", ())) or "body" for error in exc.errors()})
        raise BadResponse(
            f"{service} sent a response of an unexpected shape (field {', '.join(fields[:3])})",
            status=response.status_code,
        ) from None


def transport_error(exc: httpx.HTTPError, *, service: str = "the knowledgebase") -> TransportFailure:
    """Translate an httpx exception. Only the exception's class name is used: its text may contain a URL."""
    kind = type(exc).__name__
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    timed_out = isinstance(exc, httpx.TimeoutException)
    message = f"{service} did not answer in time ({kind})" if timed_out else f"could not reach {service} ({kind})"
    return TransportFailure(message, request_sent=not not_sent, timed_out=timed_out)


# --- retries ----------------------------------------------------------------------------------


class _Budget:
    """Counts attempts per failure kind, so 429s and errors get separate bounds in one tenacity loop."""

    def __init__(self, policy: RetryPolicy, *, idempotent: bool, retry_timeouts: bool) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.retry_timeouts = retry_timeouts
        self.rate_limited = 0
        self.errors = 0
        self.last_wait = 0.0

    def retryable(self, exc: BaseException) -> bool:
        """tenacity's ``retry`` predicate; it runs once per failed attempt, so it also does the counting."""
        ok = self._kind_allows_retry(exc)
        if ok:
            if isinstance(exc, RateLimited):
                self.rate_limited += 1
            else:
                self.errors += 1
        return ok

    def _kind_allows_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, RateLimited):
            return True
        if isinstance(exc, TransportFailure):
            if not exc.request_sent:
                return True
            if exc.timed_out:
                return self.idempotent and self.retry_timeouts
            return self.idempotent
        if isinstance(exc, Unavailable):  # 5xx
            return self.idempotent
        return False

    def should_stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            if exc.retry_after is not None and exc.retry_after > self.policy.retry_after_max:
                return True
            return self.rate_limited >= self.policy.rate_limit_attempts
        return self.errors >= self.policy.error_attempts

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            if exc.retry_after is not None:
                self.last_wait = exc.retry_after
            else:
                self.last_wait = self.policy.backoff(self.rate_limited)
        else:
            self.last_wait = self.policy.backoff(self.errors)
        return self.last_wait


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    retry_timeouts: bool | None = None,
    service: str = "the knowledgebase",
    unauthorized_hint: str | None = None,
    what: str = "request",
    sleep: Callable[[float], Awaitable[None]] | None = None,
    metrics: MetricsSink | None = None,
) -> httpx.Response:
    """Call ``send`` (which must do the whole attempt: rate limiter, then the request) until it gives a 2xx.

    Returns the successful response; raises the error tree otherwise. ``retry_timeouts`` defaults to
    ``idempotent``; pass False for calls that are safe to repeat but expensive (a billed AI query that timed
    out probably ran). ``what`` names the call in log lines and is the ``endpoint`` label of every attempt reported
    to ``metrics`` (so it must be one of a few fixed names, never an id).
    """
    if retry_timeouts is None:
        retry_timeouts = idempotent
    budget = _Budget(policy, idempotent=idempotent, retry_timeouts=retry_timeouts)

    async def attempt() -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await send()
        except httpx.HTTPError as exc:
            failure = transport_error(exc, service=service)
            if metrics is not None:
                metrics.upstream(what, "timeout" if failure.timed_out else "error", time.perf_counter() - started)
            raise failure from None
        except KnowledgeBaseError as exc:  # a send() that maps statuses itself (MatHub) still counts its attempt
            if metrics is not None:
                metrics.upstream(what, exc.status or "error", time.perf_counter() - started)
            raise
        if metrics is not None:
            metrics.upstream(what, response.status_code, time.perf_counter() - started)
        raise_for_status(response, service=service, unauthorized_hint=unauthorized_hint)
        return response

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s %s failed (%s); retrying in %.2f s", service, what, exc, budget.last_wait)

    retrying = AsyncRetrying(
        retry=retry_if_exception(budget.retryable),
        stop=budget.should_stop,
        wait=budget.wait,
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep or asyncio.sleep,
    )
    return await retrying(attempt)
