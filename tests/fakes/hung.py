"""A server that accepts TCP connections and never answers: what a wiki behind a stuck proxy or a
half-dead load balancer looks like to a client (connect succeeds, the response never comes)."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class HungServer:
    """Listens on 127.0.0.1 (random port); every connection is accepted, read from, and never answered."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hung-server", daemon=True)
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)  # kept open, never written to
            self.accepted += 1

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        # close() alone does not wake a thread blocked in accept() on Linux (the join would wait its timeout);
        # shutdown() does: accept() fails and the thread returns.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(timeout=5)
