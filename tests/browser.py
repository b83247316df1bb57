"""Headless Chromium driven over the DevTools protocol (CDP) with aiohttp's websocket client.

Debian's ``chromium`` (``.ci/run`` installs it when missing). :func:`chromium_binary` is None where there is no
browser: tests then skip with that reason. Everything stays on 127.0.0.1: the browser listens on a random
DevTools port and is only sent to the test's own server.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


class Page:
    """One tab: send commands, collect events (console errors, exceptions, dialogs, load)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._replies.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
                continue
            self.events.append(data)
            for method, waiter in list(self._waiters):
                if data.get("method") == method and not waiter.done():
                    waiter.set_result(data)
                    self._waiters.remove((method, waiter))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        return await future

    def expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next ``method`` event; create it *before* the command that causes it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, future))
        return future

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.send("Page.captureScreenshot", format="png",
                                                 captureBeyondViewport=True))["data"])
        path.write_bytes(data)
        return data

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, failed loads and dialogs (an ``alert`` would be one)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params.get('errorText')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found

    async def close(self) -> None:
        self._reader.cancel()
        await self._ws.close()


@asynccontextmanager
async def headless_chromium(binary: str, profile: Path) -> AsyncIterator[Page]:
    """A headless browser with one blank tab, closed (and its process reaped) on exit."""
    process = await asyncio.create_subprocess_exec(
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
        "--window-size=1280,900", "--hide-scrollbars", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        endpoint = None
        while endpoint is None:  # the browser prints its DevTools address once it listens
            line = await process.stderr.readline()
            if not line:
                raise RuntimeError(f"chromium exited before listening (exit code {await process.wait()})")
            if match := _LISTENING.search(line):
                endpoint = match.group(1).decode()
        http_base = "http://" + endpoint.split("//", 1)[1].split("/", 1)[0]
        drain = asyncio.create_task(process.stderr.read())  # keep the pipe from filling up
        async with aiohttp.ClientSession() as session:
            async with session.get(http_base + "/json/list") as response:
                targets = await response.json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            ws = await session.ws_connect(page_url, max_msg_size=64 * 1024 * 1024)
            page = Page(ws)
            try:
                yield page
            finally:
                await page.close()
        drain.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
