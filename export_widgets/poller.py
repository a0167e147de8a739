"""One shared scheduler for every monitor: a timer heap plus a small worker pool per provider.

Why not a thread per monitor: a dashboard of hundreds of tasks would mean hundreds of threads and an
unbounded burst of requests at the same instant. Here the number of requests in flight per provider is
capped (the *request budget*), due polls queue up instead, and all threads are daemons that exit when idle,
so an idle kernel holds no polling threads and interpreter exit never waits for a request.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = ["DEFAULT_BUDGET", "Job", "Poller", "default_poller"]

log = logging.getLogger(__name__)

#: Requests in flight at once, per provider, unless configured otherwise.
DEFAULT_BUDGET = 8
_IDLE_EXIT_S = 5.0
#: Longest single wait of the scheduler: an absurd delay (inf, 1e12 s) must not overflow Condition.wait.
_MAX_WAIT_S = 3600.0


class Job(Protocol):
    """Something the poller runs: ``run()`` returns the delay until the next run, or None to stop."""

    provider: str

    def run(self) -> float | None: ...


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

    def schedule(self, job: Job, delay: float = 0.0) -> None:
        """Run ``job`` after ``delay`` seconds (replacing any earlier schedule of the same job)."""
        with self._cond:
            if self._closed:
                return
            seq = next(self._seq)
            self._tokens[id(job)] = seq
            heapq.heappush(self._heap, (self._clock() + max(0.0, delay), seq, job))
            self._ensure_scheduler()
            self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """Forget ``job``'s pending run (a run already in progress finishes)."""
        with self._cond:
            self._tokens.pop(id(job), None)

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
            self._heap.clear()
            self._tokens.clear()
            self._ready.clear()
            self._cond.notify_all()
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
        provider = job.provider
        queue = self._ready.setdefault(provider, deque())
        queue.append(job)
        workers = self._running.get(provider, 0)
        if len(queue) > self._idle_workers.get(provider, 0) and workers < self.budget_for(provider):
            self._running[provider] = workers + 1
            self._spawn(self._work_loop, f"export-widgets-{provider}", provider)
        self._cond.notify_all()

    def _work_loop(self, provider: str) -> None:
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
            delay = self._run(job)
            if delay is not None:
                self.schedule(job, delay)

    @staticmethod
    def _run(job: Job) -> float | None:
        try:
            return job.run()
        except Exception:  # a job bug must not kill the worker; the job itself records its errors
            log.exception("export_widgets: poll job %r failed", job)
            return None


_default: Poller | None = None
_default_lock = threading.Lock()


def default_poller() -> Poller:
    """The process-wide poller that monitors share unless given their own."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Poller()
        return _default
