"""2. Dashboard sweep: N tasks, 50 ms server latency, one poll each; time vs the ideal N·latency/concurrency.

The server (``latency_server``: 50 ms, then a fixed body) runs in its own process, as the real service is
elsewhere, so its threads do not compete with ours for the GIL. While the sweep runs, the main thread plays "the kernel": it runs a small cell
(a 5 ms sleep plus a little work) over and over and records how long each took.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from export_widgets.monitor import ExportMonitor
from export_widgets.poller import Poller

from .common import Result

LATENCY = 0.05
BUDGET = 8  # per provider; two providers, so 16 requests in flight at most


def _start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.latency_server", str(LATENCY)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parent.parent)
    return proc, proc.stdout.readline().strip()  # type: ignore[union-attr]


def _sweep(n: int) -> tuple[float, float, float, float]:
    """(cold sweep s, warm sweep s, ideal s, worst 'cell' s) for ``n`` tasks.

    The cold sweep is the first poll of every task (worker threads start, connections open); the warm one
    is the next full sweep (every task refreshed at once), which is what a dashboard repeats all day.
    """
    from export_widgets import ModelArtsClient, QianfanClient

    proc, url = _start_server()
    try:
        modelarts = ModelArtsClient(project_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9", endpoint=url,
                                    ak="BENCHMARKACCESSKEY01", sk="BenchmarkSecretKey0123456789abcdefghij", environ={})
        qianfan = QianfanClient(ak="BENCHMARKACCESSKEY01", sk="BenchmarkSecretKey0123456789abcdefghij",
                                endpoint=url, environ={})
        poller = Poller(budget=BUDGET)
        done = threading.Semaphore(0)
        monitors = []
        for i in range(n):
            client, task_id, dataset = ((modelarts, f"Ma{i:05d}", "gfghHSokody6AJigS5A") if i % 2
                                        else (qianfan, f"task-{i:05d}", None))
            monitor = ExportMonitor(client, task_id, dataset, interval=600, poller=poller, start=False)
            monitor.on_update(lambda m: done.release())
            monitors.append(monitor)
        worst_cell = 0.0

        def sweep(start: Callable[[ExportMonitor], None]) -> float:
            nonlocal worst_cell
            started = time.perf_counter()
            for monitor in monitors:
                start(monitor)
            remaining = n
            while remaining:
                cell = time.perf_counter()
                time.sleep(0.005)
                sum(range(20_000))  # a little CPU work, as a cell would do
                worst_cell = max(worst_cell, time.perf_counter() - cell)
                while remaining and done.acquire(blocking=False):
                    remaining -= 1
            return time.perf_counter() - started

        cold = sweep(lambda m: m.start())
        warm = sweep(lambda m: m.refresh())
        failures = sum(r.outcome != "ok" for m in monitors for r in m.history)
        for monitor in monitors:
            monitor.stop()
        poller.shutdown()
        if failures:
            raise RuntimeError(f"{failures} of {2 * n} polls failed during the sweeps")
        return cold, warm, n * LATENCY / (2 * BUDGET), worst_cell
    finally:
        proc.terminate()
        proc.wait(10)


def run(quick: bool = False) -> list[Result]:
    results = []
    for n in ((100,) if quick else (100, 1000)):
        runs = [_sweep(n) for _ in range(1 if quick or n >= 1000 else 3)]
        ideal = runs[0][2]
        warm = [w / ideal for _, w, _, _ in runs]
        cold = [c / ideal for c, _, _, _ in runs]
        worst = max(cell for *_, cell in runs)
        # N / concurrency is rarely whole: 50 tasks on 8 slots take 7 rounds, not 6.25.
        rounds = math.ceil(n / 2 / BUDGET) * LATENCY
        results.append(Result(f"dashboard sweep, N={n}, 50 ms latency (time / ideal)", statistics.median(warm), "x",
                              "<= 1.3x", statistics.median(warm) <= 1.3, warm,
                              f"ideal {ideal:.2f} s; whole rounds {rounds / ideal:.2f}x; first sweep "
                              f"{statistics.median(cold):.2f}x"))
        results.append(Result(f"kernel responsiveness during sweeps N={n} (slowest cell)", worst * 1000, "ms",
                              "< 100 ms", worst < 0.1, [c * 1000 for *_, c in runs]))
    return results
