""""Run All" after a kernel restart (issue 15 with the store of issue 16): an identical ``--start`` in a new kernel
reuses the export the old one started, continues its watch, and never reuses a failed one.

The old kernel is a real child process that starts an export through the store and dies with ``os._exit`` (no end
recorded, nothing closed); the test process is the new kernel, with a real IPython shell and a real SQLite file.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ipshell import magic_shell
from IPython.core.interactiveshell import InteractiveShell
from waiting import wait_for

from export_widgets import TaskState, make_client
from export_widgets.simulator import Simulator, serve
from export_widgets.start import StartedExport, forget_started, start_export
from export_widgets.store import Store, default_store, set_default_store

ROOT = Path(__file__).resolve().parents[1]

# A kernel that starts an export, watches it for a few polls, then goes away without ending its watch.
_OLD_KERNEL = textwrap.dedent("""
    import os, sys, time
    from export_widgets import make_client
    from export_widgets.start import start_export
    from export_widgets.store import default_store
    monitor = start_export(make_client("qianfan"), "ds-abc", sys_storage=True, interval=0.05,
                           notify=lambda text: None)
    deadline = time.monotonic() + 60
    while len(monitor.history) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    default_store().flush()
    print(monitor.task_id, len(monitor.history), flush=True)
    os._exit(0)
""")


@pytest.fixture(autouse=True)
def _new_kernel_memory() -> Iterator[None]:
    forget_started()
    yield
    forget_started()


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A real-time simulator whose creates run for ten minutes, with its credentials exported."""
    with serve([], create={"template": {"duration": 600, "size_mb": 1.0}}) as sim:
        for name, value in sim.env.items():
            monkeypatch.setenv(name, value)
        yield sim
        assert not sim.errors


@pytest.fixture
def shell(store_path: Path) -> Iterator[InteractiveShell]:
    with magic_shell() as ip:
        ip.run_line_magic("config", f"ExportStatus.store = {str(store_path)!r}")
        yield ip
    set_default_store(None)


@pytest.fixture
def qianfan_and_store(live: Simulator, store_path: Path) -> Iterator[tuple[Any, Store]]:
    """A Qianfan client of the simulator and a store file of this test's own (both closed at the end)."""
    client = make_client("qianfan", endpoint=live.url, environ=live.env)
    store = Store(store_path)
    yield client, store
    client.close()
    store.close()


def _old_kernel_starts(sim: Simulator, store_path: Path) -> tuple[str, int]:
    env = {**os.environ, **sim.env, "EXPORT_WIDGETS_STORE": str(store_path)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.run([sys.executable, "-c", _OLD_KERNEL], capture_output=True, text=True, env=env, timeout=120)
    assert child.returncode == 0, child.stderr
    task_id, polls = child.stdout.split()
    return task_id, int(polls)


START = "--start --provider qianfan --version ds-abc --sys-storage --no-widget --interval 0.05"


def test_run_all_after_a_restart_reuses_the_export_and_continues_its_watch(shell, live, store_path, capsys):
    task_id, old_polls = _old_kernel_starts(live, store_path)
    assert live.request_count(operation="create") == 1
    old = Store(store_path).unfinished_watches()
    assert [w.task_id for w in old] == [task_id] and old[0].owner_alive is False  # --resume would find it

    shell.run_line_magic("export_status", f"{START} -o mon")
    monitor = shell.user_ns["mon"]
    assert isinstance(monitor, StartedExport) and monitor.reused and monitor.task_id == task_id
    note = capsys.readouterr().err
    assert re.search(rf"reusing export {task_id} started \d+s ago in an earlier session; pass --new for another",
                     note), note
    assert live.request_count(operation="create") == 1  # no second export
    assert len(monitor.history) >= old_polls  # the old kernel's polls, then this kernel's
    assert monitor.polling and monitor.latest is not None and monitor.latest.state is TaskState.RUNNING

    store = default_store()  # this kernel's store (at store_path): it flushes what it queued before reading
    watches = store.watches(task_id=task_id)
    assert len(watches) == 2 and watches["end_reason"].iloc[0] == "resumed"
    assert watches["resumed_from"].iloc[1] == old[0].watch_id
    assert store.unfinished_watches() == []  # nothing left for --resume to double

    shell.run_line_magic("export_status", f"{START} -o again")  # a second re-run: this kernel's own watch
    assert shell.user_ns["again"] is monitor
    shell.run_line_magic("export_status", f"{START} --new -o other")
    assert shell.user_ns["other"].task_id != task_id and live.request_count(operation="create") == 2


QUIET = {"start": False, "notify": lambda _: None}


def test_a_stored_start_that_failed_is_not_reused(live, qianfan_and_store):
    client, store = qianfan_and_store
    live.app.set_create_policy({"template": {"duration": 0.1, "outcome": "fail", "fail_at": 50}})
    failed = start_export(client, "ds-abc", store=store, **QUIET)
    forget_started()  # a new kernel: only the store remembers
    live.app.set_create_policy({"template": {"duration": 600}})
    assert wait_for(lambda: client.fetch(failed.ref).state is TaskState.FAILED)
    again = start_export(client, "ds-abc", store=store, **QUIET)
    assert again.task_id != failed.task_id and not again.reused
    forget_started()
    assert start_export(client, "ds-abc", store=store, **QUIET).task_id == again.task_id  # the running one is
    assert live.request_count(operation="create") == 2


def test_without_the_store_or_past_the_window_a_new_kernel_starts_anew(live, qianfan_and_store):
    client, store = qianfan_and_store
    first = start_export(client, "ds-abc", store=False, **QUIET)
    forget_started()
    off = start_export(client, "ds-abc", store=False, **QUIET)  # the store is off: nothing to remember
    assert off.task_id != first.task_id
    forget_started()
    stored = start_export(client, "ds-abc", store=store, clock=lambda: 1_000_000.0, **QUIET)
    forget_started()
    later = start_export(client, "ds-abc", store=store, clock=lambda: 1_000_901.0, **QUIET)  # 901 s > 900 s
    assert later.task_id != stored.task_id
    assert live.request_count(operation="create") == 4


def test_the_store_keeps_a_digest_of_the_request_and_no_secret(live, qianfan_and_store, store_path):
    client, store = qianfan_and_store
    started = start_export(client, "ds-abc", bos_path="bos:/private-bucket/exports/", store=store, **QUIET)
    store.close()
    with sqlite3.connect(store_path) as conn:
        rows = conn.execute("SELECT * FROM starts").fetchall()
    assert len(rows) == 1
    key, provider, task_id, dataset_id, _created = rows[0]
    assert re.fullmatch(r"[0-9a-f]{64}", key) and (provider, task_id, dataset_id) == ("qianfan", started.task_id, None)
    stored = store_path.read_bytes()
    for secret in (*live.env.values(), "private-bucket"):
        assert secret.encode() not in stored, secret
