"""The display-state vocabulary: what every view (widget, dashboard, text lines, snapshots, frames) calls a task.

A task's server state alone does not say what a person should see: a watch that ended, a poll that keeps
failing or a permanent error matter as much. :func:`describe` folds the task's state, the monitor's status and
the last poll into one :class:`Display`, and each :class:`DisplayState` has one label, one colour and one place
in the attention order, so every view agrees.

==============  ===============  ==================================================================
state           label            when
==============  ===============  ==================================================================
error           ERROR            a permanent error ended the watch (credentials, not found, config)
failed          FAILED           the server says the export failed (vendor reason, last progress)
retrying        RETRYING         the last poll failed and another is scheduled (reason, next try)
stalled         STALLED          RUNNING without progress for ``stall_after`` seconds
timed_out       TIMED OUT        the watch hit its timeout (the task's last known state beside it)
running         RUNNING          the export is making progress
queued          QUEUED           the server has the task but has not started it (ModelArts INIT)
waiting         WAITING          no answer yet
watch_stopped   WATCH STOPPED    somebody stopped the watch (the export itself goes on)
stopped         STOPPED          the export was stopped on the server
succeeded       SUCCEEDED        the export finished
==============  ===============  ==================================================================
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import AuthenticationError, ConfigError, TaskNotFoundError
from .models import TaskState
from .redact import one_line, redact_text

if TYPE_CHECKING:
    from .figures import Figures
    from .monitor import ExportMonitor

__all__ = ["Display", "DisplayState", "describe", "last_known_progress"]


class DisplayState(str, enum.Enum):
    """What a view shows for a task, in attention order (most urgent first)."""

    ERROR = "error"
    FAILED = "failed"
    RETRYING = "retrying"
    STALLED = "stalled"
    TIMED_OUT = "timed_out"
    RUNNING = "running"
    QUEUED = "queued"
    WAITING = "waiting"
    WATCH_STOPPED = "watch_stopped"
    STOPPED = "stopped"
    SUCCEEDED = "succeeded"

    @property
    def label(self) -> str:
        """The badge text: ``RUNNING``, ``TIMED OUT``, ..."""
        return _LABELS[self]

    @property
    def colour(self) -> str:
        """A CSS colour: a JupyterLab theme variable with a fallback readable on white pages."""
        return _COLOURS[_TONES[self]]

    @property
    def tone(self) -> str:
        """``danger``, ``warning``, ``info``, ``success`` or ``neutral`` (the ipywidgets-style family)."""
        return _TONES[self]

    @property
    def rank(self) -> int:
        """Place in the attention order (0 = look at this first)."""
        return _RANKS[self]

    @property
    def is_live(self) -> bool:
        """True while the watch goes on (the monitor still polls)."""
        return self in _LIVE

    def __str__(self) -> str:
        return self.value


_LABELS: Mapping[DisplayState, str] = {s: s.value.replace("_", " ").upper() for s in DisplayState}
_RANKS: Mapping[DisplayState, int] = {s: i for i, s in enumerate(DisplayState)}
_TONES: Mapping[DisplayState, str] = {
    DisplayState.ERROR: "danger", DisplayState.FAILED: "danger", DisplayState.RETRYING: "warning",
    DisplayState.STALLED: "warning", DisplayState.TIMED_OUT: "warning", DisplayState.RUNNING: "info",
    DisplayState.QUEUED: "neutral", DisplayState.WAITING: "neutral", DisplayState.WATCH_STOPPED: "neutral",
    DisplayState.STOPPED: "neutral", DisplayState.SUCCEEDED: "success",
}
#: Colours are only ever used for bars, borders and tints, never for text (text keeps the theme's font colour,
#: so it reads at >= 4.5:1 in light and dark themes alike).
_COLOURS: Mapping[str, str] = {
    "danger": "var(--jp-error-color1, #d32f2f)", "warning": "var(--jp-warn-color1, #f57c00)",
    "info": "var(--jp-brand-color1, #1976d2)", "success": "var(--jp-success-color1, #388e3c)",
    "neutral": "var(--jp-layout-color4, #757575)",
}
_LIVE = frozenset({DisplayState.RETRYING, DisplayState.STALLED, DisplayState.RUNNING, DisplayState.QUEUED,
                   DisplayState.WAITING})

#: What a failed poll's outcome is called on a RETRYING badge.
_RETRY_REASONS: Mapping[str, str] = {
    "rate_limited": "rate limited", "server_error": "server error", "transport_error": "cannot connect",
    "bad_response": "unreadable answer",
    # only retried inside the grace window after a create (the vendors' read side can lag), else permanent
    "not_found": "just created, not readable yet",
}


@dataclass(frozen=True)
class Display:
    """What to show for one task right now.

    Attributes
    ----------
    state : DisplayState
    reason : str or None
        Why: the retry reason (``rate limited``, ``HTTP 503``, ``cannot connect``), the vendor's failure
        reason, or the permanent error (one line, redacted).
    next_try_at : float or None
        Epoch seconds of the next poll, while retrying.
    task_state : TaskState or None
        The task's last known server state (shown beside TIMED OUT / WATCH STOPPED / ERROR).
    progress : float or None
        The last known progress in percent (kept on failure: Qianfan reports 0 when a task fails).
    """

    state: DisplayState
    reason: str | None = None
    next_try_at: float | None = None
    task_state: TaskState | None = None
    progress: float | None = None

    @property
    def label(self) -> str:
        """The badge text."""
        return self.state.label

    def detail(self) -> str:
        """One plain-text line saying why (empty when the label says it all)."""
        parts = []
        if self.reason:
            parts.append(self.reason)
        if self.next_try_at is not None:
            parts.append(f"next try {datetime.fromtimestamp(self.next_try_at).strftime('%H:%M:%S')}")
        if self.state in (DisplayState.TIMED_OUT, DisplayState.WATCH_STOPPED, DisplayState.ERROR) \
                and self.task_state is not None:
            last = f"task was {self.task_state.value}"
            if self.progress is not None:
                last += f" at {self.progress:.1f}%"
            parts.append(last)
        return redact_text(" · ".join(parts))


def last_known_progress(monitor: ExportMonitor) -> float | None:
    """The highest progress any poll reported (exports only move forward; a failed Qianfan task reports 0)."""
    _times, progress = monitor.history.progress_points()
    known = [p for p in progress if not math.isnan(p)]
    return float(max(known)) if known else None


def _outcome_name(outcome: Any) -> str:
    """``rate_limited`` for the history's outcome, whether stored as a name or as an enum member."""
    return str(getattr(outcome, "name", outcome)).lower()


def _retry_reason(outcome: str, message: str | None) -> str:
    text = message or ""
    if outcome == "server_error":
        status = re.search(r"HTTP (\d{3})", text)
        return f"HTTP {status.group(1)}" if status else "server error"
    if outcome == "transport_error" and "timed out" in text.lower():
        return "timed out"
    return _RETRY_REASONS.get(outcome, "poll failed")


def _error_reason(monitor: ExportMonitor) -> str:
    error = monitor.error
    kind = ("credentials rejected" if isinstance(error, AuthenticationError)
            else "task not found" if isinstance(error, TaskNotFoundError)
            else "configuration" if isinstance(error, ConfigError) else "")
    message = one_line(error) if error is not None else (monitor.last_poll_error or "")
    return f"{kind}: {message}" if kind and message else (kind or message)


def _vendor_reason(task: Any) -> str | None:
    reason = " ".join(x for x in (task.error_code, task.error_message) if x)
    if not reason and task.raw_status and task.raw_status.upper() not in ("FAILED", task.state.value):
        reason = task.raw_status  # e.g. Qianfan's "ExportFailed" when it sends no message
    return reason or None


def describe(monitor: ExportMonitor, figures: Figures | None = None) -> Display:
    """The :class:`Display` of ``monitor`` now (pass ``figures`` when you already computed them)."""
    from .monitor import MonitorStatus

    task = monitor.latest
    task_state = task.state if task is not None else None
    status = monitor.status
    if status == MonitorStatus.ERROR:
        return Display(DisplayState.ERROR, _error_reason(monitor) or None, task_state=task_state,
                       progress=task.progress if task is not None else None)
    if task is not None and task.state is TaskState.FAILED:
        # Qianfan reports 0 when a task fails: 0 is "unknown" then, not a reading (progress never goes down)
        return Display(DisplayState.FAILED, _vendor_reason(task), task_state=task_state,
                       progress=last_known_progress(monitor) or None)
    if task is not None and task.state is TaskState.SUCCEEDED:
        return Display(DisplayState.SUCCEEDED, task_state=task_state, progress=task.progress)
    if task is not None and task.state is TaskState.STOPPED:
        return Display(DisplayState.STOPPED, _vendor_reason(task), task_state=task_state,
                       progress=last_known_progress(monitor))
    progress = task.progress if task is not None else None
    if status == MonitorStatus.TIMED_OUT:
        return Display(DisplayState.TIMED_OUT, task_state=task_state, progress=progress)
    if status == MonitorStatus.STOPPED:
        return Display(DisplayState.WATCH_STOPPED, task_state=task_state, progress=progress)
    if len(monitor.history):
        last = monitor.history.row(-1)
        outcome = _outcome_name(last.outcome)
        if outcome != "ok":
            # before any answer, a connection failure names the endpoint: a wrong URL must be obvious
            reason = monitor.unreachable or _retry_reason(outcome, last.error_message)
            return Display(DisplayState.RETRYING, reason,
                           next_try_at=getattr(monitor, "next_poll_at", None), task_state=task_state,
                           progress=progress)
    if task is None:
        return Display(DisplayState.WAITING)
    if task.state is TaskState.PENDING:
        return Display(DisplayState.QUEUED, task_state=task_state, progress=progress)
    stalled = (figures if figures is not None else monitor.figures()).stalled
    if stalled:
        return Display(DisplayState.STALLED, task_state=task_state, progress=progress)
    if task.state is TaskState.STOPPING:  # not over yet: it may still end STOPPED, SUCCEEDED or FAILED
        return Display(DisplayState.RUNNING, "stopping on the server", task_state=task_state, progress=progress)
    unknown = task.raw_status if task.state is TaskState.UNKNOWN else None
    return Display(DisplayState.RUNNING, f"server status {unknown}" if unknown else None, task_state=task_state,
                   progress=progress)
