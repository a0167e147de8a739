"""A thread-safe record of every request the simulator saw (tests assert on it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["RequestLog", "RequestRecord"]


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator judged it.

    ``time`` is the scenario clock, ``wall_time`` the real one. ``status`` is None when no answer was sent
    (``drop``/``timeout`` faults). ``auth_ok`` is None for requests that never reached authentication
    (unknown route). ``connection_id`` numbers TCP connections, so keep-alive reuse is visible.
    """

    time: float
    wall_time: float
    method: str
    path: str
    provider: str | None
    operation: str | None
    task_id: str | None
    status: int | None
    auth_ok: bool | None
    fault: str | None = None
    connection_id: int = 0


class RequestLog:
    """Append-only, lock-protected list of :class:`RequestRecord` (iterate, ``len``, index, ``clear``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        """Add one record."""
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records so far."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._records.clear()

    def count(self, task_id: str | None = None, provider: str | None = None) -> int:
        """How many requests matched ``task_id`` and/or ``provider`` (all when both are None)."""
        return sum(1 for r in self.snapshot()
                   if (task_id is None or r.task_id == task_id) and (provider is None or r.provider == provider))

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __getitem__(self, index: int) -> RequestRecord:
        with self._lock:
            return self._records[index]

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} requests)"
