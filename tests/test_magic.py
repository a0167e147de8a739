"""``%export_status`` in a real IPython shell (terminal-style, so views fall back to text) against the simulator."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from export_widgets import TaskState
from export_widgets.monitor import ExportMonitor, MonitorGroup
from export_widgets.simulator import TaskSpec, serve

FAST = [
    TaskSpec("modelarts", "MaFast01", duration=0.5, total_samples=200),
    TaskSpec("modelarts", "MaFail01", duration=0.5, outcome="fail", fail_at=50),
    TaskSpec("qianfan", "task-fast01", duration=0.5, total_samples=300),
]




@pytest.fixture
def live_sim(monkeypatch):
    """A real-time simulator whose env vars (fake credentials) are exported, like a configured machine."""
    with serve(FAST) as sim:
        for name, value in sim.env.items():
            monkeypatch.setenv(name, value)
        yield sim


def magic(ip, line):
    return ip.run_line_magic("export_status", line)


def test_once_returns_the_summary_and_stores_it(shell, live_sim):
    frame = magic(shell, f"--provider modelarts --endpoint {live_sim.url} --dataset {live_sim.dataset_id} "
                         "MaFast01 --once -o snap")
    assert isinstance(frame, pd.DataFrame) and list(frame["task_id"]) == ["MaFast01"]
    assert shell.user_ns["snap"] is frame


def test_wait_blocks_to_the_end_and_stores_the_monitor(shell, live_sim, capsys):
    assert magic(shell, f"--dataset {live_sim.dataset_id} --endpoint {live_sim.url} MaFast01 "
                        "--interval 0.05 --wait -o mon") is None
    mon = shell.user_ns["mon"]
    assert isinstance(mon, ExportMonitor) and mon.done and mon.latest.state is TaskState.SUCCEEDED
    assert "MaFast01 SUCCEEDED 100.0%" in capsys.readouterr().out  # terminal: text lines, no widget


def test_failed_task_is_still_stored(shell, live_sim):
    magic(shell, f"--dataset {live_sim.dataset_id} --endpoint {live_sim.url} MaFail01 --interval 0.05 --wait -o m")
    assert shell.user_ns["m"].latest.state is TaskState.FAILED


def test_qianfan_is_inferred_from_the_id_and_several_ids_make_a_group(shell, live_sim):
    magic(shell, "task-fast01 --interval 0.05 --wait -o q")
    assert shell.user_ns["q"].provider == "qianfan"
    magic(shell, f"--dataset {live_sim.dataset_id} --endpoint {live_sim.url} --provider modelarts "
                 "MaFast01 MaFail01 --interval 0.05 --wait -o g")
    group = shell.user_ns["g"]
    assert isinstance(group, MonitorGroup) and group.done and len(group) == 2


def test_list_gives_the_dataset_tasks(shell, live_sim):
    frame = magic(shell, f"--list --dataset {live_sim.dataset_id} --endpoint {live_sim.url}")
    assert set(frame["task_id"]) == {"MaFast01", "MaFail01"}


def test_flag_beats_setting(shell, live_sim):
    shell.run_line_magic("config", "ExportStatus.interval = 7.5")
    magic(shell, "task-fast01 -o a")
    floor_from_setting = shell.user_ns["a"].backoff.floor
    magic(shell, "task-fast01 --interval 3 -o b")  # the same task again: one shared monitor, the flag applies to it
    try:
        assert floor_from_setting == 7.5
        assert shell.user_ns["b"] is shell.user_ns["a"] and shell.user_ns["b"].backoff.floor == 3.0
    finally:
        shell.user_ns["a"].stop()
        shell.user_ns["b"].stop()


def test_simulate_needs_no_credentials(shell, monkeypatch):
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    frame = magic(shell, "--simulate --once task-7f3a9c1e2b rF9NNoB56k5rtYKg2Y7")
    assert list(frame["provider"]) == ["qianfan", "modelarts"]
    assert "authorization" not in frame.to_csv()


@pytest.mark.parametrize("line, message", [
    ("", "no task id given"),
    ("SomeTask", "cannot tell the provider"),
    ("--provider modelarts SomeTask", "needs --dataset"),
    ("--provider qianfan --list", "ModelArts only"),
    ("task-1 --interval -2", "--interval must be a positive"),
    ("task-1 --once --wait", "exclude each other"),
    ("task-1 --bogus", "unrecognized arguments"),
    ("--provider azure task-1", "invalid choice"),
])
def test_bad_input_is_a_one_line_usage_error(shell, line, message):
    with pytest.raises(UsageError, match=message):
        magic(shell, line)


def test_missing_credentials_name_the_env_var(shell, monkeypatch):
    monkeypatch.delenv("QIANFAN_ACCESS_KEY", raising=False)
    monkeypatch.delenv("QIANFAN_SECRET_KEY", raising=False)
    with pytest.raises(UsageError, match="QIANFAN_ACCESS_KEY"):
        magic(shell, "task-1 --once")


def test_unknown_task_is_a_usage_error_and_no_traceback(shell, live_sim, capsys):
    shell.run_cell(f"%export_status --dataset {live_sim.dataset_id} --endpoint {live_sim.url} NoSuchTask -o nt")
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError:") and "ModelArts.4359" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert shell.user_ns["nt"].status == "error"  # stored anyway, for inspection


def test_short_errors_off_shows_the_real_exception(shell, live_sim):
    from export_widgets.errors import TaskNotFoundError

    shell.run_line_magic("config", "ExportStatus.short_errors = False")
    with pytest.raises(TaskNotFoundError):
        magic(shell, f"--dataset {live_sim.dataset_id} --endpoint {live_sim.url} NoSuchTask --once")


def test_settings_have_help(shell, capsys):
    shell.run_line_magic("config", "ExportStatus")
    out = capsys.readouterr().out
    for trait in ("default_provider", "interval", "timeout", "region", "modelarts_endpoint", "timezone"):
        assert trait in out
    assert "secret" not in out.lower() and "ak=" not in out.lower()


def test_no_secret_in_any_output(shell, live_sim, capsys):
    shell.run_cell("%export_status task-fast01 --interval 0.05 --wait -o s")
    shell.run_cell("s.latest")
    shell.run_cell("s.history_frame()")
    shell.run_cell(f"%export_status --dataset {live_sim.dataset_id} --endpoint {live_sim.url} NoSuchTask")
    out = capsys.readouterr()
    text = out.out + out.err + repr(shell.user_ns["s"]) + shell.user_ns["s"].history_frame().to_csv()
    creds = live_sim.credentials
    for secret in (creds.modelarts_ak, creds.modelarts_sk, creds.qianfan_ak, creds.qianfan_sk, "authorization="):
        assert secret not in text
