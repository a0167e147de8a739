"""Thread hygiene: no thread, socket or fd leaks over hundreds of watch/stop cycles, a prompt ``stop()`` while a
request is in flight, interpreter exit that never waits for a monitor, and a scheduler that no poll can kill.

Every test in this module runs inside an autouse leak check (as tqdm does): the threads and file
descriptors (``/proc/self/fd``: sockets included) present after the test must be the ones present before it.
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from waiting import wait_for

from export_widgets import watch
from export_widgets.errors import ConfigError, TransportError
from export_widgets.monitor import Backoff, ExportMonitor
from export_widgets.poller import Poller
from export_widgets.simulator import FakeClock, Fault, TaskSpec, serve
from export_widgets.store import default_store

HAS_PROC_FD = os.path.isdir("/proc/self/fd")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if HAS_PROC_FD else 0




@pytest.fixture(scope="module", autouse=True)
def warm_store():
    """watch() records in the process-wide store: its one writer thread and open file are made once per process
    (like the connection pools warmed below), so they are in place before any leak is counted."""
    store = default_store()
    store.end_watch(store.begin_watch("qianfan", "warm-up"), "stopped")
    store.flush()


@pytest.fixture(autouse=True)
def no_leaks(warm_store):
    """Fail the test if it leaves threads or file descriptors behind (they get 5 s to wind down)."""
    gc.collect()
    threads_before = set(threading.enumerate())
    fds_before = open_fds()
    yield

    def settled() -> bool:
        gc.collect()
        return not (set(threading.enumerate()) - threads_before) and open_fds() <= fds_before

    if not wait_for(settled, timeout=5.0, step=0.05):
        leaked = sorted(t.name for t in set(threading.enumerate()) - threads_before)
        pytest.fail(f"leaked threads {leaked} / fds {fds_before} -> {open_fds()}")


@pytest.fixture
def poller():
    own = Poller(budget=4, idle_exit=0.2)
    yield own
    own.shutdown()
    assert not own.threads()


# -- start/stop cycles --------------------------------------------------------------------------------------

CYCLES = 300


def test_hundreds_of_watch_stop_cycles_leak_nothing(poller):
    specs = [TaskSpec("modelarts", "MA-cycle", duration=3600), TaskSpec("qianfan", "task-cycle", duration=3600)]
    with serve(specs) as sim:
        ma, qf = sim.modelarts_client(), sim.qianfan_client()
        ma.get_export_task(sim.dataset_id, "MA-cycle")  # warm the connection pools (one socket each)
        qf.get_export_task("task-cycle")
        gc.collect()
        threads_before, fds_before = threading.active_count(), open_fds()
        monitors = []
        for i in range(CYCLES):
            if i % 2:
                monitor = watch(ma, "MA-cycle", sim.dataset_id, interval=0.01, poller=poller)
            else:
                monitor = watch(qf, "task-cycle", interval=0.01, poller=poller)
            if i % 3 == 0:  # a third stop after their first answer, the rest at once (often mid-request)
                assert wait_for(lambda m=monitor: len(m.history) >= 1, timeout=5)
            monitor.stop()
            assert monitor.done and monitor.status == "stopped"
            monitors.append(monitor)
        assert poller.pending() == 0
        # in-flight answers land, then the workers and the scheduler exit when idle
        assert wait_for(lambda: not poller.threads(), timeout=5), [t.name for t in poller.threads()]
        gc.collect()
        threads_after, fds_after = threading.active_count(), open_fds()
        assert threads_after <= threads_before, (threads_before, threads_after)
        assert fds_after <= fds_before, (fds_before, fds_after)
        # every request that reached the simulator is a history row of some monitor, and none is lost
        assert sim.request_count() - 2 == sum(len(m.history) for m in monitors)
        ma.close()
        qf.close()


def test_cycles_with_a_new_client_each_time_close_their_sockets(poller):
    with serve([TaskSpec("qianfan", "task-fresh", duration=3600)]) as sim:
        gc.collect()
        fds_before = open_fds()
        for _ in range(100):
            with sim.qianfan_client() as client:
                monitor = watch(client, "task-fresh", interval=0.01, poller=poller)
                assert wait_for(lambda m=monitor: len(m.history) >= 1, timeout=5)
                monitor.stop()
        assert wait_for(lambda: not poller.threads(), timeout=5)
        gc.collect()
        assert open_fds() <= fds_before + 1, (fds_before, open_fds())


def test_widget_cycles_leave_no_timer_threads():
    """Widgets redraw through throttle timers; many short-lived widgets must leave none running."""
    from export_widgets.widget import ExportStatusWidget

    clock = FakeClock()
    with serve([TaskSpec("modelarts", "MA-w", duration=10)], clock=clock) as sim:
        client = sim.modelarts_client()
        for _ in range(60):
            monitor = ExportMonitor(client, "MA-w", sim.dataset_id, start=False, clock=clock.now,
                                    rng=random.Random(0))
            widget = ExportStatusWidget(monitor, min_redraw_interval=0.05)
            monitor.poll_once()
            monitor.poll_once()  # the second redraw inside the window books a trailing timer
            monitor.stop()
            widget.close_all() if hasattr(widget, "close_all") else widget.close()
        client.close()
        assert wait_for(lambda: not [t for t in threading.enumerate() if isinstance(t, threading.Timer)
                                     and t.is_alive()], timeout=3)


# -- stop() while a request is in flight ---------------------------------------------------------------------

@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
def test_stop_returns_promptly_while_a_request_is_in_flight(poller, provider):
    task_id = "MA-held" if provider == "modelarts" else "task-held"
    with serve([TaskSpec(provider, task_id, duration=3600)]) as sim:
        sim.set_faults(task_id, [Fault("slow", seconds=1.0, times=None)])  # every answer takes 1 s
        client = sim.modelarts_client(timeout=(2, 5)) if provider == "modelarts" else \
            sim.qianfan_client(timeout=(2, 5))
        monitor = watch(client, task_id, sim.dataset_id if provider == "modelarts" else None, interval=0.01,
                        poller=poller)
        assert wait_for(lambda: sim.request_count(task_id=task_id) == 1, timeout=5)
        monitor.stop()
        # stop() did not wait for the answer: the server holds it for 1 s and it is not recorded yet.
        assert len(monitor.history) == 0
        assert monitor.done and monitor.status == "stopped" and poller.pending() == 0
        # the answer that was on its way is still recorded, and nothing more is asked
        assert wait_for(lambda: len(monitor.history) == 1 and poller.pending() == 0, timeout=5)
        assert sim.request_count(task_id=task_id) == 1 and len(monitor.history) == 1
        assert monitor.history.row(0).outcome == "ok"
        client.close()


def test_wait_returns_when_stopped_from_another_thread(poller):
    with serve([TaskSpec("qianfan", "task-w", duration=3600)]) as sim:
        with sim.qianfan_client() as client:
            monitor = watch(client, "task-w", interval=0.05, poller=poller)
            threading.Timer(0.2, monitor.stop).start()
            started = time.perf_counter()
            monitor.wait(timeout=30)
            # a hang guard, not a speed target: stop() comes at 0.2 s, a wait that ignored it would take 30 s
            assert time.perf_counter() - started < 20 and monitor.status == "stopped"


# -- the scheduler survives anything a monitor returns ------------------------------------------------------

class _Job:
    def __init__(self, provider: str, delay: float | None) -> None:
        self.provider, self.delay, self.runs = provider, delay, 0

    def run(self) -> float | None:
        self.runs += 1
        return self.delay


@pytest.mark.parametrize("delay", [float("inf"), 1e12])
def test_an_absurd_delay_does_not_kill_the_shared_scheduler(poller, delay):
    sleeper, worker = _Job("modelarts", delay), _Job("modelarts", None)
    poller.schedule(sleeper, delay)
    time.sleep(0.05)
    poller.schedule(worker, 0.0)
    assert wait_for(lambda: worker.runs == 1, timeout=2), "the scheduler died: later jobs never run"
    poller.cancel(sleeper)


@pytest.mark.parametrize("name, value", [("interval", float("inf")), ("interval", float("nan")),
                                         ("max_interval", float("inf")), ("interval", 0.0)])
def test_non_finite_intervals_are_config_errors(name, value):
    with serve([TaskSpec("qianfan", "task-x", duration=10)]) as sim:
        with sim.qianfan_client() as client:
            with pytest.raises(ConfigError, match=name):
                ExportMonitor(client, "task-x", start=False, **{name: value})
            assert sim.request_count() == 0


class _DownClient:
    """A client whose network is down: every call is a transport error (no HTTP needed for 2,000 polls)."""

    provider = "qianfan"

    def __init__(self) -> None:
        self.calls = 0

    def get_export_task(self, task_id: str):
        self.calls += 1
        raise TransportError("Qianfan DescribeExportTask to 127.0.0.1:9 connection failed: refused",
                             provider="qianfan", operation="DescribeExportTask")


def test_a_day_long_outage_does_not_end_the_watch():
    """2,000 consecutive failed polls (33 hours at the 60 s cap): still polling, once a minute, every row kept."""
    clock, client = FakeClock(), _DownClient()
    # unreachable_grace=None: this client never answers, and a never-answered endpoint otherwise ends the watch
    monitor = ExportMonitor(client, "task-outage", start=False, clock=clock.now, rng=random.Random(1),
                            unreachable_grace=None)
    delays = []
    for _ in range(2000):
        delay = monitor.poll_once()
        assert delay is not None, f"the monitor stopped after {client.calls} failed polls: {monitor!r}"
        delays.append(delay)
        clock.advance(delay)
    assert not monitor.done and monitor.status == "running"
    assert len(monitor.history) == client.calls == 2000
    assert max(delays) <= Backoff().cap * 1.2 and min(delays[-100:]) >= Backoff().cap * 0.8


def test_backoff_is_defined_for_any_number_of_failures():
    backoff = Backoff()
    for consecutive in (1, 10, 64, 1025, 10**6):
        assert backoff.floor <= backoff.after_error(consecutive) <= backoff.cap


# -- interpreter exit ---------------------------------------------------------------------------------------

EXIT_SCRIPT = """
import sys, time
from export_widgets import watch
from export_widgets.simulator import Fault, Simulator, TaskSpec

sim = Simulator([TaskSpec("modelarts", "MA-exit", duration=3600),
                 TaskSpec("qianfan", "task-exit", duration=3600)]).start()
if {held!r}:
    # every request is held open by the server for a minute: the monitors are mid-request at exit
    sim.set_faults("*", [Fault("timeout", seconds=60, times=None)])
monitors = [
    watch(sim.modelarts_client(timeout=(5, 120)), "MA-exit", sim.dataset_id, interval=0.02),
    watch(sim.qianfan_client(timeout=(5, 120)), "task-exit", interval=0.02),
]
deadline = time.monotonic() + 10
while sim.request_count() < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
print("ready", sim.request_count(), flush=True)
{ending}
"""


@pytest.mark.parametrize("held", [True, False], ids=["mid-request", "polling"])
@pytest.mark.parametrize("ending", ["pass", "sys.exit(0)", "raise SystemExit(3)"])
def test_interpreter_exit_with_monitors_running_does_not_hang(held, ending):
    script = textwrap.dedent(EXIT_SCRIPT).format(held=held, ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        ready = proc.stdout.readline()
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the interpreter hung at exit with monitors running: {out!r} {err[-2000:]!r}")
    assert ready.startswith("ready"), (ready, out, err)
    assert int(ready.split()[1]) >= 2  # both monitors had a request out
    assert proc.returncode == (3 if "3" in ending else 0), err
    assert "Traceback" not in err and "Exception" not in err, err
    # (a hang is caught by communicate(timeout=20) above; how fast exit is belongs to no test)
