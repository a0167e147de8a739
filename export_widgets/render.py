"""One renderer for every view: a monitor as a compact HTML card, a grid row, a text line, and their details.

The live widget, the dashboard, the final snapshots and the text views all draw from :func:`task_view`, so
what a reopened notebook, nbviewer or GitHub shows is the card the live view showed last. Colours come from
JupyterLab's theme variables with fallbacks for white pages; text always keeps the theme's font colour
(state colours only tint bars, borders and badge backgrounds), so it reads in light and dark themes alike.

Everything user-controlled (task ids, paths, error messages) is HTML-escaped here, once, and every URL goes
through :func:`~export_widgets.redact.redact_url`; widgets, snapshots and the CLI only call these.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .display import Display, DisplayState, describe
from .figures import Figures
from .models import ExportTask, TaskState
from .providers import provider_label
from .redact import redact_text, redact_url

if TYPE_CHECKING:
    from .monitor import ExportMonitor

__all__ = [
    "CSS",
    "TaskView",
    "badge_html",
    "bar_html",
    "card_html",
    "chart_svg",
    "details_html",
    "esc",
    "format_duration",
    "monitor_line",
    "panel_html",
    "progress_text",
    "snapshot_html",
    "snapshot_text",
    "status_line",
    "style_tag",
    "task_table",
    "task_view",
    "text_table",
]

_TEXT_BAR_WIDTH = 20
_FONT = "var(--jp-ui-font-color1, #1f1f1f)"
_STRONG = "var(--jp-ui-font-color0, #000)"
_TRACK = f"color-mix(in srgb, {_FONT} 16%, transparent)"

#: The one stylesheet (class-scoped). Sent once per live view and once per snapshot, never per poll.
CSS = f"""
.ew-card{{font-family:var(--jp-ui-font-family,system-ui,-apple-system,'Segoe UI',sans-serif);font-size:13px;
 line-height:20px;color:{_FONT};max-width:1100px}}
.ew-line{{display:flex;flex-wrap:wrap;align-items:center;column-gap:10px;row-gap:2px;min-height:22px}}
.ew-badge{{display:inline-block;box-sizing:border-box;font-size:11px;font-weight:600;line-height:16px;
 padding:0 7px;border-radius:9px;white-space:nowrap;color:{_STRONG};border:1px solid var(--ew-c);
 background:transparent;background:color-mix(in srgb,var(--ew-c) 20%,transparent)}}
.ew-who{{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:100%}}
.ew-id{{font-family:var(--jp-code-font-family,SFMono-Regular,Menlo,Consolas,monospace);font-size:12px;color:{_STRONG}}}
.ew-meter{{display:inline-flex;align-items:center;gap:8px;flex:1 1 180px;min-width:140px;max-width:360px}}
.ew-track{{flex:1 1 auto;height:8px;border-radius:4px;background:{_TRACK};overflow:hidden;min-width:60px}}
.ew-fill{{height:100%;border-radius:4px;background:var(--ew-c)}}
.ew-pct{{font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap;color:{_STRONG};min-width:3.6em;
 text-align:right}}
.ew-stats{{white-space:normal;font-variant-numeric:tabular-nums}}
.ew-sep{{padding:0 2px}}
.ew-why{{font-size:12px;color:{_FONT}}}
.ew-card details{{margin-top:2px}}
.ew-card summary{{cursor:pointer;font-size:12px;width:max-content}}
.ew-panel{{display:flex;flex-wrap:wrap;gap:8px 24px;padding:4px 0 2px 0;font-size:12px;color:{_FONT}}}
.ew-panel h4{{margin:2px 0 4px 0;font-size:12px;font-weight:600;color:{_STRONG}}}
.ew-panel dl{{display:grid;grid-template-columns:max-content auto;gap:1px 10px;margin:0}}
.ew-panel dt{{font-weight:600;white-space:nowrap}} .ew-panel dd{{margin:0;overflow-wrap:anywhere}}
.ew-scroll{{max-width:100%;overflow-x:auto}}
.ew-panel>div{{min-width:0;max-width:100%}}
.ew-details>.widget-html-content,.ew-card-widget>.widget-html-content{{min-width:0;max-width:100%}}
.ew-panel table{{border-collapse:collapse;font-size:12px;color:{_FONT};background:transparent}}
.ew-card .ew-panel th,.ew-card .ew-panel td{{padding:2px 10px 2px 0;text-align:left;vertical-align:top;border:none;
 border-bottom:1px solid {_TRACK};background:transparent;color:{_FONT};white-space:nowrap}}
.ew-card .ew-panel th{{font-weight:600;color:{_STRONG}}}
.ew-chart{{color:{_FONT}}}
.ew-grid{{display:grid;align-items:center;column-gap:10px}}
"""


def style_tag() -> str:
    """The stylesheet as a ``<style>`` element."""
    return f"<style>{CSS}</style>"


def esc(value: object) -> str:
    """HTML-escape any value (None as an empty string), after masking secrets in it."""
    return "" if value is None else html.escape(redact_text(str(value)), quote=True)


def format_duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12s``; ``–`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _clock(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S") if epoch is not None else "–"


def progress_text(task: ExportTask | None) -> str:
    """``420 / 1,000 samples``; ``of 52,250 samples`` when only the total is known (Qianfan); else empty."""
    if task is None:
        return ""
    if task.finished_samples is not None and task.total_samples is not None:
        return f"{task.finished_samples:,} / {task.total_samples:,} samples"
    if task.total_samples is not None:
        return f"of {task.total_samples:,} samples"
    return ""


# -- the shared view model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskView:
    """Everything a view shows for one task, as plain (unescaped) text: the one source of every view."""

    provider: str
    task_id: str
    display: Display
    figures: Figures
    task: ExportTask | None
    percent: str
    counts: str
    rate: str
    eta: str
    time: str
    why: str
    last_change: str

    @property
    def state(self) -> DisplayState:
        """The display state."""
        return self.display.state

    @property
    def progress(self) -> float | None:
        """The bar's value in percent (the last known progress on failure)."""
        return self.display.progress

    def stats(self) -> list[str]:
        """Counts, rate, ETA and time, in display order, empty ones left out."""
        return [part for part in (self.counts, self.rate, self.eta, self.time) if part]


def task_view(monitor: ExportMonitor, now: float | None = None) -> TaskView:
    """The :class:`TaskView` of ``monitor`` at ``now`` (its own clock by default)."""
    now = monitor._clock() if now is None else now
    figures = monitor.figures(now)
    shown = describe(monitor, figures)
    task = monitor.latest
    state = shown.state
    live = state.is_live
    progress = shown.progress
    rate = ""
    if live and figures.rate_samples_per_s is not None:
        rate = f"{figures.rate_samples_per_s:,.1f} samples/s"
    elif live and figures.rate_pct_per_s is not None:
        rate = f"{figures.rate_pct_per_s * 60:.1f}%/min"
    eta = ""
    if live and state is not DisplayState.STALLED and figures.eta_s is not None:
        eta = f"ETA {format_duration(figures.eta_s)} (~{_clock(now + figures.eta_s)[:5]})"
    if figures.elapsed_s is None:
        time_text = f"watching since {_clock(monitor.started_at)}" if live else ""
    elif task is not None and task.is_terminal:
        time_text = f"took {format_duration(figures.elapsed_s)}"
    else:
        time_text = f"elapsed {format_duration(figures.elapsed_s)}"
    why = shown.detail()
    if state is DisplayState.STALLED and monitor.last_change_at is not None:
        why = f"no progress since {_clock(monitor.last_change_at)}"
    if task is not None and task.state is TaskState.UNKNOWN and task.raw_status and not why:
        why = f"server status {task.raw_status}"
    return TaskView(
        provider=provider_label(monitor.provider), task_id=monitor.task_id, display=shown,
        figures=figures, task=task, percent=f"{progress:.1f}%" if progress is not None else "–",
        counts=progress_text(task), rate=rate, eta=eta, time=time_text, why=redact_text(why),
        last_change=f"changed {_clock(monitor.last_change_at)}" if monitor.last_change_at is not None else "")


# -- HTML pieces ----------------------------------------------------------------------------------------------

def badge_html(state: DisplayState, label: str | None = None) -> str:
    """The coloured state badge (text in the theme's font colour; the colour is the border and tint).

    ``label`` replaces the state's own text (a download says DOWNLOADING in the RUNNING colour)."""
    return (f'<span class="ew-badge ew-state ew-state-{state.value}" style="--ew-c:{state.colour}" '
            f'data-display-state="{state.value}">{esc(state.label if label is None else label)}</span>')


def bar_html(progress: float | None, state: DisplayState) -> str:
    """A progress bar in the state's colour (plain HTML: the same in live views and snapshots)."""
    width = 0.0 if progress is None else max(0.0, min(100.0, progress))
    return (f'<span class="ew-track" style="--ew-c:{state.colour}"><span class="ew-fill ew-{state.tone}" '
            f'data-progress="{width:.1f}" style="display:block;width:{width:.1f}%"></span></span>')


def card_html(view: TaskView) -> str:
    """The compact card: badge, provider and id, bar with %, counts, rate, ETA, time; the reason below it."""
    stats = '<span class="ew-sep">·</span>'.join(esc(part) for part in view.stats())
    why = f'<div class="ew-line ew-why">{esc(view.why)}</div>' if view.why else ""
    return (f'<div class="ew-line">{badge_html(view.state)}'
            f'<span class="ew-who">{esc(view.provider)} <code class="ew-id ew-task-id" title="{esc(view.task_id)}">'
            f'{esc(view.task_id)}</code></span>'
            f'<span class="ew-meter">{bar_html(view.progress, view.state)}'
            f'<span class="ew-pct">{esc(view.percent)}</span></span>'
            f'<span class="ew-stats">{stats}</span></div>{why}')


def details_html(task: ExportTask | None) -> str:
    """Destination, size, download link (redacted), times and error of a task, as a definition list."""
    if task is None:
        return ""
    rows: list[tuple[str, str]] = []
    if task.raw_status and task.raw_status != task.state.value:
        rows.append(("server status", esc(task.raw_status)))
    if task.destination:
        rows.append(("destination", esc(task.destination)))
    if task.size_mb is not None:
        rows.append(("size", f"{task.size_mb:,.2f} MB"))
    if task.download_url:
        rows.append(("download", f'<code>{esc(redact_url(task.download_url))}</code> '
                                 '(signed link hidden; use task.download_url)'))
    for name, moment in (("created", task.created_at), ("finished", task.finished_at)):
        if moment is not None:
            rows.append((name, esc(moment.astimezone().strftime("%Y-%m-%d %H:%M:%S"))))
    if task.error_code or task.error_message:
        rows.append(("error", f'<span class="ew-error">{esc(task.error_code)} {esc(task.error_message)}</span>'))
    return "<dl>" + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows) + "</dl>"


def chart_svg(times: Sequence[float], progress: Sequence[float], *, colour: str = DisplayState.RUNNING.colour,
              width: int = 300, height: int = 110) -> str:
    """Progress over time with axes and labels (0–100 %, first and last poll times); readable from 2 polls."""
    points = [(t, p) for t, p in zip(times, progress, strict=False) if not math.isnan(p)]
    left, right, top, bottom = 34, 8, 6, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg class="ew-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="progress over time" '
             f'font-size="10" fill="currentColor">']
    for pct in (0, 50, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
                     f'stroke-opacity="{0.5 if pct == 0 else 0.18}"/>'
                     f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{pct}%</text>')
    if not points:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">'
                     'no progress reported yet</text></svg>')
        return "".join(parts)
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0

    def xy(t: float, p: float) -> tuple[float, float]:
        return left + (t - t0) / span * plot_w, top + plot_h * (1 - max(0.0, min(100.0, p)) / 100)

    coords = [xy(t, p) for t, p in points]
    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                 f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}"/>')
    if len(coords) <= 40:  # few polls: show each one
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in coords]
    parts.append(f'<text x="{left}" y="{height - 4}">{_clock(t0)}</text>'
                 f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end">{_clock(t1)} · '
                 f'{len(points)} readings</text></svg>')
    return "".join(parts)


def history_html(monitor: ExportMonitor, rows: int = 12) -> str:
    """The most recent polls, newest first, as a small table."""
    history = monitor.history
    count = len(history)
    body = []
    for index in range(count - 1, max(-1, count - 1 - rows), -1):
        r = history.row(index)
        cells = (datetime.fromtimestamp(r.polled_at).strftime("%H:%M:%S.%f")[:-3],
                 str(getattr(r.outcome, "name", r.outcome)).lower(), r.state.value if r.state else "",
                 "" if r.progress is None else f"{r.progress:.4g}%",
                 "" if r.finished_samples is None else f"{r.finished_samples:,}",
                 "" if r.latency_s is None else f"{r.latency_s * 1000:.0f} ms", r.error_message or "")
        body.append("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{name}</th>" for name in ("time", "outcome", "state", "progress", "finished", "latency",
                                                   "error"))
    more = f"<div>{count} polls in all; monitor.history_frame() has every one.</div>" if count > rows else ""
    return (f'<div class="ew-scroll"><table class="ew-history-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{more}')


def panel_html(monitor: ExportMonitor, *, filters_html: str = "", history: bool = True) -> str:
    """The details behind the disclosure: summary, progress chart, filters and history."""
    task = monitor.latest
    summary = details_html(task) or "<div>waiting for the first answer…</div>"
    times, progress = monitor.history.progress_points()
    colour = describe(monitor).state.colour
    sections = [f'<div class="ew-summary"><h4>Summary</h4>{summary}</div>',
                f'<div><h4>Progress</h4>{chart_svg(times, progress, colour=colour)}</div>']
    if filters_html:
        sections.append(f'<div style="flex-basis:100%"><h4>Filters</h4><div class="ew-scroll">{filters_html}</div>'
                        '</div>')
    if history:
        sections.append(f'<div style="flex-basis:100%"><h4>History</h4>{history_html(monitor)}</div>')
    return f'<div class="ew-panel">{"".join(sections)}</div>'


def snapshot_html(monitor: ExportMonitor, *, filters_html: str = "", history_html: str = "") -> str:
    """The static card (what nbviewer, GitHub and a reopened notebook show): the live card plus its details,
    closed. ``history_html`` is accepted for compatibility; the details always carry the history."""
    view = task_view(monitor)
    task = monitor.latest
    return (f'{style_tag()}<div class="ew-snapshot ew-card" data-display-state="{view.state.value}" '
            f'data-state="{esc(task.state.value if task else "")}" data-monitor-status="{esc(monitor.status)}">'
            f'{card_html(view)}<details><summary>details</summary>'
            f'{panel_html(monitor, filters_html=filters_html)}</details></div>')


# -- text -----------------------------------------------------------------------------------------------------

def _text_bar(progress: float | None) -> str:
    if progress is None:
        return "|" + " " * _TEXT_BAR_WIDTH + "|"
    filled = int(round(max(0.0, min(100.0, progress)) / 100.0 * _TEXT_BAR_WIDTH))
    return "|" + "█" * filled + " " * (_TEXT_BAR_WIDTH - filled) + "|"


def view_line(view: TaskView) -> str:
    """One terminal line, tqdm style: ``ModelArts T1 RUNNING  42.0 % |████    | 420 / 1,000 samples · ...``."""
    line = f"{view.provider} {view.task_id} {view.state.label} {view.percent} {_text_bar(view.progress)} " + \
        " · ".join(view.stats())
    if view.why:
        line += f"  — {view.why}"
    return redact_text(" ".join(line.split()))


def monitor_line(monitor: ExportMonitor, now: float | None = None) -> str:
    """The text line of ``monitor`` (see :func:`view_line`)."""
    return view_line(task_view(monitor, now))


def status_line(provider: str, task_id: str, task: ExportTask | None, figures: Figures,
                monitor_status: str = "running", last_error: str | None = None) -> str:
    """A text line for a bare task (no monitor): state from the task alone. Views use :func:`monitor_line`."""
    state = {TaskState.PENDING: DisplayState.QUEUED, TaskState.RUNNING: DisplayState.RUNNING,
             TaskState.SUCCEEDED: DisplayState.SUCCEEDED, TaskState.FAILED: DisplayState.FAILED,
             TaskState.STOPPED: DisplayState.STOPPED, TaskState.UNKNOWN: DisplayState.RUNNING,
             TaskState.STOPPING: DisplayState.RUNNING}
    shown = state[task.state] if task is not None else DisplayState.WAITING
    why = last_error or (" ".join(x for x in (task.error_code, task.error_message) if x) if task else "")
    view = TaskView(provider_label(provider), task_id,
                    Display(shown, progress=task.progress if task else None), figures, task,
                    f"{task.progress:.1f}%" if task and task.progress is not None else "–", progress_text(task),
                    "", "", f"elapsed {format_duration(figures.elapsed_s)}" if figures.elapsed_s is not None else "",
                    redact_text(why or ""), "")
    return view_line(view)


def snapshot_text(monitor: ExportMonitor) -> str:
    """The plain-text twin of :func:`snapshot_html` (text/plain of an output)."""
    return monitor_line(monitor)


def text_table(rows: Iterable[Sequence[object]], headers: Sequence[str]) -> str:
    """A plain aligned text table (for the CLI and terminal IPython)."""
    table = [[redact_text("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in table]
    return "\n".join(lines)


TASK_HEADERS = ("TASK ID", "STATE", "PROGRESS", "DONE/TOTAL", "DESTINATION", "ERROR")


def task_table(tasks: Sequence[ExportTask], progress: Sequence[float | None] | None = None) -> str:
    """A plain-text table of tasks: id, state, progress, finished/total, destination, error.

    ``progress`` replaces the tasks' own figures (what the views show: see :func:`monitor_table`). A DOWNLOAD
    column appears when a task has a download URL, shown without its signed query.
    """
    with_download = any(task.download_url for task in tasks)
    shown = [task.progress for task in tasks] if progress is None else list(progress)
    rows = []
    for task, percent in zip(tasks, shown, strict=True):
        state = task.state.value
        if task.state is TaskState.UNKNOWN and task.raw_status:
            state += f" ({task.raw_status})"  # the status string the service sent and we do not know
        progress_text = f"{percent:.1f}%" if percent is not None else "-"
        done = "-" if task.finished_samples is None else f"{task.finished_samples:,}"
        total = "-" if task.total_samples is None else f"{task.total_samples:,}"
        destination = task.destination or "-"
        if "://" in destination:
            destination = redact_url(destination) or "-"
        error = " ".join(x for x in (task.error_code, task.error_message) if x) or "-"
        row = [task.task_id, state, progress_text, "-" if done == total == "-" else f"{done}/{total}", destination,
               error]
        if with_download:
            row.append((redact_url(task.download_url) or "-") if task.download_url else "-")
        rows.append(row)
    headers = TASK_HEADERS + (("DOWNLOAD",) if with_download else ())
    return text_table(rows, headers)


def monitor_table(monitors: Iterable[ExportMonitor]) -> str:
    """:func:`task_table` of the monitors' latest answers, with the progress their views show (a failed Qianfan
    task reports 0 %: its table row says where it failed, as its line and card do)."""
    answered = [m for m in monitors if m.latest is not None]
    return task_table([m.latest for m in answered if m.latest is not None],
                      [describe(m, m.figures()).progress for m in answered])
