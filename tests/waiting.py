"""Waiting for something another thread does, without timing assertions: poll a predicate up to a generous bound."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.01) -> bool:
    """True as soon as ``predicate()`` is true; its last value after ``timeout`` seconds otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
