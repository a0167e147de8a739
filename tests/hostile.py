"""A raw-socket HTTP server for hostile answers the simulator would never send (tests only).

Each connection's request is read (headers and a Content-Length body), counted, and answered by a function that
writes whatever bytes it likes to the socket. Bounded: at most ``max_connections`` connections and ``lifetime``
seconds, listening on 127.0.0.1 only.

With ``tls=`` (a server-side :class:`ssl.SSLContext`) each connection is TLS: the handshake runs in the
connection's own thread and ``respond`` writes to the TLS socket (each ``sendall`` its own TLS record), so the
same hostile answers reach an ``https://`` client. ``handshake=False`` never answers the client's hello instead.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

Respond = Callable[[socket.socket, bytes], None]


class RawServer:
    """``with RawServer(respond) as server:`` then send requests to ``server.url``."""

    def __init__(self, respond: Respond | bytes, *, max_connections: int = 64, lifetime: float = 90.0,
                 tls: ssl.SSLContext | None = None, handshake: bool = True) -> None:
        self._respond: Respond = respond if callable(respond) else (lambda sock, _req, data=respond: sock.sendall(data))
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.tls = tls
        # False: read the client's TLS hello and never answer it (a handshake stalled half way), until the client
        # goes away, the server stops or its lifetime ends.
        self.handshake = handshake
        self._ends = time.monotonic() + lifetime
        self.requests: list[bytes] = []
        self.hellos: list[bytearray] = []  # with handshake=False: what each connection sent (its TLS hello)
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
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

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
        self._ends = time.monotonic() + self.lifetime
        while not self._stop.is_set() and time.monotonic() < self._ends and len(self._workers) < self.max_connections:
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        if self.tls is not None:
            if not self.handshake:
                with conn:
                    self._hold_hello(conn)
                return
            try:  # in this connection's thread: a client that stalls its own handshake holds no one else
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # ssl.SSLError included: e.g. the client refused our certificate
                conn.close()
                return
        with conn:
            try:
                while not self._stop.is_set():  # keep-alive: one connection may carry several requests
                    request = _read_request(conn)
                    if request is None:
                        return
                    self.requests.append(request)
                    self._respond(conn, request)
            except OSError:
                return

    def _hold_hello(self, conn: socket.socket) -> None:
        """Read what the client sends (its TLS hello) and answer nothing, until it hangs up or the server ends."""
        conn.settimeout(0.05)
        hello = bytearray()
        self.hellos.append(hello)
        while not self._stop.is_set() and time.monotonic() < self._ends:
            try:
                data = conn.recv(65536)
                if not data:
                    return  # the client gave up
                hello += data
            except TimeoutError:
                continue
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


def trickling_server(data: bytes, every: float, *, head: bytes = b"", limit: float = 60.0,
                     tls: ssl.SSLContext | None = None) -> RawServer:
    """A server that sends ``head`` at once, then ``data`` one byte every ``every`` seconds (until the client
    goes away, the server stops or ``limit`` seconds pass); over TLS with ``tls=``."""
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

    server = RawServer(respond, tls=tls)
    return server


def silent_server(*, limit: float = 60.0, tls: ssl.SSLContext | None = None) -> RawServer:
    """A server that reads each request and never answers it (until the client goes away, the server stops or
    ``limit`` seconds pass); over TLS with ``tls=``, after a complete handshake."""
    server: RawServer

    def respond(sock: socket.socket, _request: bytes) -> None:
        sock.settimeout(0.05)
        ends = time.monotonic() + limit
        while not server.stopped and time.monotonic() < ends:
            try:
                if not sock.recv(65536):
                    break  # the client gave up
            except TimeoutError:
                continue
        sock.close()

    server = RawServer(respond, tls=tls)
    return server
