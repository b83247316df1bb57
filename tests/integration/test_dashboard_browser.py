"""The admin dashboard in a real browser (headless Chromium over CDP): the gaps table, the charts, no console
errors, no script run from a question; a screenshot is saved under the test's tmp dir."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.browser import chromium_binary, headless_chromium
from tests.dashboard_support import TOKEN, XSS, serve_dashboard

BINARY = chromium_binary()
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="no Chromium: apt-get install chromium (.ci/run installs it when it can)"
)


async def test_dashboard_renders_in_chromium(tmp_path: Path) -> None:
    assert BINARY is not None
    async with serve_dashboard(tmp_path) as served, headless_chromium(BINARY, tmp_path / "profile") as page:
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        auth = "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode()
        await page.send("Network.setExtraHTTPHeaders", headers={"Authorization": auth})
        loaded = page.expect("Page.loadEventFired")
        await page.send("Page.navigate", url=served.url + "/admin")
        await loaded

        assert await page.evaluate("document.title") == "Acme wiki admin"
        rows = await page.evaluate(
            "[...document.querySelectorAll('#gaps-table tbody tr')].map(r => r.cells[0].innerText + '|' + "
            "r.cells[1].innerText)"
        )
        assert rows[0].startswith("12|") and "meeting room" in rows[0]
        assert any(row.endswith("|" + XSS) for row in rows)  # the question, as text
        assert await page.evaluate("document.querySelectorAll('script').length") == 0
        # The charts are drawn: SVG with a real size and one bar per day and series.
        width = await page.evaluate("document.querySelector('#chart-questions svg').getBoundingClientRect().width")
        assert width > 300
        bars = await page.evaluate("document.querySelectorAll('#chart-questions svg .rect').length")
        assert bars >= 30
        assert await page.evaluate("document.querySelectorAll('#chart-ai svg .rect').length") >= 30

        png = await page.screenshot(tmp_path / "dashboard.png")
        assert png.startswith(b"\x89PNG") and len(png) > 20_000
        assert page.problems() == []  # no console errors, no CSP violation, no failed load, no alert()


async def test_the_browser_is_asked_for_a_password(tmp_path: Path) -> None:
    assert BINARY is not None
    async with serve_dashboard(tmp_path, seeded=False) as served, headless_chromium(BINARY, tmp_path / "p") as page:
        await page.send("Page.enable")
        await page.send("Network.enable")
        response = page.expect("Network.responseReceived")
        loaded = page.expect("Page.loadEventFired")
        await page.send("Page.navigate", url=served.url + "/admin")
        status = (await response)["params"]["response"]["status"]
        await loaded
        assert status == 401
        assert "<table" not in await page.evaluate("document.documentElement.outerHTML")
