"""A raw-socket HTTP server for hostile answers the simulator would never send (tests only).

Each connection's request is read (headers and a Content-Length body), counted, and answered by a function that
writes whatever bytes it likes to the socket. Bounded: at most ``max_connections`` connections and ``lifetime``
seconds, listening on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

Respond = Callable[[socket.socket, bytes], None]


class RawServer:
    """``with RawServer(respond) as server:`` then send requests to ``server.url``."""

    def __init__(self, respond: Respond | bytes, *, max_connections: int = 64, lifetime: float = 90.0) -> None:
        self._respond: Respond = respond if callable(respond) else (lambda sock, _req, data=respond: sock.sendall(data))
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._workers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for worker in self._workers:
            worker.join(5)
        self._listener.close()

    def _serve(self) -> None:
        ends = time.monotonic() + self.lifetime
        while not self._stop.is_set() and time.monotonic() < ends and len(self._workers) < self.max_connections:
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                while not self._stop.is_set():  # keep-alive: one connection may carry several requests
                    request = _read_request(conn)
                    if request is None:
                        return
                    self.requests.append(request)
                    self._respond(conn, request)
            except OSError:
                return


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1_000_000:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def answer(status: str, body: bytes, *headers: str) -> bytes:
    """A well-formed HTTP/1.1 answer (keep-alive) with the given extra header lines."""
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Content-Type: application/json", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def trickling_server(data: bytes, every: float, *, head: bytes = b"", limit: float = 60.0) -> RawServer:
    """A server that sends ``head`` at once, then ``data`` one byte every ``every`` seconds (until the client
    goes away, the server stops or ``limit`` seconds pass)."""
    server: RawServer

    def respond(sock: socket.socket, _request: bytes) -> None:
        sock.sendall(head)
        ends = time.monotonic() + limit
        for byte in data:
            if server.stopped or time.monotonic() > ends:
                break
            sock.sendall(bytes([byte]))
            time.sleep(every)
        sock.close()

    server = RawServer(respond)
    return server
