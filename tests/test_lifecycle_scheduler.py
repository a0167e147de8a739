"""Stop, clocks and the invariant "a monitor whose status is running has a poll scheduled or in flight".

Clock items use a FakeClock pair (wall clock for timestamps, monotonic clock for deadlines) so nothing sleeps;
scheduler items run the real :class:`Poller` threads against the simulator on 127.0.0.1.
"""

from __future__ import annotations

import gc
import random
import threading
import weakref

import pytest
from waiting import wait_for

from export_widgets.errors import APIError
from export_widgets.models import ExportTask, TaskState
from export_widgets.monitor import ExportMonitor, watch
from export_widgets.poller import Poller
from export_widgets.simulator import FAULT_KINDS, FakeClock, Fault, TaskSpec, serve


def assert_one_line(text) -> None:
    text = str(text)
    assert text and "\n" not in text and len(text) < 400, text


# -- stop() --------------------------------------------------------------------------------------------------

def test_stop_drops_a_far_future_run_at_once():
    """After a 429 with Retry-After: 3600 the next poll is an hour away; stop() must free the scheduler thread
    and the monitor now, not in an hour."""
    poller = Poller(idle_exit=0.2)
    with serve([TaskSpec("qianfan", "task-hour", duration=36000)]) as sim:
        sim.set_faults("task-hour", [Fault("rate_limit", retry_after=3600, times=None)])
        with sim.qianfan_client() as client:
            monitor = watch(client, "task-hour", interval=0.05, poller=poller)
            history = monitor.history
            assert wait_for(lambda: len(history) == 1 and poller.pending() == 1)
            assert history.row(0).outcome == "rate_limited"
            monitor.stop()
            assert monitor.status == "stopped" and poller.pending() == 0
            assert wait_for(lambda: not poller.threads(), timeout=10), poller.threads()  # idle exit: 0.2 s
            ref = weakref.ref(monitor)
            del monitor
            gc.collect()
            assert ref() is None, "a stopped monitor is still referenced (by a heap entry?)"
            assert sim.request_count(task_id="task-hour") == 1


def test_cancel_removes_the_heap_entry_and_queue_place():
    poller = Poller(idle_exit=0.2)

    class Job:
        provider = "qianfan"

        def run(self):
            return None

    job = Job()
    poller.schedule(job, 3600.0)
    assert poller.pending() == 1
    poller.cancel(job)
    assert poller.pending() == 0 and not poller._heap
    assert wait_for(lambda: not poller.threads(), timeout=10)


# -- monotonic deadlines, wall-clock timestamps ------------------------------------------------------------

def _pair():
    wall, mono = FakeClock(), FakeClock(1000.0)
    return wall, mono


def _monitor_on(sim, wall, mono, task_id, **kwargs):
    return ExportMonitor(sim.qianfan_client(), task_id, start=False, clock=wall.now, monotonic=mono.now,
                         rng=random.Random(5), **kwargs)


def test_a_wall_clock_step_back_does_not_stretch_a_timeout():
    wall, mono = _pair()
    with serve([TaskSpec("qianfan", "task-long", duration=36000)], clock=FakeClock()) as sim:  # its own clock
        monitor = _monitor_on(sim, wall, mono, "task-long", interval=1.0, timeout=3.0)
        polls = 0
        while (delay := monitor.poll_once()) is not None and polls < 20:
            polls += 1
            wall.set(wall.now() - 3600)  # an NTP step of an hour back, every poll
            mono.advance(delay)
        assert monitor.status == "timed_out" and 2 <= polls <= 5, (monitor.status, polls)
        monitor.client.close()


def test_a_wall_clock_step_forward_does_not_end_a_timeout_at_once():
    wall, mono = _pair()
    with serve([TaskSpec("qianfan", "task-long", duration=36000)], clock=FakeClock()) as sim:
        monitor = _monitor_on(sim, wall, mono, "task-long", interval=1.0, timeout=3600.0)
        wall.advance(7200)  # the wall clock jumps two hours ahead before the first poll
        delays = [monitor.poll_once() for _ in range(3)]
        assert all(d is not None for d in delays) and monitor.status == "running"
        assert len(monitor.history) == 3
        # the timestamps recorded are the wall clock's
        assert abs(monitor.history.row(-1).polled_at - wall.now()) < 1
        monitor.client.close()


def test_one_fake_clock_still_drives_both():
    clock = FakeClock()
    with serve([TaskSpec("qianfan", "task-long", duration=36000)], clock=clock) as sim:
        monitor = ExportMonitor(sim.qianfan_client(), "task-long", start=False, clock=clock.now, timeout=5.0)
        for _ in range(20):
            delay = monitor.poll_once()
            if delay is None:
                break
            clock.advance(delay)
        assert monitor.status == "timed_out"
        monitor.client.close()


# -- the invariant under the fault matrix --------------------------------------------------------------------

def _check_invariant(monitor, delay) -> None:
    """After each poll: running <=> a next poll was asked for; an error ends with one line."""
    assert (delay is None) == monitor.done, (delay, monitor)
    assert (monitor.status == "running") == (delay is not None), (delay, monitor)
    if monitor.status == "error":
        assert monitor.error is not None
        assert_one_line(monitor.error)


#: Every simulator fault, cheap enough to repeat (slow/timeout hold real seconds: short knobs).
MATRIX = [pytest.param(Fault(kind, times=None, **({"seconds": 0.05} if kind in ("slow", "timeout") else {})),
                       id=kind) for kind in FAULT_KINDS if kind != "huge_body"]


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("fault", MATRIX)
def test_running_means_a_next_poll_under_every_fault(empty_sim, provider, fault):
    task_id = "MA-inv" if provider == "modelarts" else "task-inv"
    empty_sim.add_task(TaskSpec(provider, task_id, duration=120))
    empty_sim.set_faults(task_id, [fault])
    client = (empty_sim.modelarts_client(timeout=(1.0, 0.3)) if provider == "modelarts"
              else empty_sim.qianfan_client(timeout=(1.0, 0.3)))
    monitor = ExportMonitor(client, task_id, empty_sim.dataset_id if provider == "modelarts" else None,
                            start=False, clock=empty_sim.clock.now, rng=random.Random(2))
    for _ in range(12):
        delay = monitor.poll_once()
        _check_invariant(monitor, delay)
        if delay is None:
            break
        empty_sim.clock.advance(delay)
    client.close()


class _Source:
    """A task source without HTTP: each answer has a new raw status (or raises what ``fail`` gives)."""

    name = label = "qianfan"
    needs_dataset = False

    def __init__(self, fail=None) -> None:
        self.calls = 0
        self.fail = fail

    def fetch(self, ref):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return ExportTask("qianfan", ref.task_id, TaskState.RUNNING, raw_status=f"S{self.calls}",
                          progress=float(self.calls % 100))


def test_a_full_history_ends_the_watch_with_one_message():
    """The history interns raw statuses in 16 bits: the 65,536th distinct one cannot be recorded. The monitor
    must end with status error, not stay 'running' with nothing scheduled."""
    clock = FakeClock()
    monitor = ExportMonitor(_Source(), "task-many", start=False, clock=clock.now, rng=random.Random(0))
    for _ in range(70_000):
        delay = monitor.poll_once()
        _check_invariant(monitor, delay)
        if delay is None:
            break
        clock.advance(delay)
    assert monitor.status == "error" and "internal error" in str(monitor.error)
    assert monitor.wait(timeout=1) is not None and monitor.done


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), MemoryError(), RecursionError()],
                         ids=lambda e: type(e).__name__)
def test_a_fetch_raising_anything_ends_the_watch_on_the_real_poller(raised):
    poller = Poller(idle_exit=0.2)
    monitor = ExportMonitor(_Source(fail=raised), "task-boom", interval=0.05, poller=poller)
    monitor.wait(timeout=10)
    assert monitor.status == "error", monitor
    assert type(raised).__name__ in str(monitor.error)
    assert_one_line(monitor.error)
    assert wait_for(lambda: not poller.threads(), timeout=10)
    assert poller._running.get("qianfan", 0) == 0  # the worker gave its slot back


def test_a_shut_down_poller_ends_its_monitors():
    poller = Poller(idle_exit=0.2)
    source = _Source(fail=APIError(provider="qianfan", operation="Op", http_status=503, message="busy"))
    monitor = ExportMonitor(source, "task-wait", interval=60.0, poller=poller)
    assert wait_for(lambda: source.calls == 1 and poller.pending() == 1)
    poller.shutdown()
    assert monitor.wait(timeout=5) is None and monitor.status == "error"
    assert "shut down" in str(monitor.error)
    later = ExportMonitor(_Source(), "task-late", poller=poller)  # scheduling on a closed poller
    assert later.status == "error" and "shut down" in str(later.error)


def test_threads_alive_after_stop():
    """Many monitors stopped mid-watch: the poller's threads all exit."""
    poller = Poller(budget=4, idle_exit=0.2)
    with serve([TaskSpec("qianfan", f"task-t{i}", duration=3600) for i in range(12)]) as sim:
        with sim.qianfan_client() as client:
            monitors = [watch(client, f"task-t{i}", interval=0.05, poller=poller) for i in range(12)]
            assert wait_for(lambda: all(len(m.history) >= 2 for m in monitors))
            for monitor in monitors:
                monitor.stop()
            assert wait_for(lambda: not poller.threads(), timeout=10), poller.threads()
            assert poller.pending() == 0
    assert not [t for t in threading.enumerate() if getattr(t, "_export_widgets_poller", None) is poller]


def test_a_worker_that_cannot_start_is_retried_not_lost(monkeypatch):
    """Out of threads: the poller keeps the job and retries; the monitor does not sit 'running' unpolled."""
    poller = Poller(idle_exit=0.2)
    real_spawn, refused = Poller._spawn, []

    def flaky_spawn(self, target, name, *args):
        if name != "export-widgets-scheduler" and len(refused) < 2:
            refused.append(name)
            raise RuntimeError("can't start new thread")
        return real_spawn(self, target, name, *args)

    monkeypatch.setattr(Poller, "_spawn", flaky_spawn)
    source = _Source()
    monitor = ExportMonitor(source, "task-spawn", interval=0.05, poller=poller)
    assert wait_for(lambda: source.calls >= 3, timeout=15), (refused, source.calls)
    assert len(refused) == 2 and monitor.status == "running"
    monitor.stop()
    assert wait_for(lambda: not poller.threads(), timeout=10)


def test_an_ended_monitor_drops_its_callbacks():
    monitor = ExportMonitor(_Source(), "task-end", start=False)
    seen = []
    monitor.on_update(seen.append)
    monitor.stop()
    assert seen == [monitor] and monitor.subscriptions() == []
