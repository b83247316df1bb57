"""MatHubBackend against the local MatHub server (tests/fakes/mathub.py), with the real httpx client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from kbbot.backends.http import RetryPolicy
from kbbot.backends.mathub import MatHubBackend, build_write_limiter
from kbbot.core.models import PageChange
from kbbot.core.ports import KnowledgeBase
from kbbot.errors import (
    BadRequest,
    BadResponse,
    Forbidden,
    KnowledgeBaseError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unsupported,
    VersionConflict,
)
from tests.fakes.mathub import DEFAULT_KEY, READ, FakeMatHub
from tests.limiting import FakeLimiter

# Fast windows for tests that write more than 5 times. The fake counts 5 writes per FAST_SERVER_WINDOW; the
# client's limiter uses a longer window, like production's 62 s against the server's 60 s (see
# kbbot.backends.mathub.WRITE_WINDOW_SECONDS). Here the fake and the limiter read one clock (this process's
# monotonic one) and the limiter holds each write from its send until a window after its answer, while the
# server counts it on arrival, in between: any client window at least the server's keeps every server window
# at 5, however late a busy machine delivers a request. The 50 ms on top only keep the two edge comparisons
# ("older than" on both sides) apart.
FAST_SERVER_WINDOW = 0.25
FAST_CLIENT_WINDOW = 0.3


class Sleeps:
    """Replaces asyncio.sleep for retry waits: records what the policy asked for, waits ~nothing."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


def make_backend(
    server: FakeMatHub,
    client: httpx.AsyncClient,
    *,
    key: str = DEFAULT_KEY,
    sleeps: Sleeps | None = None,
    client_window: float = FAST_CLIENT_WINDOW,
    **kwargs: object,
) -> MatHubBackend:
    kwargs.setdefault("write_limiter", build_write_limiter(key, 5, window=client_window))
    return MatHubBackend(
        client,
        api_key=key,
        base_url=server.url,
        project=server.project,
        page_url_template="https://mathub.example/p/algebraic-topology/wiki/{slug}",
        sleep=sleeps or Sleeps(),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def fast_mathub() -> AsyncIterator[FakeMatHub]:
    with FakeMatHub(write_window_seconds=FAST_SERVER_WINDOW) as server:
        yield server  # type: ignore[misc]


# ------------------------------------------------------------------ protocol and reading


async def test_implements_the_protocol(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    backend = make_backend(fake_mathub, http)
    assert isinstance(backend, KnowledgeBase)
    assert (backend.kind, backend.content_format, backend.supports_ai) == ("mathub", "markdown", False)
    assert (await backend.info()).name == "MatHub project algebraic-topology"
    with pytest.raises(Unsupported, match="index"):
        await backend.query("what is K(G,n)?")
    with pytest.raises(Unsupported):
        await backend.delete_page("x")
    await backend.aclose()
    assert not http.is_closed  # injected client: the caller closes it


@pytest.mark.parametrize(("count", "requests"), [(250, 3), (200, 3), (0, 1), (99, 1)])
async def test_list_pages_iterates_until_a_short_page(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, count: int, requests: int
) -> None:
    made = [fake_mathub.add_page(f"Page {n}", f"body {n}", slug=f"page-{n}") for n in range(count)]
    pages = await make_backend(fake_mathub, http).list_pages()
    assert [p.id for p in pages] == [p.id for p in made]
    if pages:
        assert pages[-1].slug == f"page-{count - 1}" and pages[-1].version == 1
        assert pages[-1].updated_at == made[-1].updated_at
    listed = [r for r in fake_mathub.requests if r.path.endswith("/wiki")]
    assert len(listed) == requests
    assert [r.query for r in listed] == [{"limit": "100", "offset": str(100 * n)} for n in range(requests)]


async def test_list_pages_follows_a_server_that_grants_a_smaller_limit(http: httpx.AsyncClient) -> None:
    with FakeMatHub(max_limit=30) as server:
        for n in range(75):
            server.add_page(f"P{n}", slug=f"p{n}")
        pages = await make_backend(server, http).list_pages()
        assert len(pages) == 75 and len({p.id for p in pages}) == 75
        assert server.count("GET") == 3


async def test_list_pages_stops_when_the_server_ignores_offset(http: httpx.AsyncClient) -> None:
    with FakeMatHub(ignore_offset=True) as server:
        for n in range(150):
            server.add_page(f"P{n}", slug=f"p{n}")
        pages = await make_backend(server, http).list_pages()
        assert len(pages) == 100 and server.count("GET") == 2


@pytest.mark.parametrize("wrap", [False, True])
async def test_get_page_wrapped_or_not(http: httpx.AsyncClient, wrap: bool) -> None:
    with FakeMatHub(wrap_pages=wrap) as server:
        made = server.add_page(
            "Serre Spectral Sequence", "# Serre\n\n$E_2^{p,q}$ [[fibration]]", slug="serre"
        )
        page = await make_backend(server, http).get_page(made.id)
        assert (page.id, page.title, page.slug, page.version) == (made.id, made.title, "serre", 1)
        assert page.content == made.content and page.updated_at == made.updated_at


async def test_page_url_uses_the_template_and_learned_slugs(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    made = fake_mathub.add_page("Serre", slug="serre-spectral-sequence")
    backend = make_backend(fake_mathub, http)
    assert backend.page_url(made.id) is None  # slug not known yet, template needs it: no broken link
    await backend.list_pages()
    assert (
        backend.page_url(made.id)
        == "https://mathub.example/p/algebraic-topology/wiki/serre-spectral-sequence"
    )
    by_id = MatHubBackend(
        http, api_key=DEFAULT_KEY, base_url=fake_mathub.url, project=fake_mathub.project,
        write_limiter=FakeLimiter(), page_url_template="https://m.example/wiki/{id}",
    )  # fmt: skip
    assert by_id.page_url("a/b") == "https://m.example/wiki/a%2Fb"


# ------------------------------------------------------------------ errors


async def test_401_wrong_key_never_shows_the_key(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    secret = "bot_super_secret_value"
    backend = make_backend(fake_mathub, http, key=secret)
    with pytest.raises(Unauthorized) as caught:
        await backend.list_pages()
    assert "MATHUB_API_KEY" in str(caught.value) and secret not in str(caught.value)
    assert caught.value.status == 401


async def test_403_names_the_missing_scope(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    fake_mathub.add_key("bot_reader", {READ})
    fake_mathub.add_key("bot_none", set())
    reader = make_backend(fake_mathub, http, key="bot_reader")
    assert await reader.list_pages() == []
    with pytest.raises(Forbidden, match=r"wiki\.write") as caught:
        await reader.create_page("A page", "text")
    assert "wiki.read" not in str(caught.value) and "bot_reader" not in str(caught.value)
    page = fake_mathub.add_page("P", "x")
    with pytest.raises(Forbidden, match=r"wiki\.write"):
        await reader.update_page(page.id, PageChange(content="y"))
    with pytest.raises(Forbidden, match=r"wiki\.read"):
        await make_backend(fake_mathub, http, key="bot_none").get_page(page.id)
    assert fake_mathub.page(page.id).content == "x"


async def test_404_page_and_project(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    backend = make_backend(fake_mathub, http)
    with pytest.raises(NotFound, match="not found"):
        await backend.get_page("no-such-page")
    with pytest.raises(NotFound):
        await backend.get_page("../../projects/x")  # quoted into one path segment, not a traversal
    assert all(r.path.startswith("/api/bot/v1/wiki/") for r in fake_mathub.requests)
    with pytest.raises(NotFound):
        await backend.update_page("gone", PageChange(content="x"))
    other = MatHubBackend(
        http,
        api_key=DEFAULT_KEY,
        base_url=fake_mathub.url,
        project="no-such-project",
        write_limiter=FakeLimiter(),
    )
    with pytest.raises(NotFound, match="MATHUB_PROJECT"):
        await other.list_pages()


async def test_400_is_not_retried_and_says_why(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    fake_mathub.fail_next(1, 400)
    with pytest.raises(BadRequest, match="HTTP 400") as caught:
        await make_backend(fake_mathub, http, sleeps=sleeps).list_pages()
    assert caught.value.status == 400 and sleeps.calls == [] and fake_mathub.count() == 1
    with pytest.raises(BadRequest, match="title"):
        await make_backend(fake_mathub, http).create_page("   ", "content")


async def test_429_honours_retry_after_then_succeeds(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    fake_mathub.fail_next(1, 429, retry_after="7")
    ref = await make_backend(fake_mathub, http, sleeps=sleeps).create_page("Rate limited once", "x")
    assert sleeps.calls == [7.0]
    assert fake_mathub.page(ref.id).title == "Rate limited once"


async def test_429_with_a_long_retry_after_is_not_waited_out(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    fake_mathub.fail_next(1, 429, retry_after="600")
    with pytest.raises(RateLimited) as caught:
        await make_backend(fake_mathub, http, sleeps=sleeps).list_pages()
    assert caught.value.retry_after == 600.0 and sleeps.calls == []


async def test_500_is_retried_for_reads(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    page = fake_mathub.add_page("P", "x")
    fake_mathub.fail_next(2, 500)
    assert (await make_backend(fake_mathub, http, sleeps=sleeps).get_page(page.id)).content == "x"
    assert len(sleeps.calls) == 2
    fake_mathub.fail_next(10, 503)
    with pytest.raises(Unavailable, match="HTTP 503"):
        await make_backend(fake_mathub, http, sleeps=sleeps).get_page(page.id)


async def test_create_after_a_lost_response_does_not_duplicate(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    backend = make_backend(fake_mathub, http)
    fake_mathub.lose_next_response("POST", 500)
    with pytest.raises(Unavailable):  # POST is not blindly repeated: it may have landed
        await backend.create_page("Thread: VPN setup", "the transcript")
    assert fake_mathub.count("POST") == 1
    ref = await backend.create_page("Thread: VPN setup", "the transcript")  # e.g. the outbox retrying
    assert [p.id for p in fake_mathub.pages()] == [ref.id]
    assert fake_mathub.count("POST") == 1


@pytest.mark.parametrize(
    "change",
    [PageChange(rewrite=lambda c: c + "\n+ mine"), PageChange(content="start\n+ mine")],
    ids=["rewrite", "content"],
)
async def test_patch_after_a_lost_response_is_not_applied_twice(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, change: PageChange
) -> None:
    page = fake_mathub.add_page("P", "start")
    fake_mathub.lose_next_response("PATCH", 502)
    # The PATCH lands but its reply is lost; the retry meets our own new version (409), which is success.
    await make_backend(fake_mathub, http).update_page(page.id, change)
    assert fake_mathub.page(page.id).content == "start\n+ mine"
    assert fake_mathub.count("PATCH") == 2 and fake_mathub.count("PATCH", 409) == 1


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ("<html>Bad gateway</html>", "/wiki"),
        ('{"data": "not a list"}', "/wiki"),
        ('{"data": [{"slug": "no-id-or-title"}]}', "/wiki"),
        ("[]", "/wiki"),
    ],
)
async def test_malformed_list_is_bad_response(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, body: str, route: str
) -> None:
    fake_mathub.set_raw_response(body, route=route)
    with pytest.raises(BadResponse, match="MatHub"):
        await make_backend(fake_mathub, http).list_pages()


@pytest.mark.parametrize(
    "body",
    ['{"id": "x", "title": "T"}', '{"data": {"id": "x"}}', "null", '{"id": "x", "title": "T", "content": 5}'],
)
async def test_malformed_page_is_bad_response(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, body: str
) -> None:
    page = fake_mathub.add_page("P", "x")
    fake_mathub.set_raw_response(body, route="/wiki/")
    with pytest.raises(BadResponse):
        await make_backend(fake_mathub, http).get_page(page.id)


async def test_network_errors_and_timeouts_become_unavailable(http: httpx.AsyncClient) -> None:
    server = FakeMatHub().start()
    url = server.url
    server.stop()
    dead = MatHubBackend(
        http, api_key=DEFAULT_KEY, base_url=url, project="p", write_limiter=FakeLimiter(), sleep=Sleeps()
    )
    with pytest.raises(Unavailable) as caught:
        await dead.list_pages()
    assert DEFAULT_KEY not in str(caught.value)
    with FakeMatHub() as slow:
        slow.set_latency(0.5)
        async with httpx.AsyncClient(timeout=0.1) as impatient:
            with pytest.raises(Unavailable, match="in time"):
                await make_backend(slow, impatient, retry_policy=RetryPolicy(error_attempts=2)).list_pages()


# ------------------------------------------------------------------ optimistic locking


async def test_409_refetches_reapplies_and_keeps_the_other_editors_text(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    page = fake_mathub.add_page("Team notes", "# Notes\n\nfirst")
    fake_mathub.inject_concurrent_edit(page.id, "\n\nAlice's paragraph.")
    change = PageChange(
        rewrite=lambda content: content + "\n\n## Saved thread\n\nBob: hi", summary="Saved thread"
    )
    await make_backend(fake_mathub, http).update_page(page.id, change)
    final = fake_mathub.page(page.id)
    assert final.content == "# Notes\n\nfirst\n\nAlice's paragraph.\n\n## Saved thread\n\nBob: hi"
    assert final.version == 3
    assert [(r.status, r.body["version"]) for r in fake_mathub.requests if r.method == "PATCH"] == [
        (409, 1),
        (200, 2),
    ]
    assert final.history[-1][2] == "Saved thread"


async def test_three_conflicts_then_success(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    page = fake_mathub.add_page("P", "base")
    fake_mathub.inject_concurrent_edit(page.id, "+other", times=3)
    await make_backend(fake_mathub, http).update_page(page.id, PageChange(rewrite=lambda c: c + "+mine"))
    assert fake_mathub.page(page.id).content == "base+other+other+other+mine"


async def test_four_conflicts_fail_clearly_and_lose_nothing(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    page = fake_mathub.add_page("P", "base")
    fake_mathub.inject_concurrent_edit(page.id, "+other", times=4)
    change = PageChange(rewrite=lambda c: c + "+mine")
    backend = make_backend(fake_mathub, http)
    with pytest.raises(VersionConflict) as caught:
        await backend.update_page(page.id, change)
    message = str(caught.value)
    assert "4 edits in a row" in message and "not applied" in message and caught.value.status == 409
    # Nobody's text was overwritten, ours is not half-applied, the other editor's four edits are all there.
    assert fake_mathub.page(page.id).content == "base+other+other+other+other"
    assert fake_mathub.count("PATCH") == 4 and fake_mathub.count("PATCH", 409) == 4
    # The caller still holds the change; retrying it later (as the outbox does) applies it.
    await backend.update_page(page.id, change)
    assert fake_mathub.page(page.id).content == "base+other+other+other+other+mine"


async def test_replacing_content_is_never_retried_over_someone_elses_edit(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    page = fake_mathub.add_page("P", "base")
    fake_mathub.inject_concurrent_edit(page.id, "+alice")
    with pytest.raises(VersionConflict, match="nothing was overwritten"):
        await make_backend(fake_mathub, http).update_page(page.id, PageChange(content="replacement"))
    assert fake_mathub.page(page.id).content == "base+alice"


async def test_title_and_tags_cannot_be_sent(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    page = fake_mathub.add_page("Old title", "x")
    backend = make_backend(fake_mathub, http)
    with pytest.raises(Unsupported, match="rename"):
        await backend.update_page(page.id, PageChange(title="New title"))
    await backend.update_page(page.id, PageChange(title="New title", tags=("a",), content="y"))
    assert (fake_mathub.page(page.id).title, fake_mathub.page(page.id).content) == ("Old title", "y")
    writes = fake_mathub.count("PATCH")
    await backend.update_page(page.id, PageChange(content="y"))  # unchanged content: no write spent
    assert fake_mathub.count("PATCH") == writes


# ------------------------------------------------------------------ slugs


async def test_slug_collisions_get_suffixes(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    backend = make_backend(fake_mathub, http)
    refs = [await backend.create_page("Serre Spectral Sequence", f"version {n}") for n in range(3)]
    slugs = [fake_mathub.page(ref.id).slug for ref in refs]
    assert slugs == ["serre-spectral-sequence", "serre-spectral-sequence-2", "serre-spectral-sequence-3"]
    assert refs[2].url == "https://mathub.example/p/algebraic-topology/wiki/serre-spectral-sequence-3"
    assert fake_mathub.count("POST", 201) == 3 and fake_mathub.count("POST", 409) == 0  # no write wasted


@pytest.mark.parametrize("taken_status", [409, 400])
async def test_slug_taken_between_listing_and_create(http: httpx.AsyncClient, taken_status: int) -> None:
    with FakeMatHub(slug_taken_status=taken_status) as server:
        server.add_page("Existing", slug="k-g-n")
        server.add_page("Existing 2", slug="k-g-n-2")
        # The listing the backend reads is stale (pages created since): the server's answer must win.
        server.set_raw_response('{"data": [], "limit": 100, "offset": 0}', route="/projects/")
        ref = await make_backend(server, http).create_page("K(G, n)", "Eilenberg–MacLane")
        assert server.page(ref.id).slug == "k-g-n-3"
        assert server.count("POST", taken_status) == 2


async def test_slug_attempts_are_bounded(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    for n in range(1, 4):
        fake_mathub.add_page("x", slug="busy" if n == 1 else f"busy-{n}")
    fake_mathub.set_raw_response('{"data": [], "limit": 100, "offset": 0}', route="/projects/")
    with pytest.raises(BadRequest, match="free slug"):
        await make_backend(fake_mathub, http, max_slug_attempts=3).create_page("Busy", "c")


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("🙂🙂🙂", "page"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", "page"),
        ("<script>alert(1)</script>", "script-alert-1-script"),
        ("Über   Straße\n\tnewline", "uber-strasse-newline"),
        ("Привет", "page"),
        ("@everyone <!channel>", "everyone-channel"),
    ],
)
async def test_hostile_titles_give_safe_slugs(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient, title: str, slug: str
) -> None:
    ref = await make_backend(fake_mathub, http).create_page(title, "body")
    created = fake_mathub.page(ref.id)
    assert created.slug == slug and created.title == title.strip()


async def test_thousand_character_title(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    title = "Spectral " * 111 + "x"
    assert len(title) == 1000
    backend = make_backend(fake_mathub, http)
    first = fake_mathub.page((await backend.create_page(title, "a")).id)
    second = fake_mathub.page((await backend.create_page(title, "b")).id)
    assert first.slug == "-".join(["spectral"] * 9)  # 80 characters, cut at a word boundary
    assert second.slug == "-".join(["spectral"] * 8) + "-2" and first.title == title


# ------------------------------------------------------------------ the write limiter


async def test_twelve_writes_in_a_row_draw_no_429(fast_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    """The real limit is 5 writes/min (server 60 s, client limiter 62 s). Here the same limiter logic runs on a
    0.25 s server window and a 0.3 s client window (see FAST_SERVER_WINDOW: a stalled request on a busy machine
    still cannot make six writes arrive within one server window), so the property (the limiter queues writes
    instead of letting the server refuse them) is proven in well under a second instead of two minutes."""
    sleeps = Sleeps()
    backend = make_backend(fast_mathub, http, sleeps=sleeps)
    page = fast_mathub.add_page("Log", "")
    started = time.monotonic()
    refs = [await backend.create_page(f"Saved thread {n}", f"body {n}") for n in range(6)]
    for n in range(6):
        await backend.update_page(page.id, PageChange(rewrite=lambda c, n=n: c + f"\nline {n}"))
    elapsed = time.monotonic() - started
    assert len(refs) == 6 and len(fast_mathub.pages()) == 7
    assert fast_mathub.page(page.id).content == "".join(f"\nline {n}" for n in range(6))
    assert fast_mathub.count(status=429) == 0 and sleeps.calls == []
    assert elapsed >= 2 * FAST_CLIENT_WINDOW * 0.95  # 12 writes at 5 per window: two full waits


async def test_concurrent_writers_share_one_budget(fast_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    # Two writers on the same key (e.g. Slack's and Discord's saves) draw from the key's one limiter, as the
    # composition root hands it out.
    limiter = build_write_limiter(DEFAULT_KEY, 5, window=FAST_CLIENT_WINDOW)
    one = make_backend(fast_mathub, http, write_limiter=limiter)
    two = make_backend(fast_mathub, http, write_limiter=limiter)
    titles = [f"Concurrent {n}" for n in range(12)]
    await asyncio.gather(*((one if n % 2 else two).create_page(t, t) for n, t in enumerate(titles)))
    assert fast_mathub.count(status=429) == 0
    assert sorted(p.title for p in fast_mathub.pages()) == sorted(titles)


async def test_without_the_limiter_the_server_refuses(
    fake_mathub: FakeMatHub, http: httpx.AsyncClient
) -> None:
    # The control experiment: the same burst with no limiter draws 429s (here against the real 60 s window, so
    # it cannot depend on how fast this machine is); the retry policy honours Retry-After, then gives up.
    sleeps = Sleeps()
    backend = make_backend(fake_mathub, http, sleeps=sleeps, write_limiter=FakeLimiter())
    with pytest.raises(RateLimited) as caught:
        for n in range(6):
            await backend.create_page(f"Unlimited {n}", "x")
    assert fake_mathub.count(status=429) >= 1 and len(fake_mathub.pages()) == 5
    assert sleeps.calls and all(55 <= s <= 60 for s in sleeps.calls)  # Retry-After from the server's window
    assert caught.value.retry_after is not None and caught.value.retry_after > 50


async def test_errors_are_all_knowledgebase_errors(fake_mathub: FakeMatHub, http: httpx.AsyncClient) -> None:
    # Whatever goes wrong, callers catch one base class (and never an httpx exception).
    fake_mathub.set_raw_response("not json at all", route="/projects/")
    with pytest.raises(KnowledgeBaseError):
        await make_backend(fake_mathub, http).create_page("t", "c")
