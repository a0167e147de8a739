"""One bulk job at a time: parsing a list page of a hundred tasks, booking a page's answers.

Ten sweeps can receive their pages at the same instant. CPython hands the GIL to whichever waiting thread wakes
first, so the kernel's thread, one waiter among ten, may wait several 5 ms switch intervals for each turn, and a
cell that should take 5 ms takes 100 ms. With one bulk job running at a time the kernel competes with one thread,
not ten: the other jobs wait on this lock, and a thread waiting on a lock does not ask for the GIL. The total work
is the same; the sweeps still send their requests in parallel.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()

#: Items handled between two offers of the GIL to other threads (the kernel's among them).
YIELD_EVERY = 20


@contextmanager
def bulk_work() -> Iterator[None]:
    """Hold the bulk-work turn for the ``with`` block (the block must not wait on the network)."""
    with _lock:
        yield


def offer_turn(done: int) -> None:
    """Call after each item of a bulk job: every ``YIELD_EVERY`` items, let a waiting thread run."""
    if done % YIELD_EVERY == 0:
        time.sleep(0)  # releases the GIL; a thread that asked for it (the kernel's) gets it now


def bulk_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[function(item) for item in items]`` as one bulk job, offering the GIL as it goes."""
    results: list[R] = []
    with bulk_work():
        for item in items:
            results.append(function(item))
            offer_turn(len(results))
    return results


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it; that thread does not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
