"""The display-state vocabulary, driven by real monitors polling the simulator over HTTP on a fake clock."""

from __future__ import annotations

import random

import pytest

from export_widgets.display import Display, DisplayState, describe
from export_widgets.models import TaskState
from export_widgets.monitor import ExportMonitor
from export_widgets.simulator import Fault, TaskSpec


def _monitor(sim, task_id, client=None, **kw):
    spec = sim.tasks.get(task_id)
    provider = spec.provider if spec is not None else kw.pop("provider", "modelarts")
    if client is None:
        client = sim.modelarts_client() if provider == "modelarts" else sim.qianfan_client()
    dataset = sim.dataset_id if provider == "modelarts" else None
    return ExportMonitor(client, task_id, dataset, start=False, clock=sim.clock.now, rng=random.Random(0), **kw)


def _run(monitor, sim, step=1.0, limit=200):
    for _ in range(limit):
        if monitor.done:
            return
        monitor.poll_once()
        sim.clock.advance(step)
    raise AssertionError(f"{monitor!r} did not end in {limit} polls")


def test_every_state_has_one_label_colour_and_rank():
    ranks = [s.rank for s in DisplayState]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert len({s.label for s in DisplayState}) == len(DisplayState)
    for state in DisplayState:
        assert state.colour.startswith("var(--jp-") and "#" in state.colour  # theme variable + white-page fallback
    order = [DisplayState.ERROR, DisplayState.FAILED, DisplayState.RETRYING, DisplayState.STALLED,
             DisplayState.RUNNING, DisplayState.WAITING, DisplayState.SUCCEEDED]
    assert sorted(order, key=lambda s: s.rank) == order  # the attention order
    assert DisplayState.TIMED_OUT.label == "TIMED OUT" and DisplayState.WATCH_STOPPED.label == "WATCH STOPPED"


def test_waiting_before_the_first_answer(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "W", duration=10))
    d = describe(_monitor(empty_sim, "W"))
    assert d == Display(DisplayState.WAITING) and d.detail() == ""


def test_queued_then_running_then_succeeded(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "Q", start_delay=30, duration=10, total_samples=500))
    monitor = _monitor(empty_sim, "Q")
    monitor.poll_once()
    assert describe(monitor).state is DisplayState.QUEUED
    empty_sim.clock.advance(35)
    monitor.poll_once()
    d = describe(monitor)
    assert d.state is DisplayState.RUNNING and d.progress == pytest.approx(50.0) and d.task_state is TaskState.RUNNING
    _run(monitor, empty_sim)
    assert describe(monitor).state is DisplayState.SUCCEEDED


@pytest.mark.parametrize("fault, reason", [
    (Fault("rate_limit", retry_after=7, times=None), "rate limited"),
    (Fault("server_error", status=503, times=None), "HTTP 503"),
    (Fault("drop", times=None), "cannot connect"),
])
def test_retrying_says_why_and_when(empty_sim, fault, reason):
    empty_sim.add_task(TaskSpec("qianfan", "task-r", duration=100))
    empty_sim.set_faults("task-r", [fault])
    monitor = _monitor(empty_sim, "task-r")
    now = empty_sim.clock.now()
    delay = monitor.poll_once()
    d = describe(monitor)
    assert d.state is DisplayState.RETRYING and d.reason == reason, d
    assert d.next_try_at == pytest.approx(now + delay) and monitor.next_poll_at == d.next_try_at
    if fault.kind == "rate_limit":
        assert d.next_try_at >= now + 7  # Retry-After honoured and shown
    assert "next try" in d.detail() and reason in d.detail()
    # a task answered only by errors sorts before running and waiting ones
    assert d.state.rank < DisplayState.RUNNING.rank < DisplayState.WAITING.rank
    empty_sim.clear_faults("task-r")
    monitor.poll_once()
    assert describe(monitor).state is DisplayState.RUNNING


def test_retrying_keeps_the_last_known_progress(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "R", duration=100))
    monitor = _monitor(empty_sim, "R")
    empty_sim.clock.advance(40)
    monitor.poll_once()
    empty_sim.set_faults("R", [Fault("server_error", status=502)])
    monitor.poll_once()
    d = describe(monitor)
    assert d.state is DisplayState.RETRYING and d.reason == "HTTP 502" and d.progress == pytest.approx(40.0)


def test_stalled(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "S", duration=10, outcome="stall", stall_at=40))
    monitor = _monitor(empty_sim, "S", stall_after=20)
    for _ in range(12):
        monitor.poll_once()
        empty_sim.clock.advance(3)
    monitor.poll_once()
    assert describe(monitor).state is DisplayState.STALLED


def test_failed_modelarts_keeps_the_vendor_reason(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "F", duration=10, outcome="fail", fail_at=60,
                                error_code="ModelArts.4311", error_message="OBS bucket does not exist"))
    monitor = _monitor(empty_sim, "F")
    _run(monitor, empty_sim)
    d = describe(monitor)
    assert d.state is DisplayState.FAILED and d.progress == pytest.approx(60.0)
    assert d.reason == "ModelArts.4311 OBS bucket does not exist"


def test_failed_qianfan_keeps_the_progress_it_reached(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-f", duration=10, outcome="fail", fail_at=30))
    monitor = _monitor(empty_sim, "task-f")
    _run(monitor, empty_sim)
    assert monitor.latest.progress == 0.0  # what Qianfan sends on failure
    d = describe(monitor)
    assert d.state is DisplayState.FAILED and 20.0 <= d.progress <= 30.0, d
    assert d.reason  # the vendor's status at least (it sends no message)


def test_stopped_on_the_server(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "X", duration=10, outcome="stop", stop_at=50))
    monitor = _monitor(empty_sim, "X")
    _run(monitor, empty_sim)
    d = describe(monitor)
    assert d.state is DisplayState.STOPPED and d.progress == pytest.approx(50.0)


def test_watch_stopped_keeps_the_task_state_beside(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "U", duration=100))
    monitor = _monitor(empty_sim, "U")
    empty_sim.clock.advance(42)
    monitor.poll_once()
    monitor.stop()
    d = describe(monitor)
    assert d.state is DisplayState.WATCH_STOPPED and d.task_state is TaskState.RUNNING
    assert "task was RUNNING at 42.0%" in d.detail()
    assert monitor.next_poll_at is None


def test_timed_out_keeps_the_task_state_beside(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-t", duration=1000))
    monitor = _monitor(empty_sim, "task-t", timeout=10)
    _run(monitor, empty_sim, step=3)
    d = describe(monitor)
    assert d.state is DisplayState.TIMED_OUT and d.task_state is TaskState.RUNNING
    assert d.detail().startswith("task was RUNNING")


def test_wrong_credentials_are_an_error_not_waiting(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-a", duration=10))
    monitor = _monitor(empty_sim, "task-a", client=empty_sim.qianfan_client(sk="wrong-secret"))
    monitor.poll_once()
    d = describe(monitor)
    assert d.state is DisplayState.ERROR and d.reason.startswith("credentials rejected: ")
    assert "wrong-secret" not in d.detail()


def test_unknown_task_is_an_error(empty_sim):
    monitor = _monitor(empty_sim, "NoSuchTask", provider="modelarts")
    monitor.poll_once()
    d = describe(monitor)
    assert d.state is DisplayState.ERROR and d.reason.startswith("task not found: ")


def test_attention_order_of_a_mixed_set(empty_sim):
    sim = empty_sim
    sim.add_task(TaskSpec("modelarts", "ok", duration=5))
    sim.add_task(TaskSpec("modelarts", "run", duration=1000))
    sim.add_task(TaskSpec("modelarts", "bad", duration=5, outcome="fail", fail_at=40))
    sim.add_task(TaskSpec("qianfan", "task-429", duration=1000))
    sim.set_faults("task-429", [Fault("rate_limit", times=None)])
    monitors = {name: _monitor(sim, name) for name in ("ok", "run", "bad", "task-429")}
    monitors["missing"] = _monitor(sim, "missing", provider="modelarts")
    for _ in range(10):
        for m in monitors.values():
            if not m.done:
                m.poll_once()
        sim.clock.advance(1)
    ordered = sorted(monitors, key=lambda name: describe(monitors[name]).state.rank)
    assert ordered == ["missing", "bad", "task-429", "run", "ok"]


def test_dashboard_frame_has_the_display_state(empty_sim):
    from export_widgets.monitor import MonitorGroup

    empty_sim.add_task(TaskSpec("modelarts", "run", duration=1000))
    empty_sim.add_task(TaskSpec("qianfan", "task-429", duration=1000))
    empty_sim.set_faults("task-429", [Fault("rate_limit", times=None)])
    group = MonitorGroup([_monitor(empty_sim, "run"), _monitor(empty_sim, "task-429")])
    for m in group:
        m.poll_once()
    frame = group.summary()
    assert list(frame["display_state"]) == ["running", "retrying"]
    assert frame["display_state"].cat.ordered and frame.sort_values("display_state")["task_id"].iloc[0] == "task-429"
    assert frame["display_detail"].iloc[1].startswith("rate limited · next try ")


def test_an_endpoint_that_cannot_be_reached_is_named_on_the_retrying_badge():
    """Before any answer, a refused connection shows host, port and reason (not a bare 'cannot connect')."""
    import socket

    from export_widgets import QianfanClient

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = QianfanClient(ak="A" * 32, sk="S" * 32, endpoint=f"http://127.0.0.1:{port}", environ={})
    monitor = ExportMonitor(client, "task-nowhere", start=False)
    assert monitor.poll_once() is not None
    shown = describe(monitor)
    assert shown.state is DisplayState.RETRYING
    assert f"127.0.0.1:{port}" in (shown.reason or "") and "next retry" in (shown.reason or "")


def test_a_task_stopping_on_the_server_is_still_running_and_says_so(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "MaStopping", duration=60, outcome="stop", stop_at=30))
    monitor = ExportMonitor(empty_sim.modelarts_client(), "MaStopping", empty_sim.dataset_id, start=False,
                            clock=empty_sim.clock.now)
    empty_sim.set_faults("MaStopping", [Fault("unknown_status", value="STOPPING")])
    assert monitor.poll_once() is not None  # STOPPING is not terminal: the watch goes on
    shown = describe(monitor)
    assert shown.state is DisplayState.RUNNING and shown.reason == "stopping on the server"
    assert monitor.latest.state is TaskState.STOPPING


def test_a_just_created_task_that_is_not_readable_yet_says_so(empty_sim):
    """Within the not-found grace window after a create, the badge says why it retries (not 'poll failed')."""
    monitor = ExportMonitor(empty_sim.qianfan_client(), "task-notyet", start=False, clock=empty_sim.clock.now,
                            not_found_grace=30)
    assert monitor.poll_once() is not None  # not found, but inside the grace window: retried
    shown = describe(monitor)
    assert shown.state is DisplayState.RETRYING and shown.reason == "just created, not readable yet"
