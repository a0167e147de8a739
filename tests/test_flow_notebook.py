"""Start -> watch -> download in a real kernel (nbclient), then re-running the ``--start`` cell (issue 15).

Runs ``notebooks/start_and_download.ipynb`` (its own cells assert the exact bytes and the copy command), re-runs
its Qianfan ``--start`` cell in the same kernel, and reads back the saved notebook: the reuse line is there, and
the signed download URL's query is nowhere in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "start_and_download.ipynb"
pytestmark = pytest.mark.slow


def _index(notebook: nbformat.NotebookNode, text: str) -> int:
    return next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and text in cell.source)


def _text(notebook: nbformat.NotebookNode, index: int) -> str:
    return "\n".join(json.dumps(output) for output in notebook.cells[index].get("outputs", []))


def test_start_watch_download_and_rerun_in_a_real_kernel(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    start = _index(notebook, "--start --version")
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        first_output = _text(notebook, start)
        client.execute_cell(notebook.cells[start], start)  # Run All again: the same cell, the same kernel
        check = new_code_cell("assert mon.reused and mon.task_id == first_qianfan_id, (mon.task_id, first_qianfan_id)")
        notebook.cells.append(check)
        client.execute_cell(check, len(notebook.cells) - 1)
        leak_check = new_code_cell("print(sim.download_url_for(mon.task_id).split('authorization=')[1][-20:])")
        notebook.cells.append(leak_check)
        client.execute_cell(leak_check, len(notebook.cells) - 1)
    signature_tail = notebook.cells[-1].outputs[0]["text"].strip()
    notebook.cells.pop()  # the line above printed a signature piece on purpose, to search for it
    saved = tmp_path / "start_and_download.executed.ipynb"
    nbformat.write(notebook, saved)
    text = saved.read_text()

    assert "started export task-" in first_output
    assert "reusing export task-" in _text(notebook, start) and "pass --new for another" in _text(notebook, start)
    assert "downloaded task-" in text and "obsutil cp -r -f obs://" in text
    assert (tmp_path / "downloads").is_dir() and [p.suffix for p in (tmp_path / "downloads").iterdir()] == [".zip"]
    assert len(signature_tail) == 20
    for secret in ("authorization=", "authorization%3D", signature_tail):
        assert secret not in text
