"""What live views share: redraw throttling and the display handles that end as a static snapshot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LiveOutput", "Throttle", "Ticker", "close_tree", "ticker"]


def close_tree(widgets: Any) -> int:
    """Close ``widgets`` and everything they hold (children, layouts, styles); returns how many models closed.

    A widget model lives in the kernel (and the front end) until it is closed, whatever Python references it: a
    view that turned static closes the parts it no longer shows, or a notebook of finished watches piles them up.
    """
    closed = 0
    todo = list(widgets)
    while todo:
        widget = todo.pop()
        if getattr(widget, "comm", None) is None and getattr(widget, "_model_id", None) is None:
            continue  # already closed (or never opened)
        todo += list(getattr(widget, "children", ()) or ())
        todo += [part for part in (getattr(widget, "layout", None), getattr(widget, "style", None)) if part is not None]
        widget.close()
        closed += 1
    return closed


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


class Ticker:
    """One daemon thread that calls every registered callback each ``period`` seconds (a low-rate clock).

    Live views register while their watch runs, so relative times (elapsed, ETA) stay true between polls;
    the thread ends when nothing is registered, so nothing ticks when nothing runs.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` every period from now on (until :meth:`remove`)."""
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="export-widgets-clock", daemon=True)
                self._thread.start()

    def remove(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (safe to call twice)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    @property
    def active(self) -> int:
        """How many callbacks are registered."""
        return len(self._callbacks)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.period)
            with self._lock:
                callbacks = list(self._callbacks)
                if not callbacks:
                    self._thread = None
                    return
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - one broken view must not stop the others' clocks
                    pass


_TICKERS: dict[float, Ticker] = {}
_TICKERS_LOCK = threading.Lock()


def ticker(period: float) -> Ticker:
    """The process-wide :class:`Ticker` of ``period`` seconds."""
    with _TICKERS_LOCK:
        if period not in _TICKERS:
            _TICKERS[period] = Ticker(period)
        return _TICKERS[period]


class LiveOutput:
    """The display handles of a live view: shown with a widget, ended as static HTML + text.

    A live widget alone leaves nothing readable in a saved notebook, GitHub or nbviewer (tqdm, azureml);
    replacing the output through its display id with a plain ``text/html`` + ``text/plain`` bundle does.
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self._final: dict[str, str] | None = None
        self._bundle: dict[str, Any] | None = None
        self._text_at = 0.0
        self._text_key: Any = None

    def show(self, bundle: dict[str, Any]) -> None:
        """Display ``bundle`` (a mime bundle) and remember its handle."""
        from IPython.display import display

        bundle = self._final or bundle  # shown again after the end: show the end
        self._bundle = bundle
        handle = display(bundle, raw=True, display_id=True)
        if handle is not None:
            self._handles.append(handle)

    def update_text(self, text: str, key: Any, min_interval: float) -> bool:
        """Refresh the text/plain twin of the live output (what a notebook saved mid-run reopens with),
        at most once per ``min_interval`` seconds and only when ``key`` (what the text says, without its
        clock) changed: the frontend redraws the widget view on each update. True when it was sent."""
        bundle = self._bundle
        if self._final is not None or bundle is None or not self._handles or key == self._text_key:
            return False
        now = time.monotonic()
        if now - self._text_at < min_interval:
            return False
        self._text_at, self._text_key = now, key
        self._bundle = {**bundle, "text/plain": text}
        for handle in self._handles:
            try:
                handle.update(self._bundle, raw=True)
            except Exception:  # noqa: BLE001 - a closed frontend must not break the monitor
                pass
        return True

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
