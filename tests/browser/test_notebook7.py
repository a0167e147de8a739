"""The same live progress in Jupyter Notebook 7 (``/notebooks/…``, served by the session's Jupyter server)."""

from __future__ import annotations

import shutil
import statistics

import pytest

pytest.importorskip("playwright")
pytest.importorskip("notebook")

from export_widgets.simulator import TaskSpec  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                       reason="chromium is not installed (apt-get install chromium)"),
]


def test_progress_in_notebook7(lab):
    task_id = lab.task_id("MaNb7")
    name = lab.write_notebook(["%load_ext export_widgets",
                               f"%export_status --provider modelarts --dataset {lab.sim.dataset_id} {task_id} "
                               "--interval 0.3"])
    lab.open(name, ui="notebook")
    assert lab.page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"  # not JupyterLab
    lab.sim.add_task(TaskSpec("modelarts", task_id, duration=6, total_samples=1000))
    lab.run_all()

    shots: list[float] = []
    live_contrast: list[dict] = []

    def mid_screenshot(state: dict) -> None:
        if not shots and state["widgets"] and state["width"] is not None and 30 <= state["width"] <= 70:
            shots.append(state["width"])
            lab.screenshot("mid", ".ew-widget")
            live_contrast.extend(lab.contrast(".jp-OutputArea-output:has(.ew-widget)"))

    samples = lab.sample(lab.widget_state, lambda s: s["snapshot"] is not None and s["widgets"] == 0,
                         timeout=40, on_sample=mid_screenshot)
    live = [s for s in samples if s["widgets"] and s["width"] is not None]
    lab.assert_advancing([s["width"] for s in live], min_distinct=5)
    assert len({s["stats"] for s in live}) >= 5
    assert all(s["state"] in ("running", "waiting", "succeeded") for s in live), {s["state"] for s in live}
    heights = [s["outputHeight"] for s in live if s["outputHeight"]]
    assert heights and max(heights) <= 110, sorted(set(heights))  # compact in Notebook 7 too
    assert live_contrast and min(c["ratio"] for c in live_contrast) >= 4.5, \
        [c for c in live_contrast if c["ratio"] < 4.5]
    end = samples[-1]["snapshot"]
    assert end["state"] == "succeeded" and end["inHtmlOutput"], end
    assert end["width"] == 100.0 and end["badge"] == "SUCCEEDED", end
    assert end["outputHeight"] <= 110, end
    lab.wait_cells_done()
    contrast = lab.contrast(".jp-OutputArea-output:has(.ew-snapshot)")
    assert contrast and min(c["ratio"] for c in contrast) >= 4.5, [c for c in contrast if c["ratio"] < 4.5]
    lab.screenshot("end", ".ew-snapshot")
    lab.set_theme("JupyterLab Dark")  # the finished card in Notebook 7's dark theme: readable, no light block
    try:
        dark = lab.contrast(".jp-OutputArea-output:has(.ew-snapshot)")
        assert dark and min(c["ratio"] for c in dark) >= 4.5, [c for c in dark if c["ratio"] < 4.5]
        lab.screenshot("end-dark", ".ew-snapshot")
    finally:
        lab.set_theme("JupyterLab Light")
    print(f"\nNotebook 7: live output height {max(heights):g} px, final {end['outputHeight']:g} px, "
          f"worst contrast {min(c['ratio'] for c in contrast):g} light, {min(c['ratio'] for c in dark):g} dark")


def test_dashboard_in_notebook7_light_and_dark(lab):
    from test_jupyterlab import SPECIAL, _dashboard_tasks  # the same 36 tasks as the JupyterLab test

    specs, special, cell = _dashboard_tasks(lab)
    name = lab.write_notebook(["%load_ext export_widgets", cell])
    lab.open(name, ui="notebook")
    for spec in specs:
        lab.sim.add_task(spec)
    lab.run_all()
    state = lab.sample(lab.dashboard_state, lambda s: s["dashboards"] == 1 and len(s["rows"]) == 36 and
                       SPECIAL <= {r["state"] for r in s["rows"]}, timeout=60)[-1]
    tops = sorted(r["top"] for r in state["rows"])
    pitch = [b - a for a, b in zip(tops, tops[1:], strict=False)]
    assert max(pitch) <= 40 and max(r["height"] for r in state["rows"]) <= 40, pitch
    for col in ("state", "id", "bar", "pct"):
        assert len({r["cols"][col]["x"] for r in state["rows"]}) == 1, col
    assert {r["badge"] for r in state["rows"]} >= {"ERROR", "FAILED", "RETRYING", "TIMED OUT", "WATCH STOPPED",
                                                   "STOPPED", "RUNNING"}
    assert lab.clipped(".ew-dashboard") == []
    worst = {}
    for theme in ("JupyterLab Light", "JupyterLab Dark"):
        lab.set_theme(theme)
        measured = lab.contrast(".ew-dashboard")
        low = [m for m in measured if m["ratio"] < 4.5]
        assert measured and not low, (theme, low[:5])
        worst[theme] = min(m["ratio"] for m in measured)
    lab.set_theme("JupyterLab Light")
    print(f"\nNotebook 7 dashboard: row pitch {statistics.median(pitch):g} px, worst contrast {worst}")
    lab.page.locator(".ew-dashboard button[title^='Stop watching every task']").click()
    lab.sample(lab.dashboard_state, lambda s: s["snapshot"] is not None and s["dashboards"] == 0, timeout=30)
