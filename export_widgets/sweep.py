"""Sweeps: the due tasks of one dataset answered by a few list pages instead of one request each.

A dashboard of hundreds of ModelArts tasks would otherwise send one status request per task per poll, and the
API gateways throttle exactly that pattern (``APIG.0308``, 429). The list operation answers up to a page of a
dataset's tasks in one request. A :class:`DatasetSweep` is one poller job per (poller, client, dataset): the
monitors of that dataset hand it their scheduling (:meth:`ExportMonitor.route_polls_through`), and each run

1. collects the monitors that are due (or nearly: see ``COALESCE``), ending those past their timeout;
2. reads list pages, one at a time, while the cost model says a page is cheaper than the status requests it
   would save, and stops as soon as every due task has been seen;
3. sends one status request per due task the pages did not show (a race, an older task beyond the pages read,
   or pages not worth reading), as separate poller jobs so they run in parallel within the request budget;
4. hands each monitor its answer through :meth:`ExportMonitor.record` (its own history row, backoff and change
   detection; a failed page is a failed poll of every task it was meant to answer).

The cost model: before page ``p`` it picks the last page ``L`` to read minimising ``(L - p + 1)`` pages plus one
request per due task expected beyond ``L``. A task's page is estimated from where the last page that showed it
had it, shifted by the tasks created since (the list is newest first); a task never seen on a page could be
anywhere, so only reading to the end finds it. Before the dataset's ``total_count`` is known, page 0 is read
when two or more tasks are due (it costs at most one request, once, and tells the total).

The list API has no sort parameter. Its documented example and the simulator list newest first, so watched
(usually recent) tasks are on the first pages; nothing depends on that order being true: a task not found is
fetched by its own request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._bulk import bulk_work, offer_turn
from .providers.base import FetchesMany, ListPage

if TYPE_CHECKING:
    from .models import ExportTask
    from .monitor import ExportMonitor
    from .poller import Job, Poller

__all__ = ["COALESCE", "DatasetSweep", "PollScheduler", "batch_monitors", "plan_last_page"]

log = logging.getLogger(__name__)

#: A monitor due within this fraction of its last interval joins the sweep now (jittered intervals of
#: many monitors would otherwise give one sweep per monitor).
COALESCE = 0.25
#: Seconds a sweep waits after a "poll now" so a burst of them (a dashboard's Refresh all) makes one sweep.
GATHER_S = 0.02
#: A server that keeps answering full pages must not keep one sweep reading forever.
MAX_PAGES_PER_SWEEP = 1000


class PollScheduler(Protocol):
    """What a monitor needs from whatever schedules its polls: a :class:`~export_widgets.poller.Poller`, or a
    :class:`DatasetSweep` that polls it together with others."""

    def schedule(self, job: ExportMonitor, delay: float = 0.0) -> object:
        """Poll ``job`` after ``delay`` seconds (replacing an earlier schedule of it)."""
        ...

    def cancel(self, job: ExportMonitor) -> None:
        """Drop ``job``'s pending poll."""
        ...


def plan_last_page(next_page: int, unseen_pages: Iterable[int | None], total: int | None, page_size: int) -> int:
    """The last page worth reading, given page ``next_page`` is the next one (``next_page - 1`` = read no more).

    ``unseen_pages`` holds the estimated page of each due task not seen yet (None: never seen on a page, so
    only the whole list finds it). Cost = pages read + one status request per task beyond the last page read.
    Ties go to fewer pages (status requests run in parallel and answer only what is needed).
    """
    estimates = list(unseen_pages)
    if not estimates:
        return next_page - 1
    if total is None:  # not listed yet: a first page is worth one request when it may answer two tasks
        return next_page if next_page == 0 and len(estimates) >= 2 else next_page - 1
    last = max(0, math.ceil(total / page_size) - 1)
    if next_page > last:
        return next_page - 1
    pages = sorted(last if e is None else min(e, last) for e in estimates)
    best, best_cost = next_page - 1, len(pages)
    beyond = len(pages)
    i = 0
    for end in range(next_page, last + 1):
        while i < len(pages) and pages[i] <= end:
            i += 1
            beyond -= 1
        cost = (end - next_page + 1) + beyond
        if cost < best_cost:
            best, best_cost = end, cost
        if beyond == 0:
            break
    return best


@dataclass
class _Seen:
    """Where a task was on the list: its row, and the dataset's total then (new tasks push it down)."""

    row: int
    total: int


class DatasetSweep:
    """One poller job that polls the monitors of one client and dataset together (see the module docs).

    Monitors join with :func:`batch_monitors` (``MonitorGroup`` does it); they keep their own history, backoff,
    timeout and callbacks, and :meth:`schedule`/:meth:`cancel` are what their ``start``/``refresh``/``stop`` call.
    """

    def __init__(self, client: FetchesMany, dataset_id: str, poller: Poller, *, provider: str) -> None:
        self.client = client
        self.dataset_id = dataset_id
        self.poller = poller
        self.provider = provider
        self.page_size = int(client.page_size)
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._members: set[ExportMonitor] = set()
        self._due: dict[ExportMonitor, float] = {}  # monotonic time of each member's next poll
        self._last_delay: dict[ExportMonitor, float] = {}
        self._in_flight: set[ExportMonitor] = set()
        self._rerun: set[ExportMonitor] = set()  # refreshed while in flight: poll again at once
        self._running = False
        self._to_deliver: list[ExportMonitor] = []  # answered, callbacks not yet run
        self._wake: float | None = None  # when the poller runs this sweep next (None: not scheduled)
        self._total: int | None = None
        self._seen: dict[str, _Seen] = {}
        #: Requests sent by this sweep so far, by kind ("list", "get"): for benchmarks and the curious.
        self.requests = {"list": 0, "get": 0}

    # -- what monitors call -----------------------------------------------------------------------------

    def schedule(self, job: ExportMonitor, delay: float = 0.0) -> bool:
        """Poll ``job`` with the next sweep at or after ``delay`` seconds. False when the poller is shut down."""
        now = time.monotonic()
        with self._lock:
            self._members.add(job)
            if job in self._in_flight:
                if delay <= 0:
                    self._rerun.add(job)
                return not self.poller_closed
            self._due[job] = now + max(0.0, delay)
            return self._wake_by(now + (GATHER_S if delay <= 0 else delay), now)

    def cancel(self, job: ExportMonitor) -> None:
        """Forget ``job`` (it stopped or ended); an answer already on its way is still recorded."""
        with self._lock:
            self._members.discard(job)
            self._due.pop(job, None)
            self._last_delay.pop(job, None)
            self._rerun.discard(job)
            empty = not self._members
        if empty:
            _forget(self)

    @property
    def poller_closed(self) -> bool:
        """Whether the poller was shut down (nothing scheduled on it runs)."""
        return bool(getattr(self.poller, "_closed", False))

    def __len__(self) -> int:
        with self._lock:
            return len(self._members)

    # -- the poller job ---------------------------------------------------------------------------------

    def run(self) -> None:
        """One sweep, callbacks included (for pollers that do not call :meth:`deliver`)."""
        try:
            self.run_in_slot()
        finally:
            self.deliver()

    def deliver(self) -> None:
        """Run the members' callbacks held back by the last sweep (the poller calls this outside the slot)."""
        with self._lock:
            answered, self._to_deliver = self._to_deliver, []
        for monitor in answered:
            monitor.deliver()

    def run_in_slot(self) -> None:
        """One sweep; callbacks wait for :meth:`deliver`. It schedules its next run itself, at the earliest
        member's due time, so a member made due while it runs (a refresh) is never lost to the poller's own
        rescheduling."""
        if not self._run_lock.acquire(blocking=False):
            return  # a sweep is running: it collects what is due under the lock, then schedules itself
        due: list[ExportMonitor] = []
        try:
            now = time.monotonic()
            with self._lock:
                self._running = True
                self._wake = None
                due = [m for m, at in self._due.items() if at <= now + COALESCE * self._last_delay.get(m, 0.0)]
                for monitor in due:
                    del self._due[monitor]
                self._in_flight.update(due)
            self._sweep(due)
        except Exception as exc:  # noqa: BLE001 - a bug here must not leave monitors without a poll
            log.error("export_widgets: sweep of dataset %s failed", self.dataset_id, exc_info=exc)
            for monitor in due:
                if monitor in self._in_flight:
                    self._answered(monitor, self._record(monitor, exc, 0.0, "list"))
        finally:
            self._run_lock.release()
            with self._lock:
                self._running = False
                if self._due:
                    self._wake_by(min(self._due.values()), time.monotonic())

    def fail(self, error: BaseException) -> None:
        """Poller hook: this sweep will not run again (the poller shut down): tell every member."""
        with self._lock:
            members = list(self._members)
        for monitor in members:
            fail = getattr(monitor, "fail", None)
            if fail is not None:
                fail(error)

    # -- one sweep --------------------------------------------------------------------------------------

    def _sweep(self, due: list[ExportMonitor]) -> None:
        unseen: dict[str, list[ExportMonitor]] = {}
        for monitor in due:
            if monitor.ready_to_poll():
                unseen.setdefault(monitor.task_id, []).append(monitor)
            else:
                self._answered(monitor, None)
        page = 0
        while unseen and page < MAX_PAGES_PER_SWEEP:
            if plan_last_page(page, map(self._estimated_page, unseen), self._total, self.page_size) < page:
                break
            started = time.perf_counter()
            try:
                listed = self.client.list_page(self.dataset_id, page)
            except Exception as exc:  # noqa: BLE001 - a failed page is a failed poll of every task it was for
                latency = time.perf_counter() - started
                self._count("list")
                for monitors in unseen.values():
                    for monitor in monitors:
                        self._answered(monitor, self._record(monitor, exc, latency, "list"))
                return
            latency = time.perf_counter() - started
            self._count("list")
            self._learn(listed)
            with bulk_work():  # a page books up to 100 answers in one go
                for booked, task in enumerate(listed.tasks, 1):
                    for monitor in unseen.pop(task.task_id, ()):
                        self._answered(monitor, self._record(monitor, task, latency, "list"))
                    offer_turn(booked)
            if _ends_list(listed, self.page_size):
                break
            page += 1
        rest = [monitor for monitors in unseen.values() for monitor in monitors]
        for monitor in rest[:-1]:  # in parallel, within the provider's request budget
            if not _schedule_on(self.poller, _Get(self, monitor, self.provider), 0.0):
                self._answered(monitor, None)
        if rest:
            self._get(rest[-1])  # the last one here: saves a hand-off

    def _get(self, monitor: ExportMonitor) -> None:
        """One status request for ``monitor``'s task (what its own poll would send), booked as its answer."""
        if not monitor.ready_to_poll():
            self._answered(monitor, None)
            return
        started = time.perf_counter()
        answer: ExportTask | Exception
        try:
            answer = self.client.fetch(monitor.ref)
        except Exception as exc:  # noqa: BLE001 - every failure is the task's failed poll
            answer = exc
        self._count("get")
        self._answered(monitor, self._record(monitor, answer, time.perf_counter() - started, "get"))

    def _record(self, monitor: ExportMonitor, answer: ExportTask | BaseException, latency: float,
                fetched_by: str) -> float | None:
        delay = monitor.record(answer, latency=latency, fetched_by=fetched_by, defer_callbacks=True)
        with self._lock:
            self._to_deliver.append(monitor)
        return delay

    def _count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def _estimated_page(self, task_id: str) -> int | None:
        seen = self._seen.get(task_id)
        if seen is None or self._total is None:
            return None
        return (seen.row + max(0, self._total - seen.total)) // self.page_size

    def _learn(self, listed: ListPage) -> None:
        if listed.total_count is not None:
            self._total = listed.total_count
        elif self._total is None or self._total < (listed.page + 1) * self.page_size:
            self._total = listed.page * self.page_size + len(listed.tasks)  # a lower bound is better than none
        total = self._total
        first = listed.page * self.page_size
        for i, task in enumerate(listed.tasks):
            self._seen[task.task_id] = _Seen(first + i, total)

    def _answered(self, monitor: ExportMonitor, delay: float | None) -> None:
        """Book a member's next poll after its answer (None: it ended)."""
        now = time.monotonic()
        with self._lock:
            self._in_flight.discard(monitor)
            if monitor not in self._members:
                return
            if delay is None or monitor.done:
                self._members.discard(monitor)
                self._rerun.discard(monitor)
                empty = not self._members
            else:
                empty = False
                if monitor in self._rerun:
                    self._rerun.discard(monitor)
                    delay = 0.0
                else:
                    self._last_delay[monitor] = delay
                self._due[monitor] = now + delay
                self._wake_by(now + delay, now)
        if empty:
            _forget(self)

    def _wake_by(self, at: float, now: float) -> bool:
        """Make the poller run this sweep by ``at`` (holding the lock). A running sweep reschedules itself."""
        if self._running or (self._wake is not None and self._wake <= at):
            return not self.poller_closed
        self._wake = at
        return _schedule_on(self.poller, self, max(0.0, at - now))

    def __repr__(self) -> str:
        return f"<DatasetSweep {self.provider}:{self.dataset_id} {len(self)} tasks, requests {self.requests}>"


@dataclass(eq=False)
class _Get:
    """A status request for one task of a sweep, as its own poller job (so several run in parallel)."""

    sweep: DatasetSweep
    monitor: ExportMonitor
    provider: str

    def run(self) -> None:
        try:
            self.run_in_slot()
        finally:
            self.deliver()

    def run_in_slot(self) -> None:
        self.sweep._get(self.monitor)

    def deliver(self) -> None:
        self.monitor.deliver()

    def fail(self, error: BaseException) -> None:
        self.sweep._answered(self.monitor, None)
        fail = getattr(self.monitor, "fail", None)
        if fail is not None:
            fail(error)


def _schedule_on(poller: Poller, job: Job, delay: float) -> bool:
    """``poller.schedule`` as a bool (False: the poller is shut down; older pollers return None for "done")."""
    scheduled: Any = cast(Any, poller).schedule(job, delay)  # a Poller before it reported shut-downs: None
    return scheduled is not False and not getattr(poller, "_closed", False)


def _ends_list(listed: ListPage, page_size: int) -> bool:
    total = listed.total_count
    return len(listed.tasks) < page_size or (total is not None and (listed.page + 1) * page_size >= total)


_sweeps: dict[tuple[int, int, str], DatasetSweep] = {}
_sweeps_lock = threading.Lock()


def _forget(sweep: DatasetSweep) -> None:
    with _sweeps_lock:
        for key, found in list(_sweeps.items()):
            if found is sweep and not len(sweep):
                del _sweeps[key]


def batch_monitors(monitors: Iterable[ExportMonitor]) -> list[DatasetSweep]:
    """Route the monitors whose client can answer many tasks at once (:class:`FetchesMany`) through the
    :class:`DatasetSweep` of their poller, client and dataset; the others keep polling on their own.

    A dataset gets a sweep when two or more of its tasks are watched (here, or by an earlier call whose sweep
    is still running); a lone task keeps its own request, exactly as without batching. Returns the sweeps used.
    """
    candidates: dict[tuple[int, int, str], list[ExportMonitor]] = {}
    for monitor in monitors:
        client, dataset = monitor.client, monitor.ref.dataset_id
        if monitor.done or dataset is None or not isinstance(client, FetchesMany):
            continue
        candidates.setdefault((id(monitor.poller), id(client), dataset), []).append(monitor)
    used: list[DatasetSweep] = []
    for key, members in candidates.items():
        first = members[0]
        with _sweeps_lock:
            sweep = _sweeps.get(key)
            if sweep is None or sweep.poller is not first.poller or sweep.client is not first.client:
                if len(members) < 2:
                    continue
                sweep = _sweeps[key] = DatasetSweep(first.client, key[2], first.poller, provider=first.provider)
            with sweep._lock:
                sweep._members.update(members)  # members before they are routed: the sweep is not forgotten
        for monitor in members:
            monitor.route_polls_through(sweep)
        used.append(sweep)
    return used


def sweeps() -> list[DatasetSweep]:
    """The sweeps with members now (for diagnostics and benchmarks)."""
    with _sweeps_lock:
        return list(_sweeps.values())
