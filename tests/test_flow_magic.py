"""``%export_status --start`` / ``--download`` in a real IPython shell (terminal: text views), real HTTP."""

from __future__ import annotations

import hashlib
import re

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
    magic(shell, f"--download {tmp_path} {monitor.task_id} -o again")  # Run All: the file is kept, not fetched
    assert shell.user_ns["again"].already and live.request_count(operation="download") == 1
    assert f"{monitor.task_id} is already downloaded to {result.path}" in capsys.readouterr().out


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


class _Recorder:
    """What the shell publishes: (seconds, data, display id, update?) per call, through IPython's own display()."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict, str | None, bool]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        import time

        self.calls.append((time.monotonic(), dict(data), (transient or {}).get("display_id"), update))


@pytest.fixture
def notebook_shell(shell, monkeypatch):
    """The shell as inside a Jupyter kernel: IPython's display() publishes to a recorder instead of stdout."""
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    from export_widgets import textview

    recorder = _Recorder()
    publisher = DisplayPublisher(shell=shell)
    monkeypatch.setattr(publisher, "publish", recorder.publish)
    monkeypatch.setattr(shell, "display_pub", publisher)
    monkeypatch.setattr(InteractiveShell, "_instance", shell)  # display() publishes through this shell
    monkeypatch.setattr(textview, "in_kernel", lambda: True)
    shell.recorder = recorder
    yield shell


def test_a_download_in_a_notebook_is_one_card_updated_in_place(notebook_shell, live, tmp_path, capsys):
    from export_widgets.simulator import Fault

    shell = notebook_shell
    magic(shell, "--start --version ds-card --bos bos:/bkt/card/ --interval 0.1 --wait -o m")
    task_id = shell.user_ns["m"].task_id
    url = live.download_url_for(task_id)
    live.set_faults(task_id, [Fault("download_slow", seconds=0.06)])  # 1.5 MiB in 24 pieces: about 1.5 s
    shell.recorder.calls.clear()
    magic(shell, f"--download {tmp_path} {task_id} -o result")
    path = shell.user_ns["result"].path
    calls = [c for c in shell.recorder.calls if "download" in c[1].get("text/plain", "")]
    ids = {c[2] for c in calls}
    assert len(ids) == 1 and None not in ids, calls  # one output, updated through its display id
    assert not calls[0][3] and all(c[3] for c in calls[1:])
    assert all(set(c[1]) == {"text/plain", "text/html"} for c in calls)
    states = [re.search(r'data-download-state="(\w+)"', c[1]["text/html"])[1] for c in calls]
    assert states[0] == "downloading" and states[-1] == "downloaded" and states.count("downloaded") == 1, states
    widths = [float(re.search(r'data-progress="([\d.]+)"', c[1]["text/html"])[1]) for c in calls]
    assert any(0 < w < 100 for w in widths) and widths[-1] == 100.0, widths  # sampled mid-way, then full
    assert widths == sorted(widths)
    updates = [c[0] for c in calls[1:-1]]  # throttled: <= 2 a second (the first draw and the end are extra)
    assert all(b - a >= 0.45 for a, b in zip([calls[0][0], *updates], updates, strict=False)), updates
    end = calls[-1][1]
    assert "DOWNLOADED" in end["text/html"] and f"{path}</code>" in end["text/html"]
    assert end["text/plain"].startswith(f"Qianfan {task_id} download 100.0%") and "done in" in end["text/plain"]
    query = url.split("?", 1)[1]
    for _, data, _, _ in shell.recorder.calls:
        for text in data.values():
            assert query not in text and "authorization" not in text
    assert f"downloaded {task_id} to {path}" in capsys.readouterr().out


def test_a_failed_download_in_a_notebook_ends_its_card_failed_then_raises(notebook_shell, live, tmp_path):
    from export_widgets.simulator import Fault

    shell = notebook_shell
    magic(shell, "--start --version ds-fail --bos bos:/bkt/fail/ --interval 0.1 --wait -o m")
    task_id = shell.user_ns["m"].task_id
    live.set_faults(task_id, [Fault("download_error", status=404, code="NoSuchKey")])
    shell.recorder.calls.clear()
    with pytest.raises(UsageError, match="HTTP 404 NoSuchKey") as caught:
        magic(shell, f"--download {tmp_path} {task_id}")
    end = shell.recorder.calls[-1][1]
    assert 'data-download-state="failed"' in end["text/html"] and "FAILED" in end["text/html"]
    assert str(caught.value) in end["text/html"] and end["text/plain"].endswith(f"FAILED: {caught.value}")
    assert "authorization" not in end["text/html"] + end["text/plain"]


def test_no_widget_download_in_a_notebook_publishes_text_only(notebook_shell, live, tmp_path):
    shell = notebook_shell
    magic(shell, "--start --version ds-text --bos bos:/bkt/text/ --interval 0.1 --wait -o m")
    task_id = shell.user_ns["m"].task_id
    shell.recorder.calls.clear()
    magic(shell, f"--download {tmp_path} {task_id} --no-widget")
    calls = [c for c in shell.recorder.calls if "download" in c[1].get("text/plain", "")]
    assert calls and all(set(c[1]) == {"text/plain"} for c in calls)
    assert "100.0%" in calls[-1][1]["text/plain"]
