"""``export-widgets start`` and ``export-widgets download`` (issue 15), in process, real HTTP to the simulator."""

from __future__ import annotations

import hashlib
import io
import re

import pytest

from export_widgets.cli import main
from export_widgets.simulator import serve
from export_widgets.start import forget_started
from export_widgets.store import Store


@pytest.fixture
def live():
    forget_started()
    with serve([], create={"template": {"duration": 0.6, "size_mb": 1.2}, "read_lag_requests": 1}) as sim:
        yield sim
        assert not sim.errors
    forget_started()


def run(argv, env):
    out, err = io.StringIO(), io.StringIO()
    return main(argv, stdout=out, stderr=err, environ=env), out.getvalue(), err.getvalue()


def test_start_watches_and_downloads(live, tmp_path):
    code, out, err = run(["start", "--provider", "qianfan", "--version", "ds-abc", "--interval", "0.1",
                          "--download", str(tmp_path)], live.env)
    assert code == 0, err
    (path,) = tmp_path.iterdir()
    task_id = path.name.split("-export")[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == live.app.export_file(task_id).sha256()
    assert f"started export {task_id} (version ds-abc to platform storage)" in err
    assert f"{task_id} SUCCEEDED 100.0%" in out and f"downloaded {task_id} to {path}" in out
    assert "authorization" not in out + err


def test_download_of_a_modelarts_export_prints_the_copy_command(live, tmp_path):
    code, _, err = run(["start", "--provider", "modelarts", "--dataset", live.dataset_id, "--path", "obs://bkt/o",
                        "--interval", "0.1"], live.env)
    assert code == 0, err
    task_id = err.split("started export ")[1].split()[0]
    code, out, _ = run(["download", "--provider", "modelarts", "--dataset", live.dataset_id, str(tmp_path), task_id],
                       live.env)
    assert code == 0 and f"obsutil cp -r -f obs://bkt/o/ {tmp_path}/" in out


@pytest.mark.parametrize("argv, message", [
    (["--version", "ds-1", "--bos", "bos:/bkt/x/", "--sys-storage"], "not both"),
    (["--version", "v1"], "has the wrong shape"),
    (["--version", "ds-1", "--bos", "bkt/x"], "must start with bos:/"),
    (["--version", "ds-1", "--path", "obs://bkt/x/"], "--path apply to ModelArts exports"),
])
def test_bad_input_exits_2_with_one_line_and_no_request(live, argv, message):
    code, _, err = run(["start", "--provider", "qianfan", *argv], live.env)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert live.request_count() == 0


def test_the_same_start_run_again_from_a_shell_reuses_the_export(live, store_path):
    argv = ["start", "--provider", "qianfan", "--version", "ds-abc", "--interval", "0.1", "--store", str(store_path)]
    code, _, first_err = run(argv, live.env)
    assert code == 0, first_err
    (task_id,) = re.findall(r"started export (\S+)", first_err)
    forget_started()  # another process: only the store remembers
    code, out, err = run(argv, live.env)
    assert code == 0, err
    assert re.search(rf"reusing export {task_id} started \d+s ago in an earlier session; pass --new for another", err)
    assert f"{task_id} SUCCEEDED 100.0%" in out and live.request_count(operation="create") == 1
    watches = Store(store_path).watches(task_id=task_id)
    assert list(watches["end_reason"]) == ["finished", "finished"]  # each run's watch, recorded
    forget_started()
    code, _, err = run([*argv, "--new"], live.env)
    assert code == 0, err
    assert "started export" in err
    assert live.request_count(operation="create") == 2
