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

    def mid_screenshot(state: dict) -> None:
        if not shots and state["widgets"] and state["width"] is not None and 30 <= state["width"] <= 70:
            shots.append(state["width"])
            lab.screenshot("mid", ".ew-widget")

    samples = lab.sample(lab.widget_state, lambda s: s["snapshot"] is not None and s["widgets"] == 0,
                         timeout=40, on_sample=mid_screenshot)
    live = [s for s in samples if s["widgets"] and s["width"] is not None]
    lab.assert_advancing([s["width"] for s in live], min_distinct=5)
    assert len({s["stats"] for s in live}) >= 5
    for s in live:  # running colour; a sample may catch the last live draw (100 %, success) before the snapshot
        want = "progress-bar-success" if s["width"] >= 100 else "progress-bar-info"
        assert want in s["barClass"], s
    end = samples[-1]["snapshot"]
    assert end["state"] == "SUCCEEDED" and end["inHtmlOutput"], end
    assert "ew-success" in end["fillClass"] and end["progress"] == "100.0", end
    lab.wait_cells_done()
    lab.screenshot("end", ".ew-snapshot")
