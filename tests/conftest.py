"""Shared fixtures: a fake clock and a running simulator on it (real HTTP on 127.0.0.1, port 0).

Tests never sleep to wait for progress: they move ``sim.clock`` (a :class:`FakeClock`) instead.

The watch store is on by default, so before anything imports it this points ``EXPORT_WIDGETS_STORE`` at a
temporary directory of this test session: no test (nor a kernel or CLI it starts, which inherit the
environment) ever reads or writes the user's real state directory. Tests that look at a store make their own
file under ``tmp_path`` (the ``store_path`` fixture).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SESSION_STORE_DIR = tempfile.mkdtemp(prefix="export-widgets-tests-store-")
os.environ["EXPORT_WIDGETS_STORE"] = os.path.join(_SESSION_STORE_DIR, "store.sqlite3")
# Registered before the store module is imported, so it runs after the store's own exit flush (atexit is LIFO).
atexit.register(shutil.rmtree, _SESSION_STORE_DIR, ignore_errors=True)

import pytest  # noqa: E402 - after the store is pointed away from the user's state directory
from ipshell import magic_shell  # noqa: E402

from export_widgets.simulator import FakeClock, Simulator, serve  # noqa: E402


@pytest.fixture
def shell() -> Iterator[object]:
    """A real IPython shell with the extension loaded (test files that need more define their own)."""
    with magic_shell() as ip:
        yield ip


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store file of this test's own (not created yet)."""
    return tmp_path / "store.sqlite3"


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
