"""Every notebook runs top to bottom in a real kernel (nbclient), ends with its final snapshot, leaks nothing.

The notebooks carry their own assertion cells; here we check what a reader of the *saved* notebook sees:
the widget outputs were replaced by static HTML + text showing the end state, and no credential or signed
URL query is anywhere in the outputs or the widget-state metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from export_widgets.simulator import SimulatorCredentials

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run each notebook once per test session (a kernel per notebook) and read back the saved file."""
    cache: dict[str, tuple[nbformat.NotebookNode, Path]] = {}

    def run(name: str) -> tuple[nbformat.NotebookNode, Path]:
        if name not in cache:
            workdir = tmp_path_factory.mktemp(name)
            notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
            NotebookClient(notebook, timeout=180, kernel_name="python3",
                           resources={"metadata": {"path": str(workdir)}}).execute()
            saved = workdir / f"{name}.executed.ipynb"
            nbformat.write(notebook, saved)
            cache[name] = nbformat.read(saved, as_version=4), workdir
        return cache[name]

    return run


def _outputs_text(notebook: nbformat.NotebookNode) -> str:
    """Everything a saved notebook shows or stores, except the cells' own source code."""
    parts = [json.dumps(notebook.metadata)]
    for cell in notebook.cells:
        parts.extend(json.dumps(output) for output in cell.get("outputs", []))
    return "\n".join(parts)


def _secrets() -> list[str]:
    creds = SimulatorCredentials()
    return [creds.modelarts_ak, creds.modelarts_sk, creds.qianfan_ak, creds.qianfan_sk, creds.token,
            "authorization=", "authorization%3D", "bce-auth-v1"]


def _snapshots(notebook: nbformat.NotebookNode) -> list[str]:
    return [output["data"]["text/html"] for cell in notebook.cells for output in cell.get("outputs", [])
            if output.get("output_type") == "display_data" and 'class="ew-snapshot' in
            output.get("data", {}).get("text/html", "")]


@pytest.mark.parametrize("name", ["quickstart", "modelarts", "qianfan", "dashboard"])
def test_notebook_runs_and_leaks_nothing(name, executed):
    notebook, _ = executed(name)
    text = _outputs_text(notebook)
    assert f"{name} OK" in text  # the notebook's own assertion cell ran to the end
    for secret in _secrets():
        assert secret not in text, f"{secret!r} leaked into the saved {name}.ipynb"
    snapshots = _snapshots(notebook)
    assert snapshots, "no static end-of-watch snapshot in the saved notebook"
    for html in snapshots:
        assert 'data-state="RUNNING"' not in html and 'data-state="PENDING"' not in html
        assert "WAITING" not in html


def test_quickstart_snapshot_shows_the_final_state(executed):
    notebook, workdir = executed("quickstart")
    first = _snapshots(notebook)[0]
    assert 'data-state="SUCCEEDED"' in first and "4,812 / 4,812 samples" in first
    assert 'data-progress="100.0"' in first and "ew-success" in first
    plain = [o["data"]["text/plain"] for c in notebook.cells for o in c.get("outputs", [])
             if o.get("output_type") == "display_data" and "text/html" in o.get("data", {})][0]
    assert "SUCCEEDED 100.0%" in plain  # what text-only renderers (and papermill logs) show
    assert (workdir / "quickstart_history.csv").read_text().count("\n") >= 3
