"""Derived figures from a task's own poll history: elapsed time, rate, ETA and stall.

The ETA comes from a Theil–Sen slope (median of pairwise slopes) over the recent window of polls, so one
noisy reading or a server-side hiccup does not swing it the way a last-two-points estimate does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from .models import ExportTask, TaskState

__all__ = ["Figures", "compute_figures", "theil_sen_slope"]

#: How many recent progress readings the rate uses, and how far back they may reach (seconds).
WINDOW_POINTS = 12
WINDOW_SECONDS = 900.0


@dataclass(frozen=True)
class Figures:
    """What the history says about a task right now. Any figure is None when it cannot be known."""

    elapsed_s: float | None = None
    rate_pct_per_s: float | None = None
    rate_samples_per_s: float | None = None
    eta_s: float | None = None
    stalled: bool = False
    unchanged_for_s: float | None = None


def theil_sen_slope(times: Sequence[float], values: Sequence[float]) -> float | None:
    """Median of the pairwise slopes; None with fewer than two distinct times."""
    slopes = [
        (values[j] - values[i]) / (times[j] - times[i])
        for i in range(len(times))
        for j in range(i + 1, len(times))
        if times[j] > times[i]
    ]
    return median(slopes) if slopes else None


def _recent_points(times: Sequence[float], values: Sequence[float], now: float) -> tuple[list[float], list[float]]:
    picked_t: list[float] = []
    picked_v: list[float] = []
    for t, v in zip(reversed(times), reversed(values), strict=True):
        if len(picked_t) >= WINDOW_POINTS or now - t > WINDOW_SECONDS:
            break
        if not math.isnan(v):
            picked_t.append(t)
            picked_v.append(v)
    return picked_t[::-1], picked_v[::-1]


def _unchanged_since(times: Sequence[float], values: Sequence[float]) -> float | None:
    """Time of the earliest poll in the current run of equal (known) values."""
    since = None
    current = None
    for t, v in zip(reversed(times), reversed(values), strict=True):
        if math.isnan(v):
            continue
        if current is None:
            current = v
        elif v != current:
            break
        since = t
    return since


def compute_figures(
    task: ExportTask | None,
    times: Sequence[float],
    progress: Sequence[float],
    *,
    now: float,
    first_poll: float | None = None,
    stall_after: float = 300.0,
) -> Figures:
    """Figures for ``task`` from poll ``times`` (epoch s) and ``progress`` (percent, NaN when unknown)."""
    if task is None:
        return Figures()
    start = task.created_at.timestamp() if task.created_at else first_poll
    end = task.finished_at.timestamp() if (task.is_terminal and task.finished_at) else now
    elapsed = max(0.0, end - start) if start is not None else None
    if task.is_terminal:
        return Figures(elapsed_s=elapsed)

    t, v = _recent_points(times, progress, now)
    slope = theil_sen_slope(t, v) if len(t) >= 2 else None
    rate = slope if slope is not None and slope > 0 else None
    samples_rate = rate * task.total_samples / 100.0 if rate is not None and task.total_samples else None
    eta = None
    if rate is not None and v:
        eta = max(0.0, t[-1] + (100.0 - v[-1]) / rate - now)

    since = _unchanged_since(times, progress)
    unchanged = now - since if since is not None else None
    stalled = task.state is TaskState.RUNNING and unchanged is not None and unchanged >= stall_after
    if stalled:
        rate, samples_rate, eta = None, None, None  # a stalled export has no honest ETA
    return Figures(elapsed_s=elapsed, rate_pct_per_s=rate, rate_samples_per_s=samples_rate, eta_s=eta,
                   stalled=stalled, unchanged_for_s=unchanged)
