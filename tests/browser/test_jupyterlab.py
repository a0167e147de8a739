"""The views as a person sees them: real JupyterLab 4, headless Chromium, kernels polling the simulator.

Every test watches its own uniquely named tasks (added to the session's simulator just before Run All, so they
start at 0 %) in its own notebook and workspace, and measures what is on the screen *over time*: heights,
alignment, clipping, badge and row text, and the contrast of every text element in the light and dark themes.
Screenshots for the README are written by ``docs_screenshot`` (copied into docs/ with ``EW_UPDATE_DOCS=1``).
"""

from __future__ import annotations

import re
import shutil
import statistics
import time
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright")

from export_widgets.simulator import Fault, TaskSpec  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                       reason="chromium is not installed (apt-get install chromium)"),
]

INTERVAL = 0.3  # the views' poll floor in these notebooks (--interval)
MAX_LIVE_HEIGHT = 110.0  # px: the single-task live output at 1280 px
MAX_ROW_PITCH = 40.0  # px: dashboard rows
MIN_CONTRAST = 4.5  # WCAG AA for normal text
#: Measured numbers, printed at the end of the session (the report quotes them).
MEASURED: dict[str, float] = {}

SEARCH_CONDITIONS = [
    {
        "label_list": {"op": "OR", "labels": [
            {"name": "car", "type": 1, "op": "OR", "property": {"color": ["red", "blue"]}},
            {"name": "pedestrian", "type": 1, "op": "AND", "property": {"@modelarts:hard": ["true"]}},
        ]},
        "metadata": {"op": "AND", "props": {"camera": ["front-left"], "weather": ["rain"]}},
        "sample_time": "20240501-20240530",
        "hard": "1",
    },
    {
        "label_list": {"labels": [{"name": "cyclist", "type": 1, "property": {}}]},
        "sample_time": "month",
        "hard": "0",
    },
]


@pytest.fixture(scope="module", autouse=True)
def _print_measurements():
    yield
    if MEASURED:
        print("\nmeasured: " + ", ".join(f"{k} = {v:g}" for k, v in sorted(MEASURED.items())))


def _record(name: str, value: float, worst=max) -> None:
    MEASURED[name] = worst(value, MEASURED[name]) if name in MEASURED else value


def _watch_cells(args: str) -> list[str]:
    return ["%load_ext export_widgets", f"%export_status {args} --interval {INTERVAL}"]


def _done(prompts: list[str]) -> bool:
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)


def _ended(state: dict) -> bool:
    """The watch is over and the output was replaced through its display id (no live widget left)."""
    return state["snapshot"] is not None and state["widgets"] == 0


def _live(samples: list[dict]) -> list[dict]:
    return [s for s in samples if s["widgets"] and s["live"] is not None]


def _samples_count(stats: str) -> int:
    match = re.search(r"([\d,]+) / [\d,]+ samples", stats)
    assert match, f"no sample counts in the stats line {stats!r}"
    return int(match.group(1).replace(",", ""))


def _assert_contrast(lab, selector: str, theme: str) -> float:
    measured = lab.contrast(selector)
    assert len(measured) >= 5, f"too few text elements measured in {selector}: {measured!r}"
    low = [m for m in measured if m["ratio"] < MIN_CONTRAST]
    assert not low, f"text below {MIN_CONTRAST}:1 in the {theme} theme: {low[:8]!r}"
    worst = min(m["ratio"] for m in measured)
    _record(f"worst contrast {theme}", worst, min)
    return worst


OUTPUT_OF_WIDGET = ".jp-OutputArea-output:has(.ew-widget)"
OUTPUT_OF_SNAPSHOT = ".jp-OutputArea-output:has(.ew-snapshot)"


def test_single_task_compact_card_then_snapshot(lab):
    task_id = lab.task_id("MaOk")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=10, total_samples=4812))
    lab.run_all()

    shots: list[float] = []

    def mid_screenshot(state: dict) -> None:
        if not shots and state["widgets"] and state["width"] is not None and 30 <= state["width"] <= 70:
            shots.append(state["width"])
            lab.docs_screenshot("single-running-light", OUTPUT_OF_WIDGET)

    samples = lab.sample(lab.widget_state, _ended, timeout=45, on_sample=mid_screenshot)
    live = _live(samples)
    widths = [s["width"] for s in live]
    lab.assert_advancing(widths, min_distinct=5)
    assert min(widths) <= 50 and max(widths) >= 75, f"the live bar did not travel: {widths!r}"
    running = [s for s in live if s["state"] == "running"]
    assert running and all(s["live"]["badge"] == "RUNNING" for s in running)
    assert all(s["provider"] == "ew-provider-modelarts" for s in live)

    # the live output stays compact: at most 110 px tall at 1280 px
    heights = [s["outputHeight"] for s in live if s["outputHeight"]]
    assert heights and max(heights) <= MAX_LIVE_HEIGHT, f"live output heights {sorted(set(heights))!r}"
    _record("single-task live output height px", max(heights))

    # counts, rate and ETA on the card, changing as the task runs
    stats = [s["stats"] for s in running]
    assert all("/ 4,812 samples" in t for t in stats), stats
    assert any("ETA" in t and "samples/s" in t for t in stats), stats
    counts = [_samples_count(t) for t in stats]
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False)), counts
    assert len(set(counts)) >= 5, sorted(set(stats))
    assert any(_done(s["prompts"]) and s["width"] < 100 for s in live), "the cell never returned while live"
    assert shots, f"no screenshot between 30 and 70 %: {widths!r}"

    # the end: a static snapshot of the same card, about as tall, details closed
    end = samples[-1]["snapshot"]
    assert end["state"] == "succeeded" and end["taskState"] == "SUCCEEDED" and end["monitorStatus"] == "finished"
    assert end["inHtmlOutput"] and not end["inWidget"], end
    assert end["badge"] == "SUCCEEDED" and end["width"] == 100.0 and "4,812 / 4,812 samples" in end["stats"], end
    assert end["outputHeight"] <= MAX_LIVE_HEIGHT, end
    _record("single-task final card height px", end["outputHeight"])
    lab.wait_cells_done()
    _assert_contrast(lab, OUTPUT_OF_SNAPSHOT, "light")
    lab.docs_screenshot("single-done-light", OUTPUT_OF_SNAPSHOT)

    # the details open: summary, a chart with axes and labels, the history
    lab.page.locator(".ew-snapshot details > summary").first.click()
    chart = lab.page.locator(".ew-snapshot .ew-chart").first
    chart.wait_for(state="visible", timeout=10_000)
    labels = chart.inner_html()
    assert "100%" in labels and "0%" in labels and "readings" in labels
    assert lab.page.locator(".ew-snapshot .ew-history-table tbody tr").count() >= 2
    _assert_contrast(lab, OUTPUT_OF_SNAPSHOT, "light")
    lab.docs_screenshot("single-done-details-light", OUTPUT_OF_SNAPSHOT)


def test_single_task_in_the_dark_theme(lab):
    task_id = lab.task_id("MaDark")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.set_theme("JupyterLab Dark")
    try:
        lab.sim.add_task(TaskSpec("modelarts", task_id, duration=10, total_samples=4812,
                                  export_params={"sample_state": "ALL", "search_conditions": SEARCH_CONDITIONS}))
        lab.run_all()
        measured: list[bool] = []

        def measure(state: dict) -> None:
            if not measured and state["widgets"] and (state["width"] or 0) >= 30:
                measured.append(True)
                lab.page.locator(".ew-widget button[title^='Details']").click()  # open the details too
                lab.page.locator(".ew-widget .ew-filters-table").wait_for(state="visible", timeout=10_000)
                _assert_contrast(lab, OUTPUT_OF_WIDGET, "dark")
                lab.docs_screenshot("single-running-details-dark", OUTPUT_OF_WIDGET)

        samples = lab.sample(lab.widget_state, _ended, timeout=45, on_sample=measure)
        assert measured, "the widget never reached 30 %"
        assert samples[-1]["snapshot"]["state"] == "succeeded"
        lab.wait_cells_done()
        # narrow (500 px): the card wraps, nothing is cut off, it stays compact
        lab.page.set_viewport_size({"width": 500, "height": 900})
        lab.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        lab.page.wait_for_timeout(500)
        assert lab.clipped(OUTPUT_OF_SNAPSHOT) == []
        narrow = lab.widget_state()["snapshot"]["outputHeight"]
        assert narrow <= 2 * MAX_LIVE_HEIGHT, narrow
        _record("single-task final card height at 500 px", narrow)
        lab.docs_screenshot("single-done-dark-500px", OUTPUT_OF_SNAPSHOT)
        lab.page.set_viewport_size({"width": 1280, "height": 900})
        _assert_contrast(lab, OUTPUT_OF_SNAPSHOT, "dark")
        lab.docs_screenshot("single-done-dark", OUTPUT_OF_SNAPSHOT)
        # no light blocks on the dark page: every painted background inside the output is dark
        light_blocks = lab.page.evaluate("""sel => [...document.querySelectorAll(sel + ' *')].filter(e => {
            const re = /rgba?\\(([\\d.]+), ([\\d.]+), ([\\d.]+)(?:, ([\\d.]+))?/;
            const m = re.exec(getComputedStyle(e).backgroundColor);
            return m && (m[4] === undefined || +m[4] > 0.5) && (+m[1] + +m[2] + +m[3]) / 3 > 160;
        }).map(e => e.className)""", OUTPUT_OF_SNAPSHOT)
        assert not light_blocks, light_blocks
    finally:
        lab.set_theme("JupyterLab Light")


def test_failing_tasks_keep_their_progress_and_reason(lab):
    ma, qf = lab.task_id("MaFail"), f"task-fail{lab.uid}"
    code, message = "ModelArts.4311", f"OBS bucket ew-missing-{lab.uid} does not exist"
    name = lab.write_notebook(["%load_ext export_widgets",
                               f"%export_status --provider modelarts --dataset {lab.sim.dataset_id} {ma} "
                               f"--interval {INTERVAL} --wait",
                               f"%export_status {qf} --interval {INTERVAL} --wait"])
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", ma, duration=8, outcome="fail", fail_at=60, total_samples=500,
                              error_code=code, error_message=message))
    # the Qianfan cell starts when the ModelArts one ends (--wait), while this task still runs
    lab.sim.add_task(TaskSpec("qianfan", qf, duration=40, outcome="fail", fail_at=30, total_samples=52250))
    lab.run_all()
    lab.wait_cells_done(timeout=60)
    cards = lab.page.evaluate("""() => [...document.querySelectorAll('.ew-snapshot')].map(s => ({
        state: s.dataset.displayState, badge: s.querySelector('.ew-badge').innerText.trim(),
        width: parseFloat(s.querySelector('.ew-fill').dataset.progress), text: s.innerText}))""")
    assert len(cards) == 2, cards
    modelarts, qianfan = cards
    assert modelarts["state"] == "failed" and modelarts["badge"] == "FAILED" and modelarts["width"] == 60.0
    assert code in modelarts["text"] and message in modelarts["text"]
    # Qianfan reports progress 0 on failure: the bar keeps the last progress seen, the reason is shown
    assert qianfan["state"] == "failed" and 15.0 <= qianfan["width"] <= 30.0, qianfan
    assert "of 52,250 samples" in qianfan["text"] and "ExportFailed" in qianfan["text"], qianfan
    _assert_contrast(lab, ".jp-OutputArea-output:has(.ew-snapshot)", "light")
    lab.screenshot("end")


def _table(lab, selector: str) -> dict[str, list[str]]:
    """An HTML table (pandas ``to_html``) as ``{column: [cell, ...]}``."""
    return lab.page.evaluate(
        """sel => {
            const t = document.querySelector(sel);
            if (!t) return null;
            const heads = [...t.querySelectorAll('thead th')].map(e => e.textContent.trim());
            const rows = [...t.querySelectorAll('tbody tr')]
                .map(r => [...r.querySelectorAll('td')].map(e => e.textContent.trim()));
            return Object.fromEntries(heads.map((h, i) => [h, rows.map(r => r[i])]));
        }""", selector)


def test_details_show_the_filters_chart_and_history(lab):
    task_id = lab.task_id("MaFilt")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=8, total_samples=2000,
                              export_params={"sample_state": "ALL", "export_dest": "DIR",
                                             "search_conditions": SEARCH_CONDITIONS}))
    lab.run_all()
    lab.sample(lab.widget_state, lambda s: s["widgets"] == 1 and (s["width"] or 0) > 0, timeout=30)
    assert not lab.page.locator(".ew-widget .ew-panel").count()  # closed by default
    lab.page.locator(".ew-widget button[title^='Details']").click()
    lab.page.wait_for_selector(".ew-widget .ew-filters-table", state="visible", timeout=10_000)
    table = _table(lab, ".ew-widget .ew-filters-table")
    assert table is not None
    assert table["label_name"] == ["car", "pedestrian", "cyclist"], table
    assert table["sample_time"] == ["20240501-20240530", "20240501-20240530", "month"], table
    assert "weather: rain" in table["metadata_props"][0], table
    assert "<NA>" not in str(table), table  # missing values are blank cells
    assert lab.page.locator(".ew-widget .ew-chart circle").count() >= 2  # every poll readable on the chart
    assert lab.clipped(".ew-widget") == []
    lab.screenshot("details", ".ew-widget")

    # with the details open the bar keeps moving; the snapshot carries the same conditions (closed)
    samples = lab.sample(lab.widget_state, _ended, timeout=40)
    lab.assert_advancing([s["width"] for s in _live(samples)], min_distinct=3)
    assert samples[-1]["snapshot"]["state"] == "succeeded"
    end_table = _table(lab, ".ew-snapshot .ew-filters-table")
    assert end_table is not None and end_table["label_name"] == table["label_name"], end_table


DASHBOARD_CELL = """\
import os, threading
from IPython.display import display
from export_widgets import ExportMonitor, MonitorGroup, ModelArtsClient, QianfanClient
from export_widgets.dashboard import ExportDashboard
ma, qf = ModelArtsClient(), QianfanClient()
bad = QianfanClient(ak=os.environ["QIANFAN_ACCESS_KEY"], sk="wrong-secret-for-the-test")
kw = dict(interval={interval})
monitors = [ExportMonitor(ma, t, {dataset!r}, **kw) for t in {ma_ids!r}]
monitors += [ExportMonitor(qf, t, **kw) for t in {qf_ids!r}]
monitors.append(ExportMonitor(ma, {timeout_id!r}, {dataset!r}, timeout=4, **kw))
monitors.append(ExportMonitor(bad, {auth_id!r}, **kw))
board = ExportDashboard(MonitorGroup(monitors))
display(board)
by_hand = monitors[0]
threading.Timer(4, by_hand.stop).start()  # a watch stopped by hand
"""

SPECIAL = {"failed", "stopped", "retrying", "timed_out", "error", "watch_stopped"}


def _dashboard_tasks(lab):
    uid = lab.uid
    ma_ok = [f"Ma{i:02d}x{uid}" for i in range(24)]
    qf_ok = [f"task-{i:02d}q{uid}" for i in range(6)]
    special = {"ma_fail": f"MaFail{uid}", "ma_stop": f"MaStop{uid}", "qf_fail": f"task-fail{uid}",
               "qf_429": f"task-429{uid}", "timeout": f"MaSlow{uid}", "auth": f"task-auth{uid}",
               "watch_stopped": ma_ok[0]}
    specs = [TaskSpec("modelarts", t, duration=25 + (i * 7) % 20, total_samples=1000 + 1371 * i)
             for i, t in enumerate(ma_ok)]
    specs += [TaskSpec("qianfan", t, duration=25 + i * 3, total_samples=40000 + 2250 * i) for i, t in enumerate(qf_ok)]
    specs += [TaskSpec("modelarts", special["ma_fail"], duration=8, outcome="fail", fail_at=40, total_samples=900,
                       error_code="ModelArts.4311", error_message="OBS bucket does not exist"),
              TaskSpec("modelarts", special["ma_stop"], duration=8, outcome="stop", stop_at=50, total_samples=800),
              TaskSpec("qianfan", special["qf_fail"], duration=8, outcome="fail", fail_at=30, total_samples=9000),
              TaskSpec("qianfan", special["qf_429"], duration=60, total_samples=5000,
                       faults=(Fault("rate_limit", retry_after=2, times=None),)),
              TaskSpec("modelarts", special["timeout"], duration=600, total_samples=7000),
              TaskSpec("qianfan", special["auth"], duration=60)]
    ma_ids = ma_ok + [special["ma_fail"], special["ma_stop"]]
    qf_ids = qf_ok + [special["qf_fail"], special["qf_429"]]
    cell = DASHBOARD_CELL.format(interval=INTERVAL, dataset=lab.sim.dataset_id, ma_ids=ma_ids, qf_ids=qf_ids,
                                 timeout_id=special["timeout"], auth_id=special["auth"])
    return specs, special, cell


def test_dashboard_of_36_tasks_is_an_aligned_grid(lab):
    specs, special, cell = _dashboard_tasks(lab)
    assert len(specs) == 36
    name = lab.write_notebook(["%load_ext export_widgets", cell])
    lab.open(name)
    for spec in specs:
        lab.sim.add_task(spec)
    lab.run_all()

    def all_specials(state: dict) -> bool:
        return state["dashboards"] == 1 and len(state["rows"]) == 36 and \
            SPECIAL <= {r["state"] for r in state["rows"]}

    samples = lab.sample(lab.dashboard_state, all_specials, timeout=60)
    first_live = next(i for i, s in enumerate(samples) if s["dashboards"])
    assert all(s["dashboards"] == 1 for s in samples[first_live:]), "the live dashboard vanished for a moment"
    state = samples[-1]
    rows = {r["id"]: r for r in state["rows"]}
    assert len(rows) == 36

    # the states a person must see right, with their badge and row text
    def row(key: str) -> dict:
        return rows[special[key]]

    assert row("ma_fail")["badge"] == "FAILED" and "ModelArts.4311" in row("ma_fail")["text"]
    assert row("ma_fail")["width"] == 40.0
    assert row("qf_fail")["badge"] == "FAILED" and 15.0 <= row("qf_fail")["width"] <= 30.0, row("qf_fail")
    assert row("ma_stop")["badge"] == "STOPPED" and row("ma_stop")["width"] == 50.0
    assert row("qf_429")["badge"] == "RETRYING" and "rate limited" in row("qf_429")["cols"]["note"]["text"]
    assert "next try" in row("qf_429")["cols"]["note"]["text"]
    assert row("timeout")["badge"] == "TIMED OUT" and "task was RUNNING" in row("timeout")["cols"]["note"]["text"]
    assert row("auth")["badge"] == "ERROR" and "credentials rejected" in row("auth")["cols"]["note"]["text"]
    assert row("watch_stopped")["badge"] == "WATCH STOPPED"
    running = [r for r in state["rows"] if r["state"] == "running"]
    assert len(running) >= 20, [r["state"] for r in state["rows"]]
    assert all(re.fullmatch(r"[\d,]+ / [\d,]+", r["cols"]["done"]["text"]) or
               re.fullmatch(r"of [\d,]+", r["cols"]["done"]["text"]) for r in running), running[:3]

    # header: a count per display state; the overall bar is not red because tasks failed
    for label in ("2 FAILED", "1 RETRYING", "1 TIMED OUT", "1 ERROR", "1 WATCH STOPPED", "1 STOPPED"):
        assert label in state["totals"], state["totals"]
    assert "ew-danger" not in state["overallClass"] and state["overall"] > 0
    assert re.search(r"[\d.]+% · of [\d,]+ samples", state["overallText"]), state["overallText"]

    # attention first: error, failed, retrying, ... from the top
    order = [r["state"] for r in sorted(state["rows"], key=lambda r: r["top"])]
    assert order[:4] == ["error", "failed", "failed", "retrying"], order

    # a real grid: one line per task, rows <= 40 px apart, every column at the same x in every row
    tops = sorted(r["top"] for r in state["rows"])
    pitch = [b - a for a, b in zip(tops, tops[1:], strict=False)]
    assert max(r["height"] for r in state["rows"]) <= MAX_ROW_PITCH
    assert max(pitch) <= MAX_ROW_PITCH, pitch
    _record("dashboard row pitch px", statistics.median(pitch))
    _record("dashboard row height px", max(r["height"] for r in state["rows"]))
    for col in ("state", "id", "bar", "pct", "done", "eta", "note"):
        xs = {r["cols"][col]["x"] for r in state["rows"] if r["cols"][col]["shown"]}
        assert len(xs) == 1, f"column {col} starts at {sorted(xs)}"
    assert lab.clipped(".ew-dashboard") == []
    _assert_contrast(lab, ".ew-dashboard", "light")
    lab.docs_screenshot("dashboard-light", ".ew-dashboard")

    # dark theme: every text readable, no light blocks
    lab.set_theme("JupyterLab Dark")
    try:
        _assert_contrast(lab, ".ew-dashboard", "dark")
        lab.docs_screenshot("dashboard-dark", ".ew-dashboard")
    finally:
        lab.set_theme("JupyterLab Light")

    # 500 px: columns drop, nothing is clipped, the controls stay whole
    lab.page.set_viewport_size({"width": 500, "height": 900})
    lab.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # as a person on a narrow window would
    lab.page.wait_for_timeout(500)
    assert lab.clipped(".ew-dashboard") == []
    narrow = lab.dashboard_state()
    assert all(r["cols"]["state"]["shown"] and r["cols"]["id"]["shown"] and r["cols"]["pct"]["shown"]
               for r in narrow["rows"])
    _assert_contrast(lab, ".ew-dashboard", "light")
    lab.docs_screenshot("dashboard-500px", ".ew-dashboard")
    lab.page.set_viewport_size({"width": 1280, "height": 900})

    # Stop all: the snapshot says what happened to each watch; succeeded rows are folded
    lab.page.locator(".ew-dashboard button[title^='Stop watching every task']").click()
    ended = lab.sample(lab.dashboard_state, lambda s: s["snapshot"] is not None and s["dashboards"] == 0,
                       timeout=30)[-1]["snapshot"]
    assert ended["inHtmlOutput"] and not ended["inWidget"], ended
    states = {r["id"]: r["state"] for r in ended["rows"]}
    assert len(states) == 36
    assert "running" not in states.values() and "RUNNING" not in ended["totals"], ended["totals"]
    assert states[special["ma_fail"]] == "failed" and states[special["timeout"]] == "timed_out"
    assert states[special["auth"]] == "error" and states[special["qf_429"]] == "watch_stopped"
    stopped = sum(1 for s in states.values() if s == "watch_stopped")
    succeeded = sum(1 for s in states.values() if s == "succeeded")
    assert stopped >= 5 and stopped + succeeded >= 28, states  # every running watch ended as WATCH STOPPED
    if succeeded:
        assert ended["folded"] == f"{succeeded} SUCCEEDED tasks", ended["folded"]
    assert lab.clipped(".ew-dashboard-snapshot") == []
    lab.docs_screenshot("dashboard-final-light", ".ew-dashboard-snapshot")


def test_stop_stops_polling(lab):
    task_id = lab.task_id("MaStop")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=120, total_samples=12000))
    lab.run_all()

    # positive control: the widget is live (its bar moves) and the kernel keeps polling
    seen: set[float] = set()
    live = lab.sample(lab.widget_state, lambda s: len(seen) >= 4, timeout=30,
                      on_sample=lambda s: seen.add(s["width"]) if s["widgets"] and s["width"] else None)
    lab.assert_advancing([s["width"] for s in _live(live)], min_distinct=4)
    first = lab.sim.request_count(task_id=task_id)
    lab.wait_until(lambda: lab.sim.request_count(task_id=task_id) >= first + 3, timeout=15,
                   message="3 more polls before Stop")
    times = [r.wall_time for r in lab.sim.requests if r.task_id == task_id]
    gap = statistics.median(b - a for a, b in zip(times, times[1:], strict=False))
    assert gap < 1.0, f"polls were {gap:.2f} s apart, want about {INTERVAL} s"

    lab.page.locator(".ew-widget button[title^='Stop watching']").click()
    samples = lab.sample(lab.widget_state, _ended, timeout=15)
    end = samples[-1]["snapshot"]
    assert end["monitorStatus"] == "stopped" and end["state"] == "watch_stopped", end
    assert end["badge"] == "WATCH STOPPED" and "task was RUNNING" in end["why"], end  # the export itself goes on

    # no request reaches the simulator any more, over many of the widget's poll intervals
    stopped_at, count = time.monotonic(), lab.sim.request_count(task_id=task_id)
    window = max(2.0, 8 * gap)
    while time.monotonic() - stopped_at < window:
        assert lab.sim.request_count(task_id=task_id) == count, "a poll reached the simulator after Stop"
        time.sleep(0.05)
    lab.screenshot("end", ".ew-snapshot")


def test_no_credential_or_signed_url_in_the_page(lab):
    task_id = f"task-leak{lab.uid}"
    name = lab.write_notebook(_watch_cells(task_id))  # Qianfan, from the id
    lab.open(name)
    lab.sim.add_task(TaskSpec("qianfan", task_id, duration=5, total_samples=5000, size_mb=12.5,
                              path=f"bos:/ew-browser-{lab.uid}/exports/export.zip", storage_type="BOS"))
    lab.run_all()
    samples = lab.sample(lab.widget_state, _ended, timeout=35)
    lab.assert_advancing([s["width"] for s in _live(samples)], min_distinct=3)
    end = samples[-1]["snapshot"]
    assert end["state"] == "succeeded", end
    lab.wait_cells_done()
    lab.page.locator(".ew-snapshot details > summary").first.click()  # the details hold the link

    # the task's real (signed) download link, as the API returns it
    signed = lab.sim.qianfan_client().get_export_task(task_id).download_url
    assert signed and "authorization=" in signed
    parts = urlsplit(signed)

    creds = lab.sim.credentials
    page = lab.page_text()
    forbidden = [creds.modelarts_ak, creds.modelarts_sk, creds.qianfan_ak, creds.qianfan_sk, creds.token,
                 creds.temp_ak, creds.temp_sk, creds.security_token,
                 "authorization=", "authorization%3D", "bce-auth-v1", parts.query]
    forbidden += [part for part in re.split(r"%2F|/", parts.query)  # the signing key id and signature
                  if re.fullmatch(r"[0-9a-f]{16,}", part)]
    leaked = [secret for secret in forbidden if secret in page]
    assert not leaked, f"secrets in the page: {leaked!r}"
    # ...and the page does show the link, without its query
    text = lab.page.locator(".ew-snapshot").first.inner_text()
    assert f"{parts.netloc}{parts.path}?***" in text, text
    lab.screenshot("end", ".ew-snapshot")


def test_a_notebook_saved_mid_run_holds_the_latest_state_as_text(lab):
    """The text/plain twin of the live output is refreshed (throttled): saved mid-run, the file says where the
    task was then, not the first draw; and refreshing it never makes the live widget disappear."""
    import nbformat

    task_id = lab.task_id("MaSave")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=80, total_samples=8000))
    lab.run_all()
    started = time.monotonic()
    samples = lab.sample(lab.widget_state, lambda s: time.monotonic() - started > 18 and (s["width"] or 0) > 15,
                         timeout=40)
    first_live = next(i for i, s in enumerate(samples) if s["widgets"])
    assert all(s["widgets"] == 1 for s in samples[first_live:]), "the live widget vanished while its text updated"
    lab.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    lab.wait_until(lambda: "widget-view" in (lab.server.root / name).read_text(), timeout=15,
                   message="the notebook saved with its widget output")
    saved = nbformat.read(lab.server.root / name, as_version=4)
    texts = [o["data"].get("text/plain", "") for c in saved.cells for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(texts) == 1, texts
    match = re.search(r"RUNNING ([\d.]+)%", texts[0])
    assert match and float(match.group(1)) >= 5.0, texts[0]  # not the first draw (WAITING / 0 %)
    assert "live view not connected" in texts[0], texts[0]
    lab.page.locator(".ew-widget button[title^='Stop watching']").click()


OUTPUT_OF_DOWNLOAD = ".jp-OutputArea-output:has(.ew-download)"

#: The download card as the page shows it now (its output is replaced at each update: read it in one go).
READ_DOWNLOAD_JS = r"""() => {
  const cards = document.querySelectorAll('.ew-download'), c = cards[0];
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputPrompt')].map(e => e.innerText.trim());
  if (!c) return {cards: 0, prompts};
  const text = sel => { const e = c.querySelector(sel); return e ? e.innerText.trim() : null; };
  const fill = c.querySelector('.ew-fill'), out = c.closest('.jp-OutputArea-output');
  return {cards: cards.length, prompts, state: c.dataset.downloadState, badge: text('.ew-badge'),
          width: parseFloat(fill.dataset.progress),
          drawn: fill.getBoundingClientRect().width / fill.parentElement.getBoundingClientRect().width * 100,
          pct: text('.ew-pct'), stats: text('.ew-stats'), path: text('.ew-dl-path'), why: text('.ew-why'),
          height: out ? out.getBoundingClientRect().height : null, text: c.innerText};
}"""


def test_download_card_fills_and_ends_downloaded(lab):
    """``%export_status --download`` of a 4 MiB export served slowly (64 KiB per 50 ms: about 3.3 s): one card whose
    bar fills as bytes arrive, then DOWNLOADED at 100 % with the file; readable and whole in both themes."""
    import nbformat

    task_id = f"task-dl{lab.uid}"
    folder = f"dl-{lab.uid}"
    name = lab.write_notebook(["%load_ext export_widgets", f"%export_status --download {folder} {task_id}"])
    lab.sim.add_task(TaskSpec("qianfan", task_id, duration=0.2, total_samples=4000, size_mb=4.0,
                              path=f"bos:/ew-browser-{lab.uid}/exports/export.zip", storage_type="BOS"))
    lab.sim.set_faults(task_id, [Fault("download_slow", seconds=0.05)])
    lab.open(name)
    lab.run_all()
    shots: list[float] = []

    def mid_way(state: dict) -> None:
        if not shots and state["cards"] and state["state"] == "downloading" and 25 <= state["width"] <= 75:
            shots.append(state["width"])
            assert lab.clipped(OUTPUT_OF_DOWNLOAD) == []
            _assert_contrast(lab, OUTPUT_OF_DOWNLOAD, "light")
            lab.docs_screenshot("download-light", OUTPUT_OF_DOWNLOAD)

    samples = lab.sample(READ_DOWNLOAD_JS, lambda s: s["cards"] and s["state"] != "downloading", timeout=30,
                         on_sample=mid_way)
    cards = [s for s in samples if s["cards"]]
    assert all(s["cards"] == 1 for s in cards), "more than one download card"
    running = [s for s in cards if s["state"] == "downloading"]
    assert running and all(s["badge"] == "DOWNLOADING" for s in running)
    widths = [s["width"] for s in running]
    lab.assert_advancing(widths, min_distinct=3)
    assert any(0 < w < 100 for w in widths), widths
    assert all(abs(s["drawn"] - s["width"]) < 1.5 for s in cards), [(s["drawn"], s["width"]) for s in cards]
    assert any("MiB/s" in s["stats"] and "ETA" in s["stats"] and "/ 4.0 MiB" in s["stats"] for s in running)
    assert shots, f"no sample between 25 and 75 %: {widths!r}"

    end = cards[-1]
    assert end["state"] == "downloaded" and end["badge"] == "DOWNLOADED", end
    assert end["width"] == 100.0 and end["pct"] == "100.0%" and "done in" in end["stats"], end
    assert end["path"] and end["path"].endswith(f"{folder}/{task_id}-export.zip"), end
    lab.wait_cells_done()
    assert (lab.server.root / folder / f"{task_id}-export.zip").stat().st_size == \
        lab.sim.app.export_file(task_id).size
    heights = [s["height"] for s in cards if s["height"]]
    assert max(heights) <= MAX_LIVE_HEIGHT, heights
    _record("download card height px", max(heights))
    assert lab.clipped(OUTPUT_OF_DOWNLOAD) == []
    _assert_contrast(lab, OUTPUT_OF_DOWNLOAD, "light")
    assert "authorization" not in lab.page_text()  # the file is named, the signed link never

    # saved: the notebook holds the last card (HTML) and its text line
    lab.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    lab.wait_until(lambda: 'data-download-state=\\"downloaded' in (lab.server.root / name).read_text(), timeout=15,
                   message="the notebook saved with the final card")
    outputs = [o for c in nbformat.read(lab.server.root / name, as_version=4).cells for o in c.get("outputs", [])
               if "text/html" in o.get("data", {})]
    assert len(outputs) == 1 and outputs[0]["data"]["text/plain"].startswith(f"Qianfan {task_id} download 100.0%")

    lab.set_theme("JupyterLab Dark")
    try:
        _assert_contrast(lab, OUTPUT_OF_DOWNLOAD, "dark")
        lab.docs_screenshot("download-dark", OUTPUT_OF_DOWNLOAD)
        lab.page.set_viewport_size({"width": 500, "height": 900})  # narrow: the card wraps, nothing is cut off
        lab.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        lab.page.wait_for_timeout(500)
        assert lab.clipped(OUTPUT_OF_DOWNLOAD) == []
        narrow = lab.page.evaluate(READ_DOWNLOAD_JS)["height"]
        assert narrow <= 2 * MAX_LIVE_HEIGHT, narrow
        _record("download card height at 500 px", narrow)
        lab.screenshot("download-500px", OUTPUT_OF_DOWNLOAD)
    finally:
        lab.page.set_viewport_size({"width": 1280, "height": 900})
        lab.set_theme("JupyterLab Light")
