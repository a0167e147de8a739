"""A real Jupyter kernel restarted mid-watch, then ``%export_status --resume`` in the new kernel: the watch goes on
with its poll history intact.

The kernel (ipykernel, through jupyter_client's KernelManager as nbclient drives it) polls the simulator running
in this process; the simulator's clock only moves when the test moves it. The store is a file of this test.
"""

from __future__ import annotations

import ast
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager, start_new_kernel

from export_widgets.simulator import Simulator, TaskSpec
from export_widgets.store import Store

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture
def kernel(empty_sim: Simulator, store_path: Path) -> Iterator[tuple[KernelManager, Any]]:
    env = {**os.environ, **empty_sim.env, "EXPORT_WIDGETS_STORE": str(store_path)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_cell(kc: Any, code: str) -> str:
    """Execute ``code``; its stdout (an error in the cell fails the test)."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
    assert reply["content"]["status"] == "ok" and not errors, errors
    return "".join(out)


def stored_polls(path: Path) -> list[float]:
    """Every stored poll time, read straight from the file (none before the kernel has created it)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute(
            "SELECT p.polled_at FROM polls p JOIN watches w ON w.wkey = p.wkey ORDER BY p.polled_at")]
    except sqlite3.OperationalError:  # the schema is being created
        return []
    finally:
        conn.close()


def test_a_restarted_kernel_resumes_the_watch_with_its_history(kernel, empty_sim, store_path):
    km, kc = kernel
    empty_sim.add_task(TaskSpec("qianfan", "task-k1", duration=3000, total_samples=3000))
    run_cell(kc, "%load_ext export_widgets\n"
                 "%export_status --provider qianfan task-k1 --no-widget --interval 0.05 -o mon")
    old_pid = ast.literal_eval(run_cell(kc, "import os; print(os.getpid())"))
    for _ in range(1200):  # bounded: 60 s; the task moves while the kernel watches it
        if len(stored_polls(store_path)) >= 5:
            break
        empty_sim.clock.advance(10)
        time.sleep(0.05)
    assert len(stored_polls(store_path)) >= 5

    km.restart_kernel(now=False)  # a clean restart: the old kernel exits, a new process starts
    kc.wait_for_ready(timeout=120)
    before = stored_polls(store_path)
    assert ast.literal_eval(run_cell(kc, "import os; print(os.getpid())")) != old_pid
    orphans = Store(store_path).unfinished_watches()
    assert [w.task_id for w in orphans] == ["task-k1"] and orphans[0].polls == len(before)

    empty_sim.clock.advance(30)
    shown = run_cell(kc, "%load_ext export_widgets\n"
                         "%export_status --resume --no-widget --interval 0.05 -o mon\n"
                         "f = mon.figures()\n"
                         f"print(repr(([float(t) for t in mon.history.polled_at[:{len(before)}]], "
                         "f.rate_pct_per_s is not None and f.rate_pct_per_s > 0, f.eta_s is not None)))")
    resumed_polls, has_rate, has_eta = ast.literal_eval(shown.strip().splitlines()[-1])
    assert resumed_polls == before  # every poll of the old kernel, in order, in the new kernel's monitor
    assert has_rate and has_eta  # ETA and rate continue instead of starting over

    empty_sim.clock.advance(10_000)
    result = run_cell(kc, "mon.wait(60)\nfrom export_widgets.store import default_store\n"
                          "default_store().flush()\n"
                          "print(repr((mon.status.value, mon.latest.state.value, len(mon.history))))")
    status, state, polls = ast.literal_eval(result.strip().splitlines()[-1])
    assert (status, state) == ("finished", "SUCCEEDED")
    store = Store(store_path)
    watches = store.watches(task_id="task-k1")
    assert list(watches["end_reason"]) == ["resumed", "finished"]
    assert watches["resumed_from"].iloc[1] == watches["watch_id"].iloc[0]
    assert len(store.polls(task_id="task-k1")) == polls  # the old polls once, the new ones once
    assert polls > len(before)
    store.close()
