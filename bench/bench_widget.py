"""4. Widget traffic: comm messages per poll (unchanged: 0; changed: at most one per model) and the
dashboard's redraw rate under a flood of updates (at most 4 Hz)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from export_widgets.dashboard import ExportDashboard
from export_widgets.monitor import ExportMonitor, MonitorGroup
from export_widgets.simulator import FakeClock, TaskSpec, serve
from export_widgets.widget import ExportStatusWidget

from .common import Result


def _count_messages(root, counter: Counter) -> None:
    stack = [root]
    while stack:
        widget = stack.pop()
        stack.extend(getattr(widget, "children", ()))
        original = widget.comm.send

        def send(*args, _original=original, _id=widget.model_id, **kwargs):
            counter[_id] += 1
            return _original(*args, **kwargs)

        widget.comm.send = send


def _single_widget() -> list[Result]:
    clock = FakeClock()
    with serve([TaskSpec("modelarts", "P", start_delay=600, duration=600)], clock=clock) as sim:
        monitor = ExportMonitor(sim.modelarts_client(), "P", sim.dataset_id, start=False, clock=clock.now,
                                rng=random.Random(0))
        widget = ExportStatusWidget(monitor, min_redraw_interval=0.0)
        monitor.poll_once()
        counter: Counter = Counter()
        _count_messages(widget, counter)
        unchanged = []
        for _ in range(20):  # PENDING: nothing changes
            clock.advance(5)
            before = sum(counter.values())
            monitor.poll_once()
            unchanged.append(sum(counter.values()) - before)
        clock.advance(600)
        changed_total, changed_max = [], []
        for _ in range(20):  # RUNNING: progress moves every poll
            clock.advance(5)
            snapshot = Counter(counter)
            monitor.poll_once()
            delta = counter - snapshot
            changed_total.append(sum(delta.values()))
            changed_max.append(max(delta.values(), default=0))
    avg_unchanged = sum(unchanged) / len(unchanged)
    return [
        Result("comm messages per unchanged poll", avg_unchanged, "msgs", "0", avg_unchanged == 0, unchanged),
        Result("comm messages per changed poll, per widget model (max)", max(changed_max), "msgs", "<= 1",
               max(changed_max) <= 1, changed_max,
               f"{sum(changed_total) / len(changed_total):.1f} models touched per changed poll"),
    ]


def _dashboard_rate(seconds: float) -> Result:
    clock = FakeClock()
    specs = [TaskSpec("modelarts" if i % 2 else "qianfan", f"Ma{i:04d}" if i % 2 else f"task-{i:04d}",
                      duration=3600) for i in range(200)]
    with serve(specs, clock=clock) as sim:
        clients = {"modelarts": sim.modelarts_client(), "qianfan": sim.qianfan_client()}
        group = MonitorGroup(ExportMonitor(clients[s.provider], s.task_id, s.dataset_id, start=False,
                                           clock=clock.now) for s in specs)
        board = ExportDashboard(group, max_rows=50)
        stop = time.monotonic() + seconds
        updates = [0]

        def hammer(part: list[ExportMonitor]) -> None:
            while time.monotonic() < stop:
                for monitor in part:
                    clock.advance(0.5)
                    monitor.poll_once()
                    updates[0] += 1

        redraws: list[float] = []
        draw = board._throttle._fn
        board._throttle._fn = lambda: (redraws.append(time.monotonic()), draw())
        started = time.monotonic()
        threads = [threading.Thread(target=hammer, args=(group.monitors[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        group.stop()
    # The rate is the most redraws in any one-second window (a burst counts, an average would hide it).
    worst = max(sum(1 for t in redraws if start <= t < start + 1.0) for start in redraws)
    return Result("dashboard redraws in any 1 s under load (200 tasks)", worst, "Hz", "<= 4 Hz", worst <= 4,
                  [worst], f"{updates[0] / elapsed:.0f} monitor updates/s coalesced into "
                           f"{len(redraws) / elapsed:.1f} redraws/s")


def _idle_clock(seconds: float) -> list[Result]:
    """Messages per second from views whose task runs but does not change (only the clock refreshes them),
    then after the watch ended (nothing may tick). Wall clock: the clock refresh is what is measured."""
    with serve([TaskSpec("modelarts", "I", duration=36000), TaskSpec("qianfan", "task-idle", duration=36000)]) \
            as sim:
        monitors = [ExportMonitor(sim.modelarts_client(), "I", sim.dataset_id, start=False),
                    ExportMonitor(sim.qianfan_client(), "task-idle", start=False)]
        widget = ExportStatusWidget(monitors[0], min_redraw_interval=0.0)
        board = ExportDashboard(MonitorGroup(monitors), min_redraw_interval=0.0)
        for monitor in monitors:
            monitor.poll_once()
        counters: dict[str, Counter] = {"widget": Counter(), "dashboard": Counter()}
        _count_messages(widget, counters["widget"])
        _count_messages(board, counters["dashboard"])
        time.sleep(seconds)
        running = {name: sum(c.values()) / seconds for name, c in counters.items()}
        for monitor in monitors:
            monitor.stop()
        time.sleep(0.5)  # the final snapshot is drawn
        ended_from = {name: sum(c.values()) for name, c in counters.items()}
        time.sleep(seconds)
        ended = {name: (sum(c.values()) - ended_from[name]) / seconds for name, c in counters.items()}
    worst_running, worst_ended = max(running.values()), max(ended.values())
    return [
        Result("comm messages/s per view while a task runs unchanged (clock only)", worst_running, "msgs/s",
               "<= 1", worst_running <= 1.0, list(running.values()),
               ", ".join(f"{k} {v:.2f}/s" for k, v in running.items())),
        Result("comm messages/s per view after the watch ended", worst_ended, "msgs/s", "0", worst_ended == 0,
               list(ended.values())),
    ]


def run(quick: bool = False) -> list[Result]:
    return [*_single_widget(), _dashboard_rate(2.0 if quick else 5.0), *_idle_clock(6.0 if quick else 15.0)]
