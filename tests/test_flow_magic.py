"""``%export_status --start`` / ``--download`` in a real IPython shell (terminal: text views), real HTTP."""

from __future__ import annotations

import hashlib

import pytest
from ipshell import magic_shell
from IPython.core.error import UsageError

from export_widgets import TaskState
from export_widgets.download import DownloadResult
from export_widgets.simulator import serve
from export_widgets.start import StartedExport, forget_started


@pytest.fixture
def shell():
    forget_started()
    with magic_shell() as ip:
        yield ip
    forget_started()


@pytest.fixture
def live(monkeypatch):
    """A real-time simulator whose creates finish in 0.6 s, with its env exported."""
    with serve([], create={"template": {"duration": 0.6, "size_mb": 1.5}, "read_lag_requests": 1}) as sim:
        for name, value in sim.env.items():
            monkeypatch.setenv(name, value)
        yield sim
        assert not sim.errors


def magic(ip, line):
    return ip.run_line_magic("export_status", line)


def test_qianfan_start_watch_download(shell, live, tmp_path, capsys):
    magic(shell, "--start --version ds-abc --bos bos:/bkt/out/ --interval 0.1 --wait -o mon")
    monitor = shell.user_ns["mon"]
    assert isinstance(monitor, StartedExport) and monitor.latest.state is TaskState.SUCCEEDED
    captured = capsys.readouterr()
    assert f"started export {monitor.task_id} (version ds-abc to bos:/bkt/out/)" in captured.err
    assert f"{monitor.task_id} SUCCEEDED 100.0%" in captured.out
    magic(shell, f"--download {tmp_path} {monitor.task_id} -o result")
    result = shell.user_ns["result"]
    assert isinstance(result, DownloadResult) and result.path is not None
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == live.app.export_file(monitor.task_id).sha256()
    shown = capsys.readouterr()
    assert f"downloaded {monitor.task_id} to {result.path}" in shown.out
    assert "authorization" not in shown.out + shown.err


def test_rerunning_the_start_cell_reuses_the_export(shell, live, capsys):
    line = f"--start --dataset {live.dataset_id} --path obs://bkt/out/ --export-type 0 --interval 0.1 --wait -o m"
    magic(shell, line)
    first = shell.user_ns["m"]
    magic(shell, line)
    again = shell.user_ns["m"]
    assert again.task_id == first.task_id and again.reused
    assert f"reusing export {first.task_id} started " in capsys.readouterr().err
    assert "pass --new for another" in again.note
    assert live.request_count(operation="create") == 1
    magic(shell, line + " --new")
    assert shell.user_ns["m"].task_id != first.task_id
    assert live.request_count(operation="create") == 2


def test_modelarts_download_shows_the_copy_command(shell, live, tmp_path, capsys):
    magic(shell, f"--start --dataset {live.dataset_id} --path obs://bkt/run/ --interval 0.1 --wait -o m")
    task_id = shell.user_ns["m"].task_id
    magic(shell, f"--download {tmp_path} --dataset {live.dataset_id} --provider modelarts {task_id}")
    out = capsys.readouterr().out
    assert "is in obs://bkt/run/" in out and f"obsutil cp -r -f obs://bkt/run/ {tmp_path}/" in out


@pytest.mark.parametrize("line, message", [
    ("--start --provider modelarts --dataset D1 --path obs://bkt/x/ --export-type 9", "unknown export type 9"),
    ("--start --provider modelarts --dataset D1 --path bkt/x/", "must look like obs://bucket/dir/"),
    ("--start --version ds-1 --bos bkt/x/", "must start with bos:/"),
    ("--start --version 1234", "has the wrong shape"),
    ("--start --version ds-1 --bos bos:/bkt/x/ --sys-storage", "not both"),
    ("--start --provider modelarts --dataset D1", "needs --path"),
    ("--start --version ds-1 TASK", "--start takes no TASK_ID"),
])
def test_bad_start_input_is_one_line_before_any_request(shell, live, line, message):
    with pytest.raises(UsageError, match=message) as caught:
        magic(shell, line)
    assert "\n" not in str(caught.value)
    assert live.request_count() == 0


def test_a_started_export_is_one_live_watch(shell, live):
    magic(shell, "--start --version ds-live --interval 0.1 -o started")  # returns at once, keeps polling
    started = shell.user_ns["started"]
    magic(shell, f"{started.task_id} --interval 0.1 -o plain")  # a plain watch of the same task joins it
    assert shell.user_ns["plain"] is started
    magic(shell, "--start --version ds-live --interval 0.1 -o again")  # Run All again: the same export and watch
    assert shell.user_ns["again"] is started and started.reused
    started.wait(timeout=60)
    assert started.latest is not None and started.latest.state is TaskState.SUCCEEDED
    assert live.request_count(operation="create") == 1
