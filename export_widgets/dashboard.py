"""``ExportDashboard``: many tasks (both providers) in one widget, driven by one shared poller.

Built to stay responsive at hundreds of tasks: updates from all monitors are coalesced into at most
``1 / min_redraw_interval`` redraws a second, only rows whose text changed are sent, and at most ``max_rows``
rows are drawn (the summary DataFrame has them all).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from . import render
from ._live import LiveOutput, Throttle
from .models import TaskState
from .monitor import ExportMonitor, MonitorGroup
from .providers import provider_label

__all__ = ["ExportDashboard", "SORT_KEYS"]

SORT_KEYS = ("attention first", "task id", "progress", "ETA")
_ATTENTION = {TaskState.FAILED: 0, TaskState.UNKNOWN: 1, TaskState.RUNNING: 2, TaskState.PENDING: 3,
              TaskState.STOPPED: 4, TaskState.SUCCEEDED: 5}


class _Row:
    """One task's line: label, bar, stats."""

    def __init__(self) -> None:
        self.label = widgets.HTML(layout=widgets.Layout(width="260px"))
        self.bar = widgets.FloatProgress(min=0.0, max=100.0, layout=widgets.Layout(width="220px"))
        self.stats = widgets.HTML()
        self.box = widgets.HBox([self.label, self.bar, self.stats])
        self.box.add_class("ew-dashboard-row")
        self.sent: dict[str, Any] = {}


def _row_state(monitor: ExportMonitor) -> dict[str, Any]:
    task = monitor.latest
    figures = monitor.figures()
    style = render.bar_style(task, figures, failed=monitor.error is not None)
    state = task.state.value if task is not None else ("ERROR" if monitor.error else "WAITING")
    stats = render.stats_text(task, figures, last_change=monitor.last_change_at, last_error=monitor.last_poll_error,
                              live=not monitor.done)
    return {
        "label": f'<span class="ew-row-label" data-task-id="{render.esc(monitor.task_id)}">'
                 f'{render.esc(provider_label(monitor.provider))} '
                 f'<code>{render.esc(monitor.task_id)}</code> <b class="ew-row-state">{render.esc(state)}</b></span>',
        "value": float(task.progress) if task is not None and task.progress is not None else 0.0,
        "bar_style": style,
        "stats": f'<span class="ew-row-stats">{render.esc(" · ".join(stats))}</span>',
    }


class ExportDashboard(widgets.VBox):
    """Live status of many export tasks.

    Parameters
    ----------
    group : MonitorGroup
        The monitors to show (any mix of providers).
    max_rows : int
        Rows drawn at most; the rest are counted and listed in :meth:`summary`.
    """

    def __init__(self, group: MonitorGroup, *, max_rows: int = 50, min_redraw_interval: float = 0.25,
                 **kwargs: Any) -> None:
        self.group = group
        self.max_rows = max_rows
        self._lock = threading.RLock()
        self._output = LiveOutput()
        self.totals = widgets.HTML()
        self.overall = widgets.FloatProgress(min=0.0, max=100.0, bar_style="info",
                                             layout=widgets.Layout(width="100%", max_width="560px"))
        self.sort = widgets.Dropdown(options=SORT_KEYS, value=SORT_KEYS[0], description="sort")
        self.sort.observe(lambda _change: self._redraw(), names="value")
        self.stop_button = widgets.Button(description="Stop all", icon="stop")
        self.refresh_button = widgets.Button(description="Refresh all", icon="refresh")
        self.export_button = widgets.Button(description="Export CSV", icon="download")
        self.message = widgets.HTML()
        self.stop_button.on_click(lambda _: self.group.stop())
        self.refresh_button.on_click(lambda _: [m.refresh() for m in self.group])
        self.export_button.on_click(lambda _: self.export_csv())
        self.more = widgets.HTML()
        # One row per monitor, made when the monitor is first drawn: re-sorting reorders whole rows in one
        # message instead of re-pointing rows at other tasks (which showed a task twice for a moment).
        self._rows: dict[int, _Row] = {}
        self.rows_box = widgets.VBox()
        controls = widgets.HBox([self.sort, self.stop_button, self.refresh_button, self.export_button,
                                 self.message])
        super().__init__([self.totals, self.overall, controls, self.rows_box, self.more], **kwargs)
        self.add_class("ew-dashboard")
        self._throttle = Throttle(self._redraw, min_redraw_interval)
        self._redraw()
        group.on_update(lambda _monitor: self._throttle())

    def _ordered(self) -> list[ExportMonitor]:
        key = self.sort.value
        monitors = list(self.group)
        if key == "task id":
            return sorted(monitors, key=lambda m: m.task_id)
        if key == "progress":
            return sorted(monitors, key=lambda m: -(m.latest.progress or 0.0) if m.latest else 1.0)
        if key == "ETA":
            eta = {id(m): m.figures().eta_s for m in monitors}
            return sorted(monitors, key=lambda m: (eta[id(m)] is None, eta[id(m)] or 0.0))
        return sorted(monitors, key=lambda m: (0 if m.error else 1,
                                               _ATTENTION.get(m.latest.state, 9) if m.latest else 3))

    def totals_text(self) -> str:
        """``12 tasks · 5 RUNNING · 6 SUCCEEDED · 1 FAILED`` (plus monitors ended by errors)."""
        counts = Counter(m.latest.state.value if m.latest else ("ERROR" if m.error else "WAITING")
                         for m in self.group)
        parts = [f"{len(self.group)} tasks"] + [f"{n} {state}" for state, n in sorted(counts.items())]
        return " · ".join(parts)

    def _redraw(self) -> None:
        with self._lock:
            monitors = self._ordered()
            progress = [m.latest.progress or 0.0 if m.latest else 0.0 for m in monitors]
            failed = any(m.error is not None or (m.latest and m.latest.state is TaskState.FAILED)
                         for m in monitors)
            with self.hold_sync():
                self.totals.value = f'<b class="ew-totals">{render.esc(self.totals_text())}</b>'
                self.overall.value = sum(progress) / len(progress) if progress else 0.0
                self.overall.bar_style = "danger" if failed else ("success" if self.group.done else "info")
                hidden = len(monitors) - self.max_rows
                self.more.value = f'<span style="color:#777">+{hidden} more tasks not drawn; ' \
                                  f'dashboard.summary() lists all</span>' if hidden > 0 else ""
            shown = monitors[:self.max_rows]
            for monitor in shown:
                row = self._rows.get(id(monitor))
                if row is None:
                    row = self._rows[id(monitor)] = _Row()
                state = _row_state(monitor)
                changed = {k: v for k, v in state.items() if row.sent.get(k) != v}
                if not changed:
                    continue
                with row.label.hold_sync(), row.bar.hold_sync(), row.stats.hold_sync():
                    for key, value in changed.items():
                        target = {"label": (row.label, "value"), "value": (row.bar, "value"),
                                  "bar_style": (row.bar, "bar_style"), "stats": (row.stats, "value")}[key]
                        setattr(target[0], target[1], value)
                row.sent.update(changed)
            order = tuple(self._rows[id(m)].box for m in shown)
            if order != self.rows_box.children:
                self.rows_box.children = order
            if self.group.done and not self._output.finished:
                self._finish()

    # -- summary, export, end ---------------------------------------------------------------------------

    def summary(self) -> Any:
        """Every task as a DataFrame (see :func:`export_widgets.frames.dashboard`), sortable as usual."""
        return self.group.summary()

    def export_csv(self, path: str | Path | None = None) -> Path:
        """Save every poll of every task as one CSV."""
        target = Path(path) if path is not None else Path.cwd() / "export_history_dashboard.csv"
        self.group.history_frame().to_csv(target, index=False)
        self.message.value = f"saved <code>{render.esc(target)}</code>"
        return target

    def snapshot(self) -> tuple[str, str]:
        """(html, text): totals plus one static bar per task (all tasks, not only the drawn rows)."""
        rows_html, rows_text = [], []
        for monitor in self._ordered():
            task = monitor.latest
            figures = monitor.figures()
            style = render.bar_style(task, figures, failed=monitor.error is not None)
            stats = " · ".join(render.stats_text(task, figures, last_error=monitor.last_poll_error, live=False))
            rows_html.append(
                '<tr class="ew-snapshot-row">'
                f'<td>{render.header_html(monitor.provider, monitor.task_id, task, style)}</td>'
                f'<td style="width:200px">{render.bar_html(task.progress if task else None, style)}</td>'
                f'<td>{render.esc(stats)}</td></tr>')
            rows_text.append(render.snapshot_text(monitor))
        html = (f'<div class="ew-snapshot ew-dashboard-snapshot"><b>{render.esc(self.totals_text())}</b>'
                f'<table>{"".join(rows_html)}</table></div>')
        return html, "\n".join([self.totals_text(), *rows_text])

    def _finish(self) -> None:
        html, text = self.snapshot()
        self.children = [widgets.HTML(html)]
        self._output.finish(html, text)

    def finalize(self) -> None:
        """Draw the final state now and publish the snapshot again (call from the thread that waited)."""
        self._throttle.flush()
        with self._lock:
            if self.group.done:
                self._output.finish(*self.snapshot())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.totals_text()
        return bundle

    def _ipython_display_(self) -> None:
        self._output.show(self._repr_mimebundle_())

    def __repr__(self) -> str:
        return f"<ExportDashboard {self.totals_text()}>"
