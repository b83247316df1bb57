"""A real ``redis-server`` on a random loopback port, for the Redis store tests and the two-replica test.

Not a fake: the point is to exercise the real wire protocol, Lua scripts and expiry. Tests that need it skip
with a clear reason only when the binary is absent (CI installs it in ``.ci/run``). Import the fixtures with
``from tests.fakes.redis_server import _redis_server, _redis_server_session  # noqa: F401`` to get
``redis_server`` (flushed per test) and ``redis_server_session``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import redis.asyncio as aioredis


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Starts ``redis-server`` (no persistence) on 127.0.0.1; ``.url`` is its ``redis://`` URL."""

    def __init__(self, binary: str) -> None:
        self._binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="kbbot-redis-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(5):  # a random port can be taken between choosing and binding; try a few
            self.port = free_port()
            if self._spawn():
                return self
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """Stop the server abruptly (an outage); :meth:`restart` brings it back on the same port, empty."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def restart(self) -> None:
        if not self._spawn():
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def _spawn(self) -> bool:
        self._proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self._wait_ready():
            return True
        self._proc.kill()
        self._proc.wait()
        return False

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session", name="redis_server_session")
def _redis_server_session() -> Iterator[RedisServer]:
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server binary not found (apt-get install redis-server; .ci/run installs it)")
    with RedisServer(binary) as server:
        yield server


@pytest.fixture(name="redis_server")
def _redis_server(redis_server_session: RedisServer) -> RedisServer:
    """The session's redis-server, emptied for this test."""
    redis_server_session.flush()
    return redis_server_session


async def lapse(client: aioredis.Redis, pattern: str, *, ttl_seconds: float) -> None:
    """Time passing, without waiting for it: each key matching ``pattern`` must carry the TTL the store was
    given; then Redis expires it now (1 ms left), as it would once that TTL ran out, and we wait for it to go."""
    keys = await client.keys(pattern)
    assert keys, f"no key matches {pattern}"
    for key in keys:
        assert 0 < await client.pttl(key) <= int(ttl_seconds * 1000)
        await client.pexpire(key, 1)
    while await client.exists(*keys):
        await asyncio.sleep(0.001)
