"""2. Dashboard sweep: N tasks, 50 ms server latency, one poll each; time vs the ideal N·latency/concurrency.

The simulator runs in its own process (as the real service is elsewhere), so its threads do not compete
with ours for the GIL. While the sweep runs, the main thread plays "the kernel": it runs a small cell
(a 5 ms sleep plus a little work) over and over and records how long each took.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from export_widgets.monitor import ExportMonitor
from export_widgets.poller import Poller

from .common import Result

LATENCY = 0.05
BUDGET = 8  # per provider; two providers, so 16 requests in flight at most


def _start_simulator(n: int) -> tuple[subprocess.Popen, dict[str, str], str]:
    slow = [{"kind": "slow", "seconds": LATENCY, "times": None}]
    tasks = [{"provider": "modelarts" if i % 2 else "qianfan",
              "task_id": f"Ma{i:05d}" if i % 2 else f"task-{i:05d}", "duration": 3600, "faults": slow}
             for i in range(n)]
    scenario = Path(tempfile.mkdtemp()) / "sweep.json"
    scenario.write_text(json.dumps({"name": "sweep", "tasks": tasks}))
    proc = subprocess.Popen([sys.executable, "-m", "export_widgets", "simulate", "--scenario", str(scenario)],
                            stdout=subprocess.PIPE, text=True)
    env: dict[str, str] = {}
    url = ""
    for line in proc.stdout:  # type: ignore[union-attr]
        if match := re.search(r"listening on (http://127\.0\.0\.1:\d+)", line):
            url = match.group(1)
        if match := re.match(r"export (\w+)=(\S+)", line):
            env[match.group(1)] = match.group(2)
        if "EXPORT_WIDGETS_MODELARTS_ENDPOINT" in env:
            break
    return proc, env, url


def _sweep(n: int) -> tuple[float, float, float]:
    """(sweep seconds, ideal seconds, worst 'cell' seconds) for one sweep of ``n`` tasks."""
    from export_widgets import ModelArtsClient, QianfanClient

    proc, env, url = _start_simulator(n)
    try:
        modelarts = ModelArtsClient(project_id=env["HUAWEICLOUD_SDK_PROJECT_ID"], endpoint=url,
                                    ak=env["HUAWEICLOUD_SDK_AK"], sk=env["HUAWEICLOUD_SDK_SK"], environ={})
        qianfan = QianfanClient(ak=env["QIANFAN_ACCESS_KEY"], sk=env["QIANFAN_SECRET_KEY"], endpoint=url, environ={})
        poller = Poller(budget=BUDGET)
        done = threading.Semaphore(0)
        started = time.perf_counter()
        monitors = []
        for i in range(n):
            client, task_id, dataset = ((modelarts, f"Ma{i:05d}", "gfghHSokody6AJigS5A") if i % 2
                                        else (qianfan, f"task-{i:05d}", None))
            monitor = ExportMonitor(client, task_id, dataset, interval=600, poller=poller, start=False)
            monitor.on_update(lambda m: done.release() if len(m.history) == 1 else None)
            monitors.append(monitor)
        for monitor in monitors:
            monitor.start()
        worst_cell = 0.0
        remaining = n
        while remaining:
            cell = time.perf_counter()
            time.sleep(0.005)
            sum(range(20_000))  # a little CPU work, as a cell would do
            worst_cell = max(worst_cell, time.perf_counter() - cell)
            while remaining and done.acquire(blocking=False):
                remaining -= 1
        elapsed = time.perf_counter() - started
        failures = sum(m.history.row(0).outcome != "ok" for m in monitors)
        for monitor in monitors:
            monitor.stop()
        poller.shutdown()
        if failures:
            raise RuntimeError(f"{failures} of {n} polls failed during the sweep")
        return elapsed, n * LATENCY / (2 * BUDGET), worst_cell
    finally:
        proc.terminate()
        proc.wait(10)


def run(quick: bool = False) -> list[Result]:
    results = []
    for n in ((100,) if quick else (100, 1000)):
        runs = [_sweep(n) for _ in range(1 if quick or n >= 1000 else 3)]
        ratios = [elapsed / ideal for elapsed, ideal, _ in runs]
        worst = max(cell for _, _, cell in runs)
        ratio = statistics.median(ratios)
        results.append(Result(f"dashboard sweep, N={n}, 50 ms latency (time / ideal)", ratio, "x", "<= 1.3x",
                              ratio <= 1.3, ratios, f"ideal {runs[0][1]:.2f} s, {BUDGET}/provider in flight"))
        results.append(Result(f"kernel responsiveness during sweep N={n} (slowest cell)", worst * 1000, "ms",
                              "< 100 ms", worst < 0.1, [c * 1000 for _, _, c in runs]))
    return results
