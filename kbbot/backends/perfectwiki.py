"""Perfect Wiki Public API client (``/public-api/v1``): the KnowledgeBase for ``KB_BACKEND=perfectwiki``.

Every call goes: rate limiter → request → status check → JSON model → ``limiter.observe(rateLimit)``, inside
the retry policy of :mod:`kbbot.backends.http` (so every retry waits for the limiter too). The token is sent
per request in the ``Authorization`` header, never set on the shared ``httpx.AsyncClient`` (which other
backends use as well) and never put in a message.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from kbbot.backends.http import RetryPolicy, parse_json, send_with_retries
from kbbot.core.models import AiAnswer, ContentFormat, KbInfo, Page, PageChange, PageRef, PageSummary
from kbbot.core.ports import MetricsSink, Priority, RateLimiter
from kbbot.errors import BadRequest, BadResponse, ConfigError, NotFound

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

SERVICE = "Perfect Wiki"
UNAUTHORIZED_HINT = "check PERFECTWIKI_API_TOKEN; it may have been regenerated"
DEFAULT_BASE_URL = "https://api.perfectwiki.xyz/api"

M = TypeVar("M", bound="_Envelope")


# --- response models: extra fields tolerated, documented fields type-checked ----------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, frozen=True)


class KnowledgebaseField(_Model):
    name: str


class RateLimitField(_Model):
    requestsLeftSecond: int | None = None
    requestsLeftMinute: int | None = None


class _Envelope(_Model):
    """The common fields of every success. Optional: a missing rateLimit must not fail an answer."""

    knowledgebase: KnowledgebaseField | None = None
    rateLimit: RateLimitField | None = None


class PageSummaryModel(_Model):
    id: str = Field(min_length=1)
    title: str
    tags: list[str] = Field(default_factory=list)


class ListResponse(_Envelope):
    pages: list[PageSummaryModel]


class PageModel(PageSummaryModel):
    content: str = ""


class GetResponse(_Envelope):
    page: PageModel


class CreatedPage(_Model):
    id: str = Field(min_length=1)


class CreateResponse(_Envelope):
    message: str | None = None
    page: CreatedPage


class AckResponse(_Envelope):
    message: str | None = None


class RelatedPage(_Model):
    id: str = Field(min_length=1)
    title: str = ""


class AiBotResponse(_Model):
    response: str
    relatedPages: list[RelatedPage] = Field(default_factory=list)
    isEmptyResult: bool = False


class QueryResponse(_Envelope):
    aiBotResponse: AiBotResponse


# --- the backend -----------------------------------------------------------------------------------


class PerfectWikiBackend:
    """Perfect Wiki through its Public API. Content is HTML; ``query`` is the billed AI."""

    kind = "perfectwiki"
    content_format: ContentFormat = "html"
    supports_ai = True

    def __init__(
        self,
        client: httpx.AsyncClient,
        token: SecretStr | str,
        *,
        limiter: RateLimiter,
        base_url: str = DEFAULT_BASE_URL,
        page_url_template: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._client = client
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        if not self._token.get_secret_value():
            raise ConfigError("PERFECTWIKI_API_TOKEN is empty")
        self._api = base_url.rstrip("/") + "/public-api/v1"
        self._template = _check_template(page_url_template)
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._metrics = metrics

    # --- KnowledgeBase --------------------------------------------------------------------------------------

    async def info(self) -> KbInfo:
        """Knowledgebase name and rate budget left, from a list call (the API has no cheaper one)."""
        data = await self._call("GET", "/knowledgebase", ListResponse, what="list pages")
        if data.knowledgebase is None:
            raise BadResponse(f"{SERVICE} sent no knowledgebase name")
        rate = data.rateLimit or RateLimitField()
        return KbInfo(
            name=data.knowledgebase.name,
            requests_left_second=rate.requestsLeftSecond,
            requests_left_minute=rate.requestsLeftMinute,
        )

    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        data = await self._call(
            "GET", "/knowledgebase", ListResponse, what="list pages", priority=priority
        )
        return [PageSummary(id=p.id, title=p.title, tags=tuple(p.tags)) for p in data.pages]

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page:
        data = await self._call(
            "GET", self._page_path(page_id), GetResponse, what="get page", priority=priority
        )
        page = data.page
        return Page(id=page.id, title=page.title, content=page.content, tags=tuple(page.tags))

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        body = {"title": title, "content": content, "tags": list(tags)}
        # Not idempotent: a retry after a timeout or 5xx could create the page twice.
        data = await self._call(
            "POST", "/page", CreateResponse, json=body, idempotent=False, what="create page"
        )
        return PageRef(id=data.page.id, title=title, url=self.page_url(data.page.id, title))

    async def update_page(self, page_id: str, change: PageChange) -> None:
        body: dict[str, Any] = {}
        if change.title is not None:
            body["title"] = change.title
        if change.tags is not None:
            body["tags"] = list(change.tags)
        if change.rewrite is not None:
            # No versions in this API: read the latest content right before writing it back.
            current = await self.get_page(page_id)
            body["content"] = change.rewrite(current.content)
        elif change.content is not None:
            body["content"] = change.content
        if not body:
            raise BadRequest("nothing to update: give a title, content or tags")
        # Idempotent: setting the same fields twice leaves the same page.
        await self._call("POST", self._page_path(page_id), AckResponse, json=body, what="update page")

    async def delete_page(self, page_id: str) -> None:
        path = self._page_path(page_id)
        attempts = 0

        async def count() -> None:
            nonlocal attempts
            attempts += 1

        try:
            await self._call("DELETE", path, AckResponse, what="delete page", on_attempt=count)
        except NotFound:
            # A retry after a lost response finds the page already gone: that is the success we wanted.
            if attempts > 1:
                return
            raise

    async def query(self, question: str) -> AiAnswer:
        data = await self._call(
            "POST",
            "/knowledgebase/query",
            QueryResponse,
            json={"q": question},
            what="AI query",
            # Billed per call: retry 5xx and connection failures, but not a timeout (it probably ran).
            retry_timeouts=False,
        )
        bot = data.aiBotResponse
        related = tuple(
            PageRef(id=p.id, title=p.title, url=self.page_url(p.id, p.title)) for p in bot.relatedPages
        )
        return AiAnswer(text=bot.response, related_pages=related, empty=bot.isEmptyResult)

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        if self._template is None:
            return None
        return self._template.format(id=quote(page_id, safe=""), title=quote(title, safe=""))

    async def aclose(self) -> None:
        """The httpx client belongs to whoever made it; nothing of ours to close."""

    # --- plumbing -------------------------------------------------------------------------------------------

    def _page_path(self, page_id: str) -> str:
        if not page_id or not page_id.strip():
            raise BadRequest("page id is empty")
        return "/page/" + quote(page_id, safe="")

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        json: dict[str, Any] | None = None,
        idempotent: bool = True,
        retry_timeouts: bool | None = None,
        priority: Priority = Priority.LIVE,
        what: str,
        on_attempt: Callable[[], Awaitable[None]] | None = None,
    ) -> M:
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}", "Accept": "application/json"}
        timeout: Any = self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT

        async def send() -> httpx.Response:
            async with self._limiter.slot(priority):
                if on_attempt is not None:
                    await on_attempt()
                return await self._client.request(
                    method, self._api + path, headers=headers, json=json, timeout=timeout
                )

        response = await send_with_retries(
            send,
            policy=self._retry,
            idempotent=idempotent,
            retry_timeouts=retry_timeouts,
            service=SERVICE,
            unauthorized_hint=UNAUTHORIZED_HINT,
            what=what,
            metrics=self._metrics,
        )
        data = parse_json(response, model, service=SERVICE)
        if data.rateLimit is not None:
            self._limiter.observe(data.rateLimit.requestsLeftSecond, data.rateLimit.requestsLeftMinute)
        return data


def _check_template(template: str | None) -> str | None:
    """Accept only ``{id}`` and ``{title}`` placeholders, so a typo fails at startup, not on every answer."""
    if template is None or not template.strip():
        return None
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        raise ConfigError("PERFECTWIKI_PAGE_URL_TEMPLATE has unbalanced braces") from None
    unknown = fields - {"id", "title"}
    if unknown:
        raise ConfigError(
            f"PERFECTWIKI_PAGE_URL_TEMPLATE may use only {{id}} and {{title}}, not {{{sorted(unknown)[0]}}}"
        )
    return template
