"""The widget as a person sees it: real JupyterLab 4, headless Chromium, kernels polling the simulator.

Every test watches its own uniquely named task (added to the session's simulator just before Run All, so it
starts at 0 %) in its own notebook and workspace, and asserts on the DOM *over time*: a widget that renders
once and then stops updating fails every test here (the bar must take several increasing widths, the stats
line must change, the snapshot only appears if the final update arrives).
"""

from __future__ import annotations

import re
import shutil
import statistics
import time
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright")

from export_widgets.simulator import TaskSpec  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                       reason="chromium is not installed (apt-get install chromium)"),
]

INTERVAL = 0.3  # the widget's poll floor in these notebooks (--interval)
GREEN, RED = "rgb(76, 175, 80)", "rgb(244, 67, 54)"  # render._COLOURS success / danger

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


def _watch_cells(args: str) -> list[str]:
    return ["%load_ext export_widgets", f"%export_status {args} --interval {INTERVAL}"]


def _done(prompts: list[str]) -> bool:
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)


def _ended(state: dict) -> bool:
    """The watch is over and the output was replaced through its display id (no live widget left)."""
    return state["snapshot"] is not None and state["widgets"] == 0


def _live_widths(samples: list[dict]) -> list[float]:
    return [s["width"] for s in samples if s["widgets"] and s["width"] is not None]


def _assert_live_colours(live: list[dict]) -> None:
    """Running colour below 100 %; a sample may catch the last live draw (100 %, success) before the snapshot.

    The header, bar and stats are separate widget models (one comm message each), so the bar's class is
    checked against the bar's own width, never against the stats text of the same sample.
    """
    for s in live:
        want = "progress-bar-success" if s["width"] >= 100 else "progress-bar-info"
        assert want in s["barClass"], f"bar at {s['width']} % has class {s['barClass']!r}"


def _samples_count(stats: str) -> int:
    match = re.search(r"([\d,]+) / [\d,]+ samples", stats)
    assert match, f"no sample counts in the stats line {stats!r}"
    return int(match.group(1).replace(",", ""))


def test_progress_advances_to_success_then_snapshot(lab):
    task_id = lab.task_id("MaOk")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=8, total_samples=1000))
    lab.run_all()

    shots: list[float] = []

    def mid_screenshot(state: dict) -> None:
        if not shots and state["widgets"] and state["width"] is not None and 30 <= state["width"] <= 70:
            shots.append(state["width"])
            lab.screenshot("mid", ".ew-widget")

    samples = lab.sample(lab.widget_state, _ended, timeout=40, on_sample=mid_screenshot)
    live = [s for s in samples if s["widgets"] and s["width"] is not None]

    # the bar advanced in many steps while the task ran, in the running colour
    lab.assert_advancing(_live_widths(samples), min_distinct=5)
    widths = _live_widths(samples)
    assert min(widths) <= 50 and max(widths) >= 75, f"the live bar did not travel: {widths!r}"
    _assert_live_colours(live)
    assert all(s["provider"] == "ew-provider-modelarts" for s in live)
    assert any(s["badge"] and "ew-state-running" in s["badge"] for s in live)

    # the counts / ETA line changed several times, with growing counts
    stats = [s["stats"] for s in live]
    assert all("/ 1,000 samples" in t for t in stats), stats
    assert all("ETA" in t for t in stats if not t.startswith("100.0%")), stats  # no ETA once finished
    counts = [_samples_count(t) for t in stats]
    assert all(b >= a for a, b in zip(counts, counts[1:])), counts
    assert len(set(stats)) >= 5 and len(set(counts)) >= 5, sorted(set(stats))

    # updates kept arriving after the cell had returned (a live widget, not a blocking loop)
    assert any(_done(s["prompts"]) and s["width"] < 100 for s in live), "the cell never returned while live"
    assert shots, f"no screenshot between 30 and 70 %: {widths!r}"

    # the end: a static snapshot in place of the widget, at 100 % in the success colour
    end = samples[-1]["snapshot"]
    assert end["state"] == "SUCCEEDED" and end["monitorStatus"] == "finished", end
    assert end["inHtmlOutput"] and not end["inWidget"], end
    assert samples[-1]["snapshots"] == 1
    assert "ew-success" in end["fillClass"] and end["progress"] == "100.0" and end["fillWidth"] == "100%", end
    assert end["fillColour"] == GREEN and "ew-state-succeeded" in end["badge"], end
    assert "1,000 / 1,000 samples" in end["stats"], end["stats"]
    lab.wait_cells_done()
    lab.screenshot("end", ".ew-snapshot")


def test_failing_task_turns_danger_and_shows_its_error(lab):
    task_id = lab.task_id("MaFail")
    code, message = "ModelArts.4311", f"OBS bucket ew-missing-{lab.uid} does not exist"
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=8, outcome="fail", fail_at=60, total_samples=500,
                              error_code=code, error_message=message))
    lab.run_all()
    samples = lab.sample(lab.widget_state, _ended, timeout=40)

    widths = _live_widths(samples)
    lab.assert_advancing(widths, min_distinct=5)
    assert max(widths) <= 60.0, widths

    end = samples[-1]["snapshot"]
    assert end["state"] == "FAILED" and end["monitorStatus"] == "finished", end
    assert "ew-danger" in end["fillClass"] and end["fillColour"] == RED, end
    assert "ew-state-failed" in end["badge"], end
    assert 50.0 <= float(end["progress"]) <= 60.0, end
    assert code in end["text"] and message in end["text"], end["text"]
    error = lab.page.locator(".ew-snapshot .ew-error").first
    assert code in error.inner_text() and message in error.inner_text()
    assert error.is_visible()
    lab.screenshot("end", ".ew-snapshot")


def _table(lab, selector: str) -> dict[str, list[str]]:
    """An HTML table (pandas ``to_html``) as ``{column: [cell, ...]}``."""
    return lab.page.evaluate(
        """sel => {
            const t = document.querySelector(sel);
            if (!t) return null;
            const heads = [...t.querySelectorAll('thead th')].map(e => e.innerText.trim());
            const rows = [...t.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('td')].map(e => e.innerText.trim()));
            return Object.fromEntries(heads.map((h, i) => [h, rows.map(r => r[i])]));
        }""", selector)


def test_filters_tab_shows_the_search_conditions(lab):
    task_id = lab.task_id("MaFilt")
    name = lab.write_notebook(_watch_cells(f"--provider modelarts --dataset {lab.sim.dataset_id} {task_id}"))
    lab.open(name)
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=8, total_samples=2000,
                              export_params={"sample_state": "ALL", "export_dest": "DIR",
                                             "search_conditions": SEARCH_CONDITIONS}))
    lab.run_all()
    lab.sample(lab.widget_state, lambda s: s["widgets"] == 1 and (s["width"] or 0) > 0, timeout=30)

    tab = lab.page.locator(".ew-widget .lm-TabBar-tab", has_text="Filters")
    tab.click()
    lab.page.wait_for_selector(".ew-widget .ew-filters-table", state="visible", timeout=10_000)
    assert "lm-mod-current" in (tab.get_attribute("class") or "")
    table = _table(lab, ".ew-widget .ew-filters-table")
    assert table is not None
    assert table["label_name"] == ["car", "pedestrian", "cyclist"], table
    assert table["sample_time"] == ["20240501-20240530", "20240501-20240530", "month"], table
    assert table["condition"] == ["0", "0", "1"], table
    assert "weather: rain" in table["metadata_props"][0], table
    assert "<NA>" not in str(table), table  # missing values are blank cells
    lab.screenshot("filters", ".ew-widget")

    # with the Filters tab open the bar keeps moving, and the end snapshot carries the same conditions
    samples = lab.sample(lab.widget_state, _ended, timeout=40)
    lab.assert_advancing(_live_widths(samples), min_distinct=5)
    assert samples[-1]["snapshot"]["state"] == "SUCCEEDED"
    end_table = _table(lab, ".ew-snapshot .ew-filters-table")
    assert end_table is not None and end_table["label_name"] == table["label_name"], end_table
    assert end_table["sample_time"] == table["sample_time"], end_table


def test_dashboard_one_row_per_task_then_snapshot(lab):
    ma_ok, ma_fail, qf_ok = lab.task_id("MaDashOk"), lab.task_id("MaDashFail"), f"task-dash{lab.uid}"
    ids = {ma_ok, ma_fail, qf_ok}
    # no --provider: "task-…" is Qianfan, the others are ModelArts because of --dataset
    name = lab.write_notebook(_watch_cells(f"--dataset {lab.sim.dataset_id} {ma_ok} {ma_fail} {qf_ok}"))
    lab.open(name)
    for spec in (TaskSpec("modelarts", ma_ok, duration=7, total_samples=700),
                 TaskSpec("modelarts", ma_fail, duration=8, outcome="fail", fail_at=75, total_samples=800),
                 TaskSpec("qianfan", qf_ok, duration=6, total_samples=600)):
        lab.sim.add_task(spec)
    lab.run_all()

    shots: list[bool] = []

    def mid_screenshot(state: dict) -> None:
        if not shots and state["overall"] is not None and 30 <= state["overall"] <= 70:
            shots.append(True)
            lab.screenshot("mid", ".ew-dashboard")

    samples = lab.sample(lab.dashboard_state, lambda s: s["snapshot"] is not None and s["dashboards"] == 0,
                         timeout=45, on_sample=mid_screenshot)
    def complete(s: dict) -> bool:
        return len(s["rows"]) == 3 and {r["id"] for r in s["rows"]} == ids

    # from the first sample where the dashboard has finished rendering its child views, to the snapshot
    start = next((i for i, s in enumerate(samples) if s["dashboards"] == 1 and complete(s)), None)
    assert start is not None, f"the dashboard never showed one row per task: {samples[-1]!r}"
    live = [s for s in samples[start:] if s["dashboards"] == 1 and s["rows"]]
    # Known glitch (reported, see issue 6 notes): a live re-sort rewrites every row's label/bar/stats models,
    # one comm message each, so for a moment one task can show in two rows and another in none. Tolerate
    # it only as a transient: a few isolated samples, never two in a row.
    odd = [i for i, s in enumerate(live) if not complete(s)]
    assert len(odd) <= 3 and all(b - a > 1 for a, b in zip(odd, odd[1:])), \
        f"{len(odd)} of {len(live)} samples do not show one row per task: " \
        f"{[[(r['id'], r['state'], r['width']) for r in live[i]['rows']] for i in odd]!r}"
    assert all(s["totals"].startswith("3 tasks") for s in live), live[-1]["totals"]
    labels = {r["id"]: r["label"] for r in live[-1]["rows"]}
    assert labels[qf_ok].startswith("Qianfan") and labels[ma_ok].startswith("ModelArts"), labels

    # Rows are re-sorted live (attention first), so follow them by task id. A row's label, bar and stats are
    # three widget models updated by three messages; a sample taken between them is "torn" (the label of one
    # task over the bar of another). Keep only rows whose stats name the label's task and the bar's width.
    totals = {ma_ok: 700, ma_fail: 800, qf_ok: 600}

    def consistent(row: dict) -> bool:
        match = re.match(r"([\d.]+)% · (?:[\d,]+ / )?([\d,]+) samples", row["stats"] or "")
        return bool(match) and int(match.group(2).replace(",", "")) == totals[row["id"]] \
            and abs(float(match.group(1)) - row["width"]) <= 0.051

    rows = [r for s in live for r in s["rows"] if r["state"] != "WAITING"]  # WAITING: no answer yet
    torn = [r for r in rows if not consistent(r)]
    assert len(torn) <= len(rows) // 10, f"{len(torn)} of {len(rows)} rows torn: {torn[:5]!r}"
    for task_id in ids:  # every row moved on its own
        running = [r for r in rows if r["id"] == task_id and r["state"] == "RUNNING" and consistent(r)]
        lab.assert_advancing([r["width"] for r in running], min_distinct=4, what=f"row {task_id} width")
        assert len({r["stats"] for r in running}) >= 4, running[-1]
        # the label (state) is the last of a row's three messages, so its bar may already be final
        info = [r for r in running if "progress-bar-info" in r["barClass"]]
        assert len(info) >= len(running) - 2, [r["barClass"] for r in running]
    lab.assert_advancing([s["overall"] for s in live if s["overall"] is not None], min_distinct=5,
                         what="overall width")

    end = samples[-1]["snapshot"]
    assert end["inHtmlOutput"] and not end["inWidget"], end
    rows = {r["id"]: r for r in end["rows"]}
    assert set(rows) == ids, end["rows"]
    assert rows[ma_ok]["state"] == "SUCCEEDED" and "ew-success" in rows[ma_ok]["fillClass"], rows[ma_ok]
    assert rows[qf_ok]["state"] == "SUCCEEDED" and rows[qf_ok]["progress"] == "100.0", rows[qf_ok]
    assert rows[ma_fail]["state"] == "FAILED" and "ew-danger" in rows[ma_fail]["fillClass"], rows[ma_fail]
    assert "3 tasks" in end["text"] and "1 FAILED" in end["text"] and "2 SUCCEEDED" in end["text"], end["text"]
    lab.screenshot("end", ".ew-dashboard-snapshot")


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
    lab.assert_advancing(_live_widths(live), min_distinct=4)
    first = lab.sim.request_count(task_id=task_id)
    lab.wait_until(lambda: lab.sim.request_count(task_id=task_id) >= first + 3, timeout=15,
                   message="3 more polls before Stop")
    times = [r.wall_time for r in lab.sim.requests if r.task_id == task_id]
    gap = statistics.median(b - a for a, b in zip(times, times[1:]))
    assert gap < 1.0, f"polls were {gap:.2f} s apart, want about {INTERVAL} s"

    lab.page.locator(".ew-widget button", has_text="Stop").click()
    samples = lab.sample(lab.widget_state, _ended, timeout=15)
    end = samples[-1]["snapshot"]
    assert end["monitorStatus"] == "stopped" and end["ended"] == "watch stopped", end
    assert end["state"] == "RUNNING" and "ew-state-running" in end["badge"], end  # the export itself goes on

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
    lab.assert_advancing(_live_widths(samples), min_distinct=5)
    end = samples[-1]["snapshot"]
    assert end["state"] == "SUCCEEDED", end
    lab.wait_cells_done()

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
    assert f"{parts.netloc}{parts.path}?***" in end["text"], end["text"]
    lab.screenshot("end", ".ew-snapshot")
