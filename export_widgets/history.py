"""A compact, append-only log of polls: one typed array per column.

A day of polling hundreds of tasks is millions of rows, so rows are not objects: each column is an
``array.array`` (about 45 bytes a poll in all), repeated strings (status, error code) are interned to small
ints, and error messages are kept sparsely, only for the polls that failed. ``frames.history`` turns the
columns into a DataFrame without a Python-level loop.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import Outcome
from .models import ExportTask, TaskState

__all__ = ["History", "HistoryColumns", "Outcome", "PollRecord"]


_STATES = tuple(TaskState)
_STATE_INDEX = {state: i for i, state in enumerate(_STATES)}
_NO_STATE = 255
_NO_COUNT = -1


@dataclass(frozen=True)
class PollRecord:
    """One poll, as read back from :class:`History` (for iteration and tests; storage is columnar)."""

    polled_at: float
    latency_s: float | None
    outcome: str
    error_code: str | None
    error_message: str | None
    state: TaskState | None
    raw_status: str | None
    progress: float | None
    finished_samples: int | None
    total_samples: int | None
    size_mb: float | None


@dataclass(frozen=True)
class HistoryColumns:
    """Consistent copies of a :class:`History`'s columns (what frames read without a Python-level loop).

    ``error_code`` and ``raw_status`` hold indexes into ``codes`` and ``statuses``; ``state`` indexes
    :class:`TaskState` members in definition order (255: no answer); counts are -1 and floats NaN when unknown;
    ``messages`` maps a row to its error message (failed polls only).
    """

    polled_at: array[float]
    latency_s: array[float]
    outcome: array[int]
    error_code: array[int]
    state: array[int]
    raw_status: array[int]
    progress: array[float]
    finished: array[int]
    total: array[int]
    size_mb: array[float]
    codes: list[str | None]
    statuses: list[str | None]
    messages: dict[int, str]

    def __len__(self) -> int:
        return len(self.polled_at)


class _Interner:
    """Maps repeated strings to small ints; index 0 is None."""

    def __init__(self) -> None:
        self.values: list[str | None] = [None]
        self._index: dict[str | None, int] = {None: 0}

    def code(self, value: str | None) -> int:
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found


class History:
    """Append-only columnar poll log of one task. Thread-safe for one writer and many readers."""

    def __init__(self, provider: str = "", task_id: str = "") -> None:
        self.provider = provider
        self.task_id = task_id
        self._lock = threading.Lock()
        self.polled_at = array("d")  # epoch seconds
        self.latency_s = array("f")  # NaN when no answer
        self.outcome = array("B")
        self.error_code = array("H")  # interned
        self.state = array("B")  # index into TaskState, 255 = none
        self.raw_status = array("H")  # interned
        self.progress = array("f")  # NaN = unknown
        self.finished = array("q")  # -1 = unknown
        self.total = array("q")
        self.size_mb = array("f")
        self.codes = _Interner()
        self.statuses = _Interner()
        self.messages: dict[int, str] = {}  # row -> error message, failed polls only

    def __len__(self) -> int:
        return len(self.polled_at)

    def record_task(self, polled_at: float, latency_s: float | None, task: ExportTask) -> None:
        """Append a successful poll."""
        with self._lock:
            self._append(polled_at, latency_s, Outcome.OK, None, task)

    def record_error(self, polled_at: float, latency_s: float | None, outcome: Outcome, code: str | None,
                     message: str) -> None:
        """Append a failed poll (the error is kept, not dropped)."""
        with self._lock:
            self.messages[len(self.polled_at)] = message
            self._append(polled_at, latency_s, outcome, code or None, None)

    def _append(self, polled_at: float, latency_s: float | None, outcome: Outcome, code: str | None,
                task: ExportTask | None) -> None:
        self.latency_s.append(math.nan if latency_s is None else latency_s)
        self.outcome.append(outcome)
        self.error_code.append(self.codes.code(code if task is None else task.error_code))
        if task is None:
            self.state.append(_NO_STATE)
            self.raw_status.append(0)
            self.progress.append(math.nan)
            self.finished.append(_NO_COUNT)
            self.total.append(_NO_COUNT)
            self.size_mb.append(math.nan)
        else:
            self.state.append(_STATE_INDEX[task.state])
            self.raw_status.append(self.statuses.code(task.raw_status))
            self.progress.append(math.nan if task.progress is None else task.progress)
            self.finished.append(_NO_COUNT if task.finished_samples is None else task.finished_samples)
            self.total.append(_NO_COUNT if task.total_samples is None else task.total_samples)
            self.size_mb.append(math.nan if task.size_mb is None else task.size_mb)
        self.polled_at.append(polled_at)  # last: readers use len(polled_at) as the committed length

    def snapshot(self) -> HistoryColumns:
        """Copies of the columns, consistent with each other (for frames and widgets)."""
        with self._lock:
            n = len(self.polled_at)
            return HistoryColumns(
                polled_at=self.polled_at[:n], latency_s=self.latency_s[:n], outcome=self.outcome[:n],
                error_code=self.error_code[:n], state=self.state[:n], raw_status=self.raw_status[:n],
                progress=self.progress[:n], finished=self.finished[:n], total=self.total[:n],
                size_mb=self.size_mb[:n], codes=list(self.codes.values), statuses=list(self.statuses.values),
                messages=dict(self.messages),
            )

    def progress_points(self) -> tuple[array[float], array[float]]:
        """Copies of the ``polled_at`` and ``progress`` columns only (what ETA and sparklines need)."""
        with self._lock:
            n = len(self.polled_at)
            return self.polled_at[:n], self.progress[:n]

    def row(self, i: int) -> PollRecord:
        """Row ``i`` (negative indexes count from the end)."""
        with self._lock:
            n = len(self.polled_at)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(i)
            latency, progress, size = self.latency_s[i], self.progress[i], self.size_mb[i]
            state = self.state[i]
            return PollRecord(
                polled_at=self.polled_at[i],
                latency_s=None if math.isnan(latency) else float(latency),
                outcome=Outcome(self.outcome[i]).label,
                error_code=self.codes.values[self.error_code[i]],
                error_message=self.messages.get(i),
                state=None if state == _NO_STATE else _STATES[state],
                raw_status=self.statuses.values[self.raw_status[i]],
                progress=None if math.isnan(progress) else float(progress),
                finished_samples=None if self.finished[i] == _NO_COUNT else self.finished[i],
                total_samples=None if self.total[i] == _NO_COUNT else self.total[i],
                size_mb=None if math.isnan(size) else float(size),
            )

    def __iter__(self) -> Iterator[PollRecord]:
        for i in range(len(self)):
            yield self.row(i)

    def nbytes(self) -> int:
        """Bytes held by the columns (excluding the small interning tables and error messages)."""
        columns = (self.polled_at, self.latency_s, self.outcome, self.error_code, self.state, self.raw_status,
                   self.progress, self.finished, self.total, self.size_mb)
        return sum(col.buffer_info()[1] * col.itemsize for col in columns)

    def __repr__(self) -> str:
        return f"History({self.provider}:{self.task_id}, {len(self)} polls)"
