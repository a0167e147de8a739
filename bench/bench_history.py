"""3. History at scale: 1,000,000 recorded polls -> ``history_frame()`` time and bytes held per poll.

The baseline is a plain list of ``PollRecord`` objects (what a naive history would keep), measured in the
same run with tracemalloc, so the per-poll memory figure has something to be compared with.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

from export_widgets import frames
from export_widgets.history import History, Outcome
from export_widgets.providers.modelarts import parse_export_task

from .common import Result

POLLS = 1_000_000


def _filled(n: int) -> History:
    tasks = [parse_export_task({"task_id": "T", "status": "RUNNING", "progress": i / 10, "total_sample_count": 10_000,
                                "finished_sample_count": i * 10}) for i in range(1000)]
    history = History("modelarts", "T")
    for i in range(n):
        if i % 500 == 499:
            history.record_error(1.7e9 + 2 * i, None, Outcome.TRANSPORT, None, "ModelArts … timed out")
        else:
            history.record_task(1.7e9 + 2 * i, 0.012, tasks[i % 1000])
    return history


def run(quick: bool = False) -> list[Result]:
    n = 200_000 if quick else POLLS
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    history = _filled(n)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    naive = [history.row(i) for i in range(min(n, 20_000))]  # the object-per-poll alternative, sampled
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    naive_copy = [type(r)(**r.__dict__) for r in naive]
    naive_bytes = (tracemalloc.get_traced_memory()[0] - base) / len(naive_copy)
    tracemalloc.stop()
    del naive, naive_copy

    times = []
    for _ in range(3):
        started = time.perf_counter()
        frame = frames.history(history)
        times.append(time.perf_counter() - started)
        assert len(frame) == n
    frame_s = sorted(times)[1]
    per_poll = held / n
    return [
        Result(f"history_frame() of {n:,} polls", frame_s, "s", "<= 1 s", frame_s <= 1.0, times),
        Result("history memory per poll", per_poll, "bytes", "<= 150 bytes", per_poll <= 150, [per_poll],
               f"object-per-poll baseline: {naive_bytes:.0f} bytes"),
    ]
