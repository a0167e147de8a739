"""Derived figures (rate, ETA, stall) and the poll-spacing policy, as pure functions."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

import pytest

from export_widgets.figures import compute_figures, theil_sen_slope
from export_widgets.models import ExportTask, TaskState
from export_widgets.monitor import Backoff

T0 = 1_700_000_000.0


def _task(state=TaskState.RUNNING, progress=50.0, total=1000, created=T0, finished=None):
    return ExportTask(provider="modelarts", task_id="T", state=state, progress=progress, total_samples=total,
                      created_at=datetime.fromtimestamp(created, tz=timezone.utc),
                      finished_at=datetime.fromtimestamp(finished, tz=timezone.utc) if finished else None)


def test_theil_sen_ignores_one_outlier():
    times = [0, 10, 20, 30, 40, 50]
    values = [0, 10, 20, 95, 40, 50]  # one wild reading
    assert theil_sen_slope(times, values) == pytest.approx(1.0)


def test_eta_from_steady_progress():
    times = [T0 + 10 * i for i in range(6)]
    progress = [5.0 * i for i in range(6)]  # 0.5 %/s, at 25 % when last polled
    fig = compute_figures(_task(progress=25.0), times, progress, now=T0 + 50)
    assert fig.rate_pct_per_s == pytest.approx(0.5)
    assert fig.eta_s == pytest.approx(150.0)
    assert fig.rate_samples_per_s == pytest.approx(5.0)  # 0.5 % of 1000 samples per second
    assert fig.elapsed_s == pytest.approx(50.0)
    assert not fig.stalled


def test_eta_is_robust_to_noise():
    rng = random.Random(7)
    times = [T0 + 5 * i for i in range(12)]
    progress = [max(0.0, 1.0 * t - T0 + rng.uniform(-3, 3)) / 5 * 1.0 for t in times]  # ~0.2 %/s ± noise
    fig = compute_figures(_task(progress=progress[-1]), times, progress, now=times[-1])
    assert fig.rate_pct_per_s == pytest.approx(0.2, rel=0.35)


def test_stall_flag_after_configured_time_without_progress():
    times = [T0 + 30 * i for i in range(12)]
    progress = [10, 20, 30, 40, 40, 40, 40, 40, 40, 40, 40, 40]
    stalled = compute_figures(_task(progress=40.0), times, progress, now=times[-1], stall_after=200)
    assert stalled.stalled
    assert stalled.unchanged_for_s == pytest.approx(240.0)
    assert stalled.eta_s is None
    fresh = compute_figures(_task(progress=40.0), times, progress, now=times[-1], stall_after=300)
    assert not fresh.stalled


def test_no_stall_when_not_running_and_no_eta_when_terminal():
    times, progress = [T0, T0 + 500], [0.0, 0.0]
    pending = compute_figures(_task(state=TaskState.PENDING, progress=0.0), times, progress, now=T0 + 500,
                              stall_after=100)
    assert not pending.stalled
    done = compute_figures(_task(state=TaskState.SUCCEEDED, progress=100.0, finished=T0 + 80), times, progress,
                           now=T0 + 500)
    assert done.eta_s is None and done.elapsed_s == pytest.approx(80.0)


def test_figures_without_enough_points():
    fig = compute_figures(_task(), [T0], [10.0], now=T0 + 1)
    assert fig.eta_s is None and fig.rate_pct_per_s is None
    assert compute_figures(None, [], [], now=T0).elapsed_s is None
    fig = compute_figures(_task(progress=None), [T0, T0 + 1], [math.nan, math.nan], now=T0 + 2)
    assert fig.eta_s is None and not fig.stalled


def test_backoff_grows_while_unchanged_and_resets_on_change():
    policy = Backoff(floor=2.0, cap=60.0)
    delays = [2.0]
    for _ in range(12):
        delays.append(policy.after_unchanged(delays[-1]))
    assert delays[1] == 3.0 and delays[-1] == 60.0
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False))
    assert policy.after_change() == 2.0


def test_backoff_on_errors_doubles_caps_and_honours_retry_after():
    policy = Backoff(floor=2.0, cap=60.0, error_base=2.0)
    assert [policy.after_error(n) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert policy.after_error(1, retry_after=17.0) == 17.0
    assert policy.after_error(1, retry_after=120.0) == 120.0  # the server's word beats the cap


def test_jitter_stays_within_bounds_and_above_floor():
    policy = Backoff(floor=2.0, jitter=0.2)
    rng = random.Random(1)
    values = [policy.jittered(10.0, rng) for _ in range(500)]
    assert min(values) >= 8.0 and max(values) <= 12.0
    assert len({round(v, 3) for v in values}) > 100  # actually spread out
    assert min(policy.jittered(2.0, rng) for _ in range(100)) >= 2.0
