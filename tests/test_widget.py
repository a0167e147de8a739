"""The widget's synced state through whole simulated exports (no frontend: comms are counted, not mocked away)."""

from __future__ import annotations

import html as htmllib
import random
import re
import time

import ipywidgets as widgets

from export_widgets import TaskState
from export_widgets.dashboard import ExportDashboard
from export_widgets.display import DisplayState
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
    return ExportStatusWidget(monitor, min_redraw_interval=0.0, clock_interval=0)


def _shown(html):
    """(display state, bar width, visible text) of a card's HTML."""
    state = re.search(r'data-display-state="([a-z_]+)"', html).group(1)
    width = float(re.search(r'data-progress="([\d.]+)"', html).group(1))
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html, flags=re.S)).split())
    return state, width, htmllib.unescape(text)


def test_widget_follows_a_whole_export_and_ends_as_a_snapshot(sim):
    monitor = _monitor(sim, "rF9NNoB56k5rtYKg2Y7")  # the demo's filtered ModelArts export
    w = _widget(monitor)
    assert _shown(w.card.value)[:2] == ("waiting", 0.0)
    values, states = [], []
    while not monitor.done:
        monitor.poll_once()
        state, width, text = _shown(w.card.value)
        values.append(width)
        states.append(state)
        if not monitor.done and state == "running" and len(values) >= 3:
            assert "ETA" in text and "samples" in text and "elapsed" in text
        sim.clock.advance(1)
    assert values == sorted(values) and values[-1] == 100.0
    assert "running" in states and states[-1] == "succeeded"
    # The end: the widget is now one static HTML card with the final state and its details (closed).
    assert len(w.children) == 1 and isinstance(w.children[0], widgets.HTML)
    card = w.children[0].value
    assert 'data-state="SUCCEEDED"' in card and "4,812 / 4,812 samples" in card
    assert "<details>" in card and "car" in card and "pedestrian" in card  # filters in the details
    assert "ew-history-table" in card and "ew-chart" in card
    assert "SUCCEEDED 100.0%" in repr(w)


def test_details_are_closed_by_default_and_drawn_only_when_open(sim):
    monitor = _monitor(sim, "rF9NNoB56k5rtYKg2Y7")
    w = _widget(monitor)
    monitor.poll_once()
    sim.clock.advance(3)
    monitor.poll_once()
    assert "class=\"ew-panel" not in w.details.value  # closed: only the stylesheet
    w.details_button.click()
    assert "class=\"ew-panel" in w.details.value and "pedestrian" in w.details.value
    assert w.details.value.count("<circle") == 2  # two polls: two readable points on the chart
    w.details_button.click()
    assert "class=\"ew-panel" not in w.details.value


def test_failed_export_shows_the_error_and_keeps_its_progress(sim):
    monitor = _monitor(sim, "Hn2cX5yR8uJ4tGv6kDq")
    w = _widget(monitor)
    while not monitor.done:
        monitor.poll_once()
        sim.clock.advance(2)
    state, width, text = _shown(w.children[0].value)
    assert state == "failed" and width == 60.0
    assert "ModelArts.4311" in text and "OBS bucket does not exist" in text


def test_stall_is_shown(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "S", duration=10, outcome="stall", stall_at=40))
    monitor = _monitor(empty_sim, "S", stall_after=20)
    w = _widget(monitor)
    for _ in range(20):
        monitor.poll_once()
        empty_sim.clock.advance(3)
    monitor.poll_once()
    state, width, text = _shown(w.card.value)
    assert state == "stalled" and width == 40.0 and "no progress since" in text


def test_poll_errors_are_visible_then_cleared(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-e", duration=10))
    empty_sim.set_faults("task-e", [Fault("server_error", status=502)])
    monitor = _monitor(empty_sim, "task-e")
    w = _widget(monitor)
    monitor.poll_once()
    state, _, text = _shown(w.card.value)
    assert state == "retrying" and "HTTP 502" in text and "next try" in text
    monitor.poll_once()
    assert _shown(w.card.value)[0] == "running"
    w.toggle_details(True)
    assert "server_error" in w.details.value


def test_no_message_when_nothing_changed_and_one_per_model_when_it_did(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "P", start_delay=1000, duration=10))
    monitor = _monitor(empty_sim, "P")
    w = _widget(monitor)
    monitor.poll_once()
    counter = CommCounter(w)
    empty_sim.clock.advance(30)
    for _ in range(5):
        monitor.poll_once()  # still PENDING: unchanged polls
    assert counter.count == 0
    empty_sim.clock.advance(973)
    monitor.poll_once()  # state and progress changed (RUNNING at 30 %)
    assert counter.count == 1  # the card


def test_clock_keeps_relative_times_true_and_stops_with_the_watch(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "C", start_delay=1000, duration=10))
    monitor = _monitor(empty_sim, "C")
    w = ExportStatusWidget(monitor, min_redraw_interval=0.0, clock_interval=0.05)
    monitor.poll_once()
    before = w.card.value
    empty_sim.clock.advance(120)  # no poll: only the clock moves
    deadline = time.monotonic() + 10
    while w.card.value == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "elapsed 2m" in _shown(w.card.value)[2]
    monitor.stop()
    assert w._clock.active == 0 or w._tick not in w._clock._callbacks


def test_qianfan_shows_the_total_alone_as_of_total(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-q", duration=100, total_samples=52250))
    monitor = _monitor(empty_sim, "task-q")
    w = _widget(monitor)
    empty_sim.clock.advance(42)
    monitor.poll_once()
    text = _shown(w.card.value)[2]
    assert "of 52,250 samples" in text and "42.0%" in text


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
    state, _, text = _shown(w.children[0].value)
    assert state == "watch_stopped" and "task was RUNNING" in text


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


def _rows(html):
    return re.findall(r'class="ew-row ew-dashboard-row" data-task-id="([^"]+)" data-display-state="([a-z_]+)"', html)


def test_dashboard_rows_totals_and_coalescing(sim):
    group = MonitorGroup(_monitor(sim, task_id) for task_id in sim.tasks)
    board = ExportDashboard(group, max_rows=4, min_redraw_interval=0.0, clock_interval=0)
    assert len(_rows(board.board.value)) == 4 and "+2 more tasks not drawn" in board.board.value
    for _ in range(60):
        for monitor in group:
            monitor.poll_once()
        board._redraw()
        if not group.done:  # rows re-sort as tasks fail or finish; a task never shows in two rows
            shown = [task_id for task_id, _state in _rows(board.board.value)]
            assert len(shown) == len(set(shown)) == 4
            ranks = [DisplayState(state).rank for _id, state in _rows(board.board.value)]
            assert ranks == sorted(ranks)  # attention first
        sim.clock.advance(1)
        if group.done:
            break
    assert group.done
    assert "6 tasks" in board.totals_text() and "2 FAILED" in board.totals_text()
    card = board.children[0].value
    rows = _rows(card)
    assert len(rows) == 6  # the snapshot lists every task, not only drawn rows
    first_succeeded = re.search(r'ew-dashboard-row" data-task-id="[^"]+" data-display-state="succeeded"', card)
    assert card.index("<details") < first_succeeded.start()  # succeeded rows folded
    assert [state for _id, state in rows[:2]] == ["failed", "failed"]
    summary = board.summary()
    assert len(summary) == 6 and set(summary["state"]) == {"SUCCEEDED", "FAILED"}


def test_dashboard_sorts_by_any_column(sim):
    group = MonitorGroup(_monitor(sim, task_id) for task_id in sim.tasks)
    board = ExportDashboard(group, min_redraw_interval=0.0, clock_interval=0)
    for _ in range(5):
        for monitor in group:
            monitor.poll_once()
        sim.clock.advance(1)
    board.sort.value = "task id"
    ids = [task_id for task_id, _ in _rows(board.board.value)]
    assert ids == sorted(ids)
    board.sort.value = "progress"
    progress = [float(p) for p in re.findall(r'data-progress="([\d.]+)"', board.board.value)[1:]]
    assert progress == sorted(progress, reverse=True)


def test_dashboard_overall_is_sample_weighted_and_not_red_for_one_failure(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "big", duration=100, total_samples=9000))
    empty_sim.add_task(TaskSpec("modelarts", "small", duration=10, total_samples=1000, outcome="fail", fail_at=50))
    group = MonitorGroup([_monitor(empty_sim, "big"), _monitor(empty_sim, "small")])
    board = ExportDashboard(group, min_redraw_interval=0.0, clock_interval=0)
    for _ in range(6):
        for m in group:
            if not m.done:
                m.poll_once()
        empty_sim.clock.advance(2)
    for m in group:
        m.poll_once()
    html = board.board.value
    overall_bar = re.search(r'class="ew-overall">(.*?)</div>', html).group(1)
    assert "ew-danger" not in overall_bar  # one failure does not paint the whole bar red
    # 9000 samples at 12 % and 1000 samples failed at 50 %: (0.12*9000 + 0.5*1000) / 10000 = 15.8 %
    assert "15.8% · of 10,000 samples · ETA" in htmllib.unescape(html)
    assert "1 FAILED" in board.totals_text() and "1 RUNNING" in board.totals_text()


def test_dashboard_one_message_per_redraw_and_none_when_unchanged(empty_sim):
    for i in range(5):
        empty_sim.add_task(TaskSpec("modelarts", f"P{i}", start_delay=1000, duration=10))
    group = MonitorGroup(_monitor(empty_sim, f"P{i}") for i in range(5))
    board = ExportDashboard(group, min_redraw_interval=0.0, clock_interval=0)
    for m in group:
        m.poll_once()
    counter = CommCounter(board)
    empty_sim.clock.advance(10)
    for m in group:
        m.poll_once()  # unchanged
    assert counter.count == 0
    empty_sim.clock.advance(995)
    group[0].poll_once()
    assert counter.count == 1


def test_dashboard_hundreds_of_tasks_draws_top_rows_and_a_summary_line(empty_sim):
    for i in range(120):
        empty_sim.add_task(TaskSpec("qianfan", f"task-{i:04d}", duration=100))
    group = MonitorGroup(_monitor(empty_sim, f"task-{i:04d}") for i in range(120))
    board = ExportDashboard(group, max_rows=30, min_redraw_interval=0.0, clock_interval=0)
    assert len(_rows(board.board.value)) == 30
    assert "+90 more tasks not drawn: 90 tasks · 90 WAITING" in board.board.value


def test_text_fallback_prints_changes_only(empty_sim):
    import io

    empty_sim.add_task(TaskSpec("modelarts", "T", start_delay=100, duration=10))
    monitor = _monitor(empty_sim, "T")
    stream = io.StringIO()
    view = TextView(monitor, stream=stream)
    for _ in range(5):
        monitor.poll_once()  # PENDING, unchanged: one line only
    assert view.lines_printed == 2  # "waiting" at start + the first answer
    empty_sim.clock.advance(102)
    while not monitor.done:
        monitor.poll_once()  # RUNNING, progress moving: no new line until the state changes
        empty_sim.clock.advance(1)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("ModelArts T SUCCEEDED 100.0%")
    assert [line.split()[2] for line in lines] == ["WAITING", "QUEUED", "RUNNING", "SUCCEEDED"]  # state changes
    assert monitor.latest.state is TaskState.SUCCEEDED


def test_widget_repr_is_the_text_line(sim):
    monitor = _monitor(sim, "rF9NNoB56k5rtYKg2Y7")
    monitor.poll_once()
    w = _widget(monitor)
    assert repr(w).startswith("ModelArts rF9NNoB56k5rtYKg2Y7 ")
    assert w._repr_mimebundle_()["text/plain"] == repr(w)


def test_text_tty_mode_rewrites_one_line_per_task(empty_sim):
    import io

    for name in ("A", "B"):
        empty_sim.add_task(TaskSpec("modelarts", name, duration=20))
    monitors = [_monitor(empty_sim, "A"), _monitor(empty_sim, "B")]
    stream = io.StringIO()
    view = TextView(monitors, stream=stream, mode="tty")
    while not all(m.done for m in monitors):
        for m in monitors:
            m.poll_once()
        empty_sim.clock.advance(4)
    view.finalize()
    out = stream.getvalue()
    assert out.count("\x1b[2F") >= 2  # moved back up over the two lines to rewrite them
    last_block = out.rsplit("\x1b[2F", 1)[1]
    assert [line.split()[1:3] for line in last_block.replace("\x1b[2K", "").splitlines()] == \
        [["A", "SUCCEEDED"], ["B", "SUCCEEDED"]]


def test_text_display_mode_updates_its_own_output(empty_sim, monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, bundle, raw=False):
            shown.append(bundle["text/plain"])

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: Handle())
    empty_sim.add_task(TaskSpec("modelarts", "D", duration=10))
    monitor = _monitor(empty_sim, "D")
    view = TextView(monitor, mode="display")
    while not monitor.done:
        monitor.poll_once()
        empty_sim.clock.advance(2)
    assert view.lines_printed == len(shown) >= 3 and "SUCCEEDED" in shown[-1]


def _live_models() -> int:
    import gc

    gc.collect()
    return len(widgets.Widget.widgets)


def test_views_close_the_widget_models_they_no_longer_show(empty_sim):
    """A finished watch keeps only its static snapshot's few models (it kept ~42, a 200-task dashboard ~2,200)."""
    for i in range(200):
        empty_sim.add_task(TaskSpec("qianfan", f"task-m{i:03d}", duration=2))
    before = _live_models()
    monitor = ExportMonitor(empty_sim.qianfan_client(), "task-m000", start=False, clock=empty_sim.clock.now)
    view = ExportStatusWidget(monitor, clock_interval=0)
    running = _live_models() - before
    while (delay := monitor.poll_once()) is not None:
        empty_sim.clock.advance(delay)
    view.finalize()
    assert running > 10 and _live_models() - before <= 6, (running, _live_models() - before)

    before = _live_models()
    group = MonitorGroup([ExportMonitor(empty_sim.qianfan_client(), f"task-m{i:03d}", start=False,
                                        clock=empty_sim.clock.now) for i in range(200)], batch=False)
    board = ExportDashboard(group, clock_interval=0)
    for _ in range(10):
        for member in group:
            member.poll_once()
        empty_sim.clock.advance(2.5)
    assert group.done
    board.finalize()
    assert _live_models() - before <= 6
