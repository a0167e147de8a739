"""Callbacks that misbehave, a fork, an endpoint where nothing listens, and Ctrl-C in the CLI."""

from __future__ import annotations

import logging
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from waiting import wait_for

from export_widgets.models import ExportTask, TaskState
from export_widgets.monitor import ExportMonitor
from export_widgets.poller import Poller, default_poller
from export_widgets.simulator import FakeClock, Simulator, TaskSpec, serve

ROOT = Path(__file__).resolve().parents[1]




class _Source:
    """A task source without HTTP whose every answer is a change (so polls come at the floor)."""

    name = label = "qianfan"
    needs_dataset = False

    def __init__(self) -> None:
        self.calls = 0

    def fetch(self, ref):
        self.calls += 1
        return ExportTask("qianfan", ref.task_id, TaskState.RUNNING, raw_status="Running",
                          progress=float(self.calls % 100), finished_samples=self.calls)


# -- callbacks -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt, GeneratorExit, ValueError])
def test_a_callback_raising_anything_is_logged_once_and_polling_goes_on(caplog, raised):
    """Budget 2; one monitor's callback raises (SystemExit killed the worker and leaked its slot before): every
    monitor, that one included, keeps polling, and the failure is logged once."""
    poller = Poller(budget=2, idle_exit=0.2)
    sources = [_Source() for _ in range(4)]
    monitors = [ExportMonitor(source, f"task-cb{i}", interval=0.02, poller=poller)
                for i, source in enumerate(sources)]

    def bad(_monitor):
        raise raised("from a callback")

    monitors[0].on_update(bad)
    monitors[1].on_change(bad)
    with caplog.at_level(logging.ERROR, logger="export_widgets"):
        calls = [s.calls for s in sources]
        assert wait_for(lambda: all(s.calls >= c + 5 for s, c in zip(sources, calls, strict=True)), timeout=20), \
            [s.calls for s in sources]
        for monitor in monitors:
            monitor.stop()
    assert all(m.status == "stopped" for m in monitors)
    logged = [r for r in caplog.records if raised.__name__ in r.getMessage()]
    assert len(logged) == 2, [r.getMessage() for r in logged]  # once per failing callback, not once per poll
    assert wait_for(lambda: not poller.threads(), timeout=10)
    assert poller._running.get("qianfan", 0) == 0


def test_a_slow_callback_does_not_hold_the_budget():
    """Budget 1: while one monitor's callback blocks, another monitor of the same provider still polls."""
    poller = Poller(budget=1, idle_exit=0.2)
    release = threading.Event()
    slow_source, other_source = _Source(), _Source()
    slow = ExportMonitor(slow_source, "task-slow", interval=0.02, poller=poller, start=False)
    blocked = threading.Event()

    def hang(_monitor):
        blocked.set()
        release.wait(30)

    slow.on_update(hang)
    slow.start()
    try:
        assert blocked.wait(10)
        other = ExportMonitor(other_source, "task-other", interval=0.02, poller=poller)
        assert wait_for(lambda: other_source.calls >= 5, timeout=10), other_source.calls
        assert slow_source.calls == 1  # its own next poll waits for its callback (callbacks stay in order)
    finally:
        release.set()
    assert wait_for(lambda: slow_source.calls >= 3, timeout=10)
    slow.stop()
    other.stop()
    assert wait_for(lambda: not poller.threads(), timeout=10)


def test_unsubscribe_drops_a_closed_views_callbacks():
    monitor = ExportMonitor(_Source(), "task-u", start=False)
    seen = []
    monitor.on_update(seen.append)
    monitor.on_change(seen.append)
    assert len(monitor.subscriptions()) == 2
    monitor.unsubscribe(seen.append)
    monitor.poll_once()
    assert seen == [] and monitor.subscriptions() == []


# -- fork ----------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_a_fresh_poller():
    parent_poller = default_poller()
    parent_source = _Source()
    parent_monitor = ExportMonitor(parent_source, "task-parent", interval=0.02)
    assert wait_for(lambda: parent_source.calls >= 3 and parent_poller.threads())
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() with threads": exactly what we test
        pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            child_source = _Source()
            fresh = default_poller()
            child = ExportMonitor(child_source, "task-child", interval=0.02)
            deadline = time.monotonic() + 20
            while child_source.calls < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            child.stop()
            report = (f"{child_source.calls >= 3} {fresh is not parent_poller} {parent_monitor.status} "
                      f"{sum(parent_poller._running.values())}")
            os.write(write_end, report.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    report = os.read(read_end, 200).decode()
    os.close(read_end)
    parent_monitor.stop()
    assert os.waitstatus_to_exitcode(status) == 0, report
    polled, fresh, inherited_status, inherited_running = report.split()
    assert polled == "True", "the child's monitor got no polls"
    assert fresh == "True" and inherited_status == "error" and inherited_running == "0", report


# -- an endpoint where nothing listens ---------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _qianfan_client(sim: Simulator, url: str):
    from export_widgets import QianfanClient

    creds = sim.credentials
    return QianfanClient(ak=creds.qianfan_ak, sk=creds.qianfan_sk, endpoint=url, environ={}, timeout=(1.0, 1.0))


def test_nothing_listening_is_said_and_ends_after_the_grace_period():
    port, clock = _closed_port(), FakeClock()
    sim = Simulator([TaskSpec("qianfan", "task-nowhere", duration=60)], port=port, clock=clock)  # not started
    client = _qianfan_client(sim, f"http://127.0.0.1:{port}")
    monitor = ExportMonitor(client, "task-nowhere", start=False, clock=clock.now, rng=random.Random(4),
                            unreachable_grace=120)
    delay = monitor.poll_once()
    assert delay is not None and monitor.status == "running"
    message = monitor.unreachable
    assert message and f"127.0.0.1:{port}" in message and "next retry in" in message, message
    assert "refused" in message.lower() or "connection failed" in message, message
    polls = 1
    while delay is not None and polls < 50:
        clock.advance(delay)
        delay = monitor.poll_once()
        polls += 1
    assert monitor.status == "error" and polls < 20, (monitor, polls)
    assert f"127.0.0.1:{port}" in str(monitor.error) and "cannot be reached" in str(monitor.error)
    assert "\n" not in str(monitor.error) and monitor.unreachable is None
    assert 120 <= clock.now() - monitor.started_at < 200
    client.close()


def test_after_a_first_answer_connection_failures_stay_transient():
    port, clock = _closed_port(), FakeClock()
    sim = Simulator([TaskSpec("qianfan", "task-once", duration=100_000)], port=port, clock=clock)
    client = _qianfan_client(sim, f"http://127.0.0.1:{port}")
    monitor = ExportMonitor(client, "task-once", start=False, clock=clock.now, rng=random.Random(4),
                            unreachable_grace=60)
    with sim:
        clock.advance(monitor.poll_once())
        assert monitor.latest is not None
    for _ in range(15):  # 15 refusals spanning far more than the grace period
        delay = monitor.poll_once()
        assert delay is not None and monitor.status == "running"
        assert monitor.unreachable is None
        clock.advance(delay)
    assert clock.now() - monitor.started_at > 300
    client.close()


# -- the CLI on Ctrl-C -------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_watch_exits_130_on_sigint():
    with serve([TaskSpec("qianfan", "task-sigint", duration=120)]) as sim:  # progress moves: a line per poll
        env = {**os.environ, **sim.env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "export_widgets", "watch", "--provider", "qianfan", "--endpoint", sim.url,
             "--interval", "0.2", "task-sigint"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            for _ in range(2):  # the second line comes from a poll: the main thread is waiting by then
                ready, _, _ = select.select([proc.stdout], [], [], 30)
                assert ready, "the watch printed nothing"
                proc.stdout.readline()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err.decode()
        assert "interrupted" in err.decode() and "Traceback" not in err.decode()
