"""Watches that outlive the kernel: record every watch, resume the orphaned ones, query history, notify at the end.

The glue between the monitors and :mod:`export_widgets.store` / :mod:`export_widgets.notify`, so that
:func:`~export_widgets.monitor.watch`, :func:`~export_widgets.monitor.watch_many`, the ``%export_status`` magic
and the ``export-widgets`` command record, resume and notify the same way:

* :func:`follow` records a monitor in the store (on by default: the process-wide
  :func:`~export_widgets.store.default_store`) before its first poll, and calls ``on_done`` once when it ends.
* :func:`resume` reattaches to the watches whose process has gone (a kernel restart, a crash): one monitor per
  task, its client built by the provider factory from the stored endpoint and project (credentials from the
  environment as usual), its poll history loaded, so ETA and rate go on.
* :func:`history_frame` gives the stored watches, or every poll of some tasks, as DataFrames across sessions.
* :func:`notify` sends webhook notifications when a watch, or a whole dashboard, ends (and optionally stalls).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ExportWidgetsError
from .models import TaskState
from .monitor import ExportMonitor
from .providers import ClientSettings, ProviderClient, make_client
from .redact import one_line
from .store import Store, WatchRecord, default_store

if TYPE_CHECKING:
    import pandas as pd

    from .notify import Notifier

__all__ = ["ResumeResult", "client_for", "follow", "history_frame", "notify", "record", "resume", "when_all_done",
           "when_done"]

log = logging.getLogger(__name__)


# -- recording --------------------------------------------------------------------------------------------------

def store_for(store: Store | bool | None) -> Store | None:
    """The store to record in: None or True mean the process-wide one, False none."""
    if store is None or store is True:
        return default_store()
    if store is False:
        return None
    if isinstance(store, Store):
        return store
    raise TypeError(f"store= takes a Store, True/None (the default store) or False (none), not {type(store).__name__}")


def record(monitor: ExportMonitor, store: Store | bool | None = None, *, resumed_from: str | None = None
           ) -> str | None:
    """Record ``monitor`` (best before its first poll, so every poll is written); returns the watch id, or None
    when the store is off. A store that cannot record never breaks the watch."""
    target = store_for(store)
    if target is None or target.mode == "off":
        return None
    try:
        return target.attach(monitor, resumed_from=resumed_from)
    except Exception:  # noqa: BLE001 - the store promises not to raise; if it ever did, the watch still goes on
        log.warning("export_widgets: could not record the watch of %s in the watch store", monitor.task_id,
                    exc_info=True)
        return None


def when_done(monitor: ExportMonitor, callback: Callable[[ExportMonitor], None]) -> None:
    """Call ``callback(monitor)`` once, from the thread that ended it, when ``monitor`` ends (at once if it has)."""
    fired = threading.Event()
    lock = threading.Lock()

    def on_update(m: ExportMonitor) -> None:
        if not m.done or fired.is_set():
            return
        with lock:
            if fired.is_set():
                return
            fired.set()
        callback(m)

    monitor.on_update(on_update)
    on_update(monitor)


def when_all_done(monitors: Iterable[ExportMonitor], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once, when every one of ``monitors`` has ended (at once if they have)."""
    members = list(monitors)
    fired = threading.Event()
    lock = threading.Lock()

    def on_update(_: ExportMonitor | None) -> None:
        if fired.is_set() or not all(m.done for m in members):
            return
        with lock:
            if fired.is_set():
                return
            fired.set()
        callback()

    for member in members:
        member.on_update(on_update)
    on_update(None)


def follow(monitor: ExportMonitor, *, store: Store | bool | None = None,
           on_done: Callable[[ExportMonitor], None] | None = None, start: bool = True) -> ExportMonitor:
    """Record ``monitor``, subscribe ``on_done``, then start polling (``start``): what :func:`watch` does."""
    if on_done is not None and not callable(on_done):
        raise TypeError(f"on_done must be callable, e.g. on_done=print, not {type(on_done).__name__}")
    record(monitor, store)
    if on_done is not None:
        when_done(monitor, on_done)
    if start:
        monitor.start()
    return monitor


# -- resuming ---------------------------------------------------------------------------------------------------

@dataclass
class ResumeResult:
    """What :func:`resume` did: the monitors it made (not started) and one line per watch it could not resume."""

    monitors: list[ExportMonitor] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed_from: list[WatchRecord] = field(default_factory=list)


def _newest(watches: Sequence[WatchRecord]) -> WatchRecord:
    return max(watches, key=lambda w: (w.last_polled_at or w.started_at, w.started_at))


def claim_newest(store: Store, watches: Sequence[WatchRecord]) -> WatchRecord | None:
    """Claim the newest of one task's orphaned ``watches`` to continue it (the others are marked ``superseded``);
    None when another process claimed it first."""
    newest = _newest(watches)
    if not store.claim(newest):
        return None
    for other in watches:
        if other is not newest:
            store.claim(other, "superseded")
    return newest


def client_for(watch: WatchRecord, *, environ: Mapping[str, str] | None = None, timezone: str | None = None,
               request_timeout: float | None = None) -> ProviderClient:
    """A client for a stored watch: the provider factory with its endpoint and project; credentials from the
    environment (the store never holds any)."""
    return make_client(watch.provider, ClientSettings(endpoint=watch.endpoint, project_id=watch.project_id,
                                                      timezone=timezone, request_timeout=request_timeout,
                                                      environ=environ))


def resume(store: Store | None = None, task_ids: Sequence[str] = (), *, environ: Mapping[str, str] | None = None,
           timezone: str | None = None, request_timeout: float | None = None,
           clients: dict[tuple[Any, ...], ProviderClient] | None = None, **monitor_options: Any) -> ResumeResult:
    """Reattach to the watches that never ended and whose process has gone (all, or those of ``task_ids``).

    One monitor per task (several orphaned watches of one task: the newest is continued, the others are marked
    ``superseded``), with the history of the watch it continues and of the watches that one resumed, recorded
    as a new watch linked to the old one. Each old watch is claimed atomically, so two kernels resuming at once
    never both continue it. A watch whose client cannot be made (no credentials in this environment) is left
    for a later resume and named in :attr:`ResumeResult.skipped`. The monitors are returned unstarted.
    ``monitor_options`` go to :class:`~export_widgets.monitor.ExportMonitor` (interval, timeout, ...).
    """
    store = default_store() if store is None else store
    wanted = {str(t) for t in task_ids}
    exists = store.mode != "off" and (store.path is None or store.path.exists())  # a query would create the file
    orphans = [w for w in store.unfinished_watches() if not wanted or w.task_id in wanted] if exists else []
    result = ResumeResult()
    if wanted:
        found = {w.task_id for w in orphans}
        running = {w.task_id: w for w in store.unfinished_watches(include_running=True)} if exists else {}
        for task_id in sorted(wanted - found):
            other = running.get(task_id)
            if other is not None and other.owner_alive:
                result.skipped.append(f"{task_id}: still watched by a running process (pid {other.pid})")
            elif other is not None:
                result.skipped.append(f"{task_id}: its watch ran on another machine ({other.hostname}); resume "
                                      "it there")
            else:
                result.skipped.append(f"{task_id}: no unfinished watch of this task in the store")
    by_task: dict[tuple[Any, ...], list[WatchRecord]] = {}
    for watch in orphans:  # oldest first
        by_task.setdefault((watch.provider, watch.task_id, watch.dataset_id, watch.endpoint, watch.project_id),
                           []).append(watch)
    clients = {} if clients is None else clients
    for watches in by_task.values():
        newest = _newest(watches)
        client_key = (newest.provider, newest.endpoint, newest.project_id, timezone, request_timeout)
        try:
            client = clients.get(client_key) or client_for(newest, environ=environ, timezone=timezone,
                                                           request_timeout=request_timeout)
            clients[client_key] = client
            history = store.load_history(newest)
            monitor = ExportMonitor(client, newest.task_id, newest.dataset_id, start=False, history=history,
                                    **monitor_options)
        except ExportWidgetsError as exc:
            result.skipped.append(f"{newest.task_id}: cannot resume ({one_line(exc)})")
            continue
        if claim_newest(store, watches) is None:
            result.skipped.append(f"{newest.task_id}: already resumed by another process")
            continue
        record(monitor, store, resumed_from=newest.watch_id)
        result.monitors.append(monitor)
        result.resumed_from.append(newest)
    return result


# -- history ----------------------------------------------------------------------------------------------------

def history_frame(store: Store | None = None, task_ids: Sequence[str] = (), *, provider: str | None = None,
                  tz: str = "UTC") -> pd.DataFrame:
    """Past watches (no ``task_ids``: :data:`~export_widgets.store.WATCH_COLUMNS`, one row per watch), or every
    poll of the given tasks across sessions (the columns of :func:`export_widgets.frames.history` plus
    ``watch_id``), oldest first."""
    import pandas as pd

    store = default_store() if store is None else store
    if not task_ids:
        return store.watches(provider=provider, tz=tz)
    parts = [store.polls(provider=provider, task_id=task_id, tz=tz) for task_id in dict.fromkeys(task_ids)]
    if len(parts) == 1:
        return parts[0]
    frame: pd.DataFrame = pd.concat(parts, ignore_index=True).sort_values("polled_at", kind="stable",
                                                                          ignore_index=True)
    for column in ("provider", "task_id", "error_code", "raw_status"):  # concat widens unequal categories
        frame[column] = frame[column].astype(object).astype("category")
    return frame


# -- notifications ----------------------------------------------------------------------------------------------

def notify(monitors: ExportMonitor | Sequence[ExportMonitor], notifier: Notifier, *, stalled: bool = False) -> None:
    """Notify through ``notifier`` when the watch ends; several monitors (a dashboard) send one summary once all
    have ended. ``stalled``: also once for each task that stops moving while RUNNING (``stall_after``)."""
    from .notify import stalled_notification

    members = [monitors] if isinstance(monitors, ExportMonitor) else list(monitors)
    if len(members) == 1:
        notifier.watch(members[0], stalled=stalled)
        return
    notifier.watch_group(members)
    if not stalled:
        return
    for member in members:
        _on_first_stall(member, lambda m: notifier.send(stalled_notification(m)))


def _on_first_stall(monitor: ExportMonitor, callback: Callable[[ExportMonitor], object]) -> None:
    fired = threading.Event()

    def on_update(m: ExportMonitor) -> None:
        task = m.latest
        if fired.is_set() or m.done or task is None or task.state is not TaskState.RUNNING:
            return
        if m.figures().stalled:  # only for RUNNING tasks and only until it fires: tens of µs a poll
            fired.set()
            callback(m)

    monitor.on_update(on_update)
