"""What a non-editable install gets: the wheel carries the quickstart notebook and py.typed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_the_quickstart_notebook_for_the_demo(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("export_widgets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "export_widgets/py.typed" in names
        shipped = archive.read("export_widgets/notebooks/quickstart.ipynb")
    assert shipped == (ROOT / "notebooks" / "quickstart.ipynb").read_bytes()  # the same notebook, not a copy
