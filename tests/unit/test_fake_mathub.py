"""The fake MatHub speaks the API text: these tests pin its behaviour with a plain sync httpx client, so the
backend tests that rely on it rely on something checked."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.mathub import DEFAULT_KEY, READ, FakeMatHub
from tests.limiting import SimClock


def _client(server: FakeMatHub, key: str = DEFAULT_KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=5)


def test_list_limit_default_max_and_offset(fake_mathub: FakeMatHub) -> None:
    for n in range(130):
        fake_mathub.add_page(f"Page {n}", f"content {n}")
    with _client(fake_mathub) as c:
        default = c.get(f"/projects/{fake_mathub.project}/wiki").json()
        assert default["limit"] == 20 and len(default["data"]) == 20 and default["offset"] == 0
        capped = c.get(f"/projects/{fake_mathub.project}/wiki", params={"limit": 500}).json()
        assert capped["limit"] == 100 and len(capped["data"]) == 100
        tail = c.get(f"/projects/{fake_mathub.project}/wiki", params={"limit": 100, "offset": 100}).json()
        assert [p["title"] for p in tail["data"]] == [f"Page {n}" for n in range(100, 130)]
        assert set(tail["data"][0]) == {
            "id",
            "slug",
            "title",
            "reviewStatus",
            "version",
            "createdAt",
            "updatedAt",
        }
        assert c.get(f"/projects/{fake_mathub.project}/wiki", params={"limit": "x"}).status_code == 400
        assert c.get("/projects/nope/wiki").status_code == 404


def test_auth_and_scopes(fake_mathub: FakeMatHub) -> None:
    fake_mathub.add_key("bot_readonly", {READ}, name="readonly")
    fake_mathub.add_key("bot_nothing", set(), name="nothing")
    path = f"/projects/{fake_mathub.project}/wiki"
    with _client(fake_mathub, "wrong") as c:
        assert c.get(path).status_code == 401
    with httpx.Client(base_url=fake_mathub.url) as c:
        assert c.get(path).status_code == 401
    with _client(fake_mathub, "bot_nothing") as c:
        r = c.get(path)
        assert r.status_code == 403 and "wiki.read" in r.json()["error"]
    with _client(fake_mathub, "bot_readonly") as c:
        assert c.get(path).status_code == 200
        r = c.post(path, json={"slug": "a", "title": "A", "content": "x"})
        assert r.status_code == 403 and "wiki.write" in r.json()["error"]
    assert fake_mathub.requests[-1].key == "readonly"


def test_create_get_patch_and_version_conflict() -> None:
    with FakeMatHub(writes_per_window=100) as fake_mathub, _client(fake_mathub) as c:
        path = f"/projects/{fake_mathub.project}/wiki"
        assert c.post(path, json={"slug": "a", "title": "A"}).status_code == 400
        assert c.post(path, json={"slug": "../a", "title": "A", "content": ""}).status_code == 400
        created = c.post(path, json={"slug": "a", "title": "A", "content": "one"})
        assert created.status_code == 201
        page = created.json()
        assert page["version"] == 1 and page["content"] == "one"
        dup = c.post(path, json={"slug": "a", "title": "A again", "content": "two"})
        assert dup.status_code == 409 and "Slug" in dup.json()["error"]
        got = c.get(f"/wiki/{page['id']}").json()
        assert {"id", "slug", "title", "content", "version", "createdAt", "updatedAt", "reviewStatus"} <= set(
            got
        )
        ok = c.patch(f"/wiki/{page['id']}", json={"content": "two", "version": 1, "changeSummary": "s"})
        assert ok.status_code == 200 and ok.json()["version"] == 2
        stale = c.patch(f"/wiki/{page['id']}", json={"content": "three", "version": 1})
        assert stale.status_code == 409
        assert stale.json() == {"error": "Version conflict. Fetch latest and retry."}
        assert c.patch(f"/wiki/{page['id']}", json={"content": "x"}).status_code == 400
        assert c.get("/wiki/missing").status_code == 404
        assert fake_mathub.page(page["id"]).content == "two"


def test_injected_concurrent_edit_wins_the_race(fake_mathub: FakeMatHub) -> None:
    page = fake_mathub.add_page("P", "mine")
    fake_mathub.inject_concurrent_edit(page.id, "\ntheirs")
    with _client(fake_mathub) as c:
        r = c.patch(f"/wiki/{page.id}", json={"content": "overwrite", "version": 1})
        assert r.status_code == 409
        latest = c.get(f"/wiki/{page.id}").json()
        assert latest["content"] == "mine\ntheirs" and latest["version"] == 2
        assert c.patch(f"/wiki/{page.id}", json={"content": "ok", "version": 2}).status_code == 200


def test_write_limit_429_with_retry_after_and_window(fake_mathub: FakeMatHub) -> None:
    with _client(fake_mathub) as c:
        path = f"/projects/{fake_mathub.project}/wiki"
        codes = [
            c.post(path, json={"slug": f"s{n}", "title": "T", "content": ""}).status_code for n in range(6)
        ]
        assert codes == [201] * 5 + [429]
        r = c.post(path, json={"slug": "s9", "title": "T", "content": ""})
        assert r.status_code == 429 and 55 <= int(r.headers["Retry-After"]) <= 60
        assert "error" in r.json()
        assert c.get(path).status_code == 200  # reads are not limited
    # The window slides: once the oldest write is older than the window (60 s), writing works again.
    clock = SimClock()
    with FakeMatHub(clock=clock) as server, _client(server) as c:
        path = f"/projects/{server.project}/wiki"
        for n in range(5):
            assert c.post(path, json={"slug": f"s{n}", "title": "T", "content": ""}).status_code == 201
            clock.advance(1.0)
        clock.advance(54.9)  # the first write is 59.9 s old
        refused = c.post(path, json={"slug": "s10", "title": "T", "content": ""})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        clock.advance(0.2)
        assert c.post(path, json={"slug": "s10", "title": "T", "content": ""}).status_code == 201


@pytest.mark.parametrize("wrap", [False, True])
def test_wrapping_switch_failures_and_raw(wrap: bool) -> None:
    with FakeMatHub(wrap_pages=wrap) as server, _client(server) as c:
        page = server.add_page("P", "x")
        body = c.get(f"/wiki/{page.id}").json()
        assert ("data" in body) is wrap
        server.fail_next(2, 500)
        assert [c.get(f"/wiki/{page.id}").status_code for _ in range(3)] == [500, 500, 200]
        server.set_raw_response("<html>oops</html>", content_type="text/html", route="/wiki/")
        assert c.get(f"/wiki/{page.id}").text == "<html>oops</html>"
        assert server.count("GET", 500) == 2
