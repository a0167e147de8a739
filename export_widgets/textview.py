"""Text output for places without a widget frontend (terminal IPython, plain Python, the CLI, ``--no-widget``).

Like ``tqdm.auto``: the same monitors, shown as the text lines of :mod:`export_widgets.render`, in one of
three modes:

``lines``
    One line per task each time its display state changes (RUNNING, RETRYING, FAILED, ...), and the final
    line. For a watch running in the background of a terminal: it never floods the prompt.
``tty``
    One self-updating line per task (ANSI cursor moves, redrawn at most 4 times a second), as tqdm does;
    for a blocking watch on a terminal.
``display``
    A notebook output that updates itself through a display handle (``--no-widget`` in Jupyter), instead of
    printing into whichever cell runs next.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from . import render
from .display import describe
from .monitor import ExportMonitor

__all__ = ["TextView", "in_kernel", "widgets_available"]

MODES = ("lines", "tty", "display")
_TTY_INTERVAL = 0.25


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where outputs can be updated through display handles)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets importable (terminal IPython gets text)."""
    if not in_kernel():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class TextView:
    """Shows one or more monitors as text lines (see the module docstring for ``mode``)."""

    def __init__(self, monitors: ExportMonitor | Iterable[ExportMonitor], stream: IO[str] | None = None,
                 mode: str = "lines") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.monitors = [monitors] if isinstance(monitors, ExportMonitor) else list(monitors)
        self.stream = stream
        self.mode = mode
        self._lock = threading.Lock()
        self._last_key: dict[int, Any] = {}
        self._handle: Any = None
        self._detached = False  # the watch moved to a newer view: this one draws nothing more
        self._drawn = 0  # tty: lines drawn so far (the block rewritten in place)
        self._drawn_at = 0.0
        self.lines_printed = 0
        if mode == "display":
            from IPython.display import display

            self._handle = display({"text/plain": self._block()}, raw=True,
                                   display_id=True)
        for monitor in self.monitors:
            monitor.on_update(self._on_update)
            if mode == "lines":
                self._on_update(monitor)
        if mode == "tty":
            self._redraw_tty(force=True)

    @staticmethod
    def _key(monitor: ExportMonitor) -> tuple[Any, ...]:
        shown = describe(monitor)
        return (shown.state, monitor.done)

    @staticmethod
    def line(monitor: ExportMonitor) -> str:
        """The status line of ``monitor``."""
        return render.monitor_line(monitor)

    def _block(self) -> str:
        return "\n".join(self.line(m) for m in self.monitors)

    def _on_update(self, monitor: ExportMonitor) -> None:
        if self._detached:
            return
        if self.mode == "tty":
            key = self._key(monitor)
            changed = self._last_key.get(id(monitor)) != key
            self._last_key[id(monitor)] = key
            self._redraw_tty(force=changed)  # state changes always show; progress at most 4 times a second
            return
        if self.mode == "display":
            self._update_display()
            return
        key = self._key(monitor)
        with self._lock:
            if self._last_key.get(id(monitor)) == key:
                return
            self._last_key[id(monitor)] = key
            self._write(self.line(monitor) + "\n")

    def _update_display(self) -> None:
        with self._lock:
            text = self._block()
            if self._last_key.get(0) == text or self._handle is None:
                return
            self._last_key[0] = text
            try:
                self._handle.update({"text/plain": text}, raw=True)
            except Exception:  # noqa: BLE001 - a closed frontend must not break the monitor
                return
            self.lines_printed += 1

    def _redraw_tty(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._drawn_at < _TTY_INTERVAL:
                return
            self._drawn_at = now
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            lines = [self.line(m) for m in self.monitors]
            self._write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # closed stream: nothing sensible to do from a polling thread
            return
        self.lines_printed += 1

    def finalize(self, note: str | None = None) -> None:
        """Draw the final state (tty and display modes; lines mode printed it already); ``note`` (the watch
        moved to a newer view) is added under it, and this view draws nothing more."""
        if note is not None:
            with self._lock:
                self._detached = True
                if self.mode == "display" and self._handle is not None:
                    try:
                        self._handle.update({"text/plain": f"{self._block()}\n{note}"}, raw=True)
                    except Exception:  # noqa: BLE001 - a closed frontend must not break the magic
                        pass
                else:
                    self._write(note + "\n")
            return
        if self.mode == "tty":
            self._redraw_tty(force=True)
        elif self.mode == "display":
            self._update_display()

    def __repr__(self) -> str:
        return self._block()
