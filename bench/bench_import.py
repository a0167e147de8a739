"""5. ``import export_widgets`` vs ``import ipywidgets`` alone, each in a fresh interpreter, alternating.

Both with their bytecode cached, as a user has them: ipywidgets' was written when pip installed it, ours (an
editable checkout) is written on the first import. With ``PYTHONDONTWRITEBYTECODE=1`` in the environment (as on
the machine this was first measured on) our sources were compiled anew in every run, about 90 ms of the 470 ms
measured, so the cache goes to a temporary ``PYTHONPYCACHEPREFIX`` (nothing is written into the checkout).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from .common import Result


def _import_seconds(module: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Result]:
    rounds = 5 if quick else 11
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="ew-bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for module in ("export_widgets", "ipywidgets"):
            _import_seconds(module, env)  # writes the bytecode cache; not counted
        for _ in range(rounds):
            ours.append(_import_seconds("export_widgets", env))
            theirs.append(_import_seconds("ipywidgets", env))
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    ratio = statistics.median(ours) / statistics.median(theirs)
    heavy = subprocess.run([sys.executable, "-c", "import sys, export_widgets; "
                            "print(','.join(m for m in ('pandas', 'ipywidgets', 'IPython') if m in sys.modules))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return [Result("import export_widgets / import ipywidgets", ratio, "x", "<= 1.2x", ratio <= 1.2, ratios,
                   f"{statistics.median(ours) * 1000:.0f} ms vs {statistics.median(theirs) * 1000:.0f} ms; "
                   f"heavy modules loaded: {heavy or 'none'}")]
