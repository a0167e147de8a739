"""``ExportStatusWidget``: the live view of one export task, built from stock ipywidgets parts (no custom JS).

The card is one HTML widget drawn by :mod:`export_widgets.render` (the same HTML the final snapshot shows),
next to small icon buttons; the details (summary, progress chart, filters, history) sit behind a disclosure
that is closed by default and drawn only while open. Updates arrive on the polling thread, are throttled,
diffed against what was last sent (nothing changed, nothing sent) and sent as one message per changed model.
A low-rate clock keeps relative times (elapsed, ETA) true between polls while the watch runs, and the text/plain
twin of the output is refreshed now and then, so a notebook saved mid-run reopens with the latest state.
When the watch ends, the output is replaced by the static HTML + text snapshot.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from . import render
from ._live import LiveOutput, Throttle, close_tree, ticker
from .display import describe
from .monitor import ExportMonitor, change_key
from .redact import redact_text

__all__ = ["ExportStatusWidget", "filters_table_html", "history_table_html", "icon_button"]

#: Seconds between clock refreshes of a running view (elapsed and ETA stay true between polls).
CLOCK_INTERVAL = 5.0
#: Seconds between refreshes of the text/plain twin of a live output.
TEXT_INTERVAL = 10.0


def filters_table_html(task: Any) -> str:
    """The export's params and search conditions as HTML tables (escaped by pandas)."""
    if task is None or task.export_params is None:
        return '<div class="ew-filters">No export filters (not a ModelArts export, or the export has no ' \
               'search conditions).</div>'
    from . import frames

    table = frames.filters(task).dropna(axis=1, how="all")
    conditions = _html_table(table, "ew-filters-table") if len(table) else \
        "<div>No search conditions: the whole selection is exported.</div>"
    params = _html_table(frames.params(task), "ew-params-table")
    return f'<div class="ew-filters">{params}{conditions}</div>'


def _html_table(frame: Any, css_class: str) -> str:
    """A DataFrame as an escaped HTML table with blank cells for missing values (not ``<NA>``)."""
    shown = frame.astype(object).where(frame.notna(), "")
    return str(shown.to_html(index=False, classes=css_class, border=0, escape=True))


def history_table_html(monitor: ExportMonitor, rows: int = 12) -> str:
    """The most recent polls, newest first (see :func:`export_widgets.render.history_html`)."""
    return render.history_html(monitor, rows)


def icon_button(icon: str, tooltip: str) -> widgets.Button:
    """A small square icon button (stock ipywidgets; its colours follow the theme)."""
    button = widgets.Button(icon=icon, tooltip=tooltip, layout=widgets.Layout(width="30px", height="26px",
                                                                              padding="0", margin="0 0 0 4px"))
    button.add_class("ew-icon-button")
    return button


class ExportStatusWidget(widgets.VBox):
    """Live status of one export task.

    Parameters
    ----------
    monitor : ExportMonitor
        The monitor to follow (it keeps polling whether or not the widget is shown).
    min_redraw_interval : float
        Seconds between redraws at most (updates in between are coalesced).
    clock_interval : float
        Seconds between clock refreshes while the watch runs (0 turns the clock off).
    """

    def __init__(self, monitor: ExportMonitor, *, min_redraw_interval: float = 0.25,
                 clock_interval: float = CLOCK_INTERVAL, **kwargs: Any) -> None:
        self.monitor = monitor
        self._lock = threading.RLock()
        self._sent: dict[str, str] = {}
        self._output = LiveOutput()
        self.card = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="0", margin="0"))
        self.card.add_class("ew-card-widget")
        self.details_button = icon_button("chevron-down", "Details: summary, progress chart, filters, history")
        self.stop_button = icon_button("stop", "Stop watching (the export itself goes on)")
        self.refresh_button = icon_button("refresh", "Poll now")
        self.export_button = icon_button("download", "Save every poll of this task as CSV")
        # Holds the stylesheet even while closed (display:none still applies a <style>), and the details when open.
        self.details = widgets.HTML(render.style_tag(), layout=widgets.Layout(margin="0", display="none"))
        self.details.add_class("ew-details")
        self.details_open = False
        self.message = widgets.HTML(layout=widgets.Layout(display="none", margin="0"))
        self.details_button.on_click(lambda _: self.toggle_details())
        self.stop_button.on_click(lambda _: self.monitor.stop())
        self.refresh_button.on_click(lambda _: self.monitor.refresh())
        self.export_button.on_click(lambda _: self.export_csv())
        self.buttons = widgets.HBox([self.details_button, self.stop_button, self.refresh_button,
                                     self.export_button], layout=widgets.Layout(flex="0 0 auto", margin="0"))
        self.top = widgets.HBox([self.card, self.buttons], layout=widgets.Layout(align_items="flex-start"))
        super().__init__([self.top, self.details, self.message], **kwargs)
        self.add_class("ew-widget")
        self.add_class(f"ew-provider-{monitor.provider}")
        self._throttle = Throttle(self._redraw, min_redraw_interval)
        self._detached = False  # the watch moved to a newer view: this one stays as it was left
        self._last_key: tuple[Any, ...] | None = None
        self._clock = ticker(clock_interval) if clock_interval > 0 else None
        self._redraw()
        if self._clock is not None and not monitor.done:
            self._clock.add(self._tick)
        monitor.on_update(self._on_update)

    # -- view model -------------------------------------------------------------------------------------

    def view_state(self) -> dict[str, str]:
        """What the widget should show now, as the HTML of each part (pure; tests compare it with the widget)."""
        view = render.task_view(self.monitor)
        state = {"card": f'<div class="ew-card ew-live" data-display-state="{view.state.value}">'
                         f'{render.card_html(view)}</div>'}
        if self.details_open:
            task = self.monitor.latest
            filters = filters_table_html(task) if task is not None and task.export_params is not None else ""
            state["details"] = render.style_tag() + f'<div class="ew-card">' \
                                                    f'{render.panel_html(self.monitor, filters_html=filters)}</div>'
        else:
            state["details"] = render.style_tag()
        return state

    def _update_key(self) -> tuple[Any, ...]:
        """Everything a redraw depends on except the clock: equal keys mean an unchanged poll."""
        m = self.monitor
        shown = describe(m)
        return (change_key(m.latest), m.status, shown.state, shown.reason, shown.next_try_at)

    def _on_update(self, _monitor: ExportMonitor) -> None:
        key = self._update_key()
        if key == self._last_key and not self.monitor.done:
            return  # unchanged poll: send nothing
        self._last_key = key
        self._throttle()

    def _tick(self) -> None:
        """The low-rate clock: redraw relative times; refresh the text twin now and then."""
        if self.monitor.done or self._detached:
            if self._clock is not None:
                self._clock.remove(self._tick)
            return
        self._redraw()
        shown = describe(self.monitor)
        key = (shown.state, None if shown.progress is None else int(shown.progress))
        self._output.update_text(self.text_twin(), key, TEXT_INTERVAL)

    def text_twin(self) -> str:
        """The text/plain of the live output: the text line, and when it was true."""
        return f"{repr(self)}\n(live view not connected; this was the state at " \
               f"{datetime.fromtimestamp(self.monitor._clock()).strftime('%H:%M:%S')})"

    def _redraw(self) -> None:
        with self._lock:
            if self._detached:
                return
            state = self.view_state()
            for key, value in state.items():
                if self._sent.get(key) != value:
                    getattr(self, key).value = value  # one message per changed model
                    self._sent[key] = value
            if self.monitor.done and not self._output.finished:
                self._finish()

    def toggle_details(self, open_: bool | None = None) -> None:
        """Open or close the details (drawn only while open)."""
        with self._lock:
            self.details_open = (not self.details_open) if open_ is None else open_
            self.details_button.icon = "chevron-up" if self.details_open else "chevron-down"
            self.details.layout.display = "" if self.details_open else "none"
        self._redraw()

    # -- the end of a watch ----------------------------------------------------------------------------

    def snapshot(self) -> tuple[str, str]:
        """(html, text) of the current state as a static card (details closed)."""
        task = self.monitor.latest
        filters = filters_table_html(task) if task is not None and task.search_conditions else ""
        return render.snapshot_html(self.monitor, filters_html=filters), render.snapshot_text(self.monitor)

    def _finish(self, note: str | None = None) -> None:
        if self._clock is not None:
            self._clock.remove(self._tick)
        html, text = self.snapshot()
        if note:
            html += f'<div class="ew-card ew-note">{render.esc(note)}</div>'
            text += f"\n{note}"
        previous: tuple[Any, ...] = tuple(getattr(self, "children", ()))  # a traitlet of the untyped VBox
        self.children = [widgets.HTML(html)]  # live frontends: the widget itself turns static
        close_tree(previous)  # the live parts' models (buttons, bars, layouts) would otherwise outlive the view
        self._output.finish(html, text)  # saved notebooks, nbviewer, GitHub: the output is replaced

    def finalize(self, note: str | None = None) -> None:
        """Draw the final state now and publish the snapshot again (call from the thread that waited).

        With ``note`` (the watch moved to a newer view) the card turns static now, with the note under it,
        whatever the monitor does next."""
        self._throttle.flush()
        with self._lock:
            if note is not None:
                self._finish(note)
                self._detached = True
            elif self.monitor.done:
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
            self._say(f'<span class="ew-error">could not save: {render.esc(exc)}</span>')
            raise
        self._say(f"saved <code>{render.esc(target)}</code>")
        return target

    def _say(self, markup: str) -> None:
        with self.message.hold_sync():
            self.message.value = f'<span class="ew-card">{markup}</span>'
            self.message.layout.display = ""

    # -- display ----------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        return bundle

    def _ipython_display_(self) -> None:
        self._output.show(self._repr_mimebundle_())

    def __repr__(self) -> str:
        return redact_text(render.monitor_line(self.monitor))
