"""What live views share: redraw throttling and the display handles that end as a static snapshot."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

__all__ = ["LiveOutput", "Throttle"]


class Throttle:
    """Run ``fn`` at most once per ``min_interval`` seconds; a call inside the window runs once at its end.

    Many monitors updating a dashboard collapse into one redraw per window (the coalescing that keeps a
    hundreds-of-tasks view responsive); the trailing run guarantees the last state is always drawn.
    """

    def __init__(self, fn: Callable[[], None], min_interval: float = 0.25) -> None:
        self._fn = fn
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._timer: threading.Timer | None = None
        self.runs = 0

    def __call__(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a trailing run is already booked; it will draw the newest state
            wait = self._last + self._min_interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._trailing)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = time.monotonic()
        self._run()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self._run()

    def _run(self) -> None:
        self.runs += 1
        self._fn()

    def flush(self) -> None:
        """Cancel a pending trailing run and draw now (used at the end of a watch)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = time.monotonic()
        self._run()


class LiveOutput:
    """The display handles of a live view: shown with a widget, ended as static HTML + text.

    A live widget alone leaves nothing readable in a saved notebook, GitHub or nbviewer (tqdm, azureml);
    replacing the output through its display id with a plain ``text/html`` + ``text/plain`` bundle does.
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self._final: dict[str, str] | None = None

    def show(self, bundle: dict[str, Any]) -> None:
        """Display ``bundle`` (a mime bundle) and remember its handle."""
        from IPython.display import display

        bundle = self._final or bundle  # shown again after the end: show the end
        handle = display(bundle, raw=True, display_id=True)
        if handle is not None:
            self._handles.append(handle)

    def finish(self, html: str, text: str) -> None:
        """Replace every displayed copy with the static snapshot. Safe to call again (e.g. from the main
        thread after a blocking wait, so headless runners record the update with the right cell)."""
        self._final = {"text/html": html, "text/plain": text}
        for handle in self._handles:
            try:
                handle.update(self._final, raw=True)
            except Exception:  # noqa: BLE001 - a closed frontend must not break the monitor
                pass

    @property
    def finished(self) -> bool:
        """True once :meth:`finish` ran."""
        return self._final is not None
