"""One shared scheduler for every monitor: a timer heap plus a small worker pool per provider.

Why not a thread per monitor: a dashboard of hundreds of tasks would mean hundreds of threads and an
unbounded burst of requests at the same instant. Here the number of requests in flight per provider is
capped (the *request budget*), due polls queue up instead, and all threads are daemons that exit when idle,
so an idle kernel holds no polling threads and interpreter exit never waits for a request.

Promises the monitors build on:

* a job's callbacks (:meth:`Job.deliver`, optional) run *outside* its request slot, so a slow or raising
  callback never holds the provider's budget; a job that raises anything, ``BaseException`` included, is
  told through :meth:`Job.fail` (optional) and its worker keeps its count right;
* :meth:`Poller.cancel` drops the job's pending run at once (no far-future heap entry keeps it alive);
* a job the poller cannot run any more (it was shut down) is told through ``fail`` instead of being dropped;
* after ``os.fork()`` the child's pollers start empty (no inherited threads, counts or parent's jobs).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = ["DEFAULT_BUDGET", "Job", "Poller", "PollerClosedError", "default_poller"]

log = logging.getLogger(__name__)

#: Requests in flight at once, per provider, unless configured otherwise.
DEFAULT_BUDGET = 8
_IDLE_EXIT_S = 5.0
#: Longest single wait of the scheduler: an absurd delay (inf, 1e12 s) must not overflow Condition.wait.
_MAX_WAIT_S = 3600.0
#: When a worker thread cannot be started (the process is out of threads), its jobs wait this long and retry.
_SPAWN_RETRY_S = 1.0


class Job(Protocol):
    """Something the poller runs: ``run()`` returns the delay until the next run, or None to stop.

    Optional methods the poller uses when present: ``run_in_slot()`` (run without the callbacks) followed by
    ``deliver()`` (the callbacks, outside the request slot), and ``fail(error)`` (the job will not run again).
    """

    provider: str

    def run(self) -> float | None: ...


class PollerClosedError(RuntimeError):
    """The poller was shut down: a job handed to it will not run."""


class Poller:
    """Runs :class:`Job` objects when they are due, with at most ``budget`` running per provider.

    Parameters
    ----------
    budget : int or mapping of provider to int
        Maximum concurrent requests per provider.
    clock : callable
        Monotonic seconds (injectable for tests).
    """

    def __init__(self, budget: int | Mapping[str, int] = DEFAULT_BUDGET, *,
                 clock: Callable[[], float] = time.monotonic, idle_exit: float = _IDLE_EXIT_S) -> None:
        self._budget = budget
        self._clock = clock
        self._idle_exit = idle_exit
        self._reset()
        _ALL_POLLERS.add(self)

    def _reset(self) -> None:
        """Empty state: at creation, and in a forked child (whose threads the parent's counts describe)."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Job]] = []
        self._tokens: dict[int, int] = {}  # id(job) -> seq of its live heap entry (older entries are stale)
        self._seq = itertools.count()
        self._ready: dict[str, deque[Job]] = {}
        self._running: dict[str, int] = {}
        self._idle_workers: dict[str, int] = {}
        self._scheduler: threading.Thread | None = None
        self._closed = False

    def budget_for(self, provider: str) -> int:
        """The request budget of ``provider``."""
        if isinstance(self._budget, int):
            return max(1, self._budget)
        return max(1, self._budget.get(provider, DEFAULT_BUDGET))

    # -- scheduling -------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after :meth:`shutdown`: nothing scheduled runs any more."""
        return self._closed

    def schedule(self, job: Job, delay: float = 0.0) -> bool:
        """Run ``job`` after ``delay`` seconds (replacing any earlier schedule of the same job).

        Returns False, scheduling nothing, when the poller is shut down (the caller must not count on a run).
        """
        with self._cond:
            if self._closed:
                return False
            seq = next(self._seq)
            self._tokens[id(job)] = seq
            heapq.heappush(self._heap, (self._clock() + max(0.0, delay), seq, job))
            self._ensure_scheduler()
            self._cond.notify_all()
            return True

    def cancel(self, job: Job) -> None:
        """Forget ``job``'s pending run at once, heap entry and queue place included (a run already in
        progress finishes)."""
        with self._cond:
            self._tokens.pop(id(job), None)
            if any(entry[2] is job for entry in self._heap):
                self._heap = [entry for entry in self._heap if entry[2] is not job]
                heapq.heapify(self._heap)
            queue = self._ready.get(job.provider)
            if queue and any(queued is job for queued in queue):
                self._ready[job.provider] = deque(queued for queued in queue if queued is not job)
            self._cond.notify_all()  # the scheduler may now go idle and exit

    def pending(self) -> int:
        """Jobs waiting for their time or for a worker."""
        with self._cond:
            return len(self._tokens) + sum(len(q) for q in self._ready.values())

    def threads(self) -> list[threading.Thread]:
        """This poller's live threads (for leak checks)."""
        return [t for t in threading.enumerate() if getattr(t, "_export_widgets_poller", None) is self]

    def shutdown(self, timeout: float = 2.0) -> None:
        """Drop all pending jobs and let the threads exit (waits up to ``timeout`` seconds)."""
        with self._cond:
            self._closed = True
            dropped = [job for _, seq, job in self._heap if self._tokens.get(id(job)) == seq]
            dropped += [job for queue in self._ready.values() for job in queue]
            self._heap.clear()
            self._tokens.clear()
            self._ready.clear()
            self._cond.notify_all()
        for job in dropped:  # they counted on a run: tell them it will not come
            _fail(job, PollerClosedError("the poller was shut down"))
        deadline = time.monotonic() + timeout
        for thread in self.threads():
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- threads ----------------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread._export_widgets_poller = self  # type: ignore[attr-defined]
        thread.start()
        return thread

    def _ensure_scheduler(self) -> None:
        if self._scheduler is None or not self._scheduler.is_alive():
            self._scheduler = self._spawn(self._schedule_loop, "export-widgets-scheduler")

    def _schedule_loop(self) -> None:
        with self._cond:
            idle_since = self._clock()
            while not self._closed:
                now = self._clock()
                while self._heap and self._heap[0][0] <= now:
                    _, seq, job = heapq.heappop(self._heap)
                    if self._tokens.get(id(job)) == seq:
                        del self._tokens[id(job)]
                        self._dispatch(job)
                if self._heap:
                    idle_since = now
                    self._cond.wait(min(self._heap[0][0] - now, _MAX_WAIT_S))
                elif now - idle_since >= self._idle_exit:
                    break
                else:
                    self._cond.wait(self._idle_exit)
            if self._scheduler is threading.current_thread():
                self._scheduler = None

    def _dispatch(self, job: Job) -> None:
        """Queue a due job; start a worker while queued jobs outnumber idle workers and budget is left.

        (Comparing with the queue length, not just "is any worker idle", matters for bursts: sixteen polls
        due at once with one idle worker must still start the other workers.)
        """
        self._ready.setdefault(job.provider, deque()).append(job)
        self._staff(job.provider)
        self._cond.notify_all()

    def _staff(self, provider: str) -> None:
        """Start a worker if queued jobs outnumber idle workers and the budget allows (holding the lock)."""
        queue = self._ready.get(provider)
        workers = self._running.get(provider, 0)
        if queue and len(queue) > self._idle_workers.get(provider, 0) and workers < self.budget_for(provider):
            self._running[provider] = workers + 1
            try:
                self._spawn(self._work_loop, f"export-widgets-{provider}", provider)
            except RuntimeError:  # "can't start new thread": keep the jobs, try again in a moment
                self._running[provider] = workers
                if workers == 0:  # nobody would ever take them from the queue
                    log.warning("export_widgets: cannot start a %s polling thread; retrying in %g s", provider,
                                _SPAWN_RETRY_S)
                    for job in queue:
                        seq = next(self._seq)
                        self._tokens[id(job)] = seq
                        heapq.heappush(self._heap, (self._clock() + _SPAWN_RETRY_S, seq, job))
                    queue.clear()

    def _work_loop(self, provider: str) -> None:
        """One worker: holds one of ``provider``'s budget slots while a job runs; gives it back while the
        job's callbacks run (a slow callback must not hold the budget), then takes a slot again or exits."""
        while True:
            with self._cond:
                queue = self._ready.get(provider)
                deadline = self._clock() + self._idle_exit
                while not self._closed and not queue:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._idle_workers[provider] = self._idle_workers.get(provider, 0) + 1
                    self._cond.wait(remaining)
                    self._idle_workers[provider] -= 1
                    queue = self._ready.get(provider)
                if self._closed or not queue:
                    self._running[provider] -= 1
                    return
                job = queue.popleft()
            try:
                delay = self._run(job)
            finally:  # the slot goes back whatever happened (a BaseException too)
                with self._cond:
                    self._running[provider] -= 1
                    self._staff(provider)
            self._deliver(job)
            if delay is not None and not self.schedule(job, delay):
                _fail(job, PollerClosedError("the poller was shut down"))
            with self._cond:
                if self._closed or self._running.get(provider, 0) >= self.budget_for(provider):
                    return  # another worker took the slot meanwhile
                self._running[provider] = self._running.get(provider, 0) + 1

    @staticmethod
    def _run(job: Job) -> float | None:
        """``job.run_in_slot()`` when the job has it (its callbacks then wait for ``deliver()``), else ``run()``."""
        try:
            step: Callable[[], float | None] = getattr(job, "run_in_slot", job.run)
            return step()
        except BaseException as exc:  # noqa: B036 - a job bug (even SystemExit) must not kill the worker
            log.error("export_widgets: poll job %r raised %s", job, type(exc).__name__, exc_info=exc)
            _fail(job, exc)
            return None

    @staticmethod
    def _deliver(job: Job) -> None:
        deliver = getattr(job, "deliver", None)
        if deliver is None:
            return
        try:
            deliver()
        except BaseException as exc:  # noqa: B036 - deliver() guards each callback; this is a last resort
            log.error("export_widgets: delivering %r raised %s", job, type(exc).__name__, exc_info=exc)


def _fail(job: Job, error: BaseException) -> None:
    """Tell ``job`` it will not run again (jobs without ``fail`` are just dropped)."""
    fail = getattr(job, "fail", None)
    if fail is None:
        return
    try:
        fail(error)
    except BaseException as exc:  # noqa: B036 - never let a job's failure handler take a thread down
        log.error("export_widgets: %r.fail raised %s", job, type(exc).__name__, exc_info=exc)


_ALL_POLLERS: weakref.WeakSet[Poller] = weakref.WeakSet()
_default: Poller | None = None
_default_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: every poller forgets the parent's threads and jobs, and the
    child gets a fresh default poller."""
    global _default, _default_lock
    _default_lock = threading.Lock()
    _default = None
    for poller in list(_ALL_POLLERS):
        poller._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_poller() -> Poller:
    """The process-wide poller that monitors share unless given their own."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Poller()
        return _default
