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
import math
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["Deadline", "DeadlineAdapter"]

# A connection handed out before its socket exists (connect still running): look again this often.
_RECHECK_S = 0.05
# The watchdog thread exits after this long without a request in flight (and looks at least this often):
# short, so an idle kernel holds no thread of ours by the time the poller's own workers exit.
_IDLE_EXIT_S = 0.05


class _Watchdog:
    """A single daemon thread firing the earliest armed deadline (cheaper than one timer thread per request).

    A poll costs it no wake-up: the thread is told about a new deadline only when it falls before the thread's
    next planned wake-up, and it looks at the clock at least every ``_IDLE_EXIT_S``. It exits once no request
    has been in flight for that long (an idle kernel holds no thread of ours); the next request starts it again.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._live = 0  # deadlines armed and not yet done
        self._wake_at = 0.0  # when the thread looks next (monotonic)
        self._thread: threading.Thread | None = None

    def arm(self, at: float, deadline: Deadline, *, again: bool = False) -> None:
        with self._cond:
            if not again:
                self._live += 1
            heapq.heappush(self._heap, (at, next(self._order), deadline))
            if self._thread is None:
                self._wake_at = at
                self._thread = threading.Thread(target=self._run, name="export-widgets-deadline", daemon=True)
                self._thread.start()
            elif at < self._wake_at:
                self._wake_at = at
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._live -= 1

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cond:
                now = time.monotonic()
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if self._live == 0:
                    self._heap.clear()
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= _IDLE_EXIT_S:
                        self._thread = None
                        return
                else:
                    idle_since = None
                if not self._heap or self._heap[0][0] > now:
                    self._wake_at = min(self._heap[0][0] if self._heap else math.inf, now + _IDLE_EXIT_S)
                    self._cond.wait(self._wake_at - now)
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
        _watchdog.disarm()

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
            _watchdog.arm(time.monotonic() + _RECHECK_S, self, again=True)


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
