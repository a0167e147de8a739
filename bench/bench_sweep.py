"""2. Dashboard sweep: N tasks, 50 ms server latency, one poll each; time vs the ideal N·latency/concurrency.

``run_batched`` (suite ``batch``): 1,000 ModelArts tasks polled through sweeps (list pages per dataset) against
one request per task, in 10 datasets of 100 and in 1,000 datasets of one.

The server (``latency_server``: 50 ms, then a fixed body) runs in its own process, as the real service is
elsewhere, so its threads do not compete with ours for the GIL. While the sweep runs, the main thread plays "the
kernel": it runs a small cell (a 5 ms sleep plus a little work) over and over and records how long each took.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from export_widgets.monitor import ExportMonitor, MonitorGroup
from export_widgets.poller import Poller

from .common import Result
from .latency_server import task_id

LATENCY = 0.05
BUDGET = 8  # per provider; two providers, so 16 requests in flight at most


class _Cells:
    """A kernel's cells meanwhile: one every 5 ms with a little CPU work; ``worst`` is the slowest so far."""

    def __init__(self) -> None:
        self.worst = 0.0

    def sweep(self, monitors: list[ExportMonitor], start: Callable[[ExportMonitor], None],
              done: threading.Semaphore) -> float:
        """Start every monitor's poll and run cells until each has answered; the seconds that took."""
        started = time.perf_counter()
        for monitor in monitors:
            start(monitor)
        remaining = len(monitors)
        while remaining:
            cell = time.perf_counter()
            time.sleep(0.005)
            sum(range(20_000))  # a little CPU work, as a cell would do
            self.worst = max(self.worst, time.perf_counter() - cell)
            while remaining and done.acquire(blocking=False):
                remaining -= 1
        return time.perf_counter() - started

def _start_server(per_dataset: int = 100) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.latency_server", str(LATENCY), str(per_dataset)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
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
        cells = _Cells()

        def sweep(start: Callable[[ExportMonitor], None]) -> float:
            return cells.sweep(monitors, start, done)

        cold = sweep(lambda m: m.start())
        warm = sweep(lambda m: m.refresh())
        failures = sum(r.outcome != "ok" for m in monitors for r in m.history)
        for monitor in monitors:
            monitor.stop()
        poller.shutdown()
        if failures:
            raise RuntimeError(f"{failures} of {2 * n} polls failed during the sweeps")
        return cold, warm, n * LATENCY / (2 * BUDGET), cells.worst
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


# -- batched sweeps ----------------------------------------------------------------------------------------

BATCH_TASKS = 1000


def _dataset_dashboard(datasets: int, batch: bool) -> dict[str, Any]:
    """1,000 ModelArts tasks in ``datasets`` datasets, polled as one dashboard (a MonitorGroup): the first poll
    of every task (cold), then one "Refresh all" (warm), with the requests each sent, by operation."""
    from export_widgets import ModelArtsClient

    per = BATCH_TASKS // datasets
    proc, url = _start_server(per)
    try:
        client = ModelArtsClient(project_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9", endpoint=url,
                                 ak="BENCHMARKACCESSKEY01", sk="BenchmarkSecretKey0123456789abcdefghij", environ={})
        counts: Counter[str] = Counter()
        lock = threading.Lock()
        send = client._send

        def counting_send(operation: str, *args: Any, **kwargs: Any) -> Any:
            with lock:
                counts[operation] += 1
            return send(operation, *args, **kwargs)

        client._send = counting_send  # type: ignore[method-assign]
        poller = Poller(budget=BUDGET)
        done = threading.Semaphore(0)
        monitors = [ExportMonitor(client, task_id(f"ds{j:04d}", i), f"ds{j:04d}", interval=600, poller=poller,
                                  start=False) for j in range(datasets) for i in range(per)]
        for monitor in monitors:
            monitor.on_update(lambda m: done.release())
        group = MonitorGroup(monitors, batch=batch)
        cells = _Cells()

        def sweep(start: Callable[[ExportMonitor], None]) -> float:
            return cells.sweep(monitors, start, done)

        cold = sweep(lambda m: m.start())
        after_cold = Counter(counts)
        warm = sweep(lambda m: m.refresh())
        warm_requests = counts - after_cold
        failures = sum(r.outcome != "ok" for m in monitors for r in m.history)
        fetched_by = Counter(r.fetched_by for m in monitors for r in m.history)
        group.stop()
        poller.shutdown()
        if failures:
            raise RuntimeError(f"{failures} polls failed during the sweeps")
        return {"cold": cold, "warm": warm, "worst": cells.worst, "warm_requests": warm_requests,
                "fetched_by": fetched_by}
    finally:
        proc.terminate()
        proc.wait(10)


def run_batched(quick: bool = False) -> list[Result]:
    """Sweeps (list pages per dataset) against one request per task, 1,000 ModelArts tasks, 50 ms latency."""
    ideal = BATCH_TASKS * LATENCY / BUDGET  # one request per task on the ModelArts budget
    results = []
    per_task = _dataset_dashboard(10, batch=False)
    batched = [_dataset_dashboard(10, batch=True) for _ in range(1 if quick else 3)]
    warm = [b["warm"] / ideal for b in batched]
    requests = [sum(b["warm_requests"].values()) / BATCH_TASKS for b in batched]
    worst = max(b["worst"] for b in batched)
    ops = batched[0]["warm_requests"]
    results.append(Result("batched sweep, 1,000 tasks in 10 datasets (requests per task per sweep)",
                          statistics.median(requests), "req", "<= 0.05", max(requests) <= 0.05, requests,
                          f"{ops.get('GetExportTasksStatusOfDataset', 0)} list + "
                          f"{ops.get('GetExportTaskStatusOfDataset', 0)} status requests; per-task: "
                          f"{sum(per_task['warm_requests'].values())}"))
    results.append(Result("batched sweep, 1,000 tasks in 10 datasets (time / per-task-GET ideal)",
                          statistics.median(warm), "x", "<= 0.2x", statistics.median(warm) <= 0.2, warm,
                          f"ideal {ideal:.2f} s; per-task sweep measured {per_task['warm'] / ideal:.2f}x; "
                          f"first sweep {statistics.median(b['cold'] for b in batched) / ideal:.2f}x"))
    results.append(Result("kernel responsiveness during batched sweeps (slowest cell)", worst * 1000, "ms",
                          "< 100 ms", worst < 0.1, [b["worst"] * 1000 for b in batched],
                          f"per-task sweep of the same tasks: {per_task['worst'] * 1000:.0f} ms"))
    # One task per dataset: no sweep is made, so this guards against overhead creeping into the lone-task path.
    pairs = [(_dataset_dashboard(BATCH_TASKS, batch=False), _dataset_dashboard(BATCH_TASKS, batch=True))
             for _ in range(1 if quick else 2)]
    ratios = [batched_run["warm"] / per_task_run["warm"] for per_task_run, batched_run in pairs]
    spread_requests = max(sum(b["warm_requests"].values()) for _, b in pairs)
    ratio = statistics.median(ratios)
    results.append(Result("batched sweep, 1,000 tasks in 1,000 datasets (time / per-task sweep)", ratio, "x",
                          "<= 1.15x, same requests", ratio <= 1.15 and spread_requests <= BATCH_TASKS, ratios,
                          f"{spread_requests} requests per sweep; per-task "
                          f"{statistics.median(p['warm'] for p, _ in pairs):.2f} s, batched "
                          f"{statistics.median(b['warm'] for _, b in pairs):.2f} s"))
    return results
