"""``ExportDashboard``: many tasks (both providers) as one grid, driven by one shared poller.

One line per task in fixed, aligned columns (state, provider, id, bar, %, done/total, rate, ETA, last change or
the reason), a header with the count of each display state and a sample-weighted overall bar. The grid is one
HTML widget drawn by :mod:`export_widgets.render` helpers (the final snapshot is the same grid, with the
succeeded rows folded), so a redraw is one message; redraws are coalesced to at most ``1 / min_redraw_interval``
a second, and at most ``max_rows`` rows are drawn (a summary line counts the rest; :meth:`summary` has them all).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from . import render
from ._live import LiveOutput, Throttle, close_tree, ticker
from .display import DisplayState
from .monitor import MonitorGroup
from .render import TaskView, esc
from .widget import CLOCK_INTERVAL, TEXT_INTERVAL, icon_button

__all__ = ["DASHBOARD_CSS", "ExportDashboard", "SORT_KEYS", "dashboard_html"]

_INF = float("inf")


def _eta(v: TaskView) -> float:
    return v.figures.eta_s if v.figures.eta_s is not None and v.state.is_live else _INF


#: Sort orders offered by the dashboard: name -> key of a TaskView (ascending).
SORT_KEYS: dict[str, Callable[[TaskView], Any]] = {
    "attention first": lambda v: (v.state.rank, _eta(v), v.task_id),
    "state": lambda v: (v.state.label, v.task_id),
    "provider": lambda v: (v.provider, v.task_id),
    "task id": lambda v: v.task_id,
    "progress": lambda v: (-(v.progress if v.progress is not None else -1.0), v.task_id),
    "done / total": lambda v: (-(v.task.finished_samples or 0) if v.task else 0, v.task_id),
    "rate": lambda v: (-(v.figures.rate_samples_per_s or 0.0), v.task_id),
    "ETA": lambda v: (_eta(v), v.task_id),
    "last change": lambda v: (v.last_change, v.task_id),
}

_COLUMNS = ("state", "provider", "task", "progress", "", "done / total", "rate", "ETA", "last change / reason")
_CLASSES = ("state", "prov", "id", "bar", "pct", "done", "rate", "eta", "note")

#: The grid: fixed column widths (every row uses the same template, so columns align), columns dropped as the
#: output narrows (container queries), and a scrolling inner box as the last resort: nothing is clipped.
DASHBOARD_CSS = """
.ew-dash{container-type:inline-size;max-width:1400px}
.ew-dash .ew-scroll{overflow-x:auto}
.ew-dash .ew-head{display:flex;flex-wrap:wrap;align-items:center;gap:4px 8px;min-height:24px}
.ew-dash .ew-total{font-weight:600}
.ew-dash .ew-overall{display:flex;flex-wrap:wrap;align-items:center;gap:2px 10px;min-height:22px}
.ew-dash .ew-overall .ew-track{flex:0 1 360px;min-width:120px;height:10px}
.ew-row{display:grid;align-items:center;column-gap:10px;min-height:24px;max-height:38px;min-width:0;
 grid-template-columns:124px 72px minmax(100px,180px) minmax(80px,1fr) 56px 112px 84px 56px minmax(120px,1.6fr)}
.ew-row>span{min-width:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.ew-row>span.ew-c-note{white-space:normal;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;
 line-height:15px;font-size:12px;overflow-wrap:anywhere}
.ew-row .ew-track{display:block;height:8px}
.ew-row.ew-colhead{font-size:11px;font-weight:600;height:20px;color:var(--jp-ui-font-color0,#000)}
.ew-c-pct,.ew-c-done,.ew-c-rate,.ew-c-eta{text-align:right;font-variant-numeric:tabular-nums}
.ew-c-pct{font-weight:600;color:var(--jp-ui-font-color0,#000)}
.ew-rows>.ew-row:nth-child(odd){background:color-mix(in srgb,var(--jp-ui-font-color1,#1f1f1f) 4%,transparent)}
.ew-dash details>summary{cursor:pointer;height:22px;line-height:22px;width:max-content}
.ew-more{min-height:22px}
@container (max-width:890px){
 .ew-row{grid-template-columns:124px minmax(100px,180px) minmax(80px,1fr) 56px 112px 56px minmax(110px,1.4fr)}
 .ew-row>.ew-c-prov,.ew-row>.ew-c-rate{display:none}}
@container (max-width:700px){
 .ew-row{grid-template-columns:124px minmax(90px,170px) minmax(70px,1fr) 56px minmax(90px,1fr)}
 .ew-row>.ew-c-done,.ew-row>.ew-c-eta{display:none}}
@container (max-width:480px){
 .ew-row{grid-template-columns:124px minmax(80px,1fr) 56px 56px}
 .ew-row>span.ew-c-note{display:none}}
"""


def _row(view: TaskView) -> str:
    task = view.task
    if task is not None and task.finished_samples is not None and task.total_samples is not None:
        done = f"{task.finished_samples:,} / {task.total_samples:,}"
    elif task is not None and task.total_samples is not None:
        done = f"of {task.total_samples:,}"
    else:
        done = ""
    rate = f"{view.figures.rate_samples_per_s:,.1f}/s" if view.rate and view.figures.rate_samples_per_s else ""
    eta = render.format_duration(view.figures.eta_s) if view.eta else ""
    note = view.why or view.last_change
    cells = (
        render.badge_html(view.state),
        esc(view.provider),
        f'<code class="ew-id ew-task-id">{esc(view.task_id)}</code>',
        render.bar_html(view.progress, view.state),
        esc(view.percent), esc(done), esc(rate), esc(eta), esc(note),
    )
    titles = ("", "", view.task_id, "", "", "", "", "", note)
    spans = "".join(f'<span class="ew-c-{cls}"{f" title={chr(34)}{esc(t)}{chr(34)}" if t else ""}>{cell}</span>'
                    for cls, cell, t in zip(_CLASSES, cells, titles, strict=True))
    return (f'<div class="ew-row ew-dashboard-row" data-task-id="{esc(view.task_id)}" '
            f'data-display-state="{view.state.value}">{spans}</div>')


def _counts(views: Sequence[TaskView]) -> str:
    counts = Counter(v.state for v in views)
    return " ".join(f'<span class="ew-badge ew-count ew-state-{s.value}" style="--ew-c:{s.colour}" '
                    f'data-display-state="{s.value}">{counts[s]} {esc(s.label)}</span>'
                    for s in sorted(counts, key=lambda s: s.rank))


def totals_text(views: Sequence[TaskView]) -> str:
    """``36 tasks · 1 FAILED · 2 RETRYING · 33 RUNNING`` (in attention order)."""
    counts = Counter(v.state for v in views)
    ranked = sorted(counts, key=lambda s: s.rank)
    return " · ".join([f"{len(views)} tasks"] + [f"{counts[s]} {s.label}" for s in ranked])


def overall(views: Sequence[TaskView]) -> tuple[float | None, str]:
    """(percent, text) of all tasks together: sample-weighted where counts are known, ETA of the last to end."""
    weighted, weights, samples = 0.0, 0.0, 0
    known = [v.task.total_samples for v in views if v.task is not None and v.task.total_samples]
    mean_total = sum(known) / len(known) if known else 1.0  # tasks without counts weigh as an average one
    for v in views:
        total = v.task.total_samples if v.task is not None and v.task.total_samples else None
        weight = float(total) if total else mean_total
        weighted += (v.progress or 0.0) * weight
        weights += weight
        samples += total or 0
    percent = weighted / weights if weights else None
    parts = [f"{percent:.1f}%" if percent is not None else "–"]
    if samples:
        parts.append(f"of {samples:,} samples")
    etas = [v.figures.eta_s for v in views if v.state.is_live and v.figures.eta_s is not None]
    if etas:
        parts.append(f"ETA {render.format_duration(max(etas))}")
    return percent, " · ".join(parts)


def dashboard_html(views: Sequence[TaskView], *, max_rows: int = 50, final: bool = False) -> str:
    """The grid: header (counts, overall bar), column names, rows; ``final`` folds the succeeded rows."""
    percent, overall_text = overall(views)
    all_done = all(v.state is DisplayState.SUCCEEDED for v in views) and bool(views)
    state = DisplayState.SUCCEEDED if all_done else DisplayState.RUNNING
    head = (f'<div class="ew-head"><span class="ew-total ew-totals">{len(views)} tasks</span>{_counts(views)}</div>'
            f'<div class="ew-overall">{render.bar_html(percent, state)}'
            f'<span class="ew-overall-text">{esc(overall_text)}</span></div>')
    colhead = '<div class="ew-row ew-colhead">' + "".join(
        f'<span class="ew-c-{cls}">{esc(name)}</span>' for cls, name in zip(_CLASSES, _COLUMNS, strict=True)) + "</div>"
    folded = [v for v in views if final and v.state is DisplayState.SUCCEEDED]
    shown = [v for v in views if v not in folded] if folded else list(views)
    drawn, rest = shown[:max_rows], shown[max_rows:]
    rows = "".join(_row(v) for v in drawn)
    more = ""
    if rest:
        more = (f'<div class="ew-more">+{len(rest)} more tasks not drawn: {esc(totals_text(rest))} '
                '(dashboard.summary() lists all)</div>')
    fold = ""
    if folded:
        fold_rows = "".join(_row(v) for v in folded[:max_rows])
        fold_more = f'<div class="ew-more">+{len(folded) - max_rows} more</div>' if len(folded) > max_rows else ""
        fold = (f'<details class="ew-fold"><summary>{len(folded)} {DisplayState.SUCCEEDED.label} tasks</summary>'
                f'<div class="ew-rows">{fold_rows}</div>{fold_more}</details>')
    return (f'<div class="ew-card ew-dash">{head}<div class="ew-scroll">{colhead}'
            f'<div class="ew-rows">{rows}</div>{more}{fold}</div></div>')


def _style() -> str:
    return f"<style>{render.CSS}{DASHBOARD_CSS}</style>"


class ExportDashboard(widgets.VBox):
    """Live status of many export tasks.

    Parameters
    ----------
    group : MonitorGroup
        The monitors to show (any mix of providers).
    max_rows : int
        Rows drawn at most; the rest are counted in a summary line and listed in :meth:`summary`.
    """

    def __init__(self, group: MonitorGroup, *, max_rows: int = 50, min_redraw_interval: float = 0.25,
                 clock_interval: float = CLOCK_INTERVAL, **kwargs: Any) -> None:
        self.group = group
        self.max_rows = max_rows
        self._lock = threading.RLock()
        self._output = LiveOutput()
        self._sent = ""
        self.style = widgets.HTML(_style(), layout=widgets.Layout(display="none"))
        self.board = widgets.HTML(layout=widgets.Layout(margin="0"))
        self.sort = widgets.Dropdown(options=tuple(SORT_KEYS), value="attention first", description="sort by",
                                     layout=widgets.Layout(width="220px", height="26px"),
                                     style={"description_width": "52px"})
        self.sort.observe(lambda _change: self._redraw(), names="value")
        self.stop_button = icon_button("stop", "Stop watching every task (the exports go on)")
        self.refresh_button = icon_button("refresh", "Poll every task now")
        self.export_button = icon_button("download", "Save every poll of every task as one CSV")
        self.message = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px"))
        self.stop_button.on_click(lambda _: self.group.stop())
        self.refresh_button.on_click(lambda _: [m.refresh() for m in self.group])
        self.export_button.on_click(lambda _: self.export_csv())
        self.controls = widgets.HBox([self.sort, self.stop_button, self.refresh_button, self.export_button,
                                      self.message], layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        super().__init__([self.style, self.controls, self.board], **kwargs)
        self.add_class("ew-dashboard")
        self._throttle = Throttle(self._redraw, min_redraw_interval)
        self._detached = False  # the watch moved to a newer view: this one stays as it was left
        self._clock = ticker(clock_interval) if clock_interval > 0 else None
        self._redraw()
        if self._clock is not None and not group.done:
            self._clock.add(self._tick)
        group.on_update(lambda _monitor: self._throttle())

    def _tick(self) -> None:
        """The low-rate clock: redraw relative times; refresh the text twin now and then."""
        if self.group.done or self._detached:
            if self._clock is not None:
                self._clock.remove(self._tick)
            return
        self._throttle()
        views = self.views()
        percent, _ = overall(views)
        key = (totals_text(views), None if percent is None else int(percent))
        text = "\n".join([totals_text(views), *(render.view_line(v) for v in views[:self.max_rows])])
        self._output.update_text(f"{text}\n(live view not connected; this was the state at "
                                 f"{datetime.now().strftime('%H:%M:%S')})", key, TEXT_INTERVAL)

    def views(self) -> list[TaskView]:
        """Every task's view, in the chosen order."""
        views = [render.task_view(m) for m in self.group]
        return sorted(views, key=SORT_KEYS[self.sort.value])

    def totals_text(self) -> str:
        """``12 tasks · 1 FAILED · 5 RUNNING · 6 SUCCEEDED`` (display states, in attention order)."""
        return totals_text(self.views())

    def _redraw(self) -> None:
        with self._lock:
            if self._detached:
                return
            board = dashboard_html(self.views(), max_rows=self.max_rows)
            if board != self._sent:  # unchanged: nothing sent
                self.board.value = board
                self._sent = board
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
        self.message.value = f'<span class="ew-card">saved <code>{esc(target)}</code></span>'
        return target

    def snapshot(self) -> tuple[str, str]:
        """(html, text): the same grid with every task (succeeded rows folded), and its text twin."""
        views = sorted((render.task_view(m) for m in self.group), key=SORT_KEYS["attention first"])
        html = (f'{_style()}<div class="ew-snapshot ew-dashboard-snapshot">'
                f'{dashboard_html(views, max_rows=max(self.max_rows, 500), final=True)}</div>')
        return html, "\n".join([totals_text(views), *(render.view_line(v) for v in views)])

    def _finish(self, note: str | None = None) -> None:
        if self._clock is not None:
            self._clock.remove(self._tick)
        html, text = self.snapshot()
        if note:
            html += f'<div class="ew-card ew-note">{render.esc(note)}</div>'
            text += f"\n{note}"
        previous: tuple[Any, ...] = tuple(getattr(self, "children", ()))  # a traitlet of the untyped VBox
        self.children = [widgets.HTML(html)]
        close_tree(previous)  # the live parts' models (buttons, menus, layouts) would otherwise outlive the view
        self._output.finish(html, text)

    def finalize(self, note: str | None = None) -> None:
        """Draw the final state now and publish the snapshot again (call from the thread that waited).

        With ``note`` (the watch moved to a newer view) the grid turns static now, with the note under it."""
        self._throttle.flush()
        with self._lock:
            if note is not None:
                self._finish(note)
                self._detached = True
            elif self.group.done:
                self._output.finish(*self.snapshot())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.totals_text()
        return bundle

    def _ipython_display_(self) -> None:
        self._output.show(self._repr_mimebundle_())

    def __repr__(self) -> str:
        return f"<ExportDashboard {self.totals_text()}>"
