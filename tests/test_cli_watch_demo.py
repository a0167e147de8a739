"""``export-widgets watch`` and ``export-widgets demo`` (the README's main job)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import nbformat
import pytest

from export_widgets.cli import main
from export_widgets.simulator import TaskSpec, serve


@pytest.fixture
def live_sim():
    with serve([TaskSpec("modelarts", "MaOk", duration=0.5), TaskSpec("modelarts", "MaBad", duration=0.5,
                                                                      outcome="fail", fail_at=40),
                TaskSpec("qianfan", "task-ok", duration=0.5), TaskSpec("modelarts", "MaSlow", duration=600)]) as sim:
        yield sim


def _run(argv, environ):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def test_watch_all_succeeded_exits_0_with_lines_and_a_table(live_sim):
    code, out, err = _run(["watch", "--provider", "modelarts", "--dataset", live_sim.dataset_id,
                           "--interval", "0.05", "MaOk"], live_sim.env)
    assert code == 0, err
    assert "MaOk SUCCEEDED 100.0%" in out and "TASK ID" in out
    code, out, _ = _run(["watch", "--provider", "qianfan", "--interval", "0.05", "task-ok"], live_sim.env)
    assert code == 0 and "task-ok" in out and "authorization" not in out


def test_watch_exits_1_when_a_task_failed(live_sim):
    code, out, _ = _run(["watch", "--provider", "modelarts", "--dataset", live_sim.dataset_id,
                         "--interval", "0.05", "MaOk", "MaBad"], live_sim.env)
    assert code == 1 and "FAILED" in out


def test_the_final_table_says_where_a_qianfan_task_failed_as_its_line_does():
    # Qianfan answers progress 0 once a task failed; the line, the card and the table show where it stopped
    with serve([TaskSpec("qianfan", "task-qf-fail", duration=1.0, outcome="fail", fail_at=50)]) as sim:
        code, out, _ = _run(["watch", "--provider", "qianfan", "--interval", "0.05", "task-qf-fail"], sim.env)
    assert code == 1
    line = re.search(r"task-qf-fail FAILED (\d+\.\d)%", out)
    row = re.search(r"^task-qf-fail\s+FAILED\s+(\d+\.\d)%", out, re.MULTILINE)
    assert line and row, out
    assert row.group(1) == line.group(1) and float(row.group(1)) > 0, out


def test_watch_timeout_and_unknown_task(live_sim):
    code, _, err = _run(["watch", "--provider", "modelarts", "--dataset", live_sim.dataset_id, "--interval", "0.05",
                         "--timeout", "0.5", "MaSlow"], live_sim.env)
    assert code == 1 and "after --timeout 0.5 s" in err
    code, _, err = _run(["watch", "--provider", "modelarts", "--dataset", live_sim.dataset_id, "Nope"], live_sim.env)
    assert code == 1 and "ModelArts.4359" in err and "Traceback" not in err


def test_watch_bad_arguments_are_one_line(live_sim):
    code, _, err = _run(["watch", "--provider", "modelarts", "--interval", "-1", "MaOk"], live_sim.env)
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = _run(["watch", "--provider", "modelarts", "MaOk"], live_sim.env)
    assert code == 2 and "--dataset" in err


@pytest.mark.slow
def test_demo_runs_offline_and_writes_its_outputs(tmp_path):
    """The README's main job, through the console entry point, notebook included."""
    result = subprocess.run([sys.executable, "-m", "export_widgets", "demo", "--speed", "20",
                             "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Final state:" in result.stdout and "Executed" in result.stdout
    produced = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"summary.csv", "history.csv", "filters.csv", "quickstart.ipynb"} <= produced
    executed = nbformat.read(tmp_path / "out" / "quickstart.ipynb", as_version=4)
    assert any("quickstart OK" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
