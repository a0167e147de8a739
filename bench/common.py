"""Shared bits: repeated timing, the result record, and a fixed-body loopback HTTP server (the raw baseline)."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FastHandler", "FixedBodyServer", "Result", "repeat"]


@dataclass
class Result:
    """One benchmark line: the measured value, its spread over runs, and the target it is held to."""

    name: str
    value: float
    unit: str
    target: str
    ok: bool
    runs: list[float] = field(default_factory=list)
    note: str = ""

    def row(self) -> list[str]:
        spread = f"{min(self.runs):.3g}–{max(self.runs):.3g}" if self.runs else ""
        return [self.name, f"{self.value:.3g} {self.unit}", spread, self.target, "yes" if self.ok else "NO",
                self.note]


def repeat(fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    """Median and all values of ``runs`` calls of ``fn`` (each returns one measurement)."""
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


class FastHandler(BaseHTTPRequestHandler):
    """Keep-alive, TCP_NODELAY, headers and body in one send; answers ``body()`` after ``delay`` seconds."""

    protocol_version = "HTTP/1.1"
    delay = 0.0

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def body(self) -> bytes:
        return self.server.body  # type: ignore[attr-defined]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.delay:
            time.sleep(self.delay)
        body = self.body()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: keep-alive\r\n\r\n").encode()
        self.wfile.write(head + body)  # one send: no Nagle/delayed-ACK stall

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class FixedBodyServer:
    """Answers every request with the same JSON body, verifying nothing: the cheapest possible server, so
    the client-side cost of signing, parsing and normalising stands out against a raw ``requests`` call."""

    def __init__(self, body: bytes) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), FastHandler)
        self._server.daemon_threads = True
        self._server.body = body  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FixedBodyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean seconds per call of ``fn`` over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls
