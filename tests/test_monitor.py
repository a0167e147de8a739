"""ExportMonitor against the simulator over real HTTP.

Most tests drive the monitor with ``poll_once()`` and the simulator's FakeClock (the monitor reads the same
clock), so they never sleep; a few run the real background poller on short, fast scenarios.
"""

from __future__ import annotations

import random
import threading

import pytest

from export_widgets import TaskState, frames, watch, watch_many
from export_widgets.errors import AuthenticationError, ConfigError, TaskNotFoundError
from export_widgets.monitor import ExportMonitor, MonitorGroup
from export_widgets.poller import Poller
from export_widgets.simulator import Fault, TaskSpec


def _monitor(sim, task_id, **kw):
    spec = sim.tasks[task_id]
    client = sim.modelarts_client() if spec.provider == "modelarts" else sim.qianfan_client()
    kw.setdefault("rng", random.Random(0))
    return ExportMonitor(client, task_id, spec.dataset_id if spec.provider == "modelarts" else None,
                         start=False, clock=sim.clock.now, **kw)


def _drive(sim, monitor, step=1.0, limit=200):
    """Poll, advance the scenario clock, repeat until the monitor ends; return the delays it asked for."""
    delays = []
    for _ in range(limit):
        delay = monitor.poll_once()
        if delay is None:
            return delays
        delays.append(delay)
        sim.clock.advance(step)
    raise AssertionError(f"monitor did not end: {monitor!r}")


def test_success_history_and_callbacks(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "T1", duration=10, total_samples=1000))
    monitor = _monitor(empty_sim, "T1")
    changes = []
    monitor.on_change(changes.append)
    _drive(empty_sim, monitor)
    assert monitor.status == "finished" and monitor.done
    assert monitor.latest.state is TaskState.SUCCEEDED and monitor.latest.finished_samples == 1000
    rows = list(monitor.history)
    assert len(rows) == empty_sim.request_count(task_id="T1") == 11
    assert all(r.outcome == "ok" for r in rows)
    progress = [r.progress for r in rows]
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert len(changes) == len(rows)  # every poll moved progress
    assert monitor.poll_once() is None  # finished: no more requests
    assert empty_sim.request_count(task_id="T1") == 11


def test_eta_matches_the_scenario(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "T1", duration=100, total_samples=5000))
    monitor = _monitor(empty_sim, "T1")
    for _ in range(8):
        monitor.poll_once()
        empty_sim.clock.advance(5)
    fig = monitor.figures()
    # 35 s in, 1 %/s: 65 s to go (measured from the last poll, 5 s ago).
    assert fig.rate_pct_per_s == pytest.approx(1.0, rel=0.02)
    assert fig.eta_s == pytest.approx(60.0, abs=2.0)
    assert fig.rate_samples_per_s == pytest.approx(50.0, rel=0.02)
    assert not fig.stalled


def test_stall_is_flagged_and_failure_recorded(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "S", duration=20, outcome="stall", stall_at=50))
    empty_sim.add_task(TaskSpec("modelarts", "F", duration=20, outcome="fail", fail_at=60,
                                error_code="ModelArts.4311", error_message="OBS bucket does not exist"))
    stalled = _monitor(empty_sim, "S", stall_after=30)
    failed = _monitor(empty_sim, "F")
    for _ in range(30):
        stalled.poll_once()
        failed.poll_once()
        empty_sim.clock.advance(2)
    assert stalled.latest.state is TaskState.RUNNING and stalled.figures().stalled
    assert stalled.figures().eta_s is None and not stalled.done
    assert failed.status == "finished" and failed.latest.state is TaskState.FAILED
    assert (failed.latest.error_code, failed.latest.progress) == ("ModelArts.4311", 60.0)


def test_interval_grows_while_unchanged_and_resets_on_change(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "P", start_delay=300, duration=10))
    monitor = _monitor(empty_sim, "P", interval=2.0, max_interval=60.0)
    delays = [monitor.poll_once() for _ in range(12)]  # clock frozen: nothing changes
    assert delays[0] == pytest.approx(2.0, rel=0.21)
    assert delays[-1] == pytest.approx(60.0, rel=0.21) and max(delays) <= 72.0
    empty_sim.clock.advance(305)  # running now: progress moves
    assert monitor.poll_once() == pytest.approx(2.0, rel=0.21)


def test_server_errors_back_off_and_recover(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-1", duration=10))
    empty_sim.set_faults("task-1", [Fault("server_error", status=503, times=4)])
    monitor = _monitor(empty_sim, "task-1", interval=1.0)
    delays = [monitor.poll_once() for _ in range(5)]
    assert [r.outcome for r in monitor.history] == ["server_error"] * 4 + ["ok"]
    # 2, 4, 8, 16 s (±20 % jitter): doubling, never a storm.
    for got, want in zip(delays, [2, 4, 8, 16], strict=False):
        assert want * 0.8 <= got <= want * 1.2
    assert monitor.latest is not None and not monitor.done and monitor.last_poll_error is None
    assert empty_sim.request_count(task_id="task-1") == 5


def test_retry_after_is_honoured(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "R", duration=10))
    empty_sim.set_faults("R", [Fault("rate_limit", retry_after=17)])
    monitor = _monitor(empty_sim, "R")
    assert monitor.poll_once() >= 17
    row = monitor.history.row(-1)
    assert row.outcome == "rate_limited" and "429" in row.error_message
    empty_sim.set_faults("R", [Fault("apig_throttle")])
    monitor.poll_once()
    assert monitor.history.row(-1).error_code == "APIG.0308"


@pytest.mark.parametrize("fault, error_type, outcome", [
    (Fault("auth_revoked"), AuthenticationError, "auth_error"),
    (Fault("not_found"), TaskNotFoundError, "not_found"),
])
def test_permanent_errors_end_the_monitor(empty_sim, fault, error_type, outcome):
    empty_sim.add_task(TaskSpec("modelarts", "X", duration=10))
    empty_sim.set_faults("X", [fault])
    monitor = _monitor(empty_sim, "X")
    assert monitor.poll_once() is None
    assert monitor.status == "error" and isinstance(monitor.error, error_type)
    assert [r.outcome for r in monitor.history] == [outcome]
    assert monitor.poll_once() is None and empty_sim.request_count(task_id="X") == 1


def test_timeout_ends_on_time(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "slow", duration=1000))
    monitor = _monitor(empty_sim, "slow", timeout=10)
    delays = _drive(empty_sim, monitor, step=3.0)
    assert monitor.status == "timed_out" and monitor.latest.state is TaskState.RUNNING
    assert len(delays) == 4  # polls at 0, 3, 6, 9 s; the 12 s wake-up ends it
    assert all(d <= 10 for d in delays)


def test_refresh_during_a_poll_is_not_lost(empty_sim):
    """"Refresh now" pressed while a request is in flight: the next poll comes at once, not after backoff."""
    empty_sim.add_task(TaskSpec("modelarts", "P", start_delay=1000, duration=10))
    monitor = _monitor(empty_sim, "P")
    monitor.poll_once()
    fetch = monitor.client.get_export_task

    def fetch_and_click(*args):
        monitor.refresh()  # the button, mid-request
        return fetch(*args)

    monitor.client.get_export_task = fetch_and_click
    monitor._scheduler().cancel(monitor)  # only run() below, no background poll
    assert monitor.run() == 0.0
    monitor.client.get_export_task = fetch
    assert monitor.run() > 2.0  # unchanged and no click: the interval grows again
    monitor.stop()


def test_bad_arguments_are_config_errors(empty_sim):
    client = empty_sim.modelarts_client()
    with pytest.raises(ConfigError, match="dataset_id"):
        ExportMonitor(client, "T", start=False)
    with pytest.raises(ConfigError, match="interval"):
        ExportMonitor(client, "T", "D", interval=-1, start=False)
    with pytest.raises(ConfigError, match="timeout"):
        ExportMonitor(client, "T", "D", timeout=0, start=False)


def test_a_failing_callback_does_not_stop_polling(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "T", duration=3))
    monitor = _monitor(empty_sim, "T")
    monitor.on_change(lambda task: 1 / 0)
    _drive(empty_sim, monitor)
    assert monitor.status == "finished" and monitor.latest.state is TaskState.SUCCEEDED


# -- the real background poller ---------------------------------------------------------------------------

@pytest.fixture
def poller():
    own = Poller(budget=2, idle_exit=0.5)
    yield own
    own.shutdown()
    assert not own.threads()


def test_background_watch_to_the_end(poller):
    from export_widgets.simulator import serve

    with serve([TaskSpec("modelarts", "fast", duration=0.6), TaskSpec("qianfan", "task-fast", duration=0.6)]) as sim:
        mon = watch(sim.modelarts_client(), "fast", sim.dataset_id, interval=0.05, poller=poller)
        qf = watch(sim.qianfan_client(), "task-fast", interval=0.05, poller=poller)
        assert mon.wait(timeout=20).state is TaskState.SUCCEEDED
        assert qf.wait(timeout=20).state is TaskState.SUCCEEDED
        assert len(mon.history) == sim.request_count(task_id="fast") >= 2
        frame = mon.history_frame()
        assert len(frame) == len(mon.history) and frame["state"].iloc[-1] == "SUCCEEDED"


def test_stop_returns_at_once_and_polling_stops(poller):
    from export_widgets.simulator import serve

    with serve([TaskSpec("modelarts", "long", duration=600)]) as sim:
        sim.set_faults("long", [Fault("slow", seconds=5, times=None)])  # every request in flight for 5 s
        mon = watch(sim.modelarts_client(timeout=10), "long", sim.dataset_id, interval=0.05, poller=poller)
        arrived = threading.Event()
        while sim.request_count(task_id="long") == 0:  # wait for the first request to reach the server
            arrived.wait(0.01)
        mon.stop()  # that request is still in flight (the server holds it for 5 s)
        assert mon.done and mon.status == "stopped"
        assert poller.pending() == 0
        mon.refresh()  # a stopped monitor ignores refresh
        assert poller.pending() == 0


def test_group_shares_the_budget(poller):
    from export_widgets.simulator import serve

    specs = [TaskSpec("modelarts", f"T{i}", duration=0.3) for i in range(8)]
    with serve(specs) as sim:
        client = sim.modelarts_client()
        in_flight, peak, lock = [0], [0], threading.Lock()
        original = client.get_export_task

        def counting(*args):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            try:
                return original(*args)
            finally:
                with lock:
                    in_flight[0] -= 1

        client.get_export_task = counting
        sim.set_faults("*", [Fault("slow", seconds=0.05, times=None)])
        group = watch_many([(client, s.task_id, s.dataset_id) for s in specs], interval=0.05, poller=poller,
                           batch=False)  # one request per task (sweeps are tested in test_sweep.py)
        assert isinstance(group, MonitorGroup)
        group.wait(timeout=30)
        assert group.done and all(t.state is TaskState.SUCCEEDED for t in group.latest)
        assert peak[0] == 2  # the whole budget is used, and never more
        summary = group.summary()
        assert list(summary["task_id"]) == [s.task_id for s in specs]
        assert len(group.history_frame()) == sum(len(m.history) for m in group)


def test_list_export_tasks_to_summary(sim):
    tasks = sim.modelarts_client().list_export_tasks(sim.dataset_id)
    frame = frames.summary(tasks)
    assert set(frame["task_id"]) == {tid for tid, spec in sim.tasks.items() if spec.provider == "modelarts"}
