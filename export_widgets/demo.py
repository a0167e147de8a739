"""``export-widgets demo``: the whole product, offline, in under a minute.

1. Starts the embedded simulator and watches its demo tasks in the terminal (text lines, like tqdm).
2. Saves the summary, the filters of the filtered export and every poll as CSV.
2b. Starts a Qianfan and a ModelArts export on the simulator, watches both, downloads the Qianfan one into
   ``downloads/`` (size-checked, atomic) and prints the ``obsutil`` command for the ModelArts one.
3. Runs ``notebooks/quickstart.ipynb`` headlessly (when nbclient and ipykernel are installed) and saves the
   executed notebook, so you can open it and see the final widget snapshots.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import IO

from . import render
from .monitor import ExportMonitor, MonitorGroup
from .poller import Poller
from .providers import make_client
from .textview import TextView

__all__ = ["QUICKSTART", "run_demo"]

#: Shipped inside the package (a symlink to notebooks/quickstart.ipynb in the source tree), so a non-editable
#: install finds it too.
QUICKSTART = Path(__file__).resolve().parent / "notebooks" / "quickstart.ipynb"


def _say(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def watch_simulated_tasks(out_dir: Path, *, speed: float, stream: IO[str]) -> tuple[MonitorGroup, dict[str, str]]:
    """Step 1 and 2: watch every demo task to its end, then write the CSVs.

    Returns the monitors and each task's scripted outcome (``succeed``/``fail``) to check them against.
    """
    from . import frames, simulator

    scenario = dataclasses.replace(simulator.Scenario.demo(), speed=speed)
    with simulator.serve(scenario=scenario) as sim:
        _say(stream, f"Embedded simulator at {sim.url}: {len(sim.tasks)} export tasks "
                     f"(time compressed {speed:g}x)\n")
        clients = {name: make_client(name, endpoint=sim.url, environ=sim.env)
                   for name in {spec.provider for spec in sim.tasks.values()}}
        scripted = {task_id: spec.outcome for task_id, spec in sim.tasks.items()}
        poller = Poller()
        group = MonitorGroup(
            ExportMonitor(clients[spec.provider], task_id, getattr(spec, "dataset_id", None),
                          interval=0.5, timeout=120, poller=poller)
            for task_id, spec in sim.tasks.items())
        TextView(group.monitors, stream=stream)
        group.wait(stop_on_interrupt=True)
        poller.shutdown()

    _say(stream, "\nFinal state:\n" + render.monitor_table(group))
    out_dir.mkdir(parents=True, exist_ok=True)
    group.summary().to_csv(out_dir / "summary.csv", index=False)
    group.history_frame().to_csv(out_dir / "history.csv", index=False)
    filtered = next((m.latest for m in group if m.latest is not None and m.latest.search_conditions), None)
    if filtered is not None:
        frames.filters(filtered).to_csv(out_dir / "filters.csv", index=False)
    return group, scripted


def start_and_download(out_dir: Path, *, speed: float, stream: IO[str]) -> bool:
    """Step 2b: start -> watch -> download, offline. True when both exports succeeded and the file is whole."""
    from . import simulator
    from .download import TextDownloadView
    from .start import start_export

    template = {"duration": max(1.0, 12.0 / speed), "size_mb": 24.0, "total_samples": 2400}
    with simulator.serve([], create={"template": template, "read_lag_requests": 1}) as sim:
        _say(stream, "\nStart -> watch -> download (a new export on each provider):")
        qianfan = make_client("qianfan", endpoint=sim.url, environ=sim.env)
        modelarts = make_client("modelarts", endpoint=sim.url, environ=sim.env)
        poller = Poller()
        say = lambda text: _say(stream, text)  # noqa: E731
        monitors = [start_export(qianfan, "ds-7a1b2c3d", sys_storage=True, interval=0.5, timeout=120, poller=poller,
                                 notify=say),
                    start_export(modelarts, sim.dataset_id, path="obs://demo-bucket/exports/", export_type=0,
                                 interval=0.5, timeout=120, poller=poller, notify=say)]
        group = MonitorGroup(monitors)
        TextView(group.monitors, stream=stream)
        group.wait(stop_on_interrupt=True)
        poller.shutdown()
        if not all(m.latest is not None and m.latest.state.value == "SUCCEEDED" for m in monitors):
            return False
        downloaded = monitors[0].download(out_dir / "downloads", progress=TextDownloadView(stream, every=0.5))
        _say(stream, str(downloaded))
        _say(stream, str(monitors[1].download(out_dir / "downloads")))
        whole = downloaded.path is not None and downloaded.size == sim.app.export_file(monitors[0].task_id).size
        qianfan.close()
        modelarts.close()
    return whole


def run_quickstart(out_dir: Path, stream: IO[str]) -> Path | None:
    """Step 3: execute the quickstart notebook headlessly; None when that cannot run here."""
    if not QUICKSTART.exists():
        _say(stream, f"(quickstart notebook not found at {QUICKSTART}; skipped)")
        return None
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        _say(stream, "(install the 'demo' extra to also run notebooks/quickstart.ipynb: pip install -e '.[demo]')")
        return None
    _say(stream, f"\nRunning {QUICKSTART.name} headlessly (a real kernel with its own embedded simulator)...")
    notebook = nbformat.read(QUICKSTART, as_version=4)
    started = time.monotonic()
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(out_dir)}}).execute()
    target = out_dir / QUICKSTART.name
    nbformat.write(notebook, target)
    _say(stream, f"Executed {len(notebook.cells)} cells in {time.monotonic() - started:.1f} s")
    return target


def run_demo(out_dir: str | Path = "export-widgets-demo", *, speed: float = 3.0, notebook: bool = True,
             stream: IO[str] | None = None) -> int:
    """Run the demo; returns a process exit code (0 when everything behaved as the scenario says)."""
    stream = stream or sys.stdout
    out = Path(out_dir).resolve()
    group, scripted = watch_simulated_tasks(out, speed=speed, stream=stream)
    started_ok = start_and_download(out, speed=speed, stream=stream)
    executed = run_quickstart(out, stream) if notebook else None
    _say(stream, f"\nOutputs in {out}:")
    for path in sorted(out.iterdir()):
        _say(stream, f"  {path.name}")
    if executed is not None:
        _say(stream, f"Open {executed} in Jupyter to see the widgets' final snapshots.")
    expected = {"succeed": "SUCCEEDED", "fail": "FAILED", "stop": "STOPPED"}
    surprises = [m.task_id for m in group
                 if m.latest is None or m.latest.state.value != expected.get(scripted[m.task_id])]
    if not started_ok:
        surprises.append("start -> watch -> download")
    if surprises:
        _say(stream, f"Unexpected outcome for: {', '.join(surprises)}")
        return 1
    return 0
