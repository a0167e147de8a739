"""Background monitoring of export tasks: :func:`watch`, :class:`ExportMonitor` and :class:`MonitorGroup`.

A monitor is UI-free: it polls through the shared :class:`~export_widgets.poller.Poller`, records every poll
in a :class:`~export_widgets.history.History` (failed ones too), and tells subscribers. Widgets, the magic
and the CLI are just subscribers. Errors never escape the polling thread: transient ones back off and go on,
permanent ones end the monitor with the error kept in :attr:`ExportMonitor.error`.

Invariants (see the README's Reliability section):

* a monitor whose status is ``running`` has a poll scheduled or in flight; every path that stops polling
  (a permanent error, a bug while recording, a shut-down poller, a fork) ends it with status ``error`` and one
  clear message, so :meth:`ExportMonitor.wait` always returns;
* intervals, deadlines and timeouts use a monotonic clock; the wall clock only stamps what is shown or recorded;
* a callback raising anything (``BaseException`` included) is logged once and never stops the polling;
* until the first answer, connection failures say which host:port cannot be reached and end the watch after
  ``unreachable_grace`` seconds; after a first answer they stay transient.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import APIError, ConfigError, ExportWidgetsError, Outcome, TransportError
from .figures import Figures, compute_figures
from .history import History
from .models import ExportTask
from .poller import Poller, PollerClosedError, default_poller
from .providers import TaskRef, as_task_source
from .redact import one_line

if TYPE_CHECKING:
    import pandas as pd

    from .download import DownloadResult
    from .store import Store
    from .sweep import PollScheduler

__all__ = ["Backoff", "ExportMonitor", "MonitorGroup", "MonitorStatus", "watch", "watch_many"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
MAX_INTERVAL = 60.0
DEFAULT_STALL_AFTER = 300.0
#: Seconds a watch keeps retrying an endpoint that never answered before it ends with an error.
DEFAULT_UNREACHABLE_GRACE = 180.0


class MonitorStatus(str, enum.Enum):
    """Why a monitor is (not) polling: ``running`` until it ends as one of the others (a ``str``, so it
    compares and serialises as its value)."""

    RUNNING = "running"
    FINISHED = "finished"  # the task reached a terminal state
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    ERROR = "error"  # a permanent error ended it; see ExportMonitor.error

    def __str__(self) -> str:
        return self.value


@dataclass
class Backoff:
    """Poll spacing: a floor that grows while nothing changes, and exponential backoff on errors.

    Every delay gets ±``jitter`` so many monitors started together spread out; none is ever below the floor,
    and a server's ``Retry-After`` is always honoured.
    """

    floor: float = DEFAULT_INTERVAL
    cap: float = MAX_INTERVAL
    growth: float = 1.5
    jitter: float = 0.2
    error_base: float = 2.0

    def after_change(self) -> float:
        """Something moved: poll again at the floor."""
        return self.floor

    def after_unchanged(self, previous: float) -> float:
        """Nothing moved: stretch the interval, up to the cap."""
        return min(self.cap, max(self.floor, previous * self.growth))

    def after_error(self, consecutive: int, retry_after: float | None = None) -> float:
        """The ``consecutive``-th failure in a row: double each time from ``error_base``, up to the cap."""
        doublings = min(max(0, consecutive - 1), 64)  # 2.0 * 2**1024 overflows a float: ~17 h at the cap
        delay = min(self.cap, max(self.floor, self.error_base * 2.0 ** doublings))
        return max(delay, retry_after or 0.0)

    def jittered(self, delay: float, rng: random.Random) -> float:
        """``delay`` ± jitter, never under the floor."""
        return max(self.floor, delay * (1.0 + rng.uniform(-self.jitter, self.jitter)))


def _outcome_of(error: BaseException) -> tuple[Outcome, bool]:
    """(history outcome, permanent?) for an error raised by a client call: read off the error's own attributes;
    anything that is not one of ours is an internal error, and permanent."""
    if isinstance(error, ExportWidgetsError):
        return error.outcome, not error.transient
    return Outcome.INTERNAL, True


def change_key(task: ExportTask | None) -> tuple[Any, ...]:
    """What counts as a change of a task: state, progress, counts, error, size (``()`` for no task yet)."""
    if task is None:
        return ()
    return (task.state, task.raw_status, task.progress, task.finished_samples, task.total_samples,
            task.error_code, task.size_mb)


class ExportMonitor:
    """Polls one export task in the background until it ends.

    Parameters
    ----------
    client : ProviderClient
        A provider's client (:class:`~export_widgets.ModelArtsClient`, :class:`~export_widgets.QianfanClient`, or
        any registered provider's).
    task_id : str
    dataset_id : str, optional
        Required by providers whose tasks belong to a dataset (ModelArts).
    interval : float, optional
        Poll floor in seconds (default 2). The interval grows while nothing changes, up to ``max_interval``.
    timeout : float, optional
        Stop polling after this many seconds (status ``timed_out``).
    stall_after : float
        Seconds without progress while RUNNING after which :attr:`figures` reports a stall.
    poller : Poller, optional
        The scheduler to use; monitors share the process-wide one by default.
    start : bool
        Start polling now. With ``start=False`` drive it with :meth:`poll_once` (tests do).
    not_found_grace : float
        Seconds after the monitor starts during which "task not found" is retried (before any answer): a task
        created a moment ago may not be readable yet. 0 (default): not found is permanent at once.
    clock : callable
        Wall clock (epoch seconds) for the timestamps recorded and shown.
    monotonic : callable, optional
        Clock of intervals, deadlines and timeouts (default :func:`time.monotonic`; when only a fake ``clock``
        is given, it drives both, so one FakeClock moves a whole test).
    unreachable_grace : float or None
        Seconds to keep retrying while no answer ever came (nothing listens, DNS fails, ...) before ending with
        an error (default 180; None retries forever). After a first answer connection failures stay transient.
    history : History, optional
        Polls of an earlier watch of this task to continue from (a resumed watch: ETA and rate go on).
    """

    def __init__(
        self,
        client: Any,
        task_id: str,
        dataset_id: str | None = None,
        *,
        interval: float | None = None,
        max_interval: float = MAX_INTERVAL,
        timeout: float | None = None,
        stall_after: float = DEFAULT_STALL_AFTER,
        poller: Poller | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        start: bool = True,
        not_found_grace: float = 0.0,
        unreachable_grace: float | None = DEFAULT_UNREACHABLE_GRACE,
        history: History | None = None,
    ) -> None:
        source = as_task_source(client)
        if source.needs_dataset and not dataset_id:
            raise ConfigError(f"{source.label} tasks need dataset_id= (the dataset the export belongs to)")
        floor = DEFAULT_INTERVAL if interval is None else float(interval)
        if not 0 < floor < math.inf:
            raise ConfigError(f"interval must be a positive number of seconds, got {interval!r}")
        if not 0 < float(max_interval) < math.inf:
            raise ConfigError(f"max_interval must be a positive number of seconds, got {max_interval!r}")
        if timeout is not None and not float(timeout) > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not float(stall_after) > 0:
            raise ConfigError(f"stall_after must be a positive number of seconds, got {stall_after!r}")
        if unreachable_grace is not None and not float(unreachable_grace) > 0:
            raise ConfigError(f"unreachable_grace must be a positive number of seconds or None, "
                              f"got {unreachable_grace!r}")
        self.client = client
        self._source = source
        self.ref = TaskRef(source.name, task_id, dataset_id if source.needs_dataset else None)
        self.provider = source.name
        self.task_id = task_id
        self.dataset_id = dataset_id
        self.timeout = None if timeout is None else float(timeout)
        self.stall_after = float(stall_after)
        self.not_found_grace = max(0.0, float(not_found_grace))
        self.backoff = Backoff(floor=floor, cap=max(floor, float(max_interval)))
        self.history = History(source.name, task_id) if history is None else history
        self.unreachable_grace = None if unreachable_grace is None else float(unreachable_grace)
        self._clock = clock
        self._mono = monotonic or (time.monotonic if clock is time.time else clock)
        self._rng = rng or random.Random()
        self._poller = poller
        self._batch: PollScheduler | None = None  # a sweep group that polls this monitor with others
        self._started = start  # whether polling was asked for (start=False waits for start() or refresh())
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._finished = threading.Event()
        self._latest: ExportTask | None = None
        self._error: ExportWidgetsError | None = None
        self._last_poll_error: str | None = None
        self._status = MonitorStatus.RUNNING
        self._consecutive_errors = 0
        self._interval = floor
        self._started_at = clock()
        self._started_mono = self._mono()
        self._deadline = None if self.timeout is None else self._mono() + self.timeout
        self._answered = False  # any answer (even an error answer) proves the endpoint is reachable
        self._unreachable_since: float | None = None
        self._unreachable: str | None = None
        self._last_change_at: float | None = None
        self._refresh_requested = False
        self._next_poll_at: float | None = None  # views: "next try 14:05:20" while retrying
        self._change_callbacks: list[Callable[[ExportTask], None]] = []
        self._update_callbacks: list[Callable[[ExportMonitor], None]] = []
        self._failed_callbacks: set[int] = set()  # ids of callbacks already logged once
        self._deferring = threading.local()  # set on a poller worker: callbacks wait for deliver()
        self._pending: list[tuple[Callable[[Any], None], Any]] = []
        _LIVE_MONITORS.add(self)
        if start:
            self._schedule(0.0)

    # -- public state -----------------------------------------------------------------------------------

    @property
    def latest(self) -> ExportTask | None:
        """The newest task state (None before the first successful answer)."""
        return self._latest

    @property
    def done(self) -> bool:
        """True once terminal, timed out, stopped, or ended by a permanent error."""
        return self._finished.is_set()

    @property
    def status(self) -> MonitorStatus:
        """Why the monitor is (not) polling."""
        return self._status

    @property
    def error(self) -> ExportWidgetsError | None:
        """The permanent error that ended the monitor, if any."""
        return self._error

    @property
    def last_poll_error(self) -> str | None:
        """One-line, redacted message of the most recent failed poll (cleared by the next good one); after a
        permanent error it is that error's message."""
        return self._last_poll_error

    @property
    def unreachable(self) -> str | None:
        """While no answer ever came and the last poll could not connect: one line naming the host:port, the
        reason and the next retry (for the views to show prominently); None otherwise."""
        return self._unreachable

    @property
    def last_change_at(self) -> float | None:
        """Epoch seconds of the last poll that brought a change (None before the first answer)."""
        return self._last_change_at

    @property
    def poller(self) -> Poller:
        """The poller this monitor's requests run on (shared by default)."""
        if self._poller is None:
            self._poller = default_poller()
        return self._poller

    @property
    def next_poll_at(self) -> float | None:
        """Epoch seconds (monitor clock) of the next scheduled poll; None when none is scheduled."""
        return self._next_poll_at

    @property
    def polling(self) -> bool:
        """True from :meth:`start` (or :meth:`refresh`) until the monitor ends."""
        return self._started and not self.done

    @property
    def started_at(self) -> float:
        """Epoch seconds when the monitor was created."""
        return self._started_at

    def figures(self, now: float | None = None) -> Figures:
        """Elapsed time, rate, ETA and stall, derived from this monitor's history."""
        times, progress = self.history.progress_points()
        return compute_figures(self._latest, times, progress, now=self._clock() if now is None else now,
                               first_poll=times[0] if times else None, stall_after=self.stall_after)

    def history_frame(self, tz: str = "UTC") -> pd.DataFrame:
        """Every poll as a DataFrame (see :func:`export_widgets.frames.history`)."""
        from . import frames

        return frames.history(self, tz=tz)

    # -- control ----------------------------------------------------------------------------------------

    def on_change(self, callback: Callable[[ExportTask], None]) -> Callable[[ExportTask], None]:
        """Call ``callback(task)`` (from the polling thread) when state, progress or counts change."""
        self._change_callbacks.append(callback)
        return callback

    def on_update(self, callback: Callable[[ExportMonitor], None]) -> Callable[[ExportMonitor], None]:
        """Call ``callback(monitor)`` after every poll and once when the monitor ends."""
        self._update_callbacks.append(callback)
        return callback

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        """Remove ``callback`` from the change and update subscribers (a view that closed or moved)."""
        for callbacks in (self._change_callbacks, self._update_callbacks):
            while callback in callbacks:
                callbacks.remove(callback)

    def subscriptions(self) -> list[Callable[[Any], None]]:
        """The callbacks subscribed now (change ones first)."""
        return [*self._change_callbacks, *self._update_callbacks]

    def start(self, delay: float = 0.0) -> None:
        """Begin background polling after ``delay`` seconds (for monitors made with ``start=False``)."""
        if not self.done:
            self._started = True
            self._schedule(delay)

    def refresh(self) -> None:
        """Poll as soon as possible (the "Refresh now" button)."""
        if not self.done:
            self._refresh_requested = True  # a poll in flight now reschedules at once instead of backing off
            self._started = True
            self._schedule(0.0)

    def configure(self, *, interval: float | None = None, timeout: float | None = None) -> None:
        """Change the poll floor and/or the timeout of a running monitor (the magic re-run with new flags).

        A new ``timeout`` counts from now; a new ``interval`` applies from the next poll, which comes within it.
        """
        if interval is not None:
            floor = float(interval)
            if not 0 < floor < math.inf:
                raise ConfigError(f"interval must be a positive number of seconds, got {interval!r}")
            self.backoff.floor = floor
            self.backoff.cap = max(floor, self.backoff.cap)
            self._interval = floor
        if timeout is not None:
            if not float(timeout) > 0:
                raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
            self.timeout = float(timeout)
            self._deadline = self._mono() + self.timeout
        if not self.done and (interval is not None or timeout is not None):
            self._schedule(self.backoff.jittered(self.backoff.floor, self._rng) if interval is not None else 0.0)

    def stop(self) -> None:
        """Stop polling. Returns at once, and the pending run is dropped at once (nothing keeps the monitor or a
        scheduler thread alive); an answer already on its way is still recorded."""
        self._scheduler().cancel(self)
        self._finish(MonitorStatus.STOPPED)

    def fail(self, error: BaseException) -> None:
        """Poller hook: polling cannot go on (the poller was shut down, or a run raised). Ends the monitor with
        status ``error`` and one clear message instead of leaving it ``running`` with nothing scheduled."""
        if self.done:
            return
        if isinstance(error, PollerClosedError):
            self._end_with_error(ExportWidgetsError(
                f"polling of {self.task_id} stopped: its poller was shut down; start a new watch"))
        else:
            self._fail_internal(error)

    def wait(self, timeout: float | None = None, *, stop_on_interrupt: bool = False,
             reraise: bool = False) -> ExportTask | None:
        """Block until the monitor ends (or ``timeout`` seconds pass) and return :attr:`latest`.

        Ctrl-C stops the *waiting*, not the kernel: the monitor keeps polling in the background, unless
        ``stop_on_interrupt`` (then it stops too); with ``reraise`` the KeyboardInterrupt goes on to the caller.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._finished.is_set():
                remaining = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if remaining <= 0:
                    break
                self._finished.wait(remaining)
        except KeyboardInterrupt:
            if stop_on_interrupt:
                self.stop()
                print(f"Interrupted: stopped watching {self.task_id} (the export itself goes on).", file=sys.stderr)
            else:
                print(f"Stopped waiting for {self.task_id}; the monitor keeps polling (call .stop() to end it).",
                      file=sys.stderr)
            if reraise:
                raise
        return self._latest

    def download(self, directory: str | os.PathLike[str], **options: Any) -> DownloadResult:
        """Fetch the finished export into ``directory`` (Qianfan: streamed, resumable, atomic; ModelArts: the
        ready-to-run ``obsutil`` copy command). See :func:`export_widgets.download.download_export`."""
        from .download import download_export

        return download_export(self.client, self.ref, directory, task=self._latest, **options)

    # -- polling ----------------------------------------------------------------------------------------

    def run(self) -> float | None:
        """One poll, callbacks included, then the delay to the next (None when finished)."""
        try:
            return self.run_in_slot()
        finally:
            self.deliver()

    def run_in_slot(self) -> float | None:
        """Poller entry point: one poll whose callbacks wait for :meth:`deliver` (which the poller calls after
        giving the request slot back, so a slow callback never holds the provider's budget)."""
        if not self._poll_lock.acquire(blocking=False):
            return None  # already polling; that run schedules the next one
        delay: float | None = 0.0  # when a sweep group took over before this run: it polls at once
        self._deferring.on = True
        try:
            batch = self._batch
            if batch is None:
                self._refresh_requested = False
                delay = self.poll_once()
                batch = self._batch  # read under the poll lock: see route_polls_through
        except BaseException as exc:  # noqa: B036 - poll_once guards itself; this is the last line
            self._fail_internal(exc)
            return None
        finally:
            self._deferring.on = False
            self._poll_lock.release()
        if batch is not None:  # a sweep group polls this monitor now: hand it the next poll
            if delay is not None and not self.done:
                self._schedule(0.0 if self._refresh_requested else delay)  # _scheduler() is the sweep now
            return None
        if self.done:  # stop() may have come while the request was in flight
            return None
        return 0.0 if self._refresh_requested else delay

    def route_polls_through(self, scheduler: PollScheduler) -> None:
        """Batching hook: from now on ``scheduler`` (a :class:`~export_widgets.sweep.DatasetSweep`) decides when
        this monitor polls and fetches for it, answering many tasks with one request; it hands each answer to
        :meth:`record`. A poll already in flight finishes and hands its next poll over (never two at once); a
        monitor made with ``start=False`` still waits for :meth:`start`.
        """
        previous = self._scheduler()
        self._batch = scheduler
        previous.cancel(self)
        if self._poll_lock.acquire(blocking=False):  # nothing in flight: any later run() sees _batch
            self._poll_lock.release()
            if self._started and not self.done:
                scheduler.schedule(self, 0.0)

    def ready_to_poll(self) -> bool:
        """Whether a poll should happen now (for a sweep group, before it fetches): False once the monitor
        has ended; a monitor past its timeout ends here, as :meth:`poll_once` does before fetching."""
        if self.done:
            return False
        if self._timed_out(self._mono()):
            self._finish(MonitorStatus.TIMED_OUT)
            return False
        return True

    def deliver(self) -> None:
        """Run the callbacks held back by :meth:`run_in_slot`, in order."""
        with self._lock:
            pending, self._pending = self._pending, []
        for callback, arg in pending:
            self._call(callback, arg)

    def poll_once(self) -> float | None:
        """Fetch the task once, record it, notify, and return the seconds until the next poll (or None)."""
        if not self.ready_to_poll():
            return None
        now = self._clock()
        started = time.perf_counter()
        answer: ExportTask | Exception
        try:
            answer = self._fetch()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none escapes the thread
            answer = exc
        return self.record(answer, at=now, latency=time.perf_counter() - started)

    def record(self, answer: ExportTask | BaseException, *, latency: float, at: float | None = None,
               fetched_by: str = "get", defer_callbacks: bool = False) -> float | None:
        """Book one fetched answer, exactly as :meth:`poll_once` does after its own fetch: a history row, change
        detection and callbacks, backoff on errors, the end on a terminal state or a permanent error. Returns
        the seconds until the next poll (None when ended).

        ``at`` is the wall-clock time the request was sent (default: now), ``latency`` its duration,
        ``fetched_by`` ``"get"`` (the task's own request) or ``"list"`` (a page shared with other tasks; a failed
        page is recorded as a failed poll of every task it was meant to answer). With ``defer_callbacks`` the
        callbacks wait for :meth:`deliver` (a sweep calls it after giving its request slot back).
        """
        now, mono = (self._clock() if at is None else at), self._mono()
        if defer_callbacks:
            self._deferring.on = True
        try:
            if isinstance(answer, BaseException):
                return self._after_error(now, mono, latency, answer, fetched_by)
            return self._after_answer(now, mono, latency, answer, fetched_by)
        except Exception as exc:  # noqa: BLE001 - recording failed (a full history, a bug): polling cannot go on
            self._fail_internal(exc)
            return None
        finally:
            if defer_callbacks:
                self._deferring.on = False

    def _fetch(self) -> ExportTask:
        return self._source.fetch(self.ref)

    def _after_answer(self, now: float, mono: float, latency: float, task: ExportTask,
                      fetched_by: str = "get") -> float | None:
        self.history.record_task(now, latency, task, fetched_by=fetched_by)
        self._reached()
        previous, self._latest = self._latest, task
        self._consecutive_errors = 0
        self._last_poll_error = None
        changed = change_key(previous) != change_key(task)
        if changed:
            self._last_change_at = now
            self._notify_change(task)
        if task.is_terminal:
            self._finish(MonitorStatus.FINISHED)
            return None
        self._interval = self.backoff.after_change() if changed else self.backoff.after_unchanged(self._interval)
        delay = self._next_delay(mono, self._interval)  # before notifying: views show next_poll_at
        self._notify_update()
        return delay

    def _after_error(self, now: float, mono: float, latency: float, exc: BaseException,
                     fetched_by: str = "get") -> float | None:
        outcome, permanent = _outcome_of(exc)
        message = one_line(exc)
        if outcome is Outcome.NOT_FOUND and self._latest is None and mono - self._started_mono < self.not_found_grace:
            permanent = False  # just created: the vendor's read side may not know the task yet
            message = "just created, not readable yet (the service lags); retrying"
        if outcome == Outcome.INTERNAL:
            log.error("export_widgets: unexpected error polling %s", self.task_id, exc_info=exc)
            message = f"internal error ({type(exc).__name__}): {message}"
        answered = isinstance(exc, APIError)
        code = exc.code if isinstance(exc, APIError) else None
        self.history.record_error(now, latency if answered else None, outcome, code, message, fetched_by=fetched_by)
        self._last_poll_error = message
        if answered:
            self._reached()
        if permanent:
            self._error = exc if isinstance(exc, ExportWidgetsError) else ExportWidgetsError(message)
            self._finish(MonitorStatus.ERROR)
            return None
        self._consecutive_errors += 1
        retry_after = exc.retry_after if isinstance(exc, ExportWidgetsError) else None
        delay = self.backoff.after_error(self._consecutive_errors, retry_after)
        if not self._answered and _cannot_connect(exc):
            return self._not_reached(mono, delay, message)
        delay = self._next_delay(mono, delay, at_least=retry_after)  # before notifying: views show next_poll_at
        self._notify_update()
        return delay

    def _reached(self) -> None:
        self._answered = True
        self._unreachable = self._unreachable_since = None

    def _not_reached(self, mono: float, delay: float, message: str) -> float | None:
        """A connection failure before any answer: say so prominently, and give up after the grace period."""
        if self._unreachable_since is None:
            self._unreachable_since = mono
        waited = mono - self._unreachable_since
        where, reason = _endpoint_of(self.client), _reason_of(message)
        grace = self.unreachable_grace
        if grace is not None and waited >= grace:
            self._unreachable = None
            self._end_with_error(TransportError(
                f"{where} cannot be reached ({reason}); no answer in {waited:.0f} s, so the watch ended: check the "
                "endpoint/region setting, the network or the proxy", provider=self.provider))
            return None
        next_delay = self._next_delay(mono, delay)
        if grace is not None:  # wake up at the end of the grace period to end on time
            next_delay = max(0.0, min(next_delay, self._unreachable_since + grace - mono))
        self._unreachable = f"cannot reach {where}: {reason}; next retry in {next_delay:.0f} s" + (
            f" (gives up after {grace:.0f} s without an answer)" if grace is not None else "")
        self._notify_update()
        return next_delay

    def _next_delay(self, mono: float, delay: float, at_least: float | None = None) -> float:
        delay = self.backoff.jittered(delay, self._rng)
        if at_least:
            delay = max(delay, at_least)
        if self._deadline is not None:  # wake up at the deadline to end on time
            delay = min(delay, max(0.0, self._deadline - mono))
        self._next_poll_at = self._clock() + delay  # wall clock: views show it as a time of day
        return delay

    def _timed_out(self, mono: float) -> bool:
        return self._deadline is not None and mono >= self._deadline

    def _schedule(self, delay: float) -> None:
        try:
            scheduled = self._scheduler().schedule(self, delay)
        except RuntimeError as exc:  # "can't start new thread" for the scheduler: nothing would ever poll
            self._end_with_error(ExportWidgetsError(
                f"polling of {self.task_id} could not start: {one_line(exc)} (too many threads in this process?)"))
            return
        if not scheduled:
            self.fail(PollerClosedError("the poller was shut down"))

    def _fail_internal(self, exc: BaseException) -> None:
        """A bug (ours or the environment's) stopped a poll: end with one clear message instead of hanging."""
        log.error("export_widgets: polling %s stopped by an internal error", self.task_id, exc_info=exc)
        self._end_with_error(ExportWidgetsError(
            f"polling of {self.task_id} stopped by an internal error ({type(exc).__name__}: {one_line(exc)}); "
            "the history so far is kept"))

    def _end_with_error(self, error: ExportWidgetsError) -> None:
        self._last_poll_error = one_line(error)
        with self._lock:
            if self._finished.is_set():
                return
            self._error = error
        self._finish(MonitorStatus.ERROR)

    def _finish(self, status: MonitorStatus) -> None:
        with self._lock:
            if self._finished.is_set():
                return
            self._status = status
            self._next_poll_at = None
            self._finished.set()
        self._scheduler().cancel(self)  # nothing pending may keep an ended monitor (or a thread) alive
        self._notify_update()
        # The last update is out (or held for deliver()): an ended monitor no longer keeps its views alive.
        self._change_callbacks.clear()
        self._update_callbacks.clear()

    def _notify_change(self, task: ExportTask) -> None:
        for callback in list(self._change_callbacks):
            self._notify(callback, task)

    def _notify_update(self) -> None:
        for callback in list(self._update_callbacks):
            self._notify(callback, self)

    def _notify(self, callback: Callable[[Any], None], arg: Any) -> None:
        if getattr(self._deferring, "on", False):
            with self._lock:
                self._pending.append((callback, arg))
        else:
            self._call(callback, arg)

    def _call(self, callback: Callable[[Any], None], arg: Any) -> None:
        """Run one user callback: whatever it raises (``SystemExit`` and ``KeyboardInterrupt`` too: on a polling
        thread they would kill the worker) is logged once per callback and swallowed."""
        try:
            callback(arg)
        except BaseException as exc:  # noqa: B036 - a display bug must not stop the polling
            self._callback_failed(callback, exc)

    def _callback_failed(self, callback: Callable[[Any], None], exc: BaseException | None) -> None:
        if id(callback) in self._failed_callbacks:
            log.debug("export_widgets: callback %r failed again", callback)
            return
        self._failed_callbacks.add(id(callback))
        log.error("export_widgets: callback %r of %s raised %s (logged once; polling goes on)", callback,
                  self.task_id, type(exc).__name__, exc_info=exc)

    def _scheduler(self) -> Poller | PollScheduler:
        return self.poller if self._batch is None else self._batch

    def __repr__(self) -> str:
        task = self._latest
        what = f"{task.state.value} {task.progress:.0f}%" if task and task.progress is not None else \
            (task.state.value if task else "no answer yet")
        return f"<ExportMonitor {self.provider}:{self.task_id} {self._status}, {what}, {len(self.history)} polls>"


def _endpoint_of(client: Any) -> str:
    """``host:port`` of a client's base URL (the port spelled out even when it is the scheme's default)."""
    from urllib.parse import urlsplit

    base = str(getattr(client, "base_url", "") or "")
    try:
        parts = urlsplit(base)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the endpoint"
    return f"{parts.hostname}:{port}" if parts.hostname else "the endpoint"


def _cannot_connect(exc: BaseException) -> bool:
    """True when no connection could be made at all (the HTTP layer tells: refused, unknown host, connect
    timeout), not a connection that was made and then dropped or timed out reading."""
    return isinstance(exc, TransportError) and not exc.connected


def _reason_of(message: str) -> str:
    """The reason part of a transport error's one-line message (what follows "connection failed:" etc.)."""
    for marker in ("connection failed:", "request failed:", "timed out"):
        at = message.find(marker)
        if at >= 0:
            return message[at:].strip()
    return message


_LIVE_MONITORS: weakref.WeakSet[ExportMonitor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child inherits the parent's monitors but not their polling threads: end them (status
    ``error``) so none claims to be running; the child's own watches start on a fresh poller."""
    for monitor in list(_LIVE_MONITORS):
        monitor._lock = threading.Lock()  # a parent thread may have held them at the fork
        monitor._poll_lock = threading.Lock()
        monitor.history._lock = threading.Lock()
        monitor._poller = None
        if not monitor._finished.is_set():
            monitor._error = ExportWidgetsError(
                f"the watch of {monitor.task_id} belongs to the parent process (inherited through os.fork()); "
                "start a new watch in this process")
            monitor._last_poll_error = str(monitor._error)
            monitor._status = MonitorStatus.ERROR
            monitor._finished.set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MonitorGroup:
    """Several monitors watched as one (a dashboard's engine). They share the poller and its budget.

    With ``batch`` (the default), monitors of one client and dataset whose provider can list many tasks at once
    (ModelArts) are polled together by a :class:`~export_widgets.sweep.DatasetSweep`: a few list pages instead
    of one request per task, when that is cheaper. Each monitor keeps its own history, backoff and callbacks.
    """

    def __init__(self, monitors: Iterable[ExportMonitor], *, batch: bool = True) -> None:
        self.monitors: list[ExportMonitor] = list(monitors)
        #: The :class:`~export_widgets.sweep.DatasetSweep` objects polling members together (empty without batch).
        self.sweeps: list[Any] = []
        if batch:
            from .sweep import batch_monitors

            self.sweeps = list(batch_monitors(self.monitors))

    def __len__(self) -> int:
        return len(self.monitors)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.monitors)

    def __getitem__(self, index: int) -> ExportMonitor:
        return self.monitors[index]

    @property
    def done(self) -> bool:
        """True when every monitor has ended."""
        return all(m.done for m in self.monitors)

    @property
    def latest(self) -> list[ExportTask | None]:
        """The newest state of each task, in order."""
        return [m.latest for m in self.monitors]

    def on_update(self, callback: Callable[[ExportMonitor], None]) -> None:
        """Subscribe ``callback(monitor)`` to every member."""
        for monitor in self.monitors:
            monitor.on_update(callback)

    def stop(self) -> None:
        """Stop every member."""
        for monitor in self.monitors:
            monitor.stop()

    def wait(self, timeout: float | None = None, *, stop_on_interrupt: bool = False,
             reraise: bool = False) -> list[ExportTask | None]:
        """Block until all end (or ``timeout``); Ctrl-C stops waiting (and polling, if ``stop_on_interrupt``),
        then goes on to the caller if ``reraise``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.done:
                remaining = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if remaining <= 0:
                    break
                pending = [m for m in self.monitors if not m.done]
                if pending:
                    pending[0]._finished.wait(remaining)
        except KeyboardInterrupt:
            if stop_on_interrupt:
                self.stop()
            if reraise:
                raise
            print("Interrupted: " + ("stopped watching" if stop_on_interrupt else "stopped waiting; still polling"),
                  file=sys.stderr)
        return self.latest

    def history_frame(self, tz: str = "UTC") -> pd.DataFrame:
        """All members' polls in one DataFrame."""
        from . import frames

        return frames.history(self, tz=tz)

    def summary(self) -> pd.DataFrame:
        """One row per task with derived figures (see :func:`export_widgets.frames.dashboard`)."""
        from . import frames

        return frames.dashboard(self)

    def __repr__(self) -> str:
        ended = sum(m.done for m in self.monitors)
        return f"<MonitorGroup {len(self.monitors)} tasks, {ended} ended>"


def watch(client: Any, task_id: str, dataset_id: str | None = None, interval: float | None = None,
          timeout: float | None = None, *, on_done: Callable[[ExportMonitor], None] | None = None,
          store: Store | bool | None = None, **options: Any) -> ExportMonitor:
    """Start monitoring one export task in the background and return its :class:`ExportMonitor` at once.

    The watch is recorded in the watch store (``store``: None for the process-wide one, a
    :class:`~export_widgets.store.Store`, or False for none); ``on_done(monitor)`` is called once when it ends.
    """
    from .persist import follow

    start = options.pop("start", True)
    monitor = ExportMonitor(client, task_id, dataset_id, interval=interval, timeout=timeout, start=False, **options)
    return follow(monitor, store=store, on_done=on_done, start=start)


def watch_many(targets: Sequence[tuple[Any, str] | tuple[Any, str, str | None]], interval: float | None = None,
               timeout: float | None = None, *, batch: bool = True,
               on_done: Callable[[MonitorGroup], None] | None = None, store: Store | bool | None = None,
               **options: Any) -> MonitorGroup:
    """Monitor many tasks, possibly of both providers: ``targets`` are ``(client, task_id[, dataset_id])``.

    ``batch``: poll the tasks of one ModelArts client and dataset together with list pages where that takes
    fewer requests (see :class:`MonitorGroup`); False keeps one request per task. Each watch is recorded as
    :func:`watch` records it; ``on_done(group)`` is called once, when all have ended.
    """
    from .persist import follow, when_all_done

    start = options.pop("start", True)
    monitors = []
    for target in targets:  # every target checked before any polling starts
        client, task_id, *rest = target
        monitors.append(ExportMonitor(client, task_id, rest[0] if rest else None, interval=interval,
                                      timeout=timeout, start=False, **options))
    # recorded first, batched next, started last: a sweep must own its monitors before their first poll
    group = MonitorGroup((follow(monitor, store=store, start=False) for monitor in monitors), batch=batch)
    if start:
        for monitor in group.monitors:
            monitor.start()
    if on_done is not None:
        when_all_done(group.monitors, lambda: on_done(group))
    return group
