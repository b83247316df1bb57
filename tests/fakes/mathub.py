"""A local MatHub bot API server for tests: real HTTP on 127.0.0.1, the whole API text.

It follows ``shared/api/mathub-bot-api-wiki.txt`` (all paths under ``/api/bot/v1``):

- ``GET /projects/:slug/wiki``   list (``limit`` default 20, max 100; ``offset``)         scope ``wiki.read``
- ``GET /wiki/:id``              full page object (content + version)                     scope ``wiki.read``
- ``POST /projects/:slug/wiki``  create (slug, title, content required; parentId)         scope ``wiki.write``
- ``PATCH /wiki/:id``            edit (content, version required; changeSummary)          scope ``wiki.write``

Choices where the API text is silent (documented so tests and the client agree on *why*):

- Errors are ``{"error": "..."}`` bodies, like the documented 409. 401 = unknown or missing Bearer key;
  403 = the key lacks the scope, and the body names it (``"Missing required scope: wiki.write"``).
- A taken slug on create answers **409** ``{"error": "Slug already exists in this project"}`` by default:
  slugs identify pages within a project, and a clash with existing state is a conflict.
  ``slug_taken_status=400`` switches it, so the client is proven against either reading.
- The write limit (5/min per key) is a sliding window over *every* write request that got past auth,
  successful or not: a server counts the attempt, so a client that retries 409s must budget those retries too.
  Over the limit: 429 with ``Retry-After`` (whole seconds until the oldest write leaves the window).
  ``write_window_seconds`` shrinks the window so tests prove the property in seconds instead of minutes.
- The seed shows the page object unwrapped; ``wrap_pages=True`` answers single pages as ``{"data": {...}}``.

Control (thread-safe, from sync or async tests): :meth:`add_key`, :meth:`add_project`, :meth:`add_page`,
:meth:`edit_as_someone_else`, :meth:`inject_concurrent_edit`, :meth:`fail_next` (optionally per method),
:meth:`lose_next_response` (the write happens, the reply is a 5xx), :meth:`set_latency`, :meth:`set_raw_response`;
constructor switches ``wrap_pages``, ``slug_taken_status``, ``max_limit``, ``ignore_offset``, the write window.
Inspection: :attr:`requests` (log with parsed bodies and the key's *name*), :meth:`count`, :meth:`page`,
:meth:`page_by_slug`, :meth:`pages`, :attr:`max_concurrent`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kbbot.config import Settings, load_settings
from tests.fakes.background import BackgroundServer

API_PREFIX = "/api/bot/v1"
READ = "wiki.read"
WRITE = "wiki.write"

DEFAULT_KEY = "bot_test_key"
_BODY = web.RequestKey("json_body", object)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakePage:
    id: str
    project: str
    slug: str
    title: str
    content: str
    version: int = 1
    review_status: str = "APPROVED"
    parent_id: str | None = None
    created_at: str = field(default_factory=_now_iso)
    updated_at: str = field(default_factory=_now_iso)
    #: (version, content, change summary) of every edit, oldest first.
    history: list[tuple[int, str, str | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "reviewStatus": self.review_status,
            "version": self.version,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def full(self) -> dict[str, Any]:
        return {**self.summary(), "content": self.content, "parentId": self.parent_id}


@dataclass
class _PendingEdit:
    text: str
    times: int


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int
    #: Parsed JSON body of the request, when it had one.
    body: Any
    #: Which configured key made the request (its name, never the secret), or None when unauthenticated.
    key: str | None
    at: float


class FakeMatHub:
    """The server. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        *,
        project: str = "algebraic-topology",
        api_key: str = DEFAULT_KEY,
        writes_per_window: int = 5,
        write_window_seconds: float = 60.0,
        wrap_pages: bool = False,
        slug_taken_status: int = 409,
        max_limit: int = 100,
        ignore_offset: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` times writes for the write window (a test's simulated clock moves it on)."""
        self.project = project
        self._clock = clock
        self.api_key = api_key
        self.writes_per_window = writes_per_window
        self.write_window_seconds = write_window_seconds
        self.wrap_pages = wrap_pages
        self.slug_taken_status = slug_taken_status
        self.max_limit = max_limit
        #: A broken server that always answers the first page (clients must not loop forever).
        self.ignore_offset = ignore_offset
        self._lock = threading.RLock()
        self._keys: dict[str, tuple[str, frozenset[str]]] = {api_key: ("default", frozenset({READ, WRITE}))}
        self._projects: set[str] = {project}
        self._pages: dict[str, FakePage] = {}
        self._writes: dict[str, deque[float]] = {}
        self._pending_edits: dict[str, _PendingEdit] = {}
        self._failures: deque[tuple[int, str | None, str | None]] = deque()
        self._lost: deque[tuple[str, int]] = deque()
        self._raw: deque[tuple[str, int, str, str]] = deque()
        self._latency = 0.0
        self._counts: Counter[str] = Counter()
        self._log: list[LoggedRequest] = []
        self._max_concurrent = 0
        self._in_flight = 0
        self._server = BackgroundServer(self._build_app, name="fake-mathub")

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> FakeMatHub:
        self._server.start()
        return self

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get(API_PREFIX + "/projects/{slug}/wiki", self._list)
        app.router.add_post(API_PREFIX + "/projects/{slug}/wiki", self._create)
        app.router.add_get(API_PREFIX + "/wiki/{id}", self._get)
        app.router.add_patch(API_PREFIX + "/wiki/{id}", self._patch)
        return app

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeMatHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ control (thread-safe)

    def add_key(self, key: str, scopes: set[str] | frozenset[str], name: str | None = None) -> None:
        with self._lock:
            self._keys[key] = (name or f"key{len(self._keys)}", frozenset(scopes))

    def add_project(self, slug: str) -> None:
        with self._lock:
            self._projects.add(slug)

    def add_page(
        self,
        title: str,
        content: str = "",
        *,
        slug: str | None = None,
        project: str | None = None,
        version: int = 1,
        updated_at: str | None = None,
    ) -> FakePage:
        with self._lock:
            page = FakePage(
                id=str(uuid.uuid4()),
                project=project or self.project,
                slug=slug or title.lower().replace(" ", "-"),
                title=title,
                content=content,
                version=version,
            )
            if updated_at:
                page.updated_at = updated_at
            self._pages[page.id] = page
            return page

    def edit_as_someone_else(self, page_id: str, content: str) -> FakePage:
        """Another editor saves the page now (version goes up)."""
        with self._lock:
            page = self._pages[page_id]
            self._apply_edit(page, content, "edit by someone else")
            return page

    def inject_concurrent_edit(
        self, page_id: str, append: str = "\n\nEdited by someone else.", times: int = 1
    ) -> None:
        """The next ``times`` PATCHes of ``page_id`` find someone else appended ``append`` just before."""
        with self._lock:
            self._pending_edits[page_id] = _PendingEdit(append, times)

    def fail_next(
        self, count: int = 1, status: int = 500, retry_after: str | None = None, method: str | None = None
    ) -> None:
        """The next ``count`` requests (of ``method``, or any) answer ``status`` with an error body."""
        with self._lock:
            for _ in range(count):
                self._failures.append((status, retry_after, method.upper() if method else None))

    def lose_next_response(self, method: str, status: int = 500) -> None:
        """The next ``method`` request is carried out, but its answer is replaced by ``status`` (a lost reply:
        the client cannot know the write landed)."""
        with self._lock:
            self._lost.append((method.upper(), status))

    def set_raw_response(
        self, body: str, *, status: int = 200, content_type: str = "application/json", route: str = ""
    ) -> None:
        """The next request whose path contains ``route`` gets this literal body (malformed responses)."""
        with self._lock:
            self._raw.append((route, status, body, content_type))

    def set_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = seconds

    # ------------------------------------------------------------------ inspection (thread-safe)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, method: str | None = None, status: int | None = None, path_contains: str = "") -> int:
        with self._lock:
            return sum(
                1
                for r in self._log
                if (method is None or r.method == method)
                and (status is None or r.status == status)
                and path_contains in r.path
            )

    @property
    def max_concurrent(self) -> int:
        with self._lock:
            return self._max_concurrent

    def page(self, page_id: str) -> FakePage:
        with self._lock:
            return self._pages[page_id]

    def page_by_slug(self, slug: str, project: str | None = None) -> FakePage | None:
        with self._lock:
            project = project or self.project
            return next((p for p in self._pages.values() if p.project == project and p.slug == slug), None)

    def pages(self, project: str | None = None) -> list[FakePage]:
        with self._lock:
            project = project or self.project
            return [p for p in self._pages.values() if p.project == project]

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._counts.clear()

    # ------------------------------------------------------------------ HTTP

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        with self._lock:
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)
            latency = self._latency
        body: Any = None
        key_name: str | None = None
        try:
            if request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    body = None
            if latency:
                await asyncio.sleep(latency)
            response, key_name = await self._dispatch(request, handler, body)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self._log.append(
                LoggedRequest(
                    request.method,
                    request.path,
                    dict(request.query),
                    response.status,
                    body,
                    key_name,
                    time.monotonic(),
                )
            )
        return response

    async def _dispatch(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], body: Any
    ) -> tuple[web.StreamResponse, str | None]:
        with self._lock:
            raw = next((r for r in self._raw if r[0] in request.path), None)
            if raw is not None:
                self._raw.remove(raw)
                return web.Response(status=raw[1], text=raw[2], content_type=raw[3]), None
            failure = next((f for f in self._failures if f[2] in (None, request.method)), None)
            if failure is not None:
                self._failures.remove(failure)
                status, retry_after, _ = failure
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return _error(
                    status, "Internal server error" if status >= 500 else "Injected error", headers
                ), None
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self._lock:
            entry = self._keys.get(token) if token else None
        if entry is None:
            return _error(401, "Invalid or missing API key"), None
        key_name, scopes = entry
        is_write = request.method in ("POST", "PATCH")
        needed = WRITE if is_write else READ
        if needed not in scopes:
            return _error(403, f"Missing required scope: {needed}"), key_name
        if is_write:
            retry_after = self._take_write(token)
            if retry_after is not None:
                return _error(
                    429, "Rate limit exceeded: 5 writes/min", {"Retry-After": str(retry_after)}
                ), key_name
        request[_BODY] = body
        response = await handler(request)
        with self._lock:
            lost = next((entry for entry in self._lost if entry[0] == request.method), None)
            if lost is not None:
                self._lost.remove(lost)
                return _error(lost[1], "Internal server error"), key_name
        return response, key_name

    def _take_write(self, token: str) -> int | None:
        """Sliding window: None when allowed (and counted), else whole seconds until a slot frees up."""
        now = self._clock()
        with self._lock:
            window = self._writes.setdefault(token, deque())
            while window and window[0] <= now - self.write_window_seconds:
                window.popleft()
            if len(window) >= self.writes_per_window:
                return max(1, math.ceil(window[0] + self.write_window_seconds - now))
            window.append(now)
            return None

    def _one(self, page: FakePage) -> dict[str, Any]:
        return {"data": page.full()} if self.wrap_pages else page.full()

    async def _list(self, request: web.Request) -> web.StreamResponse:
        project = request.match_info["slug"]
        try:
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return _error(400, "limit and offset must be integers")
        if limit < 1 or offset < 0:
            return _error(400, "limit must be >= 1 and offset >= 0")
        limit = min(limit, self.max_limit)
        with self._lock:
            if project not in self._projects:
                return _error(404, "Project not found")
            # Insertion (creation) order: stable while paging, new pages land at the end.
            pages = [p for p in self._pages.values() if p.project == project]
            start = 0 if self.ignore_offset else offset
            data = [p.summary() for p in pages[start : start + limit]]
        return web.json_response({"data": data, "limit": limit, "offset": offset})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            page = self._pages.get(request.match_info["id"])
            if page is None:
                return _error(404, "Wiki page not found")
            return web.json_response(self._one(page))

    async def _create(self, request: web.Request) -> web.StreamResponse:
        project = request.match_info["slug"]
        body = request[_BODY]
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object")
        missing = [name for name in ("slug", "title", "content") if not isinstance(body.get(name), str)]
        if missing:
            return _error(400, f"Missing required field(s): {', '.join(missing)}")
        slug, title = body["slug"], body["title"]
        if not slug or not title.strip():
            return _error(400, "slug and title must not be empty")
        if not _is_url_safe(slug):
            return _error(400, "slug must be URL-safe (a-z, 0-9, '-')")
        parent = body.get("parentId")
        with self._lock:
            if project not in self._projects:
                return _error(404, "Project not found")
            if parent is not None and parent not in self._pages:
                return _error(400, "parentId does not exist")
            if any(p.project == project and p.slug == slug for p in self._pages.values()):
                return _error(self.slug_taken_status, "Slug already exists in this project")
            page = FakePage(str(uuid.uuid4()), project, slug, title, body["content"], parent_id=parent)
            self._pages[page.id] = page
            return web.json_response(self._one(page), status=201)

    async def _patch(self, request: web.Request) -> web.StreamResponse:
        body = request[_BODY]
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object")
        content, version = body.get("content"), body.get("version")
        if not isinstance(content, str) or not isinstance(version, int) or isinstance(version, bool):
            return _error(400, "content (string) and version (integer) are required")
        with self._lock:
            page = self._pages.get(request.match_info["id"])
            if page is None:
                return _error(404, "Wiki page not found")
            pending = self._pending_edits.get(page.id)
            if pending is not None:
                # "Someone else" saved between the client's read and this write.
                self._apply_edit(page, page.content + pending.text, "concurrent edit")
                pending.times -= 1
                if pending.times <= 0:
                    del self._pending_edits[page.id]
            if version != page.version:
                return _error(409, "Version conflict. Fetch latest and retry.")
            summary = body.get("changeSummary")
            self._apply_edit(page, content, summary if isinstance(summary, str) else None)
            return web.json_response(self._one(page))

    def _apply_edit(self, page: FakePage, content: str, summary: str | None) -> None:
        page.version += 1
        page.content = content
        # Strictly increasing even when two edits land in the same millisecond.
        stamp = _now_iso()
        page.updated_at = stamp if stamp > page.updated_at else _bump(page.updated_at)
        page.history.append((page.version, content, summary))


def mathub_settings(fake: FakeMatHub, **overrides: Any) -> Settings:
    """Settings for ``KB_BACKEND=mathub`` pointed at ``fake`` (its key and project); ``overrides`` win."""
    values: dict[str, Any] = {
        "kb_backend": "mathub",
        "mathub_api_key": fake.api_key,
        "mathub_base_url": fake.url,
        "mathub_project": fake.project,
    }
    return load_settings(**{**values, **overrides})


def _bump(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() + 0.001
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_url_safe(slug: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in slug) and slug == slug.lower()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
