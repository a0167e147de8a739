"""Start an export and watch it: :func:`start_export`.

Safe under "Run All": the same create request (same provider, endpoint, project, account and body) within
``reuse_window`` seconds reuses the export already running or just finished instead of starting a second one,
and says so in one line; ``new=True`` (``--new``) always starts another; a failed or stopped export is never
reused. This process remembers the exports it started; the watch store remembers them across kernels, so
"Run All" after a restart reuses too: the export's state is read once to check it is still worth reusing, and the
old kernel's unfinished watch of it is continued, history included (as ``--resume`` would). Each start is recorded
in the store as a watch, so ``--resume`` finds it after a restart.

The first polls after a create tolerate "task not found" for ``not_found_grace`` seconds: the vendors' read
side can lag behind the create.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ExportWidgetsError, TaskNotFoundError, TransportError
from .models import TaskState
from .monitor import DEFAULT_STALL_AFTER, MAX_INTERVAL, ExportMonitor, MonitorStatus
from .poller import Poller
from .providers import CreatesExports, ExportRequest, TaskRef, as_task_source
from .redact import one_line
from .render import format_duration

if TYPE_CHECKING:  # the store (sqlite3) is imported when an export starts, not with the package
    from .store import StartRecord, Store

__all__ = ["CREATE_OPTIONS", "DEFAULT_NOT_FOUND_GRACE", "DEFAULT_REUSE_WINDOW", "StartedExport", "forget_started",
           "start_export"]

#: The create options of the magic's ``--start`` and of ``export-widgets start`` (argparse names), which each
#: provider's ``create_arguments`` turns into its create call.
CREATE_OPTIONS = ("dataset", "path", "version", "export_type", "export_format", "sample_state", "bos", "sys_storage")
#: Seconds within which the same create request reuses the export it started.
DEFAULT_REUSE_WINDOW = 900.0
#: Seconds after a create during which "task not found" is retried.
DEFAULT_NOT_FOUND_GRACE = 30.0


class StartedExport(ExportMonitor):
    """The monitor of an export this process started (or reused): ``request``, ``reused`` and ``note``."""

    request: ExportRequest
    #: True when an earlier identical request's export was reused instead of starting one.
    reused: bool = False
    #: The one line to show: "started export X (...)" or "reusing export X started 3m 05s ago; ...".
    note: str = ""
    #: Epoch seconds when the export was created.
    created_at: float = 0.0


@dataclass
class _Entry:
    ref: TaskRef
    created_at: float
    monitor: StartedExport


_started: dict[str, _Entry] = {}
_lock = threading.Lock()


def forget_started() -> None:
    """Forget every export this process started (the next identical request starts a new one)."""
    with _lock:
        _started.clear()


def _identity(client: Any, request: ExportRequest) -> str:
    """Where the request goes and as whom (a digest of the access key, never the key), plus its body."""
    credentials = getattr(client, "credentials", None)
    who = str(getattr(credentials, "access_key", None) or getattr(credentials, "token", None) or "")
    account = hashlib.sha256(who.encode()).hexdigest()[:16]
    where = (getattr(client, "base_url", ""), getattr(client, "project_id", ""), account)
    return f"{where!r}:{request.key}"


def _request_key(identity: str) -> str:
    """What the store keeps of a request's identity: a digest (no path, no account, nothing to read back)."""
    return hashlib.sha256(identity.encode()).hexdigest()


def _still_running_or_done(client: Any, ref: TaskRef) -> bool:
    """Whether a stored start's export is worth reusing: it exists and neither failed nor was stopped."""
    try:
        task = client.fetch(ref)
    except TaskNotFoundError:
        return False  # deleted, or another account's: start a new one
    except ExportWidgetsError:
        return True  # cannot tell now: its watch retries and shows why, better than a second export
    return task.state not in (TaskState.FAILED, TaskState.STOPPED)


def _reusable(entry: _Entry | None, now: float, window: float) -> bool:
    if entry is None or now - entry.created_at > window:
        return False
    monitor = entry.monitor
    if monitor.status is MonitorStatus.ERROR:
        return False
    latest = monitor.latest
    return latest is None or latest.state not in (TaskState.FAILED, TaskState.STOPPED)


def start_export(
    client: Any,
    *args: Any,
    new: bool = False,
    reuse_window: float = DEFAULT_REUSE_WINDOW,
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
    interval: float | None = None,
    max_interval: float = MAX_INTERVAL,
    timeout: float | None = None,
    stall_after: float = DEFAULT_STALL_AFTER,
    poller: Poller | None = None,
    start: bool = True,
    monitor_options: Mapping[str, Any] | None = None,
    notify: Callable[[str], None] | None = None,
    new_hint: str = "pass new=True for another",
    clock: Callable[[], float] = time.time,
    store: Store | bool | None = None,
    **fields: Any,
) -> StartedExport:
    """Create an export task with ``client`` and return the monitor watching it.

    ``args``/``fields`` are the provider's create arguments (``ModelArtsClient.export_request(dataset_id,
    path=..., export_type=...)``, ``QianfanClient.export_request(version_id, bos_path=... | sys_storage=True)``),
    validated before any request. Monitor options (``interval``, ``timeout``, ...) are as :class:`ExportMonitor`;
    ``monitor_options`` passes any other of its keyword arguments.
    ``notify`` receives the one-line note (default: printed to stderr). ``store`` is where starts and watches
    are remembered across kernels (default: the process-wide watch store; False: this process only).
    """
    if not isinstance(client, CreatesExports):
        label = as_task_source(client).label
        raise ConfigError(f"{label} has no create-export operation here")
    if not reuse_window >= 0:
        raise ConfigError(f"reuse_window must be >= 0 seconds, got {reuse_window!r}")
    request = client.export_request(*args, **fields)
    say = notify or (lambda text: print(text, file=sys.stderr))
    identity = _identity(client, request)
    from .persist import store_for

    target = store_for(store)
    if target is not None and target.mode == "off":
        target = None
    options: dict[str, Any] = dict(interval=interval, max_interval=max_interval, timeout=timeout,
                                   stall_after=stall_after, poller=poller, start=start,
                                   not_found_grace=not_found_grace, **(monitor_options or {}))
    now = clock()
    with _lock:
        entry = _started.get(identity)
        if not new and _reusable(entry, now, reuse_window):
            assert entry is not None
            note = (f"reusing export {entry.ref.task_id} started {format_duration(now - entry.created_at)} ago; "
                    f"{new_hint}")
            monitor = entry.monitor
            if monitor.done:  # a fresh watch of the same export, with this call's options
                monitor = _monitor(client, entry.ref, request, entry.created_at, target, options)
                entry.monitor = monitor
            monitor.reused, monitor.note = True, note
            say(note)
            return monitor
    stored = None if new or target is None or not reuse_window > 0 else \
        target.last_start(_request_key(identity), now - reuse_window)
    if stored is not None and target is not None:
        ref = TaskRef(stored.provider, stored.task_id, stored.dataset_id)
        if _still_running_or_done(client, ref):
            return _reuse_stored(client, ref, request, stored, now, target, options, say, new_hint, identity)
    try:
        ref = client.submit_export(request)
    except TransportError as exc:
        raise TransportError(f"{one_line(exc)}; the export may have started anyway: check before starting it again",
                             provider=exc.provider, operation=exc.operation) from None
    if target is not None:
        target.record_start(_request_key(identity), ref.provider, ref.task_id, dataset_id=ref.dataset_id,
                            created_at=now)
    monitor = _monitor(client, ref, request, now, target, options)
    monitor.note = f"started export {ref.task_id} ({request.summary})" if request.summary else \
        f"started export {ref.task_id}"
    with _lock:
        _started[identity] = _Entry(ref, now, monitor)
    say(monitor.note)
    return monitor


def _reuse_stored(client: Any, ref: TaskRef, request: ExportRequest, stored: StartRecord, now: float, store: Store,
                  options: dict[str, Any], say: Callable[[str], None], new_hint: str, identity: str
                  ) -> StartedExport:
    """Reuse an export an earlier kernel started: continue that kernel's watch of it if it was left unfinished."""
    from .persist import claim_newest

    orphans = [w for w in store.unfinished_watches() if (w.provider, w.task_id) == (ref.provider, ref.task_id)]
    continued = claim_newest(store, orphans) if orphans else None  # None: another kernel continues it now
    if continued is not None:
        options = {**options, "history": store.load_history(continued)}
    monitor = _monitor(client, ref, request, stored.created_at, store, options,
                       resumed_from=continued.watch_id if continued is not None else None)
    monitor.reused = True
    monitor.note = (f"reusing export {ref.task_id} started {format_duration(now - stored.created_at)} ago in an "
                    f"earlier session; {new_hint}")
    with _lock:
        _started[identity] = _Entry(ref, stored.created_at, monitor)
    say(monitor.note)
    return monitor


def _monitor(client: Any, ref: TaskRef, request: ExportRequest, created_at: float, store: Store | None,
             options: dict[str, Any], resumed_from: str | None = None) -> StartedExport:
    """The monitor of a started export, recorded in ``store`` before its first poll (so ``--resume`` finds it)."""
    options = dict(options)
    start = bool(options.pop("start", True))
    monitor = StartedExport(client, ref.task_id, ref.dataset_id, start=False, **options)
    monitor.request = request
    monitor.created_at = created_at
    if store is not None:
        from .persist import record

        record(monitor, store, resumed_from=resumed_from)
    if start:
        monitor.start()
    return monitor
