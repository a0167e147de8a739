"""The widget's synced state through whole simulated exports (no frontend: comms are counted, not mocked away)."""

from __future__ import annotations

import random

import ipywidgets as widgets
import pytest

from export_widgets import TaskState
from export_widgets.dashboard import ExportDashboard
from export_widgets.monitor import ExportMonitor, MonitorGroup
from export_widgets.simulator import Fault, TaskSpec
from export_widgets.textview import TextView
from export_widgets.widget import ExportStatusWidget


def _monitor(sim, task_id, **kw):
    spec = sim.tasks[task_id]
    client = sim.modelarts_client() if spec.provider == "modelarts" else sim.qianfan_client()
    return ExportMonitor(client, task_id, spec.dataset_id if spec.provider == "modelarts" else None,
                         start=False, clock=sim.clock.now, rng=random.Random(0), **kw)


def _descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)


class CommCounter:
    """Counts messages each widget sends to the frontend (wraps the real comm's ``send``)."""

    def __init__(self, root):
        self.count = 0
        for widget in _descendants(root):
            original = widget.comm.send

            def send(*args, _original=original, **kwargs):
                self.count += 1
                return _original(*args, **kwargs)

            widget.comm.send = send


def _widget(monitor):
    return ExportStatusWidget(monitor, min_redraw_interval=0.0)


def test_widget_follows_a_whole_export_and_ends_as_a_snapshot(sim):
    monitor = _monitor(sim, "rF9NNoB56k5rtYKg2Y7")  # the demo's filtered ModelArts export
    w = _widget(monitor)
    assert w.bar.value == 0.0 and "waiting" in w.summary_html.value
    values, styles = [], []
    while not monitor.done:
        monitor.poll_once()
        values.append(w.bar.value)
        styles.append(w.bar.bar_style)
        if not monitor.done:
            assert "ETA" in w.stats.value and "samples" in w.stats.value
        sim.clock.advance(1)
    assert values == sorted(values) and values[-1] == 100.0
    assert set(styles[:-1]) == {"info"} and styles[-1] == "success"
    # Filters tab: the search conditions as a table.
    assert "pedestrian" in w.filters_html.value and "20240501-20240530" in w.filters_html.value
    # The end: the widget is now one static HTML card with the final state.
    assert len(w.children) == 1 and isinstance(w.children[0], widgets.HTML)
    card = w.children[0].value
    assert 'data-state="SUCCEEDED"' in card and "4,812 / 4,812 samples" in card and "car" in card
    assert "SUCCEEDED 100.0%" in repr(w)


def test_failed_export_turns_danger_and_shows_the_error(sim):
    monitor = _monitor(sim, "Hn2cX5yR8uJ4tGv6kDq")
    w = _widget(monitor)
    while not monitor.done:
        monitor.poll_once()
        sim.clock.advance(2)
    assert w.bar.bar_style == "danger" and w.bar.value == 60.0
    assert "ModelArts.4311" in w.children[0].value and "OBS bucket does not exist" in w.children[0].value


def test_stall_turns_warning(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "S", duration=10, outcome="stall", stall_at=40))
    monitor = _monitor(empty_sim, "S", stall_after=20)
    w = _widget(monitor)
    for _ in range(20):
        monitor.poll_once()
        empty_sim.clock.advance(3)
    monitor.poll_once()
    assert w.bar.bar_style == "warning" and "stalled for" in w.stats.value


def test_poll_errors_are_visible_then_cleared(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-e", duration=10))
    empty_sim.set_faults("task-e", [Fault("server_error", status=502)])
    monitor = _monitor(empty_sim, "task-e")
    w = _widget(monitor)
    monitor.poll_once()
    assert "last poll failed" in w.stats.value and "502" in w.stats.value
    monitor.poll_once()
    assert "last poll failed" not in w.stats.value
    assert w.history_html.value == ""  # hidden tab: not drawn on every poll
    w.tabs.selected_index = 2
    assert "server_error" in w.history_html.value


def test_no_message_when_nothing_changed_and_one_batch_when_it_did(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "P", start_delay=1000, duration=10))
    monitor = _monitor(empty_sim, "P")
    w = _widget(monitor)
    monitor.poll_once()
    counter = CommCounter(w)
    empty_sim.clock.advance(30)
    for _ in range(5):
        monitor.poll_once()  # still PENDING: unchanged polls
    assert counter.count == 0
    empty_sim.clock.advance(1005)
    monitor.poll_once()  # state and progress changed
    assert 1 <= counter.count <= 4  # header, bar (value + style in one message), stats, summary


def test_qianfan_download_url_never_shown(sim):
    monitor = _monitor(sim, "task-7f3a9c1e2b")
    w = _widget(monitor)
    while not monitor.done:
        monitor.poll_once()
        sim.clock.advance(2)
    assert monitor.latest.download_url and "authorization=" in monitor.latest.download_url
    shown = " ".join(x.value for x in _descendants(w) if isinstance(x, widgets.HTML)) + repr(w)
    shown += "".join(w.snapshot())
    assert "authorization" not in shown.lower() and sim.credentials.qianfan_ak not in shown
    assert monitor.latest.download_url.split("?")[0] in shown  # the link is there, without its signature


def test_buttons_stop_and_export(empty_sim, tmp_path):
    empty_sim.add_task(TaskSpec("modelarts", "B", duration=100))
    monitor = _monitor(empty_sim, "B")
    w = _widget(monitor)
    monitor.poll_once()
    path = w.export_csv(tmp_path / "h.csv")
    assert path.read_text().count("\n") == 2  # header + one poll
    w.stop_button.click()
    assert monitor.status == "stopped"
    w._redraw()
    assert "watch stopped" in w.children[0].value


def test_escapes_user_controlled_text(empty_sim):
    evil = "<img src=x onerror=alert(1)>"
    empty_sim.add_task(TaskSpec("modelarts", "E", duration=10, outcome="fail", fail_at=10, error_message=evil))
    monitor = _monitor(empty_sim, "E")
    w = _widget(monitor)
    while not monitor.done:
        monitor.poll_once()
        empty_sim.clock.advance(5)
    html = w.children[0].value
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_dashboard_rows_totals_and_coalescing(sim):
    group = MonitorGroup(_monitor(sim, task_id) for task_id in sim.tasks)
    board = ExportDashboard(group, max_rows=4, min_redraw_interval=0.0)
    assert len(board.rows_box.children) == 4 and "+2 more" in board.more.value
    for _ in range(60):
        for monitor in group:
            monitor.poll_once()
        board._redraw()
        if not group.done:  # rows re-sort as tasks fail or finish; a task never shows in two rows
            shown = [row.children[0].value.split('data-task-id="')[1].split('"')[0]
                     for row in board.rows_box.children]
            assert len(shown) == len(set(shown)) == 4
        sim.clock.advance(1)
        if group.done:
            break
    assert group.done
    assert "6 tasks" in board.totals_text() and "2 FAILED" in board.totals_text()
    card = board.children[0].value
    assert card.count('class="ew-snapshot-row"') == 6  # the snapshot lists every task, not only drawn rows
    summary = board.summary()
    assert len(summary) == 6 and set(summary["state"]) == {"SUCCEEDED", "FAILED"}


def test_text_fallback_prints_changes_only(empty_sim):
    import io

    empty_sim.add_task(TaskSpec("modelarts", "T", start_delay=100, duration=10))
    monitor = _monitor(empty_sim, "T")
    stream = io.StringIO()
    view = TextView(monitor, stream=stream)
    for _ in range(5):
        monitor.poll_once()  # PENDING, unchanged: one line only
    assert view.lines_printed == 2  # "waiting" at start + the first answer
    empty_sim.clock.advance(120)
    while not monitor.done:
        monitor.poll_once()
        empty_sim.clock.advance(5)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("ModelArts T SUCCEEDED 100.0%")
    assert monitor.latest.state is TaskState.SUCCEEDED


def test_widget_repr_is_the_text_line(sim):
    monitor = _monitor(sim, "rF9NNoB56k5rtYKg2Y7")
    monitor.poll_once()
    w = _widget(monitor)
    assert repr(w).startswith("ModelArts rF9NNoB56k5rtYKg2Y7 ")
    assert w._repr_mimebundle_()["text/plain"] == repr(w)
