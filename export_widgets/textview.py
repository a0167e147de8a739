"""Text output for places without a widget frontend (terminal IPython, plain Python, the CLI).

Like ``tqdm.auto``: the same monitor, shown as lines. A line is printed when something a reader cares about
changes (state, whole percent, counts, error) and once at the end, never once per poll.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any, Iterable

from . import render
from .monitor import ExportMonitor

__all__ = ["TextView", "widgets_available"]


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets importable (terminal IPython gets text)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class TextView:
    """Prints status lines for one or more monitors to ``stream`` (default stdout)."""

    def __init__(self, monitors: ExportMonitor | Iterable[ExportMonitor], stream: IO[str] | None = None) -> None:
        self.monitors = [monitors] if isinstance(monitors, ExportMonitor) else list(monitors)
        self.stream = stream
        self._lock = threading.Lock()
        self._last_key: dict[int, Any] = {}
        self.lines_printed = 0
        for monitor in self.monitors:
            monitor.on_update(self._on_update)
            self._on_update(monitor)

    @staticmethod
    def _key(monitor: ExportMonitor) -> tuple[Any, ...]:
        task = monitor.latest
        return (monitor.status, task.state if task else None,
                int(task.progress) if task and task.progress is not None else None,
                task.finished_samples if task else None, monitor.last_poll_error)

    def _on_update(self, monitor: ExportMonitor) -> None:
        key = self._key(monitor)
        with self._lock:
            if self._last_key.get(id(monitor)) == key:
                return
            self._last_key[id(monitor)] = key
            self._write(self.line(monitor))

    @staticmethod
    def line(monitor: ExportMonitor) -> str:
        """The status line of ``monitor`` (plus its final error, if any)."""
        return render.snapshot_text(monitor) if monitor.done else render.status_line(
            monitor.provider, monitor.task_id, monitor.latest, monitor.figures(), monitor.status,
            monitor.last_poll_error)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):  # closed stream: nothing sensible to do from a polling thread
            return
        self.lines_printed += 1

    def finalize(self) -> None:
        """No-op twin of the widgets' ``finalize`` (the last line is printed by the update itself)."""

    def __repr__(self) -> str:
        return "\n".join(self.line(m) for m in self.monitors)
