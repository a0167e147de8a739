"""``ExportStatusWidget``: the live view of one export task, built from stock ipywidgets parts (no custom JS).

It subscribes to an :class:`~export_widgets.monitor.ExportMonitor`; updates arrive on the polling thread,
are throttled, diffed against what was last sent (nothing changed, nothing sent) and applied in one
``hold_sync`` batch. When the watch ends, the live output is replaced by a static HTML + text snapshot.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from . import render
from ._live import LiveOutput, Throttle
from .monitor import ExportMonitor, change_key
from .redact import redact_text

__all__ = ["ExportStatusWidget", "history_table_html", "filters_table_html"]

HISTORY_ROWS = 15


def filters_table_html(task: Any) -> str:
    """The Filters tab: params and search conditions as HTML tables (escaped by pandas)."""
    if task is None or task.export_params is None:
        return '<div class="ew-filters" style="color:#777">No export filters (not a ModelArts export, ' \
               'or the export has no search conditions).</div>'
    from . import frames

    table = frames.filters(task).dropna(axis=1, how="all")
    conditions = _html_table(table, "ew-filters-table") if len(table) else \
        '<div style="color:#777">No search conditions: the whole selection is exported.</div>'
    params = _html_table(frames.params(task), "ew-params-table")
    return f'<div class="ew-filters">{params}{conditions}</div>'


def _html_table(frame: Any, css_class: str) -> str:
    """A DataFrame as an escaped HTML table with blank cells for missing values (not ``<NA>``)."""
    shown = frame.astype(object).where(frame.notna(), "")
    return shown.to_html(index=False, classes=css_class, border=0, escape=True)


def history_table_html(monitor: ExportMonitor, rows: int = HISTORY_ROWS) -> str:
    """The History tab: the most recent polls, newest first."""
    history = monitor.history
    count = len(history)
    body = []
    for index in range(count - 1, max(-1, count - 1 - rows), -1):
        r = history.row(index)
        samples = "" if r.finished_samples is None else f"{r.finished_samples:,}"
        body.append(
            "<tr>" + "".join(f"<td>{render.esc(cell)}</td>" for cell in (
                datetime.fromtimestamp(r.polled_at).strftime("%H:%M:%S"), r.outcome,
                r.state.value if r.state else "", "" if r.progress is None else f"{r.progress:.1f}%", samples,
                "" if r.latency_s is None else f"{r.latency_s * 1000:.0f} ms",
                r.error_message or "")) + "</tr>")
    head = "".join(f"<th>{name}</th>" for name in ("time", "outcome", "state", "progress", "finished",
                                                   "latency", "error"))
    more = f'<div style="color:#777">{count} polls in all; monitor.history_frame() has every one.</div>'
    return f'<table class="ew-history-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>' \
           f'</table>{more}'


class ExportStatusWidget(widgets.VBox):
    """Live status of one export task.

    Parameters
    ----------
    monitor : ExportMonitor
        The monitor to follow (it keeps polling whether or not the widget is shown).
    min_redraw_interval : float
        Seconds between redraws at most (updates in between are coalesced).
    """

    def __init__(self, monitor: ExportMonitor, *, min_redraw_interval: float = 0.25, **kwargs: Any) -> None:
        self.monitor = monitor
        self._lock = threading.RLock()
        self._sent: dict[str, Any] = {}
        self._filters_key: Any = object()
        self._output = LiveOutput()
        self.header = widgets.HTML()
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=100.0, bar_style="info",
                                         layout=widgets.Layout(width="100%", max_width="560px"))
        self.stats = widgets.HTML()
        self.summary_html = widgets.HTML()
        self.filters_html = widgets.HTML()
        self.history_html = widgets.HTML()
        self.sparkline = widgets.HTML()
        self.tabs = widgets.Tab(children=[self.summary_html, self.filters_html, self.history_html,
                                          self.sparkline])
        for index, title in enumerate(("Summary", "Filters", "History", "Progress")):
            self.tabs.set_title(index, title)
        self.stop_button = widgets.Button(description="Stop", icon="stop", tooltip="Stop polling this task")
        self.refresh_button = widgets.Button(description="Refresh now", icon="refresh")
        self.export_button = widgets.Button(description="Export CSV", icon="download",
                                            tooltip="Save every poll of this task as CSV")
        self.message = widgets.HTML()
        self.stop_button.on_click(lambda _: self.monitor.stop())
        self.refresh_button.on_click(lambda _: self.monitor.refresh())
        self.export_button.on_click(lambda _: self.export_csv())
        self.buttons = widgets.HBox([self.stop_button, self.refresh_button, self.export_button, self.message])
        super().__init__([self.header, self.bar, self.stats, self.tabs, self.buttons], **kwargs)
        self.add_class("ew-widget")
        self.add_class(f"ew-provider-{monitor.provider}")
        self._throttle = Throttle(self._redraw, min_redraw_interval)
        self._last_key: tuple[Any, ...] | None = None
        self.tabs.observe(lambda _change: self._redraw(), names="selected_index")
        self._redraw()
        monitor.on_update(self._on_update)

    # -- view model -------------------------------------------------------------------------------------

    #: Which tab shows which view-state key; hidden tabs are drawn when selected, not on every poll.
    _TAB_KEYS = {0: "summary", 2: "history", 3: "sparkline"}

    def view_state(self, hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
        """What the widget should show now, as plain values (pure; tests compare it with the widget).

        Keys in ``hidden`` (tabs nobody is looking at) are not computed: the history table and sparkline
        walk the whole poll log.
        """
        monitor = self.monitor
        task = monitor.latest
        now = monitor._clock()
        figures = monitor.figures(now)
        style = render.bar_style(task, figures, failed=monitor.error is not None)
        error = monitor.last_poll_error
        stats = render.stats_text(task, figures, last_change=monitor.last_change_at, now=now, last_error=error)
        ended = "" if monitor.status in ("running", "finished") else f" ({monitor.status.replace('_', ' ')})"
        state = {
            "header": render.header_html(monitor.provider, monitor.task_id, task, style) + render.esc(ended),
            "value": float(task.progress) if task is not None and task.progress is not None else 0.0,
            "bar_style": style,
            "stats": f'<span class="ew-stats">{render.esc(" · ".join(stats))}</span>',
        }
        if "summary" not in hidden:
            state["summary"] = render.details_html(task) or \
                '<span style="color:#777">waiting for the first answer…</span>'
        if "history" not in hidden:
            state["history"] = history_table_html(monitor)
        if "sparkline" not in hidden:
            state["sparkline"] = render.sparkline_svg(*monitor.history.progress_points())
        return state

    def _update_key(self) -> tuple[Any, ...]:
        """Everything a redraw depends on except the clock: equal keys mean an unchanged poll."""
        m = self.monitor
        return (change_key(m.latest), m.status, m.last_poll_error, m.error is not None, m.figures().stalled)

    def _on_update(self, _monitor: ExportMonitor) -> None:
        key = self._update_key()
        if key == self._last_key:
            return  # unchanged poll: send nothing
        self._last_key = key
        self._throttle()

    def _redraw(self) -> None:
        with self._lock:
            hidden = frozenset(key for index, key in self._TAB_KEYS.items() if index != self.tabs.selected_index)
            state = self.view_state(hidden)
            changed = {key: value for key, value in state.items() if self._sent.get(key) != value}
            if changed:
                # hold_sync is per model: hold every model we touch so each sends one message.
                with ExitStack() as stack:
                    for key, value in changed.items():
                        widget, trait = self._target(key)
                        stack.enter_context(widget.hold_sync())
                        setattr(widget, trait, value)
                self._sent.update(changed)
            task = self.monitor.latest
            filters_key = task.export_params if task is not None else None
            if filters_key != self._filters_key:
                self._filters_key = filters_key
                self.filters_html.value = filters_table_html(task)
            if self.monitor.done and not self._output.finished:
                self._finish()

    def _target(self, key: str) -> tuple[widgets.Widget, str]:
        return {
            "header": (self.header, "value"), "value": (self.bar, "value"), "bar_style": (self.bar, "bar_style"),
            "stats": (self.stats, "value"), "summary": (self.summary_html, "value"),
            "history": (self.history_html, "value"), "sparkline": (self.sparkline, "value"),
        }[key]

    # -- the end of a watch ----------------------------------------------------------------------------

    def snapshot(self) -> tuple[str, str]:
        """(html, text) of the current state as a static card."""
        task = self.monitor.latest
        filters = filters_table_html(task) if task is not None and task.search_conditions else ""
        return render.snapshot_html(self.monitor, filters_html=filters), render.snapshot_text(self.monitor)

    def _finish(self) -> None:
        html, text = self.snapshot()
        self.children = [widgets.HTML(html)]  # live frontends: the widget itself turns static
        self._output.finish(html, text)  # saved notebooks, nbviewer, GitHub: the output is replaced

    def finalize(self) -> None:
        """Draw the final state now and publish the snapshot again (call from the thread that waited)."""
        self._throttle.flush()
        with self._lock:
            if self.monitor.done:
                html, text = self.snapshot()
                self._output.finish(html, text)

    # -- actions ----------------------------------------------------------------------------------------

    def export_csv(self, path: str | Path | None = None) -> Path:
        """Save this task's poll history as CSV (default: ``export_history_<task>.csv`` here)."""
        safe_id = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.monitor.task_id)
        target = Path(path) if path is not None else Path.cwd() / f"export_history_{safe_id}.csv"
        try:
            self.monitor.history_frame().to_csv(target, index=False)
        except OSError as exc:
            self.message.value = f'<span class="ew-error">could not save: {render.esc(exc)}</span>'
            raise
        self.message.value = f'saved <code>{render.esc(target)}</code>'
        return target

    # -- display ----------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        return bundle

    def _ipython_display_(self) -> None:
        self._output.show(self._repr_mimebundle_())

    def __repr__(self) -> str:
        m = self.monitor
        return redact_text(render.status_line(m.provider, m.task_id, m.latest, m.figures(), m.status,
                                              m.last_poll_error))
