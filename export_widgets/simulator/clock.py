"""Clocks for the simulator's scenarios: wall time, or a :class:`FakeClock` that tests move by hand.

Task state is a pure function of (spec, clock reading), so a test that owns the clock owns the whole
scenario and never sleeps. Signature freshness is checked against the *wall* clock instead (see ``app``),
because that is what a real gateway does.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "DEFAULT_EPOCH", "FakeClock", "SystemClock"]

#: Where a :class:`FakeClock` starts unless told otherwise: 2024-06-01T12:00:00Z.
DEFAULT_EPOCH = 1717243200.0


class Clock(Protocol):
    """Anything with ``now() -> float`` (seconds since the epoch)."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock (``time.time``)."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    __call__ = now

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that only moves when told to; safe to read and move from several threads.

    >>> clock = FakeClock(1000.0)
    >>> clock.advance(2.5)
    1002.5
    """

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current fake time (seconds since the epoch)."""
        with self._lock:
            return self._now

    __call__ = now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (must be >= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a FakeClock only moves forward; got advance({seconds})")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, epoch: float) -> None:
        """Jump to ``epoch`` (backwards too, for tests that replay a moment)."""
        with self._lock:
            self._now = float(epoch)

    def __repr__(self) -> str:
        return f"FakeClock({self.now()!r})"
