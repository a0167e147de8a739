"""Watches that outlive the kernel, end to end: recorded by default, resumed after their process died, history
across sessions, and notifications, through ``watch()``, the magic and the CLI.

A "kernel that went away" is a real child process that watches through the store and dies with ``os._exit`` (no
end recorded, nothing closed); the test process resumes it. The simulator's clock only moves when the test moves
it, so which state a poll sees is decided here, not by timing. tests/test_resume_kernel.py does the same with a
real Jupyter kernel restarted mid-watch.
"""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_notify import FAST as NOTIFY_FAST
from test_notify import Receiver
from traitlets.config import Config

from export_widgets import TaskState, cli, frames, make_client, watch, watch_many
from export_widgets.monitor import ExportMonitor, MonitorGroup, MonitorStatus
from export_widgets.notify import FORMATS, Notifier
from export_widgets.simulator import Simulator, TaskSpec
from export_widgets.store import POLL_COLUMNS, WATCH_COLUMNS, Store, default_store, set_default_store

ROOT = Path(__file__).resolve().parents[1]


# -- fixtures ---------------------------------------------------------------------------------------------------

@pytest.fixture
def own_default_store(store_path: Path) -> Iterator[Store]:
    """The process-wide store at this test's own file (then back to the session's)."""
    store = set_default_store(store_path)
    yield store
    set_default_store(None)


@pytest.fixture
def shell(monkeypatch, empty_sim: Simulator, store_path: Path) -> Iterator[InteractiveShell]:
    """A real IPython shell with the extension, the simulator's fake credentials exported, and the store at
    this test's file through ``%config ExportStatus.store``."""
    for name, value in empty_sim.env.items():
        monkeypatch.setenv(name, value)
    config = Config()
    config.HistoryAccessor.enabled = False
    ip = InteractiveShell(config=config)
    ip.run_line_magic("load_ext", "export_widgets")
    ip.run_line_magic("config", f"ExportStatus.store = {str(store_path)!r}")
    yield ip
    ip.run_line_magic("unload_ext", "export_widgets")
    set_default_store(None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def magic(ip: InteractiveShell, line: str) -> object:
    return ip.run_line_magic("export_status", line)


def _env(sim: Simulator, store_path: Path) -> dict[str, str]:
    env = {**os.environ, **sim.env, "EXPORT_WIDGETS_STORE": str(store_path)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wait_until(condition, timeout: float = 60.0, step: float = 0.02) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# A process that watches a task through the store and dies after some polls: a kernel that went away.
_DYING_WATCHER = textwrap.dedent("""
    import os, sys, time
    from export_widgets import make_client, watch
    from export_widgets.store import default_store
    provider, task_id, dataset, polls = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
    monitor = watch(make_client(provider), task_id, dataset, interval=0.05)
    deadline = time.monotonic() + 60
    while not len(monitor.history) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    while len(monitor.history) < polls and time.monotonic() < deadline:
        time.sleep(0.01)
    default_store().flush()
    print(len(monitor.history), flush=True)
    os._exit(0)  # no end recorded, nothing closed
""")


def orphan(sim: Simulator, store_path: Path, provider: str, task_id: str, dataset: str | None = None,
           polls: int = 4, step: float = 10.0) -> int:
    """Run :data:`_DYING_WATCHER` while moving the simulator's clock by ``step`` s every 20 ms (so each poll sees
    progress); returns how many of its polls are in the store."""
    child = subprocess.Popen([sys.executable, "-c", _DYING_WATCHER, provider, task_id, dataset or "", str(polls)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(sim, store_path))
    try:
        assert child.stdout.readline().strip() == "ready"  # its first poll is in: now let the task move
        for _ in range(3000):  # bounded: 60 s
            if child.poll() is not None:
                break
            sim.clock.advance(step)
            time.sleep(0.05)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert int(out) >= polls
    with sqlite3.connect(store_path) as conn:
        return int(conn.execute("SELECT count(*) FROM polls p JOIN watches w ON w.wkey = p.wkey "
                                "WHERE w.task_id = ?", (task_id,)).fetchone()[0])


def _run_to_the_end(sim: Simulator, monitor: ExportMonitor) -> None:
    """Move the simulator's clock (bounded: 500 steps of 0.1 s) until the watch has ended well."""
    for _ in range(500):
        if monitor.done:
            break
        sim.clock.advance(0.1)
        time.sleep(0.01)
    assert monitor.wait(30) is not None and monitor.status is MonitorStatus.FINISHED


# -- recorded by default ----------------------------------------------------------------------------------------

def test_watch_is_recorded_by_default_and_on_done_is_called_once(empty_sim, own_default_store):
    empty_sim.add_task(TaskSpec("qianfan", "T1", duration=10, total_samples=100))
    empty_sim.clock.advance(30)  # finished before the watch starts: one poll
    done: list[ExportMonitor] = []
    monitor = watch(empty_sim.qianfan_client(), "T1", interval=0.05, on_done=done.append)
    assert monitor.wait(30) is not None and monitor.done
    monitor.stop()  # a second end is no second call
    assert _wait_until(lambda: len(done) == 1) and done == [monitor]
    watches = own_default_store.watches()
    assert list(watches["task_id"]) == ["T1"] and list(watches["end_reason"]) == ["finished"]
    polls = own_default_store.polls(task_id="T1")
    assert len(polls) == len(monitor.history) == empty_sim.request_count(task_id="T1")
    pd.testing.assert_frame_equal(polls[list(frames.HISTORY_COLUMNS)], monitor.history_frame(),
                                  check_categorical=False, check_dtype=False)

    silent = watch(empty_sim.qianfan_client(), "T1", interval=0.05, store=False)
    assert silent.wait(30) is not None
    assert len(own_default_store.watches()) == 1  # store=False: not recorded


def test_watch_many_calls_on_done_once_with_the_group_when_all_ended(empty_sim, own_default_store):
    empty_sim.add_task(TaskSpec("qianfan", "A", duration=5, total_samples=10))
    empty_sim.add_task(TaskSpec("qianfan", "B", duration=50, total_samples=10))
    empty_sim.clock.advance(10)  # A has ended, B runs
    client = empty_sim.qianfan_client()
    ended: list[MonitorGroup] = []
    group = watch_many([(client, "A"), (client, "B")], interval=0.05, on_done=ended.append)
    assert group[0].wait(30) is not None and group[0].done
    assert _wait_until(lambda: len(group[1].history) >= 2)
    assert ended == []  # B still runs
    empty_sim.clock.advance(100)
    group.wait(30)
    assert group.done and _wait_until(lambda: ended == [group])
    assert sorted(own_default_store.watches()["task_id"]) == ["A", "B"]


def test_bad_on_done_and_store_say_what_to_do(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "T1", duration=10))
    with pytest.raises(TypeError, match="on_done must be callable"):
        watch(empty_sim.qianfan_client(), "T1", on_done="https://example.com", start=False)
    with pytest.raises(TypeError, match="store= takes a Store"):
        watch(empty_sim.qianfan_client(), "T1", store="/tmp/x.sqlite3", start=False)


def test_the_tests_never_use_the_real_state_directory():
    location = os.environ["EXPORT_WIDGETS_STORE"]
    assert "export-widgets-tests-store-" in location
    assert default_store().path == Path(location) or default_store().mode != "file"


# -- the magic ---------------------------------------------------------------------------------------------------

def test_magic_records_its_watches_and_history_spans_them(shell, empty_sim, store_path):
    empty_sim.add_task(TaskSpec("qianfan", "task-h1", duration=100, total_samples=1000))
    magic(shell, "--provider qianfan task-h1 --once")  # --once fetches, it does not watch: not recorded
    monitors = []
    for _ in range(2):  # two watches of the task, as two sessions would make
        magic(shell, "--provider qianfan task-h1 --no-widget --interval 0.05 -o mon")
        mon = shell.user_ns["mon"]
        empty_sim.clock.advance(20)
        assert _wait_until(lambda: len(mon.history) >= 3)  # noqa: B023 - used at once
        mon.stop()
        monitors.append(mon)
    # a request in flight at stop() is still recorded: wait for its answer
    assert _wait_until(lambda: sum(len(m.history) for m in monitors) ==
                       empty_sim.request_count(task_id="task-h1") - 1)
    watches = magic(shell, "--history")
    assert isinstance(watches, pd.DataFrame) and list(watches.columns) == list(WATCH_COLUMNS)
    assert list(watches["task_id"]) == ["task-h1", "task-h1"] and list(watches["end_reason"]) == ["stopped"] * 2
    polls = magic(shell, "--history task-h1 -o polls")
    assert shell.user_ns["polls"] is polls and list(polls.columns) == list(POLL_COLUMNS)
    assert len(polls) == watches["polls"].sum() == sum(len(m.history) for m in monitors)
    assert polls["polled_at"].is_monotonic_increasing and polls["watch_id"].nunique() == 2
    assert list(magic(shell, "--history --provider modelarts")["task_id"]) == []


def test_magic_resumes_a_watch_whose_kernel_died_with_its_history(shell, empty_sim, store_path, capsys):
    empty_sim.add_task(TaskSpec("qianfan", "task-r1", duration=3000, total_samples=6000))
    stored = orphan(empty_sim, store_path, "qianfan", "task-r1")
    old = Store(store_path).unfinished_watches()
    assert [w.task_id for w in old] == ["task-r1"] and old[0].owner_alive is False

    assert magic(shell, "--resume --no-widget --interval 0.05 -o mon") is None
    mon = shell.user_ns["mon"]
    assert isinstance(mon, ExportMonitor) and len(mon.history) >= stored + 1  # the old polls, then one in the cell
    with sqlite3.connect(store_path) as conn:
        before = [row[0] for row in conn.execute("SELECT polled_at FROM polls ORDER BY seq")]
    assert len(before) == stored and list(mon.history.polled_at[:stored]) == before  # intact, in order
    figures = mon.figures()
    assert figures.rate_pct_per_s and figures.rate_pct_per_s > 0 and figures.eta_s is not None  # ETA goes on
    assert figures.elapsed_s >= mon.history.polled_at[-1] - before[0] - 1  # counted from the first old poll
    magic(shell, "--provider qianfan task-r1 --no-widget -o again")
    assert shell.user_ns["again"] is mon  # the resumed watch is this kernel's live one: no second watch

    empty_sim.clock.advance(10_000)
    mon.wait(30)
    assert mon.status is MonitorStatus.FINISHED and mon.latest.state is TaskState.SUCCEEDED
    store = default_store()
    watches = store.watches(task_id="task-r1")
    assert list(watches["end_reason"]) == ["resumed", "finished"]
    assert watches["resumed_from"].iloc[1] == old[0].watch_id
    assert len(store.polls(task_id="task-r1")) == len(mon.history)  # every poll once, none twice
    assert store.unfinished_watches() == []
    assert magic(shell, "--resume --no-widget") is None  # nothing left
    assert "Nothing to resume" in capsys.readouterr().out


def test_a_task_that_finished_meanwhile_shows_its_final_state_after_one_poll(shell, empty_sim, store_path):
    empty_sim.add_task(TaskSpec("modelarts", "MaDone01", duration=3000, total_samples=600))
    stored = orphan(empty_sim, store_path, "modelarts", "MaDone01", empty_sim.dataset_id)
    empty_sim.clock.advance(10_000)  # the export ended while no kernel watched it
    requests = empty_sim.request_count(task_id="MaDone01")
    magic(shell, "--resume MaDone01 --no-widget -o mon")
    mon = shell.user_ns["mon"]
    assert mon.done and mon.status is MonitorStatus.FINISHED and mon.latest.state is TaskState.SUCCEEDED
    assert empty_sim.request_count(task_id="MaDone01") == requests + 1 and len(mon.history) == stored + 1
    assert mon.dataset_id == empty_sim.dataset_id and mon.client.project_id == empty_sim.project_id


def test_resume_names_what_it_cannot_resume(shell, empty_sim, store_path, monkeypatch, capsys):
    empty_sim.add_task(TaskSpec("qianfan", "task-nk", duration=3000))
    orphan(empty_sim, store_path, "qianfan", "task-nk")
    monkeypatch.delenv("QIANFAN_ACCESS_KEY")
    magic(shell, "--resume task-nk task-unknown --no-widget")
    err = capsys.readouterr().err
    assert "task-nk: cannot resume" in err and "QIANFAN_ACCESS_KEY" in err
    assert "task-unknown: no unfinished watch of this task" in err
    assert [w.task_id for w in Store(store_path).unfinished_watches()] == ["task-nk"]  # left for a later resume
    monkeypatch.setenv("QIANFAN_ACCESS_KEY", empty_sim.env["QIANFAN_ACCESS_KEY"])
    magic(shell, "--resume --no-widget -o mon")
    assert shell.user_ns["mon"].task_id == "task-nk"
    shell.user_ns["mon"].stop()


def test_config_store_off_records_nothing_and_history_says_so(shell, empty_sim, store_path):
    shell.run_line_magic("config", "ExportStatus.store = 'off'")
    empty_sim.add_task(TaskSpec("qianfan", "task-off", duration=1))
    empty_sim.clock.advance(5)
    magic(shell, "--provider qianfan task-off --no-widget --wait")
    assert not store_path.exists()
    with pytest.raises(UsageError, match="the watch store is off"):
        magic(shell, "--history")


def test_a_corrupt_store_warns_once_and_the_magic_watches_on(shell, empty_sim, tmp_path, caplog):
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    shell.run_line_magic("config", f"ExportStatus.store = {str(corrupt)!r}")
    empty_sim.add_task(TaskSpec("qianfan", "task-c", duration=10, total_samples=10))
    with caplog.at_level(logging.WARNING, logger="export_widgets"):
        magic(shell, "--provider qianfan task-c --no-widget --interval 0.05 -o mon")
        mon = shell.user_ns["mon"]
        for _ in range(200):  # bounded
            if mon.done:
                break
            empty_sim.clock.advance(0.5)
            time.sleep(0.02)
        mon.wait(30)
        history = magic(shell, "--history task-c")
    assert mon.status is MonitorStatus.FINISHED and len(history) == len(mon.history)  # kept, in memory
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("export_widgets")]
    assert len(warnings) == 1 and "cannot be used" in warnings[0].getMessage()
    assert corrupt.read_bytes() == b"this is not a database" * 100  # left untouched


def test_magic_notifies_the_webhook(shell, empty_sim, receiver):
    empty_sim.add_task(TaskSpec("qianfan", "task-n1", duration=5, total_samples=50))
    empty_sim.add_task(TaskSpec("qianfan", "task-n2", duration=5, total_samples=50))
    empty_sim.clock.advance(10)
    magic(shell, f"--provider qianfan task-n1 --no-widget --wait --notify {receiver.url()} --notify-format slack")
    magic(shell, f"--provider qianfan task-n1 task-n2 --no-widget --wait --notify {receiver.url()}")
    assert receiver.wait_for(2)
    texts = [r["body"]["text"] for r in receiver.requests]
    assert texts[0].startswith("[export_widgets] Qianfan export task-n1 SUCCEEDED")
    assert texts[1].startswith("[export_widgets] all 2 exports ended: 2 SUCCEEDED")  # the dashboard: once
    assert set(receiver.requests[1]["body"]) >= {"event", "tasks", "text"}  # json: chosen by the URL
    with pytest.raises(UsageError, match="must be an http"):
        magic(shell, "--provider qianfan task-n1 --notify ftp://x/y")
    with pytest.raises(UsageError, match="go with --notify"):
        magic(shell, "--provider qianfan task-n1 --notify-stalled")


# -- the CLI -----------------------------------------------------------------------------------------------------

def run(argv: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def test_cli_watch_resume_and_history(empty_sim, store_path, tmp_path):
    empty_sim.add_task(TaskSpec("qianfan", "task-cli", duration=3000, total_samples=600))
    stored = orphan(empty_sim, store_path, "qianfan", "task-cli")
    empty_sim.clock.advance(10_000)
    code, out, err = run(["watch", "--resume", "--store", str(store_path), "--interval", "0.05"], empty_sim.env)
    assert code == 0, err
    assert f"resuming qianfan task-cli ({stored} earlier polls" in out and "SUCCEEDED" in out

    code, out, err = run(["history", "--store", str(store_path)], empty_sim.env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["WATCH", "PROVIDER", "TASK"] and len(lines) == 4  # header, rule, two watches
    assert "resumed" in lines[2] and "finished" in lines[3]

    csv = tmp_path / "polls.csv"
    code, out, err = run(["history", "--store", str(store_path), "--task", "task-cli", "--csv", str(csv)],
                         empty_sim.env)
    assert code == 0, err
    assert out == f"wrote {stored + 1} rows to {csv}\n"
    frame = pd.read_csv(csv)
    assert list(frame.columns) == list(POLL_COLUMNS) and len(frame) == stored + 1
    assert list(frame["state"].iloc[-1:]) == ["SUCCEEDED"]

    code, out, err = run(["watch", "--resume", "--store", str(store_path)], empty_sim.env)
    assert code == 0 and "nothing to resume" in out


def test_cli_flags_that_do_not_fit_say_so(empty_sim, store_path):
    env = {**empty_sim.env, "EXPORT_WIDGETS_STORE": str(store_path)}
    code, _, err = run(["watch", "task-x"], env)
    assert code == 2 and "--provider and at least one TASK_ID are required, or --resume" in err
    code, _, err = run(["watch", "--resume", "--provider", "qianfan"], env)
    assert code == 2 and "drop --provider" in err
    code, _, err = run(["watch", "--provider", "qianfan", "--notify", "not a url", "task-x"], env)
    assert code == 2 and "--notify: the notification webhook must be an http(s) URL" in err
    code, _, err = run(["history"], env)
    assert code == 2 and "no watch store at" in err
    code, _, err = run(["history", "--store", "off"], env)
    assert code == 2 and "the watch store is off" in err
    code, _, err = run(["status", "task-x"], env)
    assert code == 2 and "the following arguments are required: --provider" in err


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_notifications_reach_a_loopback_webhook_in_each_format(empty_sim, store_path, receiver, fmt):
    empty_sim.add_task(TaskSpec("qianfan", "task-f", duration=5, total_samples=50))
    empty_sim.clock.advance(10)
    code, out, err = run(["watch", "--provider", "qianfan", "--store", str(store_path), "--notify", receiver.url(),
                          "--notify-format", fmt, "task-f"], empty_sim.env)
    assert code == 0, err
    assert len(receiver.requests) == 1  # delivered before the command returned
    body = receiver.requests[0]["body"]
    text = {"feishu": lambda b: b["content"]["text"], "dingtalk": lambda b: b["text"]["content"],
            "slack": lambda b: b["text"], "json": lambda b: b["text"]}[fmt](body)
    assert text.startswith("[export_widgets] Qianfan export task-f SUCCEEDED after")
    if fmt == "json":
        assert body["state"] == "SUCCEEDED" and body["status"] == "finished" and body["finished_samples"] == 50
    assert list(Store(store_path).watches()["end_reason"]) == ["finished"]


# -- notifications never hold a watch up ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["hang", "refuse", "500"])
def test_a_bad_webhook_delays_nothing_and_loses_no_poll(empty_sim, store_path, receiver, mode, caplog):
    empty_sim.add_task(TaskSpec("qianfan", "task-w", duration=2, total_samples=20))
    receiver.mode = "hang" if mode == "hang" else "500" if mode == "500" else "ok"
    url = receiver.url()
    if mode == "refuse":
        receiver.close()  # nothing listens there any more
    notifier = Notifier(url, "feishu", **NOTIFY_FAST)
    store = Store(store_path)
    with caplog.at_level(logging.WARNING, logger="export_widgets"):
        monitor = watch(make_client("qianfan", environ=empty_sim.env), "task-w", interval=0.05, store=store,
                        on_done=notifier.notify_end)
        _run_to_the_end(empty_sim, monitor)
        if mode == "hang":
            assert receiver.wait_for(1) and receiver.answered == 0  # ended while the webhook still hangs
        assert len(store.polls(task_id="task-w")) == len(monitor.history)  # every poll stored, none lost
        assert len(monitor.history) == empty_sim.request_count(task_id="task-w")
        receiver.release.set()
        assert notifier.flush(timeout=60)
    assert notifier.stats.dropped == 1 and notifier.stats.attempts == 1 + NOTIFY_FAST["retries"]
    dropped = [r.getMessage() for r in caplog.records if r.name == "export_widgets.notify"]
    assert len(dropped) == 1 and "dropped" in dropped[0] and "access_token" not in dropped[0]
    store.close()


# -- two processes, one task ------------------------------------------------------------------------------------

_WATCHER = textwrap.dedent("""
    import sys
    from export_widgets import make_client, watch
    from export_widgets.store import default_store
    import time
    monitor = watch(make_client("qianfan"), sys.argv[1], interval=0.02)
    deadline = time.monotonic() + 60
    while not len(monitor.history) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    print(monitor.wait(120) is not None and monitor.status.value, flush=True)
    default_store().close()
    print(len(monitor.history), flush=True)
""")


def test_two_processes_watching_one_task_store_every_poll_once(empty_sim, store_path):
    empty_sim.add_task(TaskSpec("qianfan", "task-2k", duration=300, total_samples=300))
    children = [subprocess.Popen([sys.executable, "-c", _WATCHER, "task-2k"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_env(empty_sim, store_path))
                for _ in range(2)]
    try:
        assert [child.stdout.readline().strip() for child in children] == ["ready", "ready"]  # both polling
        for _ in range(3000):  # bounded: 60 s; 1 % of progress per tick keeps both polling at the floor
            if all(child.poll() is not None for child in children):
                break
            empty_sim.clock.advance(3)
            time.sleep(0.02)
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    counts = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err.lower() and "WARNING" not in err, err
        status, polls = out.split()
        assert status == "finished"
        counts.append(int(polls))
    store = Store(store_path)
    watches = store.watches(task_id="task-2k")
    assert sorted(watches["polls"]) == sorted(counts) and min(counts) >= 10
    polls = store.polls(task_id="task-2k")
    assert len(polls) == sum(counts) == empty_sim.request_count(task_id="task-2k")
    for watch_id, rows in polls.groupby("watch_id"):
        assert rows["polled_at"].is_unique, watch_id  # no poll written twice
    store.close()


def test_watches_of_the_embedded_simulator_end_with_it(shell, store_path):
    magic(shell, "--simulate --no-widget -o group")
    group = shell.user_ns["group"]
    default_store().flush()
    assert len(group) >= 2 and Store(store_path).unfinished_watches(include_running=True)
    shell.run_line_magic("unload_ext", "export_widgets")  # the simulator stops (as it does when the kernel exits)
    assert group.done
    default_store().flush()
    watches = Store(store_path).watches()
    assert len(watches) == len(group) and watches["ended_at"].notna().all()  # nothing left to --resume


def test_a_store_locked_by_another_process_never_holds_a_watch_up(empty_sim, store_path, caplog):
    Store(store_path).watches()  # the file exists (WAL) ...
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # ... and another process holds it, for good
    empty_sim.add_task(TaskSpec("qianfan", "task-l", duration=5, total_samples=50))
    store = Store(store_path, busy_timeout=0.02, lock_patience=2, batch_interval=0.01)
    ended: list[ExportMonitor] = []
    try:
        with caplog.at_level(logging.WARNING, logger="export_widgets"):
            monitor = watch(empty_sim.qianfan_client(), "task-l", interval=0.05, store=store, on_done=ended.append)
            _run_to_the_end(empty_sim, monitor)
            assert _wait_until(lambda: ended == [monitor])
            stored = store.polls(task_id="task-l")
        assert len(stored) == len(monitor.history) == empty_sim.request_count(task_id="task-l")  # kept in memory
        assert store.mode == ":memory:"
        warnings = [r.getMessage() for r in caplog.records if r.name.startswith("export_widgets")]
        assert len(warnings) == 1 and "locked" in warnings[0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_a_dashboard_with_notify_stalled_tells_each_stall_once_then_one_summary(empty_sim, receiver):
    from export_widgets.persist import notify

    empty_sim.add_task(TaskSpec("qianfan", "S1", duration=100, outcome="stall", stall_at=30, total_samples=100))
    empty_sim.add_task(TaskSpec("qianfan", "S2", duration=20, total_samples=100))
    client = empty_sim.qianfan_client()
    monitors = [ExportMonitor(client, task_id, start=False, clock=empty_sim.clock.now, stall_after=60)
                for task_id in ("S1", "S2")]
    notifier = Notifier(receiver.url(), "json", **NOTIFY_FAST)
    notify(monitors, notifier, stalled=True)
    for _ in range(60):  # bounded: 300 s of scenario time
        for monitor in monitors:
            monitor.poll_once()
        empty_sim.clock.advance(5.0)
    monitors[0].stop()
    assert notifier.flush(timeout=60)
    events = [(r["body"]["event"], r["body"]["task_id"]) for r in receiver.requests]
    assert events == [("stalled", "S1"), ("all_ended", "")]
    assert "1 STOPPED" not in receiver.requests[1]["body"]["text"]  # counted by task state: S1 is still RUNNING
    assert receiver.requests[1]["body"]["text"].startswith("[export_widgets] all 2 exports ended: 1 RUNNING, 1 "
                                                          "SUCCEEDED")
