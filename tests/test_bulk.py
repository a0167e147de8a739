"""Bulk jobs (a list page's parse, a page's booking) run one at a time, so the kernel's thread competes with one."""

from __future__ import annotations

import os
import threading

import pytest

from export_widgets import _bulk
from export_widgets._bulk import bulk_map, bulk_work


def test_bulk_map_keeps_order_and_results() -> None:
    assert bulk_map(lambda n: n * n, range(45)) == [n * n for n in range(45)]


def test_a_second_bulk_job_waits_for_the_first() -> None:
    order: list[str] = []
    started = threading.Event()

    def second_job() -> None:
        started.set()
        bulk_map(order.append, ["second"])

    with bulk_work():
        thread = threading.Thread(target=second_job)
        thread.start()
        assert started.wait(5)
        thread.join(0.2)
        assert thread.is_alive(), "the second bulk job ran while the first held the turn"
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]


def test_a_bulk_job_that_fails_gives_the_turn_back() -> None:
    def boom(n: int) -> int:
        raise ValueError(n)

    with pytest.raises(ValueError):
        bulk_map(boom, [1])
    assert bulk_map(str, [1]) == ["1"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_gets_a_free_turn_even_if_the_parent_held_it() -> None:
    with bulk_work():
        pid = os.fork()
        if pid == 0:  # the child: the parent's holder thread does not exist here
            free = _bulk._lock.acquire(timeout=2)
            os._exit(0 if free else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
