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
    ``operation`` is the vendor's name (``GetExportTasksStatusOfDataset``, ``CreateExportTask``, ...);
    ``kind`` the provider-neutral one: ``"status"``, ``"list"``, ``"create"`` or ``"download"`` (None for
    unknown routes). For a create, ``task_id`` is the id it created (None if it created nothing).
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
    kind: str | None = None


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

    def count(self, task_id: str | None = None, provider: str | None = None, operation: str | None = None,
              status: int | None = None) -> int:
        """How many requests matched every filter given (all requests when none is).

        ``operation`` is a kind (``"status"``, ``"list"``, ``"create"``, ``"download"``) or a vendor operation
        name; ``status`` an HTTP status (requests left unanswered have none).
        """
        return sum(1 for r in self.snapshot()
                   if (task_id is None or r.task_id == task_id) and (provider is None or r.provider == provider)
                   and (operation is None or operation in (r.kind, r.operation))
                   and (status is None or r.status == status))

    def counts(self) -> dict[str, int]:
        """Requests per kind, e.g. ``{"list": 3, "status": 2}`` (unknown routes under ``"other"``)."""
        out: dict[str, int] = {}
        for record in self.snapshot():
            out[record.kind or "other"] = out.get(record.kind or "other", 0) + 1
        return out

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
