"""The watch store against real SQLite files: round trips, secrets, migration, faults, two real processes, resume.

Faults are made for real: garbage bytes, chmod (run as an unprivileged user when the tests run as root, since
root ignores file modes), another connection holding an exclusive transaction, and ``max_page_count`` for a full
disk. Nothing waits on a clock: where the store runs in the background the tests wait on ``flush()``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from export_widgets import frames
from export_widgets._owner import owner_alive, process_start_time
from export_widgets.figures import compute_figures
from export_widgets.history import History, Outcome, PollRecord
from export_widgets.models import ExportTask, TaskState
from export_widgets.monitor import ExportMonitor
from export_widgets.redact import register_secret
from export_widgets.simulator import TaskSpec
from export_widgets.store import (
    MIGRATIONS,
    POLL_COLUMNS,
    SCHEMA_V1,
    SCHEMA_VERSION,
    WATCH_COLUMNS,
    Store,
    default_path,
    resolve_location,
)

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534


def _poll(i: int, n: int = 100, **kw) -> PollRecord:
    fields = dict(polled_at=1.7e9 + 2 * i, latency_s=0.01, outcome="ok", error_code=None, error_message=None,
                  state=TaskState.RUNNING, raw_status="Exporting", progress=100.0 * i / n, finished_samples=i,
                  total_samples=n, size_mb=None)
    fields.update(kw)
    return PollRecord(**fields)


def _store_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "export_widgets.store" and r.levelno >= logging.WARNING]


def _file_polls(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT w.watch_id, p.seq FROM polls p JOIN watches w ON w.wkey = p.wkey "
                            "ORDER BY w.watch_id, p.seq").fetchall()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- location ---------------------------------------------------------------------------------------------------

def test_location_follows_env_and_platform(tmp_path):
    home = {"HOME": "/home/u"}
    assert default_path(home, "linux") == Path("/home/u/.local/state/export_widgets/store.sqlite3")
    assert default_path({**home, "XDG_STATE_HOME": "/xdg"}, "linux") == Path("/xdg/export_widgets/store.sqlite3")
    assert default_path({**home, "XDG_STATE_HOME": "rel"}, "linux").parts[:4] == ("/", "home", "u", ".local")
    assert default_path(home, "darwin") == Path("/home/u/Library/Application Support/export_widgets/store.sqlite3")
    assert default_path({**home, "LOCALAPPDATA": "C:/Users/u/AppData/Local"}, "win32") == \
        Path("C:/Users/u/AppData/Local/export_widgets/store.sqlite3")
    assert resolve_location(None, {"EXPORT_WIDGETS_STORE": "off"}) == "off"
    assert resolve_location(None, {"EXPORT_WIDGETS_STORE": " OFF "}) == "off"
    assert resolve_location(None, {"EXPORT_WIDGETS_STORE": ":memory:"}) == ":memory:"
    assert resolve_location(None, {"EXPORT_WIDGETS_STORE": str(tmp_path)}) == tmp_path / "store.sqlite3"
    assert resolve_location(None, {"EXPORT_WIDGETS_STORE": str(tmp_path / "x.db")}) == tmp_path / "x.db"
    assert resolve_location("off", {"EXPORT_WIDGETS_STORE": str(tmp_path)}) == "off"  # explicit beats env
    assert resolve_location(None, {"HOME": str(tmp_path)}) == default_path({"HOME": str(tmp_path)})


def test_default_location_is_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("EXPORT_WIDGETS_STORE", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    store = Store()
    store.begin_watch("qianfan", "T1")
    store.close()
    path = tmp_path / "state" / "export_widgets" / "store.sqlite3"
    assert store.path == path and path.exists()
    assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


def test_off_records_nothing_and_memory_keeps_nothing_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    off = Store("off")
    watch_id = off.begin_watch("qianfan", "T1")
    off.record_poll(watch_id, _poll(1))
    off.end_watch(watch_id, "finished")
    assert off.flush() and off.mode == "off"
    assert list(off.watches().columns) == list(WATCH_COLUMNS) and off.watches().empty
    assert list(off.polls().columns) == list(POLL_COLUMNS) and off.polls().empty

    memory = Store(":memory:")
    watch_id = memory.begin_watch("qianfan", "T1")
    for i in range(5):
        memory.record_poll(watch_id, _poll(i))
    assert len(memory.polls(task_id="T1")) == 5 and len(memory.load_history(watch_id)) == 5
    memory.close()
    assert list(tmp_path.rglob("*")) == []  # nothing written anywhere


# -- round trip through a real monitor and the simulator ------------------------------------------------------------

def test_attached_monitor_is_stored_like_its_history_frame(empty_sim, tmp_path):
    empty_sim.add_task(TaskSpec("qianfan", "T1", duration=10, total_samples=1000, size_mb=12.5))
    monitor = ExportMonitor(empty_sim.qianfan_client(), "T1", start=False, clock=empty_sim.clock.now,
                            rng=random.Random(0))
    store = Store(tmp_path / "s.sqlite3")
    watch_id = store.attach(monitor)
    for _ in range(100):
        if monitor.poll_once() is None:
            break
        empty_sim.clock.advance(1.0)
    assert monitor.done
    stored = store.polls(provider="qianfan", task_id="T1")
    expected = frames.history(monitor)
    assert len(stored) == len(expected) == empty_sim.request_count(task_id="T1")
    assert list(stored.columns) == [*frames.HISTORY_COLUMNS, "watch_id"]
    pd.testing.assert_frame_equal(stored[list(frames.HISTORY_COLUMNS)], expected, check_categorical=False,
                                  check_dtype=False)
    for column in frames.HISTORY_COLUMNS:  # same kinds of dtype (categories may be listed differently)
        assert type(stored[column].dtype) is type(expected[column].dtype), column
    assert set(stored["watch_id"]) == {watch_id}

    watches = store.watches()
    assert list(watches.columns) == list(WATCH_COLUMNS)
    row = watches.iloc[0]
    assert row["end_reason"] == "finished" and row["last_state"] == "SUCCEEDED" and row["polls"] == len(expected)
    assert row["endpoint_host"] == empty_sim.url.split("://")[1] and row["pid"] == os.getpid()
    assert row["hostname"] == socket.gethostname() and pd.isna(row["owner_alive"])  # ended: not asked
    assert store.unfinished_watches(include_running=True) == []
    store.close()


def test_nothing_secret_is_written(tmp_path):
    register_secret("AKSTOREDNEVER0123456789")
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    watch_id = store.begin_watch("qianfan", "T1", endpoint="https://user:hunter2pw@qianfan.example.com:8443"
                                 "/v2/abc?access_token=TOKENVALUE999", project_id="p1")
    store.record_poll(watch_id, _poll(1, outcome="auth_error", state=None, raw_status=None, progress=None,
                                      error_code="AccessDenied",
                                      error_message="denied for AKSTOREDNEVER0123456789 at https://b.bcebos.com/x.zip"
                                                    "?authorization=bce-auth-v1/AKSTOREDNEVER0123456789/sig"))
    store.end_watch(watch_id, "error", error="Authorization: bce-auth-v1/AKSTOREDNEVER0123456789/2024/x/y/sig")
    store.flush()
    row = store.watches().iloc[0]
    assert row["endpoint_host"] == "qianfan.example.com:8443"
    store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"qianfan.example.com" in data and b"AccessDenied" in data  # the file does hold what we wrote
    for secret in (b"AKSTOREDNEVER0123456789", b"hunter2pw", b"TOKENVALUE999", b"access_token", b"/sig"):
        assert secret not in data, secret


# -- schema ------------------------------------------------------------------------------------------------------

def test_migration_from_v1_keeps_rows_and_takes_new_ones(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        for statement in SCHEMA_V1:
            conn.execute(statement)
        conn.execute("INSERT INTO watches (watch_id, provider, task_id, started_at, pid) VALUES "
                     "('old', 'modelarts', 'T9', 1.7e9, 1)")
        conn.executemany("INSERT INTO polls (watch_id, provider, task_id, polled_at, latency_ms, outcome, state, "
                         "raw_status, progress) VALUES ('old', 'modelarts', 'T9', ?, 12.0, 'ok', 'RUNNING', "
                         "'RUNNING', ?)", [(1.7e9 + i, float(i)) for i in range(3)])
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert set(MIGRATIONS) == set(range(1, SCHEMA_VERSION))

    store = Store(path)
    assert len(store.polls(task_id="T9")) == 3
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [r[0] for r in conn.execute("SELECT seq FROM polls ORDER BY seq")] == [1, 2, 3]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(watches)")}
    conn.close()
    assert {"hostname", "process_started_at", "resumed_from", "last_error"} <= columns
    history = store.load_history("old")
    assert [r.progress for r in history] == [0.0, 1.0, 2.0] and history.task_id == "T9"
    watch_id = store.begin_watch("modelarts", "T9", dataset_id="ds")
    store.record_poll(watch_id, _poll(5))
    assert len(store.polls(task_id="T9")) == 4 and len(store.load_history(provider="modelarts", task_id="T9")) == 4
    store.close()


def test_a_newer_schema_is_left_alone(tmp_path, caplog):
    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = path.read_bytes()
    store = Store(path)
    watch_id = store.begin_watch("qianfan", "T1")
    store.record_poll(watch_id, _poll(1))
    assert len(store.polls()) == 1 and store.mode == ":memory:"
    assert len(_store_warnings(caplog)) == 1 and "newer" in _store_warnings(caplog)[0].getMessage()
    store.close()
    assert path.read_bytes() == before


# -- faults: corrupt, locked, full, read-only ------------------------------------------------------------------

def test_corrupt_file_warns_once_and_goes_on_in_memory(tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    garbage = random.Random(1).randbytes(8192)
    path.write_bytes(garbage)
    store = Store(path)
    watch_id = store.begin_watch("qianfan", "T1")
    for i in range(50):
        store.record_poll(watch_id, _poll(i))
        if i % 10 == 0:
            store.flush()
    store.end_watch(watch_id, "finished", last_state=TaskState.SUCCEEDED)
    assert store.mode == ":memory:" and not store.persistent
    assert len(store.polls(task_id="T1")) == 50  # nothing of this session lost
    assert store.watches().iloc[0]["end_reason"] == "finished"
    warnings = _store_warnings(caplog)
    assert len(warnings) == 1, [w.getMessage() for w in warnings]
    message = warnings[0].getMessage()
    assert str(path) in message and "not a database" in message and "\n" not in message
    store.close()
    assert path.read_bytes() == garbage  # the user's file is never overwritten


def test_a_lock_is_waited_out_without_blocking_the_caller(tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    Store(path).watches()  # create the file (WAL)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    store = Store(path, busy_timeout=0.05, lock_patience=10_000, batch_interval=0.01)
    watch_id = store.begin_watch("qianfan", "T1")
    for i in range(200):
        store.record_poll(watch_id, _poll(i))  # returns although nothing can be written
    assert store.flush(timeout=0.3) is False  # the writer is still waiting for the lock
    holder.execute("ROLLBACK")
    holder.close()
    assert store.flush(timeout=60)
    assert store.mode == "file" and _store_warnings(caplog) == []
    assert len(_file_polls(path)) == 200
    store.close()


def test_a_lock_that_never_ends_degrades_once(tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    Store(path).watches()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    store = Store(path, busy_timeout=0.02, lock_patience=2, batch_interval=0.01)
    watch_id = store.begin_watch("qianfan", "T1")
    for i in range(100):
        store.record_poll(watch_id, _poll(i))
    assert store.flush(timeout=60)
    for i in range(100, 150):
        store.record_poll(watch_id, _poll(i))
    assert len(store.polls(task_id="T1")) == 150 and store.mode == ":memory:"
    warnings = _store_warnings(caplog)
    assert len(warnings) == 1 and "locked" in warnings[0].getMessage()
    holder.execute("ROLLBACK")
    holder.close()
    assert _file_polls(path) == []
    store.close()


def test_a_full_disk_degrades_without_losing_or_duplicating_rows(tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    store = Store(path, pragmas={"max_page_count": 40}, batch_interval=0.01)  # 40 pages: ~160 KB
    watch_id = store.begin_watch("modelarts", "T1", dataset_id="ds")
    total = 600
    for i in range(total):
        store.record_poll(watch_id, _poll(i, n=total, outcome="server_error", state=None, progress=None,
                                          error_code="ModelArts.6102", error_message=f"poll {i} " + "x" * 600))
        if i % 50 == 49:
            store.flush()
    assert store.flush() and store.mode == ":memory:"
    warnings = _store_warnings(caplog)
    assert len(warnings) == 1 and "full" in warnings[0].getMessage()
    in_file = _file_polls(path)
    in_memory = store.polls(task_id="T1")
    assert 0 < len(in_file) < total
    seqs = sorted([seq for _, seq in in_file] + list(range(len(in_file) + 1, len(in_file) + 1 + len(in_memory))))
    assert len(in_file) + len(in_memory) == total and seqs == list(range(1, total + 1))
    assert in_memory["error_message"].iloc[0].startswith(f"poll {len(in_file)} ")  # memory picks up where the file
    store.end_watch(watch_id, "stopped")                                           # stopped
    watches = store.watches()  # the watch begun in the file is known in memory too, and ends there
    assert list(watches["watch_id"]) == [watch_id] and list(watches["end_reason"]) == ["stopped"]
    store.close()


@pytest.fixture
def unprivileged_dir() -> Iterator[Path]:
    """A directory another user can use (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ew-store-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        p.chmod(0o777)
    shutil.rmtree(path)


_FAULT_CHILD = textwrap.dedent("""
    import json, logging, os, sys
    from export_widgets.history import PollRecord
    from export_widgets.models import TaskState
    from export_widgets.store import Store
    if sys.argv[2] == "drop":  # root ignores file modes: become nobody, once every lazy import is done
        Store(":memory:").polls()
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
    records = []
    handler = logging.Handler(); handler.emit = records.append
    logging.getLogger("export_widgets.store").addHandler(handler)
    store = Store(sys.argv[1], busy_timeout=0.2)
    watch_id = store.begin_watch("qianfan", "T1")
    for i in range(20):
        store.record_poll(watch_id, PollRecord(1.7e9 + i, 0.01, "ok", None, None, TaskState.RUNNING, "Exporting",
                                               float(i), i, 20, None))
    store.end_watch(watch_id, "finished")
    store.flush()
    print(json.dumps({"mode": store.mode, "polls": len(store.polls(task_id="T1")),
                      "warnings": [r.getMessage() for r in records if r.levelno >= logging.WARNING]}))
""")


def _run_unprivileged(path: Path) -> dict:
    """Run the fault child against ``path`` as a user that file modes apply to (the interpreter may live where
    only root can read, so the child starts as root and drops to nobody itself)."""
    drop = "drop" if os.geteuid() == 0 else "keep"
    result = subprocess.run([sys.executable, "-c", _FAULT_CHILD, str(path), drop], capture_output=True, text=True,
                            timeout=120, env=_child_env(), cwd="/")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)


def test_read_only_file(unprivileged_dir):
    path = unprivileged_dir / "s.sqlite3"
    seeded = Store(path)
    seeded.begin_watch("qianfan", "T0")
    seeded.close()
    for p in unprivileged_dir.iterdir():
        _own(p)
        p.chmod(0o444)
    _own(unprivileged_dir)
    before = path.read_bytes()
    outcome = _run_unprivileged(path)
    assert outcome["mode"] == ":memory:" and outcome["polls"] == 20
    assert len(outcome["warnings"]) == 1 and "readonly" in outcome["warnings"][0].replace("-", "").replace(" ", "")
    assert path.read_bytes() == before


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_read_only_directory(unprivileged_dir, existing):
    state = unprivileged_dir / "state"
    state.mkdir()
    path = state / "s.sqlite3"
    if existing:
        seeded = Store(path)
        seeded.begin_watch("qianfan", "T0")
        seeded.close()
        for p in state.iterdir():
            _own(p)
    _own(state)
    state.chmod(0o555)
    outcome = _run_unprivileged(path)
    assert outcome["mode"] == ":memory:" and outcome["polls"] == 20
    assert len(outcome["warnings"]) == 1, outcome["warnings"]
    assert path.exists() == existing


# -- two real processes on one file ---------------------------------------------------------------------------

_WRITER_CHILD = textwrap.dedent("""
    import logging, os, sys, time
    from export_widgets.history import PollRecord
    from export_widgets.models import TaskState
    from export_widgets.store import Store
    logging.basicConfig(level=logging.WARNING)
    path, go, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(path, batch_interval=0.001, batch_rows=1)
    watch_id = store.begin_watch("qianfan", "SHARED")
    store.flush()
    print(watch_id, flush=True)
    for _ in range(2000):  # bounded wait for the parent's go
        if os.path.exists(go):
            break
        time.sleep(0.005)
    for i in range(n):
        store.record_poll(watch_id, PollRecord(1.7e9 + i, 0.01, "ok", None, None, TaskState.RUNNING, "Exporting",
                                               100.0 * i / n, i, n, None))
        if i % 7 == 0:
            store.flush()  # many small transactions: the two processes contend all the time
    store.end_watch(watch_id, "finished", last_state="SUCCEEDED")
    store.close()
    print(store.persistent or "degraded", flush=True)
""")


def test_two_processes_write_one_row_each_per_poll(tmp_path):
    path, go, n = tmp_path / "shared.sqlite3", tmp_path / "go", 400
    children = [subprocess.Popen([sys.executable, "-c", _WRITER_CHILD, str(path), str(go), str(n)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env())
                for _ in range(2)]
    try:
        watch_ids = [child.stdout.readline().strip() for child in children]
        go.touch()
        outputs = [child.communicate(timeout=300) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err.lower() and "WARNING" not in err, err
    rows = _file_polls(path)
    for watch_id in watch_ids:
        assert [seq for w, seq in rows if w == watch_id] == list(range(1, n + 1))
    assert len(rows) == 2 * n
    store = Store(path)
    watches = store.watches(task_id="SHARED")
    assert sorted(watches["watch_id"]) == sorted(watch_ids)
    assert list(watches["end_reason"]) == ["finished", "finished"] and list(watches["polls"]) == [n, n]
    assert len(store.polls(provider="qianfan", task_id="SHARED")) == 2 * n
    store.close()


# -- resume -------------------------------------------------------------------------------------------------------

_ABANDONING_CHILD = textwrap.dedent("""
    import os, sys
    from export_widgets.history import PollRecord
    from export_widgets.models import TaskState
    from export_widgets.store import Store
    store = Store(sys.argv[1])
    watch_id = store.begin_watch("modelarts", "T7", dataset_id="ds7", project_id="p7",
                                 endpoint="https://modelarts.cn-north-4.myhuaweicloud.com")
    for i in range(10):  # 1 % every 10 s
        store.record_poll(watch_id, PollRecord(1.7e9 + 10 * i, 0.01, "ok", None, None, TaskState.RUNNING,
                                               "RUNNING", float(i), 10 * i, 1000, None))
    store.flush()
    print(watch_id, flush=True)
    os._exit(0)  # the kernel dies: no end_watch, no close
""")


def test_a_watch_whose_process_died_is_resumed_with_its_history(tmp_path):
    path = tmp_path / "s.sqlite3"
    child = subprocess.run([sys.executable, "-c", _ABANDONING_CHILD, str(path)], capture_output=True, text=True,
                           timeout=120, env=_child_env())
    assert child.returncode == 0, child.stderr
    orphan_id = child.stdout.strip()

    store = Store(path)
    mine = store.begin_watch("qianfan", "MINE")  # unfinished, but its process (this one) lives
    orphans = store.unfinished_watches()
    assert [w.watch_id for w in orphans] == [orphan_id]
    orphan = orphans[0]
    assert orphan.owner_alive is False and orphan.polls == 10 and orphan.last_state == "RUNNING"
    assert orphan.endpoint == "https://modelarts.cn-north-4.myhuaweicloud.com" and orphan.dataset_id == "ds7"
    behind_gateway = store.begin_watch("modelarts", "T8", endpoint="https://gw.example.com:8443/modelarts-api/")
    assert store.watch(behind_gateway).endpoint == "https://gw.example.com:8443/modelarts-api"  # the base path too
    assert {w.watch_id for w in store.unfinished_watches(include_running=True)} == {orphan_id, mine, behind_gateway}

    history = store.load_history(orphan)
    assert len(history) == 10 and history.task_id == "T7"
    times, progress = history.progress_points()
    task = ExportTask("modelarts", "T7", TaskState.RUNNING, progress=9.0, total_samples=1000)
    figures = compute_figures(task, times, progress, now=times[-1], first_poll=times[0])
    assert figures.rate_pct_per_s == pytest.approx(0.1) and figures.eta_s == pytest.approx(910.0)

    assert store.claim(orphan) is True and store.claim(orphan) is False  # one resumer wins
    assert store.unfinished_watches() == []
    resumed = store.begin_watch("modelarts", "T7", dataset_id="ds7", resumed_from=orphan_id)
    store.record_poll(resumed, _poll(50, n=1000))
    chain = store.load_history(resumed)
    assert len(chain) == 11 and chain.row(-1).finished_samples == 50
    assert store.watch(orphan_id).end_reason == "resumed"
    store.close()


def test_owner_alive_tells_a_recycled_pid_and_another_host():
    started = process_start_time(os.getpid())
    assert owner_alive(os.getpid(), socket.gethostname(), started) is True
    if started is not None:
        assert owner_alive(os.getpid(), socket.gethostname(), started - 3600) is False  # same pid, other process
    assert owner_alive(os.getpid(), "some-other-host", started) is None
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           timeout=60)
    assert owner_alive(int(child.stdout), socket.gethostname(), None) is False


def test_after_close_polls_are_ignored(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    watch_id = store.begin_watch("qianfan", "T1")
    store.record_poll(watch_id, _poll(1))
    store.close()
    store.record_poll(watch_id, _poll(2))  # a monitor still attached: no error, nothing written
    assert store.flush() and len(_file_polls(tmp_path / "s.sqlite3")) == 1


def test_history_rebuilt_from_errors_keeps_their_outcome(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    watch_id = store.begin_watch("qianfan", "T1")
    store.record_poll(watch_id, _poll(1))
    store.record_poll(watch_id, _poll(2, outcome="rate_limited", state=None, raw_status=None, progress=None,
                                      finished_samples=None, total_samples=None, latency_s=None,
                                      error_code="QPSLimitReached", error_message="slow down"))
    history = store.load_history(watch_id)
    original = History("qianfan", "T1")
    original.record_task(1.7e9 + 2, 0.01, ExportTask("qianfan", "T1", TaskState.RUNNING, "Exporting", 1.0, 1, 100))
    original.record_error(1.7e9 + 4, None, Outcome.RATE_LIMITED, "QPSLimitReached", "slow down")
    assert list(history) == list(original)
    store.close()


def test_an_exiting_process_writes_what_it_queued(tmp_path):
    path = tmp_path / "s.sqlite3"
    script = textwrap.dedent("""
        import sys
        from export_widgets.history import PollRecord
        from export_widgets.models import TaskState
        from export_widgets.store import Store
        store = Store(sys.argv[1], batch_interval=3600, batch_rows=10**6)  # the writer would not wake on its own
        watch_id = store.begin_watch("qianfan", "T1")
        for i in range(25):
            store.record_poll(watch_id, PollRecord(1.7e9 + i, 0.01, "ok", None, None, TaskState.RUNNING,
                                                   "Exporting", float(i), i, 25, None))
        print(watch_id)  # and exit without flush() or close(): the kernel is shut down
    """)
    child = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                           env=_child_env())
    assert child.returncode == 0, child.stderr
    assert [seq for _, seq in _file_polls(path)] == list(range(1, 26))


def test_set_default_store_replaces_the_process_wide_one(tmp_path, monkeypatch):
    import export_widgets.store as store_module

    monkeypatch.setattr(store_module, "_default", None)
    monkeypatch.setenv("EXPORT_WIDGETS_STORE", str(tmp_path / "env.sqlite3"))
    first = store_module.default_store()
    assert first.path == tmp_path / "env.sqlite3" and store_module.default_store() is first
    watch_id = first.begin_watch("qianfan", "T1")
    first.record_poll(watch_id, _poll(1))
    second = store_module.set_default_store("off")
    assert store_module.default_store() is second and second.mode == "off"
    assert len(_file_polls(tmp_path / "env.sqlite3")) == 1  # the old one wrote what it had before closing


def test_a_monitor_on_a_broken_store_loses_nothing(empty_sim, tmp_path, caplog):
    empty_sim.add_task(TaskSpec("modelarts", "T1", duration=20, total_samples=100))
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database, it is a text file that someone saved here" * 50)
    store = Store(path)
    monitor = ExportMonitor(empty_sim.modelarts_client(), "T1", empty_sim.tasks["T1"].dataset_id, start=False,
                            clock=empty_sim.clock.now, rng=random.Random(0))
    store.attach(monitor)
    for _ in range(100):
        if monitor.poll_once() is None:
            break
        empty_sim.clock.advance(1.0)
    assert monitor.status == "finished" and len(monitor.history) == empty_sim.request_count(task_id="T1")
    assert len(store.polls(task_id="T1")) == len(monitor.history)  # kept in memory for this session
    assert store.watches().iloc[0]["end_reason"] == "finished"
    assert len(_store_warnings(caplog)) == 1
    store.close()
