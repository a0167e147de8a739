"""Start an export and watch it: :func:`start_export`.

Safe under "Run All": the same create request (same provider, endpoint, project and body) within
``reuse_window`` seconds reuses the export already running or just finished instead of starting a second one,
and says so in one line; ``new=True`` (``--new``) always starts another. The memory of started exports lives in
this process (a kernel); a failed or stopped export is never reused.

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
from typing import Any

from .errors import ConfigError, TransportError
from .models import TaskState
from .monitor import DEFAULT_STALL_AFTER, MAX_INTERVAL, ExportMonitor, MonitorStatus
from .poller import Poller
from .providers import CreatesExports, ExportRequest, TaskRef, as_task_source
from .redact import one_line
from .render import format_duration

__all__ = ["DEFAULT_NOT_FOUND_GRACE", "DEFAULT_REUSE_WINDOW", "StartedExport", "forget_started", "start_export"]

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
    **fields: Any,
) -> StartedExport:
    """Create an export task with ``client`` and return the monitor watching it.

    ``args``/``fields`` are the provider's create arguments (``ModelArtsClient.export_request(dataset_id,
    path=..., export_type=...)``, ``QianfanClient.export_request(version_id, bos_path=... | sys_storage=True)``),
    validated before any request. Monitor options (``interval``, ``timeout``, ...) are as :class:`ExportMonitor`;
    ``monitor_options`` passes any other of its keyword arguments.
    ``notify`` receives the one-line note (default: printed to stderr).
    """
    if not isinstance(client, CreatesExports):
        label = as_task_source(client).label
        raise ConfigError(f"{label} has no create-export operation here")
    if not reuse_window >= 0:
        raise ConfigError(f"reuse_window must be >= 0 seconds, got {reuse_window!r}")
    request = client.export_request(*args, **fields)
    say = notify or (lambda text: print(text, file=sys.stderr))
    identity = _identity(client, request)
    now = clock()
    with _lock:
        entry = _started.get(identity)
        if not new and _reusable(entry, now, reuse_window):
            assert entry is not None
            note = (f"reusing export {entry.ref.task_id} started {format_duration(now - entry.created_at)} ago; "
                    f"{new_hint}")
            monitor = entry.monitor
            if monitor.done:  # a fresh watch of the same export, with this call's options
                monitor = _monitor(client, entry.ref, request, entry.created_at, interval=interval,
                                   max_interval=max_interval, timeout=timeout, stall_after=stall_after,
                                   poller=poller, start=start, not_found_grace=not_found_grace,
                                   **(monitor_options or {}))
                entry.monitor = monitor
            monitor.reused, monitor.note = True, note
            say(note)
            return monitor
    try:
        ref = client.submit_export(request)
    except TransportError as exc:
        raise TransportError(f"{one_line(exc)}; the export may have started anyway: check before starting it again",
                             provider=exc.provider, operation=exc.operation) from None
    monitor = _monitor(client, ref, request, now, interval=interval, max_interval=max_interval, timeout=timeout,
                       stall_after=stall_after, poller=poller, start=start, not_found_grace=not_found_grace,
                       **(monitor_options or {}))
    monitor.note = f"started export {ref.task_id} ({request.summary})" if request.summary else \
        f"started export {ref.task_id}"
    with _lock:
        _started[identity] = _Entry(ref, now, monitor)
    say(monitor.note)
    return monitor


def _monitor(client: Any, ref: TaskRef, request: ExportRequest, created_at: float, **options: Any) -> StartedExport:
    monitor = StartedExport(client, ref.task_id, ref.dataset_id, **options)
    monitor.request = request
    monitor.created_at = created_at
    return monitor
