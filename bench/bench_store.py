"""6. The watch store's cost per poll, and the dashboard sweep with the store on.

Per poll: a monitor polls a stub client (no HTTP: the store's few microseconds would drown in a loopback
round trip's noise) ``POLLS`` times, with and without a real SQLite store attached (WAL file in a temporary
directory). The store's time includes ``flush()``, so the background thread's batched inserts are paid for
in the figure, not hidden behind it. Rounds alternate the two so machine noise hits both alike.

Sweep: the N=1000 dashboard sweep of ``bench_sweep``, three times as is and three times with every monitor
attached to a store, interleaved (warm sweeps; median on / median off). The off/off spread in the note is how much
two identical sweeps differ on this machine. Full runs only: it takes a minute or more.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from export_widgets.models import ExportTask, TaskState
from export_widgets.monitor import ExportMonitor
from export_widgets.store import Store

from . import bench_sweep
from .common import Result

POLLS = 5000
TARGET_US = 50.0


class _StubClient:
    """Answers instantly with a task whose progress moves every poll (so every poll is a change)."""

    provider = "qianfan"
    base_url = "https://qianfan.baidubce.com"

    def __init__(self) -> None:
        tasks = [ExportTask("qianfan", "T1", TaskState.RUNNING, "Exporting", progress=i / 20, finished_samples=i,
                            total_samples=2000, size_mb=1.5) for i in range(1999)]
        self._tasks = itertools.cycle(tasks)

    def get_export_task(self, task_id: str) -> ExportTask:
        return next(self._tasks)


def _monitor() -> ExportMonitor:
    ticks = itertools.count(1.7e9, 2.0)
    return ExportMonitor(_StubClient(), "T1", start=False, clock=lambda: next(ticks))


def _polls(store: Store | None, n: int) -> tuple[float, float]:
    """(seconds for n polls including the store's flush, seconds until the last poll returned)."""
    monitor = _monitor()
    if store is not None:
        store.attach(monitor)
    started = time.perf_counter()
    for _ in range(n):
        monitor.poll_once()
    polled = time.perf_counter() - started
    if store is not None:
        store.flush()
    return time.perf_counter() - started, polled


def bench_per_poll(rounds: int, n: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3")
        # The same, with a writer that only wakes at flush(): what the polling thread itself pays (the enqueue).
        idle = Store(Path(tmp) / "idle.sqlite3", batch_interval=3600, batch_rows=10**9)
        for warm in (store, idle, None):  # open the files, create the schema, warm the caches
            _polls(warm, 500)
        costs, callers, bases = [], [], []
        for _ in range(rounds):
            base, _ = _polls(None, n)
            total, _ = _polls(store, n)
            _, enqueued = _polls(idle, n)
            bases.append(base / n)
            costs.append((total - base) / n * 1e6)
            callers.append((enqueued - base) / n * 1e6)
        rows = len(store.polls())
        mode = store.mode
        store.close()
        idle.close()
    if mode != "file" or rows != (rounds * n + 500):
        raise RuntimeError(f"the store did not persist every poll ({rows} rows, mode {mode})")
    cost = statistics.median(costs)
    return Result("store cost per poll (amortised, incl. background write)", cost, "us", f"<= {TARGET_US:.0f} us",
                  cost <= TARGET_US, costs,
                  f"no store {statistics.median(bases) * 1e6:.0f} us/poll; enqueue on the polling thread "
                  f"{statistics.median(callers):.1f} us")


def bench_sweep_ratio() -> Result:
    """The N=1000 sweep with every monitor attached to a store, over the same sweep without."""
    # bench_sweep builds its monitors itself: swapping the ExportMonitor it calls for one that attaches the store
    # measures the very same sweep with the store on.
    namespace = vars(bench_sweep)
    original = namespace["ExportMonitor"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "sweep.sqlite3")

        def attached(*args: Any, **kwargs: Any) -> ExportMonitor:
            monitor: ExportMonitor = original(*args, **kwargs)
            store.attach(monitor)
            return monitor

        offs: list[float] = []
        ons: list[float] = []
        for store_on in (False, True, True, False, False, True):  # ABBA...: drift over the run cancels out
            if store_on:
                namespace["ExportMonitor"] = attached
            try:
                (ons if store_on else offs).append(bench_sweep._sweep(1000)[1])
            finally:
                namespace["ExportMonitor"] = original
        store.flush()
        rows = len(store.polls())
        store.close()
    ratios = [on / off for on, off in zip(ons, offs, strict=True)]
    ratio = statistics.median(ons) / statistics.median(offs)
    ideal = 1000 * bench_sweep.LATENCY / (2 * bench_sweep.BUDGET)
    noise = max(offs) / min(offs)  # how far two sweeps with the store off differ: the floor of what can be seen
    return Result("dashboard sweep N=1000, store on / store off", ratio, "x", "<= 1.10x", ratio <= 1.10, ratios,
                  f"off {statistics.median(offs) / ideal:.2f}x ideal, on {statistics.median(ons) / ideal:.2f}x; "
                  f"off/off spread {noise:.2f}x; {rows} polls stored")


def run(quick: bool = False) -> list[Result]:
    results = [bench_per_poll(rounds=3 if quick else 9, n=2000 if quick else POLLS)]
    if not quick:
        results.append(bench_sweep_ratio())
    return results
