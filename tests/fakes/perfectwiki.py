"""A fake Perfect Wiki Public API: a real aiohttp server on 127.0.0.1 in a background thread.

It implements the whole API text (../shared/api/perfectwiki-public-api.txt): Bearer tokens (several, and
``regenerate``), the common ``knowledgebase``/``rateLimit`` fields, per-token sliding-window rate limits
counted at request arrival (429), the AI query allowance (402), page CRUD with the documented shapes and a
deterministic "AI" that answers from the stored pages by shared words.

Control and inspection methods are thread-safe, so the fake works from sync tests, async tests and CLI
subprocesses alike (they only need ``fake.url`` and ``fake.token``)::

    with FakePerfectWiki() as fake:
        fake.seed_pages([{"title": "VPN", "content": "<p>Use WireGuard</p>"}])
        fake.fail_next(2)                   # the next two requests get HTTP 500
        ... client at fake.url with fake.token ...
        assert fake.stats().queries == 1

``fake.url`` is ``http://127.0.0.1:PORT/api`` so clients append ``/public-api/v1/...`` as they do to the real
base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

from tests.fakes.background import BackgroundServer

DEFAULT_TOKEN = "pw-test-token-5f1c9a"
API_PREFIX = "/api/public-api/v1"
Endpoint = Literal["list", "get", "create", "update", "delete", "query"]
MalformedMode = Literal["non_json", "wrong_shape", "empty"]

_WORD = re.compile(r"\w+", re.UNICODE)
_TAG = re.compile(r"<[^>]+>")
_STOPWORDS = frozenset(
    re.findall(r"\w+", "a an and are as at be by can do does for from how in is it my of on or the to what")
)


@dataclass(frozen=True, slots=True)
class LogEntry:
    #: Wall-clock time of the response.
    time: float
    method: str
    path: str
    status: int
    endpoint: str
    #: ``time.monotonic()`` when the request arrived (what the rate windows count).
    arrived: float = 0.0
    #: An AI query's ``q`` as sent, whatever the answer (a 500 or 429 attempt too); None for other endpoints.
    q: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the counters (copy; safe to keep)."""

    total_requests: int
    queries: int
    billed_queries: int
    per_endpoint: Mapping[str, int]
    rate_limited: int
    quota_exceeded: int
    server_errors: int
    log: tuple[LogEntry, ...]

    def statuses(self, endpoint: str | None = None) -> list[int]:
        return [e.status for e in self.log if endpoint is None or e.endpoint == endpoint]


@dataclass
class _Rule:
    """A switch that applies to the next ``remaining`` requests (None = until cleared) of ``endpoint``."""

    endpoint: str | None
    remaining: int | None
    value: Any = None

    def take(self, endpoint: str) -> bool:
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass
class _State:
    kb_name: str
    tokens: set[str]
    per_second: int = 10
    per_minute: int = 60
    second_window: float = 1.0
    minute_window: float = 60.0
    retry_after: float | None = None
    ai_quota: int | None = None
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: dict[str, tuple[deque[float], deque[float]]] = field(default_factory=dict)
    latency: dict[str | None, float] = field(default_factory=dict)
    failures: list[_Rule] = field(default_factory=list)
    failure_rate: float = 0.0
    failure_rate_status: int = 500
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    stalls: list[_Rule] = field(default_factory=list)
    malformed: list[_Rule] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    total: int = 0
    queries: int = 0
    #: The ``q`` of every AI query received, in order.
    asked: list[str] = field(default_factory=list)
    #: :meth:`FakePerfectWiki.ai_cannot_answer`: questions holding one of these get ``isEmptyResult``.
    unanswerable: list[str] = field(default_factory=list)
    billed: int = 0
    rate_limited: int = 0
    quota_exceeded: int = 0
    server_errors: int = 0
    log: list[LogEntry] = field(default_factory=list)


_ids = itertools.count(1)


def _new_id() -> str:
    return f"pg{next(_ids):05d}"


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOPWORDS}


def _plain(html_text: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", html_text)).split())


class FakePerfectWiki:
    """The fake server. Start with ``with`` (or :meth:`start`/:meth:`stop`)."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        extra_tokens: Iterable[str] = (),
        kb_name: str = "Engineering Docs",
        per_second: int = 10,
        per_minute: int = 60,
        second_window: float = 1.0,
        minute_window: float = 60.0,
        ai_quota: int | None = None,
        retry_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` times arrivals for the rate-limit windows (a test's simulated clock moves them on)."""
        self.token = token
        self._clock = clock
        self._lock = threading.Lock()
        #: Requests being handled (a client that gave up does not end them); :meth:`idle` waits for none.
        self._busy = threading.Condition()
        self._in_flight = 0
        self._s = _State(kb_name=kb_name, tokens={token, *extra_tokens})
        self.set_rate_limits(per_second, per_minute, second_window=second_window, minute_window=minute_window)
        self._s.ai_quota = ai_quota
        self._s.retry_after = retry_after
        self._closing: asyncio.Event | None = None
        #: :meth:`hold`: the held endpoint ("*": all), the event that releases it, and how many requests wait.
        self._hold: str | None = None
        self._released: asyncio.Event | None = None
        self._held = 0
        self._server = BackgroundServer(self._build_app, name="fake-perfectwiki", on_shutdown=self._wake_sleepers)

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> FakePerfectWiki:
        self._server.start()
        return self

    def _build_app(self) -> web.Application:
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._route)
        return app

    async def _wake_sleepers(self) -> None:
        """Stalled and slow responses end at once on stop, so shutdown never waits for them."""
        assert self._closing is not None
        self._closing.set()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakePerfectWiki:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control (thread-safe) --------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        with self._lock:
            self._s.tokens.add(token)

    def regenerate(self, token: str | None = None) -> str:
        """Invalidate ``token`` (default: the main one); return its replacement, as the admin panel does."""
        old = token or self.token
        new = f"pw-regenerated-{random.getrandbits(48):012x}"
        with self._lock:
            self._s.tokens.discard(old)
            self._s.tokens.add(new)
            self._s.windows.pop(old, None)
        if old == self.token:
            self.token = new
        return new

    def set_rate_limits(
        self,
        per_second: int,
        per_minute: int,
        *,
        second_window: float = 1.0,
        minute_window: float = 60.0,
        retry_after: float | None = None,
    ) -> None:
        """Per-token sliding windows. ``retry_after`` adds a ``Retry-After`` header to 429s (the real API's
        documentation does not promise one, so by default there is none)."""
        with self._lock:
            self._s.per_second, self._s.per_minute = per_second, per_minute
            self._s.second_window, self._s.minute_window = second_window, minute_window
            self._s.retry_after = retry_after
            self._s.windows.clear()

    def set_ai_quota(self, quota: int | None) -> None:
        """How many AI queries may be billed in total; past it, 402. None = unlimited."""
        with self._lock:
            self._s.ai_quota = quota

    def ai_cannot_answer(self, *phrases: str) -> None:
        """The AI finds nothing (``isEmptyResult: true``) for questions holding any of ``phrases`` (any case),
        even when they share words with pages: as the real AI does for what its pages touch but do not say."""
        with self._lock:
            self._s.unanswerable.extend(p.lower() for p in phrases)

    def set_latency(self, seconds: float, endpoint: Endpoint | None = None) -> None:
        """Delay every response (of ``endpoint``, or of all) by ``seconds``; 0 clears it."""
        with self._lock:
            self._s.latency[endpoint] = seconds

    def hold(self, endpoint: Endpoint | None = None) -> None:
        """Responses (of ``endpoint``, or of all) wait until :meth:`release`, after the request has arrived and
        been counted: a wiki exactly as slow as the test needs, with no clock (see :meth:`held`)."""
        with self._lock:
            self._hold = endpoint or "*"
            self._released = asyncio.Event()

    def release(self) -> None:
        """End :meth:`hold`: the waiting responses are sent, later requests are not held."""
        with self._lock:
            released, self._hold, self._released = self._released, None, None
        if released is not None:
            self._server.loop.call_soon_threadsafe(released.set)

    async def held(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``count`` requests are waiting in :meth:`hold`."""

        def wait() -> bool:
            with self._busy:
                return self._busy.wait_for(lambda: self._held >= count, timeout)

        if not await asyncio.to_thread(wait):
            raise AssertionError(f"{self._held} requests held after {timeout} s, wanted {count}")

    async def _wait_if_held(self, endpoint: str) -> None:
        with self._lock:
            released = self._released if self._hold in ("*", endpoint) else None
        if released is None:
            return
        assert self._closing is not None
        with self._busy:
            self._held += 1
            self._busy.notify_all()
        try:
            closing = asyncio.ensure_future(self._closing.wait())
            opened = asyncio.ensure_future(released.wait())
            await asyncio.wait({closing, opened}, return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            opened.cancel()
        finally:
            with self._busy:
                self._held -= 1

    def fail_next(self, count: int = 1, *, status: int = 500, endpoint: Endpoint | None = None) -> None:
        """The next ``count`` authenticated requests (of ``endpoint``) get ``status`` (500, 503, 429 …)."""
        with self._lock:
            self._s.failures.append(_Rule(endpoint, count, status))

    def set_failure_rate(self, fraction: float, *, seed: int = 0, status: int = 500) -> None:
        """Fail a seeded-random ``fraction`` of authenticated requests with ``status``."""
        with self._lock:
            self._s.failure_rate = fraction
            self._s.failure_rate_status = status
            self._s.rng = random.Random(seed)

    def stall(self, seconds: float, *, count: int | None = 1, endpoint: Endpoint | None = None) -> None:
        """Sleep ``seconds`` before answering the next ``count`` requests (None: all, until cleared)."""
        with self._lock:
            self._s.stalls.append(_Rule(endpoint, count, seconds))

    def set_malformed(
        self, mode: MalformedMode | None, *, count: int | None = None, endpoint: Endpoint | None = None
    ) -> None:
        """Successful responses get a broken body: ``non_json`` (an HTML error page with status 200),
        ``wrong_shape`` (JSON with the documented fields of the wrong type) or ``empty``. None clears."""
        with self._lock:
            if mode is None:
                self._s.malformed.clear()
            else:
                self._s.malformed.append(_Rule(endpoint, count, mode))

    def clear_faults(self) -> None:
        with self._lock:
            self._s.failures.clear()
            self._s.stalls.clear()
            self._s.malformed.clear()
            self._s.latency.clear()
            self._s.failure_rate = 0.0

    def consume(self, count: int, token: str | None = None, *, ago: float = 0.0) -> None:
        """Count ``count`` requests that arrived ``ago`` seconds ago against the token's windows, as another
        integration sharing the token would."""
        when = self._clock() - ago
        with self._lock:
            sec, minute = self._windows(token or self.token)
            for _ in range(count):
                sec.append(when)
                minute.append(when)

    def seed_pages(self, pages: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add pages (``title``, optional ``content`` HTML, ``tags``, ``id``); returns their ids."""
        ids = []
        with self._lock:
            for page in pages:
                page_id = str(page.get("id") or _new_id())
                self._s.pages[page_id] = {
                    "id": page_id,
                    "title": str(page["title"]),
                    "content": str(page.get("content", "")),
                    "tags": [str(t) for t in page.get("tags", [])],
                }
                ids.append(page_id)
        return ids

    def page(self, page_id: str) -> dict[str, Any] | None:
        with self._lock:
            page = self._s.pages.get(page_id)
            return None if page is None else {**page, "tags": list(page["tags"])}

    def pages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**p, "tags": list(p["tags"])} for p in self._s.pages.values()]

    def asked(self) -> list[str]:
        """The ``q`` of every AI query received so far, in order (what kbbot sent upstream)."""
        with self._lock:
            return list(self._s.asked)

    def stats(self) -> Stats:
        with self._lock:
            s = self._s
            return Stats(
                total_requests=s.total,
                queries=s.queries,
                billed_queries=s.billed,
                per_endpoint=dict(s.counts),
                rate_limited=s.rate_limited,
                quota_exceeded=s.quota_exceeded,
                server_errors=s.server_errors,
                log=tuple(s.log),
            )

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every request that has arrived has been handled and counted, including the ones whose
        client gave up during a stall: "the server did it once" is then a fact, not a hope after a sleep."""

        def wait() -> bool:
            with self._busy:
                return self._busy.wait_for(lambda: self._in_flight == 0, timeout)

        if not await asyncio.to_thread(wait):
            raise AssertionError(f"{self._in_flight} requests still being handled after {timeout} s")

    def reset_stats(self) -> None:
        with self._lock:
            s = self._s
            s.counts.clear()
            s.total = s.queries = s.billed = s.rate_limited = s.quota_exceeded = s.server_errors = 0
            s.log.clear()
            s.asked.clear()

    # --- the server -------------------------------------------------------------------------------

    def _windows(self, token: str) -> tuple[deque[float], deque[float]]:
        return self._s.windows.setdefault(token, (deque(), deque()))

    @staticmethod
    def _endpoint(method: str, path: str) -> str:
        if not path.startswith(API_PREFIX + "/"):
            return "unknown"
        rest = path[len(API_PREFIX) :]
        if rest == "/knowledgebase":
            return "list" if method == "GET" else "unknown"
        if rest == "/knowledgebase/query":
            return "query" if method == "POST" else "unknown"
        if rest == "/page":
            return "create" if method == "POST" else "unknown"
        if rest.startswith("/page/") and "/" not in rest[len("/page/") :]:
            return {"GET": "get", "POST": "update", "DELETE": "delete"}.get(method, "unknown")
        return "unknown"

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        arrived = self._clock()
        endpoint = self._endpoint(request.method, request.rel_url.raw_path)
        with self._busy:
            self._in_flight += 1
        try:
            return await self._counted(request, endpoint, arrived)
        finally:
            with self._busy:
                self._in_flight -= 1
                self._busy.notify_all()

    async def _counted(self, request: web.Request, endpoint: str, arrived: float) -> web.StreamResponse:
        response = await self._handle(request, endpoint, arrived)
        q = _query_text(await request.read()) if endpoint == "query" else None  # aiohttp keeps the body read
        with self._lock:
            s = self._s
            s.total += 1
            s.counts[endpoint] += 1
            if response.status == 429:
                s.rate_limited += 1
            elif response.status == 402:
                s.quota_exceeded += 1
            elif response.status >= 500:
                s.server_errors += 1
            s.log.append(
                LogEntry(time.time(), request.method, request.path, response.status, endpoint, arrived, q)
            )
        return response

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _handle(self, request: web.Request, endpoint: str, arrived: float) -> web.Response:
        with self._lock:
            stall = next((r.value for r in self._s.stalls if r.take(endpoint)), 0.0)
            latency = self._s.latency.get(endpoint, self._s.latency.get(None, 0.0))
        # The whole request (body included) has arrived; a client that gives up during the stall below does
        # not undo it, exactly as with a real server. Rate limits are counted now, at arrival.
        body = await request.read()
        token = _bearer(request.headers.get("Authorization"))
        with self._lock:
            known = token in self._s.tokens
            limited = known and self._rate_limited(token, arrived)
            rate = self._left(token) if known else None
        await self._sleep(stall + latency)
        await self._wait_if_held(endpoint)
        if not known:
            return _error(401, "Unauthorized: missing or invalid API token")
        if limited:
            headers = {}
            if self._s.retry_after is not None:
                headers["Retry-After"] = f"{self._s.retry_after:g}"
            return _error(429, "Too Many Requests: rate limit exceeded", headers=headers)
        with self._lock:
            status = next((r.value for r in self._s.failures if r.take(endpoint)), None)
            if status is None and self._s.failure_rate and self._s.rng.random() < self._s.failure_rate:
                status = self._s.failure_rate_status
        if status is not None:
            return _error(int(status), "Injected failure")
        if endpoint == "unknown":
            return _error(404, "Not Found")
        assert token is not None and rate is not None
        try:
            status, payload = self._dispatch(endpoint, request.rel_url.raw_path, body)
        except _HttpError as exc:
            return _error(exc.status, exc.message)
        with self._lock:
            mode = next((r.value for r in self._s.malformed if r.take(endpoint)), None)
        common = {"knowledgebase": {"name": self._s.kb_name}, "rateLimit": rate}
        if mode == "non_json":
            return web.Response(
                status=200, text="<html><body>Bad gateway</body></html>", content_type="text/html"
            )
        if mode == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if mode == "wrong_shape":
            wrong = {"pages": "nope", "page": ["nope"], "aiBotResponse": 42}
            return web.json_response({**common, **wrong}, status=200)
        return web.json_response(
            {"knowledgebase": common["knowledgebase"], **payload, "rateLimit": rate}, status=status
        )

    def _rate_limited(self, token: str, now: float) -> bool:
        s = self._s
        sec, minute = self._windows(token)
        while sec and sec[0] <= now - s.second_window:
            sec.popleft()
        while minute and minute[0] <= now - s.minute_window:
            minute.popleft()
        if len(sec) >= s.per_second or len(minute) >= s.per_minute:
            return True
        sec.append(now)
        minute.append(now)
        return False

    def _left(self, token: str) -> dict[str, int]:
        sec, minute = self._windows(token)
        return {
            "requestsLeftSecond": max(0, self._s.per_second - len(sec)),
            "requestsLeftMinute": max(0, self._s.per_minute - len(minute)),
        }

    def _dispatch(self, endpoint: str, raw_path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        page_id = unquote(raw_path.rsplit("/", 1)[-1]) if endpoint in ("get", "update", "delete") else ""
        if endpoint == "list":
            with self._lock:
                pages = [
                    {"id": p["id"], "title": p["title"], "tags": list(p["tags"])}
                    for p in self._s.pages.values()
                ]
            return 200, {"pages": pages}
        if endpoint == "get":
            with self._lock:
                page = self._s.pages.get(page_id)
                if page is None:
                    raise _HttpError(404, "Page not found")
                return 200, {"page": {**page, "tags": list(page["tags"])}}
        if endpoint == "delete":
            with self._lock:
                if self._s.pages.pop(page_id, None) is None:
                    raise _HttpError(404, "Page not found")
            return 200, {"message": "acknowledged"}
        data = _json_object(body)
        if endpoint == "create":
            title = data.get("title")
            if not isinstance(title, str) or not title.strip():
                raise _HttpError(400, "title is required")
            content = _optional_str(data, "content")
            tags = _optional_tags(data)
            new_id = _new_id()
            with self._lock:
                self._s.pages[new_id] = {
                    "id": new_id,
                    "title": title,
                    "content": content or "",
                    "tags": tags or [],
                }
            return 200, {"message": "acknowledged", "page": {"id": new_id}}
        if endpoint == "update":
            fields: dict[str, Any] = {}
            if "title" in data:
                title = data["title"]
                if not isinstance(title, str) or not title.strip():
                    raise _HttpError(400, "title must be a non-empty string")
                fields["title"] = title
            if "content" in data:
                fields["content"] = _optional_str(data, "content")
            if "tags" in data:
                fields["tags"] = _optional_tags(data)
            if not fields:
                raise _HttpError(400, "At least one of title, body, or tags must be provided")
            with self._lock:
                page = self._s.pages.get(page_id)
                if page is None:
                    raise _HttpError(404, "Page not found")
                page.update(fields)
            return 200, {"message": "acknowledged"}
        if endpoint == "query":
            q = data.get("q")
            if not isinstance(q, str) or not q.strip():
                raise _HttpError(400, "q is required")
            with self._lock:
                self._s.queries += 1
                self._s.asked.append(q)
                if self._s.ai_quota is not None and self._s.billed >= self._s.ai_quota:
                    raise _HttpError(402, "Payment Required: AI query limit exceeded")
                self._s.billed += 1
                pages = [dict(p) for p in self._s.pages.values()]
                unanswerable = any(phrase in q.lower() for phrase in self._s.unanswerable)
            return 200, {"aiBotResponse": _answer(q, [] if unanswerable else pages)}
        raise _HttpError(404, "Not Found")  # pragma: no cover

    async def _route(self, request: web.Request) -> web.Response:  # pragma: no cover - middleware answers
        return _error(404, "Not Found")


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _query_text(body: bytes) -> str | None:
    try:
        q = json.loads(body).get("q")
    except (ValueError, AttributeError):
        return None
    return q if isinstance(q, str) else None


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _HttpError(400, "Body must be JSON") from None
    if not isinstance(data, dict):
        raise _HttpError(400, "Body must be a JSON object")
    return data


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise _HttpError(400, f"{name} must be a string")
    return value


def _optional_tags(data: Mapping[str, Any]) -> list[str] | None:
    tags = data.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _HttpError(400, "tags must be a list of strings")
    return list(tags)


def _answer(q: str, pages: list[dict[str, Any]]) -> dict[str, Any]:
    """Deterministic stand-in for the AI: rank pages by words shared with ``q`` (title words count double)."""
    want = _words(q)
    scored = []
    for page in pages:
        title_words = _words(page["title"])
        body_words = _words(_plain(page["content"])) | {t.lower() for t in page["tags"]}
        score = 2 * len(want & title_words) + len(want & body_words)
        if score:
            scored.append((-score, page["title"], page))
    scored.sort(key=lambda item: (item[0], item[1]))
    top = [page for _, _, page in scored[:3]]
    if not top:
        return {
            "response": "I could not find an answer to your question in the knowledgebase.",
            "relatedPages": [],
            "isEmptyResult": True,
        }
    best = top[0]
    text = _plain(best["content"]) or best["title"]
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0][:300]
    return {
        "response": f'According to "{best["title"]}": {sentence}',
        "relatedPages": [{"id": p["id"], "title": p["title"]} for p in top],
        "isEmptyResult": False,
    }
