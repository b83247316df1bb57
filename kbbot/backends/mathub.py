"""MatHub backend: the bot wiki API (``shared/api/mathub-bot-api-wiki.txt``) as a KnowledgeBase.

What MatHub asks of a client, and where this module does it:

- **Paging** (:meth:`MatHubBackend.list_pages`): ``limit`` ≤ 100, ``offset``; iterate until a short page.
- **5 writes/min per key**: every POST/PATCH first takes a slot from the injected ``write_limiter`` (one
  instance per key, shared by everything that writes: saves, CLI edits, conflict retries), so a burst of saves
  queues instead of drawing 429s. A 429 that still happens (another process on the same key) is retried after
  its ``Retry-After``.
- **Optimistic locking** (:meth:`MatHubBackend.update_page`): PATCH carries the ``version`` we read; on
  409 the latest page is re-fetched, ``PageChange.rewrite`` is re-applied to *its* content (so another
  editor's text is kept) and the PATCH retried, at most ``max_conflict_retries`` times; then
  :class:`VersionConflict`: the change is never dropped silently and never overwrites someone else's edit.
- **Slugs** (:meth:`MatHubBackend.create_page`): from the title (:func:`kbbot.core.slugs.slugify`), made
  unique against the project's slugs (``-2``, ``-3`` …); a create that still collides (a race, or a server
  that answers 400 instead of 409 for a taken slug) moves on to the next suffix, bounded.
- **What the API cannot do**: no AI (``query`` → :class:`Unsupported`; answers come from the search index), no
  delete, no tags, and PATCH takes only ``content`` — a title change cannot be sent (see ``update_page``).

Every failure leaves as a :mod:`kbbot.errors` exception; messages are our own words plus status codes and page
ids, never a header, so the API key cannot leak.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from kbbot.backends import mathub_links
from kbbot.backends.http import RetryPolicy, parse_json, send_with_retries
from kbbot.backends.mathub_models import CreatedPage, ErrorBody, WikiPage, WikiPageList
from kbbot.core.models import AiAnswer, ContentFormat, KbInfo, Page, PageChange, PageRef, PageSummary
from kbbot.core.ports import MetricsSink, Priority, RateLimiter
from kbbot.core.slugs import slugify, unique_slug, with_suffix
from kbbot.errors import (
    BadRequest,
    Forbidden,
    KnowledgeBaseError,
    NotFound,
    Unsupported,
    VersionConflict,
)
from kbbot.store.limiter import TokenRateLimiter

if TYPE_CHECKING:
    from limits.aio.storage import Storage


log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

#: The API's maximum ``limit``.
PAGE_SIZE = 100
#: A hard ceiling on list requests (a million pages), behind the check for a server that ignores ``offset``.
MAX_LIST_REQUESTS = 10_000
#: MatHub's write window is a minute, so a Retry-After up to a bit over 60 s is worth waiting out.
DEFAULT_RETRY_POLICY = RetryPolicy(retry_after_max=65.0)
#: The write window the limiter uses: the server's minute plus a margin. The server counts a write when it
#: arrives, we count it when we send it; a write sent the instant our window frees a slot can land just before
#: the server's does. Two seconds absorb that skew at the cost of ~3% of throughput (TokenRateLimiter's other
#: remedy, one slot of headroom, would cost 20% of a 5-writes budget).
WRITE_WINDOW_SECONDS = 62.0
#: How many same-titled pages a create reads to find an identical one (see ``create_page``).
MAX_IDENTICAL_CHECKS = 20
READ_SCOPE = "wiki.read"
WRITE_SCOPE = "wiki.write"


def build_write_limiter(
    api_key: str,
    writes_per_minute: int = 5,
    *,
    window: float = WRITE_WINDOW_SECONDS,
    storage: Storage | str | None = None,
) -> TokenRateLimiter:
    """The writes limiter of a MatHub key: ``writes_per_minute`` per (slightly widened) minute, nothing else.

    Build it once per key (the composition root does) and hand it to every writer; with a Redis ``storage``
    every replica's limiter for the key shares the counts. ``window`` shrinks in tests.
    """
    return TokenRateLimiter(
        api_key,
        # Per-minute only: a per-second limit above the per-minute one never binds. Not *equal* to it: the
        # limiter keys its windows by amount, and two windows of the same amount would share one counter.
        per_second=writes_per_minute + 1,
        per_minute=writes_per_minute,
        headroom=0,
        minute_window=window,
        storage=storage,
        namespace="kbbot-mathub-writes",
    )


class MatHubBackend:
    """One MatHub project, read and written through the bot API.

    ``client`` is the app's shared ``httpx.AsyncClient`` (no auth on it: the key is added per request, so one
    client can serve several backends). ``write_limiter`` must be the single limiter for this API key.
    """

    kind: str = "mathub"
    content_format: ContentFormat = "markdown"
    supports_ai: bool = False

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str,
        project: str,
        write_limiter: RateLimiter,
        page_url_template: str | None = None,
        max_conflict_retries: int = 3,
        max_slug_attempts: int = 10,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._http = MatHubHttp(
            client,
            api_key=api_key,
            base_url=base_url,
            write_limiter=write_limiter,
            policy=retry_policy,
            sleep=sleep,
            metrics=metrics,
        )
        self.project = project
        self._project_path = f"/projects/{quote(project, safe='')}/wiki"
        self._page_url_template = page_url_template
        self._max_conflict_retries = max_conflict_retries
        self._max_slug_attempts = max_slug_attempts
        #: id → slug, learned from every list/get/create, so the sync ``page_url`` can fill ``{slug}``.
        self._slugs: dict[str, str] = {}

    # ------------------------------------------------------------------ reading

    async def info(self) -> KbInfo:
        """Checks the key can read the project (one tiny list request)."""
        await self._list_chunk(limit=1, offset=0)
        return KbInfo(name=f"MatHub project {self.project}")

    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        """Every page of the project, in the server's order, paging ``limit=100`` until a short page."""
        pages: dict[str, PageSummary] = {}
        offset = 0
        for _ in range(MAX_LIST_REQUESTS):
            chunk = await self._list_chunk(limit=PAGE_SIZE, offset=offset)
            before = len(pages)
            for item in chunk.data:
                if item.slug:
                    self._slugs[item.id] = item.slug
                # A page created while we page can shift the rest by one: keep the first sighting of each id.
                pages.setdefault(
                    item.id,
                    PageSummary(
                        id=item.id,
                        title=item.title,
                        slug=item.slug,
                        version=item.version,
                        updated_at=item.updated_at,
                    ),
                )
            # A server may cap ``limit`` lower than we asked; a page is short only against what it granted.
            granted = chunk.limit if chunk.limit and 0 < chunk.limit <= PAGE_SIZE else PAGE_SIZE
            if len(chunk.data) < granted or not chunk.data:
                break
            if len(pages) == before:
                # A full page of nothing new: the server ignores ``offset``. Stop instead of looping.
                log.warning(
                    "MatHub listing repeated itself at offset %d; stopping with %d pages", offset, before
                )
                break
            offset += len(chunk.data)
        return list(pages.values())

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page:
        wiki = await self._get_wiki(page_id)
        return _to_page(wiki)

    async def query(self, question: str) -> AiAnswer:
        raise Unsupported(
            "MatHub has no AI endpoint; answers come from the full-text index (kbbot index sync)."
        )

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        return mathub_links.page_url(
            self._page_url_template, page_id=page_id, slug=slug or self._slugs.get(page_id)
        )

    # ------------------------------------------------------------------ writing

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        """Create a page with a unique slug from ``title``. ``tags`` are dropped: MatHub pages have none.

        Idempotent for identical pages: if the project already has a page with exactly this title and content
        (typically our own earlier create whose response was lost to a timeout or 5xx, then retried from the
        outbox), that page is returned instead of a duplicate ``slug-2``.
        """
        title = title.strip()
        if not title:
            raise BadRequest("A MatHub page needs a title.")
        listing = await self.list_pages()
        same = await self._identical_page(listing, title, content)
        if same is not None:
            return same
        base = slugify(title)
        taken = {page.slug for page in listing if page.slug}
        slug = self._next_slug(base, taken)
        for _ in range(self._max_slug_attempts):
            body = {"slug": slug, "title": title, "content": content}
            try:
                response = await self._http.request("POST", self._project_path, json=body, scope=WRITE_SCOPE)
            except (VersionConflict, BadRequest) as exc:
                if not _is_slug_taken(exc):
                    raise
                # Someone took it since we listed (or the server only now says so): next suffix.
                taken.add(slug)
                slug = self._next_slug(base, taken)
                continue
            created = _parse(CreatedPage, response)
            self._slugs[created.id] = created.slug or slug
            return PageRef(
                id=created.id, title=title, url=self.page_url(created.id, title, created.slug or slug)
            )
        raise BadRequest(
            f"Could not find a free slug for “{title[:80]}” after {self._max_slug_attempts} tries "
            f"(last tried “{slug}”); choose a different title."
        )

    @staticmethod
    def _next_slug(base: str, taken: set[str]) -> str:
        return unique_slug(base, taken, max_tries=len(taken) + 2) or with_suffix(base, len(taken) + 2)

    async def update_page(self, page_id: str, change: PageChange) -> None:
        """Edit the page's content under optimistic locking.

        - ``change.rewrite`` is applied to the latest content on every attempt, so after a 409 the other
          editor's text is kept and ours is applied on top (appending a thread section keeps what they wrote).
        - ``change.content`` (replace everything) is sent once against the version just read; on a 409 it is
          **not** retried, because re-sending it would overwrite the edit that caused the conflict.
        - ``title``/``tags``: MatHub's PATCH takes only ``content`` (pages have no tags), so they cannot
          be applied. With a content change they are skipped (logged); a change of *only* title/tags raises
          :class:`Unsupported` rather than pretending to succeed.

        Raises :class:`VersionConflict` after ``max_conflict_retries`` lost races; the page is then unchanged
        by us and the caller still holds the change (ThreadSaver's outbox keeps the save for a later retry).
        """
        if change.rewrite is None and change.content is None:
            if change.title is not None or change.tags is not None:
                raise Unsupported(
                    "MatHub's API cannot rename pages or set tags; only the content can be edited."
                )
            return
        summary = (change.summary or "Edited by kbbot")[:500]
        attempts = self._max_conflict_retries + 1
        shown_id = page_id[:100]
        sent: str | None = None
        for attempt in range(1, attempts + 1):
            latest = await self._get_wiki(page_id)
            if sent is not None and latest.content == sent:
                # Our previous PATCH did land (its reply was lost and the retry saw our own new version).
                return
            if sent is not None and change.rewrite is None:
                # Someone else's edit is in there now; re-sending the whole content would erase it.
                raise VersionConflict(
                    f"MatHub page {shown_id} was edited by someone else while kbbot was replacing its "
                    "content; nothing was overwritten. Fetch the latest version and redo your change.",
                    status=409,
                )
            new_content = change.rewrite(latest.content) if change.rewrite else change.content
            assert new_content is not None
            if change.title is not None and change.title != latest.title:
                log.info("MatHub cannot rename pages; keeping the title of page %s", page_id)
            if new_content == latest.content:
                return
            sent = new_content
            body = {"content": new_content, "version": latest.version, "changeSummary": summary}
            try:
                await self._http.request(
                    "PATCH", f"/wiki/{quote(page_id, safe='')}", json=body, scope=WRITE_SCOPE
                )
                return
            except VersionConflict:
                log.info("MatHub version conflict on page %s (attempt %d of %d)", shown_id, attempt, attempts)
        raise VersionConflict(
            f"MatHub page {shown_id} kept changing under kbbot: {attempts} edits in a row lost to someone "
            "else's newer version, so kbbot stopped rather than overwrite their work. Your change was not "
            "applied and nothing was lost; try again in a moment.",
            status=409,
        )

    async def delete_page(self, page_id: str) -> None:
        raise Unsupported("MatHub's bot API cannot delete pages; delete it in MatHub.")

    async def aclose(self) -> None:
        """Nothing of ours to close: the httpx client and the writes limiter are injected, and their owner
        closes them."""
        return None

    # ------------------------------------------------------------------ helpers

    async def _list_chunk(self, *, limit: int, offset: int) -> WikiPageList:
        response = await self._http.request(
            "GET",
            self._project_path,
            params={"limit": limit, "offset": offset},
            scope=READ_SCOPE,
            not_found=f"MatHub project “{self.project}” not found (check MATHUB_PROJECT).",
        )
        return _parse(WikiPageList, response)

    async def _get_wiki(self, page_id: str) -> WikiPage:
        if not page_id.strip():
            raise NotFound("No MatHub page id given.")
        response = await self._http.request(
            "GET",
            f"/wiki/{quote(page_id, safe='')}",
            scope=READ_SCOPE,
            not_found=f"MatHub page {page_id[:100]} not found.",
        )
        wiki = _parse(WikiPage, response)
        if wiki.slug:
            self._slugs[wiki.id] = wiki.slug
        return wiki

    async def _identical_page(self, listing: list[PageSummary], title: str, content: str) -> PageRef | None:
        # Bounded: a project with hundreds of same-titled pages must not cost hundreds of reads per create.
        same_title = [summary for summary in listing if summary.title.strip() == title][:MAX_IDENTICAL_CHECKS]
        for summary in same_title:
            page = await self._get_wiki(summary.id)
            if page.content == content:
                return PageRef(id=page.id, title=page.title, url=self.page_url(page.id, title, page.slug))
        return None


def _to_page(wiki: WikiPage) -> Page:
    return Page(
        id=wiki.id,
        title=wiki.title,
        content=wiki.content,
        slug=wiki.slug,
        version=wiki.version,
        updated_at=wiki.updated_at,
    )


def _is_slug_taken(exc: KnowledgeBaseError) -> bool:
    """409 on create can only mean the slug; a 400 means it when the server's message says so."""
    if isinstance(exc, VersionConflict):
        return True
    text = str(exc).lower()
    return "slug" in text and any(word in text for word in ("exist", "taken", "unique", "use", "duplicate"))


def _parse(model: type[M], response: httpx.Response) -> M:
    return parse_json(response, model, service="MatHub")


class MatHubHttp:
    """One request to MatHub: auth header, write slot, MatHub's error meanings, shared retry policy.

    The generic rules (429 + Retry-After, 5xx/network retries for idempotent calls only, status → error) come
    from :mod:`kbbot.backends.http`; this class adds what is MatHub's own: which scope a 403 is about, what a
    404 means for the call made, and the server's reason on a 400/409 (needed to tell a taken slug from a bad
    request; it is the server's text about our JSON body, never a header, so it cannot contain the key).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str,
        write_limiter: RateLimiter,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._base = base_url.rstrip("/")
        self._writes = write_limiter
        self._policy = policy
        self._sleep = sleep

    async def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        not_found: str = "MatHub: not found.",
    ) -> httpx.Response:
        write = scope == WRITE_SCOPE

        async def send() -> httpx.Response:
            # Every write attempt, retries included, spends a slot: the server counts each one. Reads are free.
            async with self._writes.slot(Priority.LIVE) if write else contextlib.nullcontext():
                response = await self._client.request(
                    method, self._base + path, params=params, json=json, headers=self._headers
                )
            _raise_mathub_status(response, scope=scope, not_found=not_found)
            return response

        return await send_with_retries(
            send,
            policy=self._policy,
            # POST creates a page: repeating it after a 5xx could create it twice. PATCH carries ``version``,
            # so a repeat of one that landed gets a 409 (handled by update_page), never a double edit.
            idempotent=method != "POST",
            service="MatHub",
            unauthorized_hint="check MATHUB_API_KEY (it may have been revoked or regenerated)",
            what=f"{method} {path.split('/')[1] if '/' in path else path}",
            sleep=self._sleep,
            metrics=self._metrics,
        )


def _raise_mathub_status(response: httpx.Response, *, scope: str, not_found: str) -> None:
    """MatHub's meanings of 400/403/404/409; everything else is left to the shared mapping."""
    status = response.status_code
    if status not in (400, 403, 404, 409):
        return
    reason = _error_text(response)
    if status == 403:
        doing = "create or edit pages" if scope == WRITE_SCOPE else "read pages"
        raise Forbidden(
            f"The MatHub API key lacks the “{scope}” scope (needed to {doing}); "
            f"give the bot key the {scope} scope in MatHub.",
            status=403,
        )
    if status == 404:
        raise NotFound(not_found, status=404)
    if status == 409:
        raise VersionConflict(f"MatHub: conflict (HTTP 409){': ' + reason if reason else ''}", status=409)
    raise BadRequest(f"MatHub rejected the request (HTTP 400){': ' + reason if reason else ''}", status=400)


def _error_text(response: httpx.Response) -> str:
    """The ``error`` string of an error body, shortened and made single-line; empty when there is none."""
    try:
        text = ErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return ""
    return " ".join(text.split())[:200]
