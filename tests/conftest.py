"""Shared fixtures: a fake clock and a running simulator on it (real HTTP on 127.0.0.1, port 0).

Tests never sleep to wait for progress: they move ``sim.clock`` (a :class:`FakeClock`) instead.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from export_widgets.simulator import FakeClock, Simulator, serve


@pytest.fixture
def clock() -> FakeClock:
    """A scenario clock at 2024-06-01T12:00:00Z that only moves when told to."""
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[Simulator]:
    """The simulator with the demo task set, on the ``clock`` fixture."""
    with serve(clock=clock) as running:
        yield running
        assert not running.errors, f"the simulator raised: {running.errors!r}"


@pytest.fixture
def empty_sim(clock: FakeClock) -> Iterator[Simulator]:
    """A simulator with no tasks (add them with ``empty_sim.add_task``)."""
    with serve([], clock=clock) as running:
        yield running
        assert not running.errors, f"the simulator raised: {running.errors!r}"
