"""Makes the README's dashboard screenshot from the real dashboard (seeded test data, headless Chromium):

    .venv/bin/python -m tests.screenshot_dashboard docs/dashboard.png
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
from pathlib import Path

from tests.browser import chromium_binary, headless_chromium
from tests.dashboard_support import TOKEN, serve_dashboard


async def main(out: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        raise SystemExit("no chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        async with serve_dashboard(Path(tmp)) as served, headless_chromium(binary, Path(tmp) / "profile") as page:
            for domain in ("Page", "Network"):
                await page.send(f"{domain}.enable")
            auth = "Basic " + base64.b64encode(f"admin:{TOKEN}".encode()).decode()
            await page.send("Network.setExtraHTTPHeaders", headers={"Authorization": auth})
            loaded = page.expect("Page.loadEventFired")
            await page.send("Page.navigate", url=served.url + "/admin")
            await loaded
            # The summary, charts, gaps, quota and feedback: the per-day table below is cut off.
            bottom = await page.evaluate("document.querySelector('#per-day').getBoundingClientRect().top")
            shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                   clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 10, "scale": 1})
            out.write_bytes(base64.b64decode(shot["data"]))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
