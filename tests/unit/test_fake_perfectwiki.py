"""The fake Perfect Wiki server speaks the documented wire protocol (raw httpx, sync, no kbbot code)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.perfectwiki import FakePerfectWiki
from tests.limiting import SimClock


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def api(fake: FakePerfectWiki, path: str) -> str:
    return f"{fake.url}/public-api/v1{path}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_url_shape_and_common_fields(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    assert fake_pw.url.startswith("http://127.0.0.1:") and fake_pw.url.endswith("/api")
    body = client.get(api(fake_pw, "/knowledgebase"), headers=auth(fake_pw.token)).json()
    assert body == {
        "knowledgebase": {"name": "Engineering Docs"},
        "pages": [],
        "rateLimit": {"requestsLeftSecond": 9, "requestsLeftMinute": 59},
    }


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer wrong", "Token " + "x" * 40])
def test_bad_or_missing_token_is_401_json(
    client: httpx.Client, fake_pw: FakePerfectWiki, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.get(api(fake_pw, "/knowledgebase"), headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()


def test_list_shows_id_title_tags_only(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    fake_pw.seed_pages([{"id": "abc123", "title": "Getting Started", "content": "<p>hi</p>", "tags": ["x"]}])
    pages = client.get(api(fake_pw, "/knowledgebase"), headers=auth(fake_pw.token)).json()["pages"]
    assert pages == [{"id": "abc123", "title": "Getting Started", "tags": ["x"]}]


def test_create_and_update_shapes(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    created = client.post(api(fake_pw, "/page"), headers=auth(fake_pw.token), json={"title": "T"}).json()
    assert created["message"] == "acknowledged" and set(created["page"]) == {"id"}
    page_id = created["page"]["id"]
    updated = client.post(api(fake_pw, f"/page/{page_id}"), headers=auth(fake_pw.token), json={"tags": ["a"]})
    assert updated.json()["message"] == "acknowledged" and "page" not in updated.json()
    assert fake_pw.page(page_id) == {"id": page_id, "title": "T", "content": "", "tags": ["a"]}
    missing = client.post(api(fake_pw, "/page/nope"), headers=auth(fake_pw.token), json={"title": "x"})
    assert missing.status_code == 404


def test_unknown_routes_and_methods_are_404(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    for method, path in [
        ("GET", "/nothing"),
        ("PUT", "/page/1"),
        ("GET", "/page"),
        ("DELETE", "/knowledgebase"),
    ]:
        assert client.request(method, api(fake_pw, path), headers=auth(fake_pw.token)).status_code == 404


def test_sliding_window_429_and_recovery(client: httpx.Client) -> None:
    # The documented limits (10 requests per second, 60 per minute, sliding) on a simulated clock.
    clock = SimClock()
    with FakePerfectWiki(clock=clock) as fake:

        def status() -> int:
            return client.get(api(fake, "/knowledgebase"), headers=auth(fake.token)).status_code

        assert [status() for _ in range(11)] == [200] * 10 + [429]
        limited = client.get(api(fake, "/knowledgebase"), headers=auth(fake.token))
        assert limited.status_code == 429 and "error" in limited.json()
        assert "Retry-After" not in limited.headers  # not promised by the documentation
        clock.advance(0.999)
        assert status() == 429  # a refused request is not counted, and the window still holds ten
        clock.advance(0.001)
        assert status() == 200
        for _ in range(4):  # 10 + 1 + 4 × 10 = 51 in the minute
            clock.advance(1.0)
            assert [status() for _ in range(10)] == [200] * 10
        clock.advance(1.0)
        # The 60th of the minute is the last one, although this second has room for one more.
        assert [status() for _ in range(10)] == [200] * 9 + [429]
        clock.advance(54.0)  # the first second's ten leave the minute, sixty seconds after they came
        assert status() == 200
        assert fake.stats().rate_limited == 4


def test_retry_after_header_when_configured(client: httpx.Client) -> None:
    with FakePerfectWiki() as fake:
        fake.set_rate_limits(1, 100, retry_after=2)
        client.get(api(fake, "/knowledgebase"), headers=auth(fake.token))
        assert client.get(api(fake, "/knowledgebase"), headers=auth(fake.token)).headers["Retry-After"] == "2"


def test_unauthenticated_requests_do_not_use_the_budget(client: httpx.Client) -> None:
    with FakePerfectWiki(per_second=1) as fake:
        for _ in range(3):
            client.get(api(fake, "/knowledgebase"))
        assert client.get(api(fake, "/knowledgebase"), headers=auth(fake.token)).status_code == 200


def test_seeded_failure_rate_is_reproducible(client: httpx.Client) -> None:
    def run() -> list[int]:
        with FakePerfectWiki(per_second=1000, per_minute=1000) as fake:
            fake.set_failure_rate(0.5, seed=42)
            return [
                client.get(api(fake, "/knowledgebase"), headers=auth(fake.token)).status_code
                for _ in range(20)
            ]

    first, second = run(), run()
    assert first == second
    assert 3 <= first.count(500) <= 17 and 200 in first


def test_latency_per_endpoint(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    fake_pw.set_latency(30, endpoint="query")
    assert client.get(api(fake_pw, "/knowledgebase"), headers=auth(fake_pw.token)).status_code == 200
    with pytest.raises(httpx.ReadTimeout):  # 30 s late: the client gives up long before
        client.post(api(fake_pw, "/knowledgebase/query"), headers=auth(fake_pw.token), json={"q": "x"},
                    timeout=httpx.Timeout(10, read=0.2))


async def test_hold_keeps_responses_until_released(fake_pw: FakePerfectWiki) -> None:
    fake_pw.hold("query")
    async with httpx.AsyncClient(timeout=10) as http:
        listed = await http.get(api(fake_pw, "/knowledgebase"), headers=auth(fake_pw.token))
        assert listed.status_code == 200  # other endpoints are not held
        queries = [
            asyncio.create_task(http.post(api(fake_pw, "/knowledgebase/query"), headers=auth(fake_pw.token),
                                          json={"q": q}))
            for q in ("vpn", "expenses")
        ]
        await fake_pw.held(2)
        assert not any(q.done() for q in queries)  # both are held at the server, not on their way
        assert fake_pw.stats().queries == 0  # counted once answered
        fake_pw.release()
        assert [(await q).status_code for q in queries] == [200, 200]
        later = await http.post(api(fake_pw, "/knowledgebase/query"), headers=auth(fake_pw.token), json={"q": "x"})
        assert later.status_code == 200 and fake_pw.stats().queries == 3


def test_query_validation_and_counting(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    for body in ({}, {"q": ""}, {"q": 5}):
        response = client.post(api(fake_pw, "/knowledgebase/query"), headers=auth(fake_pw.token), json=body)
        assert response.status_code == 400
    fake_pw.set_ai_quota(0)
    response = client.post(
        api(fake_pw, "/knowledgebase/query"), headers=auth(fake_pw.token), json={"q": "hi"}
    )
    assert response.status_code == 402
    stats = fake_pw.stats()
    assert (stats.queries, stats.billed_queries, stats.quota_exceeded) == (1, 0, 1)
    assert [entry.status for entry in stats.log] == [400, 400, 400, 402]


def test_an_unanswerable_question_is_an_empty_result(client: httpx.Client, fake_pw: FakePerfectWiki) -> None:
    # The query response's documented shape (shared/api/perfectwiki-public-api.txt, "aiBotResponse":
    # response, relatedPages, isEmptyResult), with isEmptyResult true and no pages when the AI finds nothing.
    fake_pw.seed_pages([{"title": "VPN setup", "content": "<p>Install WireGuard.</p>"}])
    fake_pw.ai_cannot_answer("VPN on Linux")

    def ask(q: str) -> dict[str, Any]:
        response = client.post(api(fake_pw, "/knowledgebase/query"), headers=auth(fake_pw.token), json={"q": q})
        assert response.status_code == 200 and set(response.json()) == {"knowledgebase", "aiBotResponse",
                                                                        "rateLimit"}
        bot: dict[str, Any] = response.json()["aiBotResponse"]
        assert set(bot) == {"response", "relatedPages", "isEmptyResult"}
        return bot

    assert not ask("How do I set up the VPN?")["isEmptyResult"]
    empty = ask("How do I set up the vpn on linux?")
    assert empty["isEmptyResult"] and empty["relatedPages"] == []


def test_regenerate_invalidates_only_that_token(client: httpx.Client) -> None:
    with FakePerfectWiki(extra_tokens=["other"]) as fake:
        old = fake.token
        new = fake.regenerate()
        assert fake.token == new != old
        assert client.get(api(fake, "/knowledgebase"), headers=auth(old)).status_code == 401
        assert client.get(api(fake, "/knowledgebase"), headers=auth(new)).status_code == 200
        assert client.get(api(fake, "/knowledgebase"), headers=auth("other")).status_code == 200


def test_stop_does_not_wait_for_stalled_requests(client: httpx.Client) -> None:
    fake = FakePerfectWiki().start()
    fake.stall(30, count=None)
    with pytest.raises(httpx.HTTPError):
        client.get(api(fake, "/knowledgebase"), headers=auth(fake.token), timeout=0.1)
    fake.stop()  # would raise after its own 10 s guard if it waited for the 30 s stall


async def test_idle_waits_for_a_request_whose_client_gave_up(fake_pw: FakePerfectWiki) -> None:
    # As with a real server, a create the client stopped waiting for still happens; idle() waits for it.
    fake_pw.hold("create")
    async with httpx.AsyncClient(timeout=10) as http:
        post = asyncio.create_task(http.post(api(fake_pw, "/page"), json={"title": "T", "content": "<p>x</p>"},
                                             headers=auth(fake_pw.token)))
        await fake_pw.held()  # the whole request has arrived…
        post.cancel()  # …and the client gives up waiting for the answer
        with pytest.raises(asyncio.CancelledError):
            await post
    fake_pw.release()
    await fake_pw.idle()
    assert fake_pw.stats().per_endpoint["create"] == 1 and len(fake_pw.pages()) == 1
