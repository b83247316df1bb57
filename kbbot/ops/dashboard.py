"""``GET /admin``: the admin dashboard, served next to ``/metrics`` when ``KBBOT_ADMIN_TOKEN`` is set.

HTTP Basic auth (user ``admin``, password the token, compared in constant time); 401 otherwise. Without a
token the routes are not mounted at all (404). The page is rendered on the server by Jinja2 with autoescaping
(every question is user text) and pygal SVG charts; it loads nothing from anywhere (every ``src``/``href`` is
this server's), runs no JavaScript (the Content-Security-Policy forbids scripts outright), and works as plain
HTML tables.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from kbbot.core.outcomes import OutcomeRecorder
from kbbot.core.ports import FeedbackStore
from kbbot.ops import charts
from kbbot.reports.gaps import iso
from kbbot.reports.usage import Usage, day_range, summarize

USER = "admin"
DEFAULT_DAYS = 30
DAY_CHOICES = (7, 30, 90)
SAVE_OUTCOMES = ("created", "updated", "queued", "failed")
#: Served so browsers do not log a 404 for /favicon.ico (the page links it).
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    'fill="#1d2430"/><path d="M4 11V5h2v6zm3 0V7h2v4zm3 0V3h2v8z" fill="#7fb0ff"/></svg>'
)

HEADERS = {
    # No script, no plugin, no frame, nothing from elsewhere; pygal's SVG carries its own <style>.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_env = Environment(loader=PackageLoader("kbbot.ops", "templates"), autoescape=True, trim_blocks=True,
                   lstrip_blocks=True)
_env.filters["iso"] = iso


@dataclass
class Dashboard:
    """Reads what the page shows. ``saves`` returns this process's save counts by outcome."""

    outcomes: OutcomeRecorder
    feedback: FeedbackStore
    saves: Callable[[], dict[str, int]]
    title: str = "kbbot"

    async def usage(self, days: int) -> Usage:
        now = self.outcomes.now()
        store = self.outcomes.store
        outcomes = await store.since(now - days * 86400)
        usage = summarize(outcomes, await store.ai_calls(day_range(now, days)[0]), now=now, days=days)
        usage.quota = await self.outcomes.quota(now)
        counts = await self.feedback.counts()
        usage.helpful, usage.not_helpful = counts.helpful, counts.not_helpful
        usage.saves = self.saves()
        return usage


def authorized(header: str | None, token: str) -> bool:
    """``Authorization: Basic base64(admin:token)``, compared in constant time (user and password at once)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{USER}:{token}".encode()
    return hmac.compare_digest(given, expected)


def _days(request: web.Request, retention_days: int) -> int:
    try:
        days = int(request.query.get("days", DEFAULT_DAYS))
    except ValueError:
        days = DEFAULT_DAYS
    return max(1, min(days, retention_days, 3650))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def mount_admin(app: web.Application, dashboards: Mapping[str, Dashboard], *, token: str) -> None:
    """``/admin`` and ``/admin/fill`` (how to fill one gap) on ``app``, behind HTTP Basic auth. ``dashboards``
    has one entry per knowledgebase (by name; the first is the default, ``?kb=NAME`` picks another)."""
    names = list(dashboards)
    first = dashboards[names[0]]

    def guarded(handler: Handler) -> Handler:
        async def check(request: web.Request) -> web.StreamResponse:
            if not authorized(request.headers.get("Authorization"), token):
                raise web.HTTPUnauthorized(
                    text="401: the dashboard needs the admin password (KBBOT_ADMIN_TOKEN)\n",
                    headers={"WWW-Authenticate": 'Basic realm="kbbot admin", charset="UTF-8"', **HEADERS},
                )
            return await handler(request)

        return check

    async def page(request: web.Request) -> web.Response:
        kb = request.query.get("kb", names[0])
        dashboard = dashboards.get(kb)
        if dashboard is None:
            raise web.HTTPNotFound(text="404: no such knowledgebase\n", headers=HEADERS)
        days = _days(request, int(dashboard.outcomes.retention_seconds // 86400))
        usage = await dashboard.usage(days)
        html = render_dashboard(usage, title=dashboard.title, days=days, now=dashboard.outcomes.now(),
                                kb=kb, knowledgebases=names)
        return web.Response(text=html, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def fill(request: web.Request) -> web.Response:
        question = " ".join(request.query.get("q", "").split())[:500]
        html = _env.get_template("fill.html").render(title=first.title, question=question)
        return web.Response(text=html, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def favicon(_: web.Request) -> web.Response:
        return web.Response(text=FAVICON, content_type="image/svg+xml", headers=HEADERS)

    app.router.add_get("/admin", guarded(page))
    app.router.add_get("/admin/fill", guarded(fill))
    app.router.add_get("/admin/favicon.svg", guarded(favicon))


def render_dashboard(
    usage: Usage, *, title: str, days: int, now: float | None = None, kb: str = "", knowledgebases: Sequence[str] = ()
) -> str:
    """The page as HTML (pure)."""
    context: dict[str, Any] = {
        "title": title,
        "kb": kb,
        "knowledgebases": list(knowledgebases),
        "days": days,
        "day_choices": DAY_CHOICES,
        "usage": usage,
        "generated": iso(time.time() if now is None else now),
        "save_outcomes": SAVE_OUTCOMES,
        # pygal's SVG: built from numbers and fixed labels only, so it is safe to insert as markup.
        "questions_chart": Markup(charts.questions_per_day(usage)),  # noqa: S704
        "ai_chart": Markup(charts.ai_calls_per_day(usage)),  # noqa: S704
    }
    return _env.get_template("dashboard.html").render(**context)
