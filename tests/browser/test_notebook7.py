"""The same live progress in Jupyter Notebook 7 (``/notebooks/…``, served by the session's Jupyter server)."""

from __future__ import annotations

import shutil

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
    print(f"\nNotebook 7: live output height {max(heights):g} px, final {end['outputHeight']:g} px, "
          f"worst contrast {min(c['ratio'] for c in contrast):g}")
    lab.screenshot("end", ".ew-snapshot")
