"""5. ``import export_widgets`` vs ``import ipywidgets`` alone, each in a fresh interpreter, alternating."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from .common import Result


def _import_seconds(module: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Result]:
    rounds = 5 if quick else 11
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(_import_seconds("export_widgets"))
        theirs.append(_import_seconds("ipywidgets"))
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    ratio = statistics.median(ours) / statistics.median(theirs)
    heavy = subprocess.run([sys.executable, "-c", "import sys, export_widgets; "
                            "print(','.join(m for m in ('pandas', 'ipywidgets', 'IPython') if m in sys.modules))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return [Result("import export_widgets / import ipywidgets", ratio, "x", "<= 1.2x", ratio <= 1.2, ratios,
                   f"{statistics.median(ours) * 1000:.0f} ms vs {statistics.median(theirs) * 1000:.0f} ms; "
                   f"heavy modules loaded: {heavy or 'none'}")]
