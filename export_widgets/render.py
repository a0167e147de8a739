"""Pure formatters: a task (and its figures) as a text line, an HTML card, a sparkline, a text table.

Everything user-controlled (task ids, paths, error messages) is HTML-escaped here, once, and every URL
goes through :func:`~export_widgets.redact.redact_url`; widgets, snapshots and the CLI only call these.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Sequence

from .figures import Figures
from .models import PROVIDER_LABELS, ExportTask, TaskState
from .redact import redact_text, redact_url

if TYPE_CHECKING:
    from .monitor import ExportMonitor

__all__ = [
    "bar_style",
    "format_duration",
    "progress_text",
    "snapshot_html",
    "snapshot_text",
    "sparkline_svg",
    "stats_text",
    "status_line",
    "task_table",
    "text_table",
]

_BAR_STYLES = {
    TaskState.PENDING: "info", TaskState.RUNNING: "info", TaskState.SUCCEEDED: "success",
    TaskState.FAILED: "danger", TaskState.STOPPED: "warning", TaskState.UNKNOWN: "", TaskState.STOPPING: "warning",
}
# The colours ipywidgets' FloatProgress uses for each bar_style, so badge, bar and snapshot agree.
_COLOURS = {"info": "#0097a7", "success": "#4caf50", "danger": "#f44336", "warning": "#ff9800", "": "#9e9e9e"}
_TEXT_BAR_WIDTH = 20


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


def bar_style(task: ExportTask | None, figures: Figures | None = None, failed: bool = False) -> str:
    """ipywidgets ``bar_style`` for a task: info while running, success, danger, warning for stall/stop."""
    if failed or (task is not None and task.state is TaskState.FAILED):
        return "danger"
    if task is None:
        return "info"
    if figures is not None and figures.stalled:
        return "warning"
    return _BAR_STYLES[task.state]


def progress_text(task: ExportTask | None) -> str:
    """``420 / 1,000 samples`` (or the total alone, or nothing)."""
    if task is None:
        return ""
    if task.finished_samples is not None and task.total_samples is not None:
        return f"{task.finished_samples:,} / {task.total_samples:,} samples"
    if task.total_samples is not None:
        return f"{task.total_samples:,} samples"
    return ""


def _percent(task: ExportTask | None) -> str:
    return f"{task.progress:.1f}%" if task is not None and task.progress is not None else "–%"


def stats_text(task: ExportTask | None, figures: Figures, *, last_change: float | None = None,
               now: float | None = None, last_error: str | None = None, live: bool = True) -> list[str]:
    """The pieces of the stats line, in display order (each already plain text, not escaped).

    ``live=False`` (a watch that ended, e.g. stopped) leaves out the ETA: nobody is waiting for it any more.
    """
    parts = [_percent(task)]
    counts = progress_text(task)
    if counts:
        parts.append(counts)
    parts.append(f"elapsed {format_duration(figures.elapsed_s)}")
    if figures.rate_samples_per_s is not None:
        parts.append(f"{figures.rate_samples_per_s:,.1f} samples/s")
    elif figures.rate_pct_per_s is not None:
        parts.append(f"{figures.rate_pct_per_s:.2f} %/s")
    if live and task is not None and not task.is_terminal:
        eta = f"ETA {format_duration(figures.eta_s)}"
        if figures.eta_s is not None and now is not None:  # a clock time does not go stale between redraws
            eta += f" (~{datetime.fromtimestamp(now + figures.eta_s).strftime('%H:%M:%S')})"
        parts.append(eta)
    if figures.stalled:
        parts.append(f"stalled for {format_duration(figures.unchanged_for_s)}")
    if last_change is not None:
        parts.append(f"last change {datetime.fromtimestamp(last_change).strftime('%H:%M:%S')}")
    if last_error:
        parts.append(f"last poll failed: {redact_text(last_error)}")
    return parts


def _text_bar(progress: float | None) -> str:
    if progress is None:
        return "|" + " " * _TEXT_BAR_WIDTH + "|"
    filled = int(round(progress / 100.0 * _TEXT_BAR_WIDTH))
    return "|" + "█" * filled + " " * (_TEXT_BAR_WIDTH - filled) + "|"


def status_line(provider: str, task_id: str, task: ExportTask | None, figures: Figures,
                monitor_status: str = "running", last_error: str | None = None) -> str:
    """One terminal line, tqdm style: ``ModelArts T1 RUNNING 42.0% |████    | 420 / 1,000 samples ...``."""
    state = task.state.value if task is not None else "WAITING"
    head = f"{PROVIDER_LABELS.get(provider, provider)} {task_id} {state}"
    if monitor_status not in ("running", "finished"):
        head += f" ({monitor_status.replace('_', ' ')})"
    live = monitor_status == "running"
    body = [" ".join(part.split()) for part in stats_text(task, figures, last_error=last_error, live=live)]
    line = f"{head} {body[0]} {_text_bar(task.progress if task else None)} " + "  ".join(body[1:])
    if task is not None and task.state is TaskState.FAILED and (task.error_code or task.error_message):
        error = " ".join(f"{task.error_code or ''} {task.error_message or ''}".split())
        line += f"  error {error}"
    return redact_text(line.rstrip())


def sparkline_svg(times: Sequence[float], progress: Sequence[float], *, width: int = 240, height: int = 48,
                  colour: str = _COLOURS["info"]) -> str:
    """Progress over time as a small inline SVG (no dependency; renders anywhere HTML does)."""
    points = [(t, p) for t, p in zip(times, progress) if not math.isnan(p)]
    frame = (f'<svg class="ew-sparkline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="progress over time">'
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="none" stroke="#ddd"/>')
    if len(points) < 2:
        return frame + "</svg>"
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0
    coords = " ".join(f"{(t - t0) / span * (width - 4) + 2:.1f},{height - 2 - p / 100.0 * (height - 4):.1f}"
                      for t, p in points)
    return frame + f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/></svg>'


def bar_html(progress: float | None, style: str) -> str:
    """A static progress bar (plain HTML, for snapshots)."""
    width = 0.0 if progress is None else max(0.0, min(100.0, progress))
    colour = _COLOURS.get(style, _COLOURS[""])
    return (f'<div class="ew-bar" style="background:#eee;border-radius:3px;height:14px;width:100%;max-width:480px">'
            f'<div class="ew-bar-fill ew-{style or "none"}" data-progress="{width:.1f}" '
            f'style="background:{colour};height:14px;border-radius:3px;width:{width:.1f}%"></div></div>')


def header_html(provider: str, task_id: str, task: ExportTask | None, style: str) -> str:
    """Provider, task id and a coloured state badge."""
    state = task.state.value if task is not None else "WAITING"
    colour = _COLOURS.get(style, _COLOURS[""])
    raw = f' <span style="color:#777">({esc(task.raw_status)})</span>' \
        if task is not None and task.raw_status and task.raw_status != state else ""
    return (f'<div class="ew-header"><b>{esc(PROVIDER_LABELS.get(provider, provider))}</b> export '
            f'<code class="ew-task-id">{esc(task_id)}</code> '
            f'<span class="ew-state ew-state-{state.lower()}" style="background:{colour};color:white;'
            f'padding:1px 6px;border-radius:8px;font-size:90%">{esc(state)}</span>{raw}</div>')


def details_html(task: ExportTask | None) -> str:
    """Destination, size, download link (redacted) and error of a task, as a small definition list."""
    if task is None:
        return ""
    rows = []
    if task.destination:
        rows.append(("destination", esc(task.destination)))
    if task.size_mb is not None:
        rows.append(("size", f"{task.size_mb:,.2f} MB"))
    if task.download_url:
        rows.append(("download", f'<code>{esc(redact_url(task.download_url))}</code> '
                                 '<span style="color:#777">(signed link hidden; use task.download_url)</span>'))
    if task.error_code or task.error_message:
        rows.append(("error", f'<span class="ew-error">{esc(task.error_code)} {esc(task.error_message)}</span>'))
    return "".join(f'<div><span style="color:#777">{name}:</span> {value}</div>' for name, value in rows)


def snapshot_html(monitor: "ExportMonitor", *, filters_html: str = "", history_html: str = "") -> str:
    """The static end-of-watch card: what nbviewer, GitHub and a reopened notebook show."""
    task = monitor.latest
    figures = monitor.figures()
    failed = monitor.error is not None
    style = bar_style(task, figures, failed=failed)
    stats = stats_text(task, figures, last_error=monitor.last_poll_error, live=not monitor.done)
    ended = {"finished": "", "timed_out": "watch timed out", "stopped": "watch stopped",
             "error": "watch ended by an error", "running": "still running"}.get(monitor.status, monitor.status)
    parts = [
        f'<div class="ew-snapshot" data-state="{esc(task.state.value if task else "")}" '
        f'data-monitor-status="{esc(monitor.status)}" style="font-family:sans-serif;font-size:13px">',
        header_html(monitor.provider, monitor.task_id, task, style),
        bar_html(task.progress if task else None, style),
        f'<div class="ew-stats">{esc(" · ".join(stats))}</div>',
        f'<div class="ew-ended" style="color:#777">{esc(ended)}</div>' if ended else "",
        details_html(task),
        f'<div class="ew-error">{esc(monitor.error)}</div>' if monitor.error else "",
        sparkline_svg(*monitor.history.progress_points(), colour=_COLOURS.get(style, _COLOURS[""])),
        f'<div style="color:#777">{len(monitor.history)} polls</div>',
        filters_html,
        history_html,
        "</div>",
    ]
    return "".join(parts)


def snapshot_text(monitor: "ExportMonitor") -> str:
    """The plain-text twin of :func:`snapshot_html` (text/plain of the final output)."""
    line = status_line(monitor.provider, monitor.task_id, monitor.latest, monitor.figures(), monitor.status,
                       monitor.last_poll_error)
    if monitor.error is not None:
        line += f"\n{redact_text(str(monitor.error))}"
    return line


def text_table(rows: Iterable[Sequence[object]], headers: Sequence[str]) -> str:
    """A plain aligned text table (for the CLI and terminal IPython)."""
    table = [[redact_text("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines)


TASK_HEADERS = ("TASK ID", "STATE", "PROGRESS", "DONE/TOTAL", "DESTINATION", "ERROR")


def task_table(tasks: Sequence[ExportTask]) -> str:
    """A plain-text table of tasks: id, state, progress, finished/total, destination, error.

    A DOWNLOAD column appears when a task has a download URL, shown without its signed query.
    """
    with_download = any(task.download_url for task in tasks)
    rows = []
    for task in tasks:
        state = task.state.value
        if task.state is TaskState.UNKNOWN and task.raw_status:
            state += f" ({task.raw_status})"  # the status string the service sent and we do not know
        progress = f"{task.progress:.1f}%" if task.progress is not None else "-"
        done = "-" if task.finished_samples is None else f"{task.finished_samples:,}"
        total = "-" if task.total_samples is None else f"{task.total_samples:,}"
        destination = task.destination or "-"
        if "://" in destination:
            destination = redact_url(destination) or "-"
        error = " ".join(x for x in (task.error_code, task.error_message) if x) or "-"
        row = [task.task_id, state, progress, "-" if done == total == "-" else f"{done}/{total}", destination, error]
        if with_download:
            row.append(redact_url(task.download_url) if task.download_url else "-")
        rows.append(row)
    headers = TASK_HEADERS + (("DOWNLOAD",) if with_download else ())
    return text_table(rows, headers)
