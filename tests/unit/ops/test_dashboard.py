"""GET /admin over real HTTP: auth cases, what the page shows, escaping, and the same-origin rule."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from kbbot.ops.dashboard import authorized
from tests.dashboard_support import TOKEN, XSS, serve_dashboard


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("admin", "wrong"),
        basic("root", TOKEN),
        basic("admin", TOKEN + "x"),
        basic("admin", TOKEN[:-1]),
        basic("admin", ""),
        {"Authorization": "Bearer " + TOKEN},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()},  # no user part
        {"Authorization": "Basic"},
    ],
)
async def test_refused_without_the_right_password(tmp_path: Path, headers: dict[str, str]) -> None:
    async with serve_dashboard(tmp_path, seeded=False) as served, httpx.AsyncClient() as client:
        for path in ("/admin", "/admin/fill?q=x"):
            response = await client.get(served.url + path, headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith('Basic realm="kbbot admin"')
            assert TOKEN not in response.text and "<table" not in response.text


def test_authorized_is_exact() -> None:
    assert authorized("Basic " + base64.b64encode(b"admin:t:with:colons").decode(), "t:with:colons")
    assert authorized("basic " + base64.b64encode(b"admin:tok").decode(), "tok")
    assert not authorized(None, "tok") and not authorized("Basic " + "a" * 10_000, "tok")
    assert not authorized("Basic " + base64.b64encode("admin:tök".encode()).decode(), "tok")


async def test_the_page_shows_usage_gaps_quota_feedback_and_saves(tmp_path: Path) -> None:
    async with serve_dashboard(tmp_path) as served, httpx.AsyncClient() as client:
        response = await client.get(served.url + "/admin", headers=basic("admin", TOKEN))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none': no scripts
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Frame-Options"] == "DENY"
    page = HTMLParser(response.text)
    rows = page.css("#gaps-table tbody tr")
    first = [cell.text(strip=True) for cell in rows[0].css("td")]
    assert first[0] == "12" and "meeting room" in first[1] and first[2] == "empty"
    assert [row.css_first("td").text() for row in rows][:3] == ["12", "5", "4"]
    assert "downvoted" in response.text and "error" in rows[2].text()
    assert page.css_first("#chart-questions svg") is not None and page.css_first("#chart-ai svg") is not None
    assert "Questions per day" in response.text and "Billed AI calls per day" in response.text
    quota = page.css_first("#quota").text()
    assert "146 of 180 billed AI calls used this month" in quota and "(81%)" in quota
    assert page.css_first("#runs-out").text() == "2025-12-20"  # 34 left at 146/16 ≈ 9.1 a day
    assert page.css_first("#quota p").attributes["class"] == "warn"
    feedback = page.css_first("#feedback").text()
    assert re.search(r"helpful \(thumbs up\)\s*9", feedback)
    assert re.search(r"not helpful \(thumbs down\)\s*3", feedback)
    assert re.search(r"saves created\s*2", feedback) and re.search(r"saves queued\s*1", feedback)
    assert "cache hit rate" in page.css_first("#summary").text()


async def test_gap_questions_are_text_never_markup(tmp_path: Path) -> None:
    async with serve_dashboard(tmp_path) as served, httpx.AsyncClient() as client:
        response = await client.get(served.url + "/admin", headers=basic("admin", TOKEN))
        fill = await client.get(served.url + "/admin/fill", params={"q": XSS}, headers=basic("admin", TOKEN))
    for html in (response.text, fill.text):
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert HTMLParser(html).css("script") == []  # not one script element, pygal's removed too
    cells = [td.text() for td in HTMLParser(response.text).css("td.question")]
    assert XSS in cells  # shown as the very text that was asked
    assert XSS in HTMLParser(fill.text).css_first("#question").text()


async def test_every_src_and_href_is_same_origin(tmp_path: Path) -> None:
    async with serve_dashboard(tmp_path) as served, httpx.AsyncClient() as client:
        pages = [await client.get(served.url + path, headers=basic("admin", TOKEN))
                 for path in ("/admin", "/admin?days=7", "/admin/fill?q=vpn")]
    links = []
    for response in pages:
        tree = HTMLParser(response.text)
        for node in tree.css("[src], [href], [action], [xlink\\:href]"):
            links += [v for k, v in node.attributes.items() if k in ("src", "href", "action", "xlink:href")]
        assert "@import" not in response.text and "url(" not in response.text  # no CSS fetches either
        assert "//" not in " ".join(re.findall(r"(?:src|href)=\"([^\"]*)\"", response.text))
    assert links and all(link and link.startswith("/") and not link.startswith("//") for link in links), links
    followed = []
    async with serve_dashboard(tmp_path / "again") as served, httpx.AsyncClient() as client:
        for link in sorted({link for link in links if link.startswith("/admin")}):
            followed.append((await client.get(served.url + link, headers=basic("admin", TOKEN))).status_code)
    assert set(followed) == {200}


async def test_days_window_and_an_empty_log(tmp_path: Path) -> None:
    async with serve_dashboard(tmp_path, seeded=False, quota=None) as served, httpx.AsyncClient() as client:
        for days in ("7", "90", "0", "-5", "x" * 5000, "99999"):
            response = await client.get(served.url + "/admin", params={"days": days}, headers=basic("admin", TOKEN))
            assert response.status_code == 200
        assert "No gaps in the last 90 days" in response.text  # clamped to GAPS_RETENTION_DAYS
        assert "PERFECTWIKI_AI_QUOTA_MONTHLY" in response.text


async def test_quota_gauge_and_save_counts_in_metrics(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from kbbot.ops.http import ai_quota_refresher
    from kbbot.ops.metrics import Metrics

    async with serve_dashboard(tmp_path) as served:
        metrics = Metrics()
        await ai_quota_refresher(served.recorder.quota)(metrics)
        metrics.save("created")
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics.render()[0].decode()) for s in f.samples}
    assert samples["kbbot_ai_quota_used_ratio"] == pytest.approx(146 / 180)
    assert samples["kbbot_ai_quota_runs_out_timestamp_seconds"] == 1_766_188_800  # 2025-12-20T00:00:00Z
    assert metrics.save_counts() == {"created": 1, "updated": 0, "queued": 0, "failed": 0}


async def test_one_dashboard_per_knowledgebase(tmp_path: Path) -> None:
    async with serve_dashboard(tmp_path, second=True) as served, httpx.AsyncClient() as client:
        default = await client.get(served.url + "/admin", headers=basic("admin", TOKEN))
        hr = await client.get(served.url + "/admin", params={"kb": "hr", "days": "7"}, headers=basic("admin", TOKEN))
        missing = await client.get(served.url + "/admin", params={"kb": "<x>"}, headers=basic("admin", TOKEN))
    assert "meeting room" in default.text and "where is the HR wiki?" not in default.text
    assert "where is the HR wiki?" in hr.text and "meeting room" not in hr.text
    nav = HTMLParser(hr.text).css_first("#knowledgebases")
    assert [a.attributes["href"] for a in nav.css("a")] == ["/admin?kb=acme&days=7"]
    assert 'href="/admin?days=30&amp;kb=hr"' in hr.text
    assert missing.status_code == 404 and "&lt;x&gt;" not in missing.text and "<x>" not in missing.text
