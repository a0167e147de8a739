"""The magic's view choices: the simulator notice is an info line; text modes per place (terminal, notebook)."""

from __future__ import annotations

from export_widgets import textview
from export_widgets.simulator import TaskSpec, serve


def test_simulator_notice_is_an_ordinary_info_line(shell, capsys):
    shell.run_line_magic("config", "ExportStatus.simulator_speed = 50")
    shell.run_line_magic("export_status", "--simulate --once")
    captured = capsys.readouterr()
    assert "Using the embedded simulator" in captured.out
    assert captured.err == "" and "127.0.0.1" not in captured.out  # no red box, no port saved in the notebook


def test_background_watch_in_a_terminal_prints_a_line_per_state_change(shell, monkeypatch, capsys):
    with serve([TaskSpec("modelarts", "MaBg", duration=1.5, total_samples=300)]) as sim:
        for name, value in sim.env.items():
            monkeypatch.setenv(name, value)
        shell.run_line_magic("export_status", f"--dataset {sim.dataset_id} --endpoint {sim.url} MaBg "
                                              "--interval 0.05 -o mon")
        mon = shell.user_ns["mon"]
        mon.wait(timeout=30)
    lines = capsys.readouterr().out.splitlines()
    assert len(mon.history) >= 10  # many polls...
    states = [line.split()[2] for line in lines]
    assert states == ["RUNNING", "SUCCEEDED"], lines  # ...two lines: the change to RUNNING, and the end


def test_no_widget_in_a_notebook_updates_its_own_output(shell, monkeypatch):
    updates: list[str] = []

    class Handle:
        def update(self, bundle, raw=False):
            updates.append(bundle["text/plain"])

    import IPython.display

    monkeypatch.setattr(textview, "in_kernel", lambda: True)  # as in a Jupyter kernel
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: Handle())
    with serve([TaskSpec("qianfan", "task-nw", duration=1.0, total_samples=300)]) as sim:
        for name, value in sim.env.items():
            monkeypatch.setenv(name, value)
        shell.run_line_magic("export_status", f"task-nw --endpoint {sim.url} --interval 0.05 --no-widget --wait")
    assert updates and "SUCCEEDED" in updates[-1]
