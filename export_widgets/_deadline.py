"""One total deadline per HTTP request, enforced by shutting the request's socket down when it passes.

``requests``/urllib3 timeouts bound each socket operation, not the request: a server that trickles one byte a
second keeps every read short and holds the request forever. A :class:`Deadline` is armed around one request;
the connection pools of :class:`DeadlineAdapter` attach each connection they hand out to the deadline of the
calling thread, and one shared watchdog thread shuts that socket down when the deadline passes, so the blocked
read returns at once and the request fails (the caller asks :attr:`Deadline.expired` to say "timed out").
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["Deadline", "DeadlineAdapter"]

# A connection handed out before its socket exists (connect still running): look again this often.
_RECHECK_S = 0.05


class _Watchdog:
    """A single daemon thread firing the earliest armed deadline (cheaper than one timer thread per request)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, at: float, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="export-widgets-deadline", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:  # only an earlier wake-up needs the thread's attention
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                _, _, due = heapq.heappop(self._heap)
            due.fire()


_watchdog = _Watchdog()
_local = threading.local()


class Deadline:
    """The total time budget of one request; use as a context manager around the request and its body read."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._lock = threading.Lock()
        self._connections: list[Any] = []

    def remaining(self) -> float:
        """Seconds left (never below a millisecond, so it is always a valid socket timeout)."""
        return max(0.001, self.at - time.monotonic())

    def __enter__(self) -> Deadline:
        _local.deadline = self
        _watchdog.arm(self.at, self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.done = True
            self._connections.clear()
        _local.deadline = None

    def attach(self, connection: Any) -> None:
        """Watch ``connection`` (called by the pools in the requesting thread)."""
        with self._lock:
            if not self.done:
                self._connections.append(connection)

    def fire(self) -> None:
        """Shut down the sockets of the attached connections (called by the watchdog at the deadline)."""
        with self._lock:
            if self.done:
                return
            self.expired = True
            pending = False
            for connection in self._connections:
                sock = getattr(connection, "sock", None)
                if sock is None:
                    pending = True  # still connecting (bounded by the connect timeout): look again soon
                    continue
                try:
                    # The plain-socket shutdown, also for TLS: it wakes the blocked read without touching the
                    # SSL object another thread is using.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except (OSError, TypeError):
                    pass
            if not self._connections:
                pending = True
        if pending:
            _watchdog.arm(time.monotonic() + _RECHECK_S, self)


def _attach_to_current(connection: Any) -> Any:
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.attach(connection)
    return connection


class _HTTPPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _attach_to_current(super()._get_conn(timeout))


class _HTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _attach_to_current(super()._get_conn(timeout))


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections are watched by the calling thread's :class:`Deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager
