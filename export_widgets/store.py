"""The watch store: every watch and every poll in one embedded SQLite file, so history outlives the kernel.

Where it lives
--------------
One file, ``store.sqlite3``, in the user's state directory: ``$XDG_STATE_HOME/export_widgets/`` (default
``~/.local/state/export_widgets/``) on Linux, ``~/Library/Application Support/export_widgets/`` on macOS,
``%LOCALAPPDATA%\\export_widgets\\`` on Windows. ``EXPORT_WIDGETS_STORE`` overrides it with a file (or directory)
path; ``off`` records nothing, ``:memory:`` records into an in-process database that dies with the process.

What it holds
-------------
``watches``: one row per watch (provider, the endpoint's scheme, host and base path, project/dataset/task ids,
started and ended times, how it ended, the last task state and error, and the owning process as pid + hostname +
process start time, so a later process can tell that the watch's kernel has gone). ``polls``: one row per poll,
keyed by (watch, poll number), with the columns of :func:`export_widgets.frames.history` (provider and task id come
from the watch); :meth:`Store.polls` gives them back as that frame plus ``watch_id``. ``starts``: the exports
started through :func:`~export_widgets.start.start_export` (a digest of the create request, provider, task and
dataset ids, when), so an identical start in a new kernel reuses the export. Every text passes through
:func:`export_widgets.redact.redact_text`, URLs in texts are cut to their host: no credential or signed URL is written.

Concurrency and cost
--------------------
WAL mode, ``busy_timeout`` and short ``BEGIN IMMEDIATE`` transactions: several kernels and the CLI write and read
the same file at once. Writes never happen on the caller's thread: :meth:`Store.record_poll` appends to a queue
(a few microseconds) and one daemon thread writes the queue in batches, every ``batch_interval`` seconds or
``batch_rows`` rows, in one transaction each. :meth:`Store.flush` waits for everything queued so far; queries
flush first, so a process always reads its own writes. At interpreter exit (a kernel shut down or restarted)
every store writes what it still holds, for up to ``EXIT_FLUSH_TIMEOUT`` seconds; a killed process loses at most
its last ``batch_interval``. Measured by ``python -m bench --only store``: about 15-35 µs per poll amortised,
the background writing included, on a busy 2-core machine (the budget is 50 µs), of which the polling thread
itself pays a few µs; the N=1000 dashboard sweep takes the same time with the store on, within the noise.

Faults
------
A corrupt, read-only, full or persistently locked file (``lock_patience`` batches in a row each waited
``busy_timeout`` for it) never raises into the caller: the store logs one
``logging.WARNING`` line and goes on in an in-memory database (this session's watches and polls stay queryable; the
file is left untouched). The schema carries ``PRAGMA user_version`` and is migrated forward on open
(:data:`SCHEMA_VERSION`, :data:`MIGRATIONS`); a file from a newer version is not touched either.

How the monitor, magic and CLI use it
-------------------------------------
::

    store = default_store()                         # process-wide, from EXPORT_WIDGETS_STORE / the default path
    set_default_store(location)                     # %config ExportStatus.store = "off" | ":memory:" | a path
    watch_id = store.attach(monitor)                # records the watch and, via monitor.on_update, every poll
                                                    # and the end (status, last state, last error)
    store.watches(); store.polls(task_id="T")       # DataFrames across sessions (``--history``)

    for old in store.unfinished_watches():          # ``--resume``: watches whose process has gone
        if store.claim(old.watch_id):               # atomically marks it ended as "resumed" (one resumer wins)
            history = store.load_history(old)       # ETA and rate continue from the old polls
            monitor = ExportMonitor(client_for(old), old.task_id, old.dataset_id, start=False, history=history)
            store.attach(monitor, resumed_from=old.watch_id)
            monitor.start()

:mod:`export_widgets.persist` does exactly this for ``watch()``, the magic and the CLI (``follow``, ``resume``).

Without a monitor: :meth:`Store.begin_watch`, :meth:`Store.record_poll` (a
:class:`~export_widgets.history.PollRecord`) and :meth:`Store.end_watch`.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import re
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._owner import HOSTNAME as _HOSTNAME
from ._owner import PROCESS_STARTED as _PROCESS_STARTED
from ._owner import owner_alive
from .history import FETCHED_BY as _FETCHED_BY
from .history import History, Outcome, PollRecord
from .models import ExportTask, TaskState
from .redact import redact_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MIGRATIONS",
    "POLL_COLUMNS",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "StartRecord",
    "Store",
    "WATCH_COLUMNS",
    "WatchRecord",
    "default_path",
    "default_store",
    "resolve_location",
    "set_default_store",
]

log = logging.getLogger(__name__)

STORE_ENV = "EXPORT_WIDGETS_STORE"
STORE_FILENAME = "store.sqlite3"
OFF = "off"
MEMORY = ":memory:"

#: The history frame's columns (:data:`export_widgets.frames.HISTORY_COLUMNS`) plus the watch each poll belongs to.
POLL_COLUMNS = (
    "provider", "task_id", "polled_at", "latency_ms", "outcome", "error_code", "error_message", "state",
    "raw_status", "progress", "finished_samples", "total_samples", "size_mb", "fetched_by", "watch_id",
)
WATCH_COLUMNS = (
    "watch_id", "provider", "task_id", "dataset_id", "project_id", "endpoint_host", "started_at", "ended_at",
    "end_reason", "last_state", "last_polled_at", "last_error", "polls", "pid", "hostname", "process_started_at",
    "owner_alive", "resumed_from",
)

# -- schema ---------------------------------------------------------------------------------------------------

#: The first schema (kept verbatim: a fresh file is created as v1 and migrated, so fresh and migrated files match).
SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS watches (
        watch_id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        endpoint_host TEXT,
        project_id TEXT,
        dataset_id TEXT,
        task_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        end_reason TEXT,
        last_state TEXT,
        last_polled_at REAL,
        pid INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS polls (
        watch_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        polled_at REAL NOT NULL,
        latency_ms REAL,
        outcome TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        state TEXT,
        raw_status TEXT,
        progress REAL,
        finished_samples INTEGER,
        total_samples INTEGER,
        size_mb REAL
    )""",
    "CREATE INDEX IF NOT EXISTS polls_watch ON polls (watch_id)",
)

_POLL_VALUES = ("polled_at, latency_ms, outcome, error_code, error_message, state, raw_status, progress, "
                "finished_samples, total_samples, size_mb")

#: ``MIGRATIONS[v]`` takes a file from version ``v`` to ``v + 1``.
MIGRATIONS: Mapping[int, Sequence[str]] = {
    # v2: watches get a small integer key and polls are keyed by (watch, poll number) in a WITHOUT ROWID table:
    # one b-tree insert of a few bytes per poll instead of a 32-character id in the row and in two indexes, and a
    # retried batch can never write a row twice. Watches also record the owning process (so a later process can
    # tell the kernel has gone), the last error, the resume chain and the endpoint's scheme.
    1: (
        """CREATE TABLE watches_v2 (
            wkey INTEGER PRIMARY KEY,
            watch_id TEXT NOT NULL UNIQUE,
            provider TEXT NOT NULL,
            task_id TEXT NOT NULL,
            dataset_id TEXT,
            project_id TEXT,
            endpoint_host TEXT,
            endpoint_scheme TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            end_reason TEXT,
            last_state TEXT,
            last_polled_at REAL,
            last_error TEXT,
            pid INTEGER,
            hostname TEXT,
            process_started_at REAL,
            resumed_from TEXT
        )""",
        "INSERT INTO watches_v2 (watch_id, provider, task_id, dataset_id, project_id, endpoint_host, started_at, "
        "ended_at, end_reason, last_state, last_polled_at, pid) SELECT watch_id, provider, task_id, dataset_id, "
        "project_id, endpoint_host, started_at, ended_at, end_reason, last_state, last_polled_at, pid FROM watches "
        "ORDER BY started_at",
        # v1 had no link from polls to watches: a poll of an unknown watch gets a watch made from its polls
        "INSERT OR IGNORE INTO watches_v2 (watch_id, provider, task_id, started_at) SELECT watch_id, provider, "
        "task_id, min(polled_at) FROM polls GROUP BY watch_id",
        """CREATE TABLE polls_v2 (
            wkey INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            polled_at REAL NOT NULL,
            latency_ms REAL,
            outcome TEXT NOT NULL,
            error_code TEXT,
            error_message TEXT,
            state TEXT,
            raw_status TEXT,
            progress REAL,
            finished_samples INTEGER,
            total_samples INTEGER,
            size_mb REAL,
            PRIMARY KEY (wkey, seq)
        ) WITHOUT ROWID""",
        f"INSERT INTO polls_v2 (wkey, seq, {_POLL_VALUES}) SELECT w.wkey, p.rowid, p.polled_at, p.latency_ms, "
        "p.outcome, p.error_code, p.error_message, p.state, p.raw_status, p.progress, p.finished_samples, "
        "p.total_samples, p.size_mb FROM polls p JOIN watches_v2 w ON w.watch_id = p.watch_id",
        "DROP TABLE polls",
        "DROP TABLE watches",
        "ALTER TABLE watches_v2 RENAME TO watches",
        "ALTER TABLE polls_v2 RENAME TO polls",
        "CREATE INDEX watches_task ON watches (provider, task_id)",
        "CREATE INDEX watches_open ON watches (ended_at)",
    ),
    # v3: how each poll was answered, its own request or a list page (NULL in older rows: its own request)
    2: ("ALTER TABLE polls ADD COLUMN fetched_by TEXT",),
    # v4: the exports this user started, by a digest of the create request, so a re-run start in a new kernel
    # (Run All after a restart) reuses the export instead of starting a second one; and the endpoint's base path
    # (a gateway's https://host/prefix), so a resumed watch asks the same base URL
    3: (
        "ALTER TABLE watches ADD COLUMN endpoint_path TEXT",
        """CREATE TABLE starts (
            request_key TEXT NOT NULL,
            provider TEXT NOT NULL,
            task_id TEXT NOT NULL,
            dataset_id TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX starts_key ON starts (request_key, created_at)",
    ),
}
SCHEMA_VERSION = 4

_INSERT_WATCH = (
    "INSERT OR IGNORE INTO watches (watch_id, provider, endpoint_host, endpoint_scheme, project_id, dataset_id, "
    "task_id, started_at, pid, hostname, process_started_at, resumed_from, endpoint_path) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
# OR IGNORE + PRIMARY KEY (wkey, seq): a batch retried after a failed COMMIT can never write a row twice.
_INSERT_POLL = (f"INSERT OR IGNORE INTO polls (wkey, seq, {_POLL_VALUES}, fetched_by) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_UPDATE_LAST = (
    "UPDATE watches SET last_state = coalesce(?, last_state), last_polled_at = max(coalesce(last_polled_at, 0), ?) "
    "WHERE wkey = ?"
)
_END_WATCH = (
    "UPDATE watches SET ended_at = ?, end_reason = ?, last_state = coalesce(?, last_state), "
    "last_error = coalesce(?, last_error) WHERE watch_id = ? AND ended_at IS NULL"
)
_WATCH_SELECT = (
    "SELECT watch_id, provider, task_id, dataset_id, project_id, endpoint_host, endpoint_scheme, started_at, "
    "ended_at, end_reason, last_state, last_polled_at, last_error, pid, hostname, process_started_at, resumed_from, "
    "(SELECT count(*) FROM polls p WHERE p.wkey = w.wkey), endpoint_path FROM watches w"
)
_POLL_SELECT = (
    "SELECT w.provider, w.task_id, p.polled_at, p.latency_ms, p.outcome, p.error_code, p.error_message, p.state, "
    "p.raw_status, p.progress, p.finished_samples, p.total_samples, p.size_mb, coalesce(p.fetched_by, 'get'), "
    "w.watch_id "
    "FROM polls p JOIN watches w ON w.wkey = p.wkey"
)
_POLL_ORDER = "ORDER BY p.polled_at, w.watch_id, p.seq"
_PRAGMA_NAME = re.compile(r"[a-z_]+")


# -- location -------------------------------------------------------------------------------------------------

def default_path(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The platform's per-user state file (see the module docstring); ignores ``EXPORT_WIDGETS_STORE``."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_STATE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "state"  # the XDG spec ignores relative
    return base / "export_widgets" / STORE_FILENAME


def resolve_location(value: str | os.PathLike[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> Path | str:
    """``"off"``, ``":memory:"`` or the file to use: ``value`` > ``$EXPORT_WIDGETS_STORE`` > :func:`default_path`.

    A directory (existing, or written with a trailing slash) means ``store.sqlite3`` inside it.
    """
    env = os.environ if environ is None else environ
    raw = os.fspath(value) if value is not None else env.get(STORE_ENV, "")
    text = raw.strip()
    if not text:
        return default_path(env)
    if text.lower() in (OFF, "none", "false", "0", "no"):
        return OFF
    if text == MEMORY:
        return MEMORY
    path = Path(os.path.expanduser(text))
    if text.endswith(("/", os.sep)) or path.is_dir():
        path = path / STORE_FILENAME
    return path


# -- records --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StartRecord:
    """An export started through :func:`~export_widgets.start.start_export`, as the store remembers it."""

    provider: str
    task_id: str
    dataset_id: str | None
    #: Epoch seconds of the create.
    created_at: float


@dataclass(frozen=True)
class WatchRecord:
    """One stored watch (a row of :meth:`Store.watches` as an object, for resuming)."""

    watch_id: str
    provider: str
    task_id: str
    dataset_id: str | None
    project_id: str | None
    endpoint_host: str | None
    endpoint_scheme: str | None
    started_at: float
    ended_at: float | None
    end_reason: str | None
    last_state: str | None
    last_polled_at: float | None
    last_error: str | None
    pid: int | None
    hostname: str | None
    process_started_at: float | None
    resumed_from: str | None
    polls: int
    owner_alive: bool | None
    #: The base path of the endpoint (``/prefix`` of ``https://host/prefix``), if it had one.
    endpoint_path: str | None = None

    @property
    def endpoint(self) -> str | None:
        """``scheme://host[:port][/base]`` of the watched service (no query or user info was stored)."""
        if not self.endpoint_host:
            return None
        return f"{self.endpoint_scheme or 'https'}://{self.endpoint_host}{self.endpoint_path or ''}"


def _endpoint_parts(endpoint: str | None) -> tuple[str | None, str | None, str | None]:
    """(host[:port], scheme, base path) of a URL; never user info, query or fragment."""
    if not endpoint:
        return None, None, None
    try:
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None, None, None
    if not host:
        return None, None, None
    path = parts.path.rstrip("/")
    return (f"{host}:{port}" if port else host), (parts.scheme or "https"), (_clean(path) if path else None)


def _clean(text: Any) -> str | None:
    """Stored text: redacted, and never longer than a screen."""
    if text is None:
        return None
    value = getattr(text, "value", text)  # str enums (TaskState, MonitorStatus) by value, not by name
    return redact_text(str(value))[:2000]


class _DegradeToMemory(Exception):
    """The file cannot be used (corrupt, read-only, full, locked for too long, or from a newer version)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_busy(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return True
    message = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message)


# Ops on the queue: (kind, payload). Kinds are small ints so the hot path builds nothing but a tuple.
_WATCH, _POLL, _HROW, _END, _FLUSH = range(5)


class Store:
    """The embedded watch store (see the module docstring).

    Parameters
    ----------
    location : str or path, optional
        A file, a directory, ``"off"`` or ``":memory:"``; default ``$EXPORT_WIDGETS_STORE`` or :func:`default_path`.
    batch_interval : float
        Longest time a queued row waits for the writer thread (seconds).
    batch_rows : int
        Queue length that wakes the writer early.
    busy_timeout : float
        How long one transaction waits for another process's lock (seconds).
    lock_patience : int
        Consecutive batches that may find the file locked before the store gives up on it.
    pragmas : mapping, optional
        Extra integer ``PRAGMA name = value`` for the file's connection (tuning, or ``max_page_count`` in tests).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        batch_interval: float = 0.2,
        batch_rows: int = 500,
        busy_timeout: float = 5.0,
        lock_patience: int = 3,
        pragmas: Mapping[str, int] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        resolved = resolve_location(location, environ)
        self.path: Path | None = resolved if isinstance(resolved, Path) else None
        self._mode = "file" if self.path is not None else str(resolved)
        self.batch_interval = float(batch_interval)
        self.batch_rows = int(batch_rows)
        self.busy_timeout = float(busy_timeout)
        self.lock_patience = max(1, int(lock_patience))
        self._pragmas = dict(pragmas or {})
        for name in self._pragmas:
            if not _PRAGMA_NAME.fullmatch(name):
                raise ValueError(f"pragmas: {name!r} is not a PRAGMA name")
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._db_lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._watches: dict[str, itertools.count[int]] = {}  # watch id -> its poll numbers
        self._watch_values: dict[str, tuple[Any, ...]] = {}  # watch id -> its row, to re-create it in memory
        self._wkeys: dict[str, int] = {}  # watch id -> its key in the open database (committed ones only)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._closed = False
        self._warned = False
        self._busy_failures = 0
        self._retry: list[tuple[Any, ...]] = []

    # -- state ----------------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``"file"`` (persisting), ``":memory:"`` (this process only, also after a fault) or ``"off"``."""
        return self._mode

    @property
    def persistent(self) -> bool:
        """True while rows go to the file."""
        return self._mode == "file"

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else self._mode
        return f"<Store {where} ({self._mode})>"

    # -- writing (cheap, any thread) ------------------------------------------------------------------------

    def begin_watch(self, provider: str, task_id: str, *, dataset_id: str | None = None,
                    project_id: str | None = None, endpoint: str | None = None, started_at: float | None = None,
                    resumed_from: str | None = None) -> str:
        """Record a new watch and return its id (a fresh uuid). ``endpoint`` is cut to scheme, host and path."""
        watch_id = uuid.uuid4().hex
        self._watches[watch_id] = itertools.count(1)
        if self._mode == OFF:
            return watch_id
        host, scheme, path = _endpoint_parts(endpoint)
        self._enqueue((_WATCH, watch_id, provider, task_id, dataset_id, project_id, host, scheme, path,
                       time.time() if started_at is None else started_at, resumed_from))
        return watch_id

    def record_poll(self, watch_id: str, poll: PollRecord) -> None:
        """Queue one poll of a watch begun by this store (returns at once; see :meth:`flush`). Polls of an
        unknown watch id, or after :meth:`close`, are ignored."""
        seq = self._watches.get(watch_id)
        if seq is not None and self._mode != OFF:
            self._push((_POLL, watch_id, next(seq), poll))

    def record_history_row(self, watch_id: str, history: History, index: int) -> None:
        """Queue row ``index`` of ``history`` (already appended: a History never changes a row): what
        :meth:`attach` does after each poll. Cheaper than :meth:`record_poll`, as the row is read on the writer
        thread, straight from the columns."""
        seq = self._watches.get(watch_id)
        if seq is not None and self._mode != OFF:
            self._push((_HROW, watch_id, next(seq), history, index))

    def _push(self, op: tuple[Any, ...]) -> None:
        """The hot path: a deque append (atomic), a length check, and a wake-up only for a full batch."""
        self._queue.append(op)
        if len(self._queue) >= self.batch_rows:
            self._wake.set()
        if self._thread is None:
            self._start_writer()

    def end_watch(self, watch_id: str, how: str, *, last_state: TaskState | str | None = None,
                  error: str | None = None, ended_at: float | None = None) -> None:
        """Record how a watch ended (``finished``, ``timed_out``, ``stopped``, ``error``, ...); the first end wins."""
        if self._mode == OFF:
            return
        self._enqueue((_END, watch_id, time.time() if ended_at is None else ended_at, how, last_state, error))

    def attach(self, monitor: Any, *, resumed_from: str | None = None) -> str:
        """Record ``monitor`` (an :class:`~export_widgets.monitor.ExportMonitor`): begin its watch now, then every
        new poll of its history and its end through ``monitor.on_update``. Polls already in its history (a
        resumed one) are not written again. Returns the watch id."""
        client = getattr(monitor, "client", None)
        watch_id = self.begin_watch(
            monitor.provider, monitor.task_id, dataset_id=getattr(monitor, "dataset_id", None),
            project_id=getattr(client, "project_id", None),
            endpoint=getattr(client, "base_url", None) or getattr(client, "endpoint", None),
            started_at=getattr(monitor, "started_at", None), resumed_from=resumed_from)
        recorder = _MonitorRecorder(self, watch_id, len(monitor.history))
        monitor.on_update(recorder)
        if getattr(monitor, "done", False):
            recorder(monitor)
        return watch_id

    def _enqueue(self, op: tuple[Any, ...]) -> None:
        self._queue.append(op)
        if self._thread is None:
            self._start_writer()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is written (or given up on); False on timeout."""
        if self._mode == OFF or self._closed or (self._thread is None and not self._queue):
            return True
        done = threading.Event()
        self._enqueue((_FLUSH, done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is queued, stop the writer thread and close the database (a closed store records nothing)."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._db_lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
                self._conn = None
        self._mode = OFF
        self._watches.clear()

    # -- the writer thread -------------------------------------------------------------------------------

    def _start_writer(self) -> None:
        with self._thread_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(target=self._writer, name="export-widgets-store", daemon=True)
                thread.start()
                self._thread = thread
                _running_stores.add(self)

    def _writer(self) -> None:
        while True:
            self._wake.wait(self.batch_interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # noqa: BLE001 - the writer must outlive any bug; the caller never sees it
                log.exception("export_widgets: the watch store's writer failed")
            if self._closed and not self._queue:
                return

    def _drain(self) -> None:
        while self._queue or self._retry:
            batch, flushes = self._retry, []
            self._retry = []
            while self._queue and len(batch) < 20 * self.batch_rows:
                op = self._queue.popleft()
                if op[0] == _FLUSH:
                    flushes.append(op[1])
                else:
                    batch.append(op)
            written = self._write(batch) if batch else True
            if not written:  # locked: keep the rows (and the waiters) for the next round
                self._retry = batch
                self._queue.extendleft(reversed([(_FLUSH, f) for f in flushes]))
                return
            for event in flushes:
                event.set()

    def _write(self, batch: list[tuple[Any, ...]]) -> bool:
        """Write ``batch`` in one transaction. False when the file is locked and patience remains."""
        with self._db_lock:
            try:
                self._write_locked(batch)
                self._busy_failures = 0
                return True
            except Exception as exc:  # noqa: BLE001 - classified below; nothing escapes to the caller
                if self._mode == "file" and _is_busy(exc):
                    self._busy_failures += 1
                    if self._busy_failures < self.lock_patience:
                        return False
                    reason = f"locked by another process for more than {self._busy_failures} tries"
                else:
                    reason = exc.reason if isinstance(exc, _DegradeToMemory) else _describe(exc)
                if self._mode != "file":
                    self._warn_once(f"export_widgets: the in-memory watch store failed ({reason}); "
                                    "dropping these rows")
                    return True
                self._to_memory(reason)
                try:
                    self._write_locked(batch)  # the rows that found the fault go to memory, not to waste
                except Exception:  # noqa: BLE001
                    pass
                return True

    def _write_locked(self, batch: list[tuple[Any, ...]]) -> None:
        conn = self._connection()
        keys: dict[str, int] = {}  # resolved in this transaction: cached only once it commits
        polls: list[tuple[Any, ...]] = []
        ends = []
        last: dict[int, tuple[str | None, float]] = {}
        cache: dict[str | None, str | None] = {None: None}

        def clean(text: str | None) -> str | None:  # raw_status / error codes repeat: redact each once a batch
            found = cache.get(text, cache)
            if found is cache:
                found = cache[text] = _clean(text)
            return found  # type: ignore[return-value]

        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                kind = op[0]
                if kind == _HROW or kind == _POLL:
                    watch_id = op[1]
                    wkey = keys.get(watch_id) or self._wkey(conn, watch_id, keys)
                    if wkey is None:
                        continue
                    row = _history_values(wkey, op[2], op[3], op[4], clean) if kind == _HROW else \
                        _record_values(wkey, op[2], op[3], clean)
                    polls.append(row)
                    previous = last.get(wkey)
                    last[wkey] = (row[7] or (previous[0] if previous else None), row[2])
                elif kind == _WATCH:
                    _, watch_id, provider, task_id, dataset_id, project_id, host, scheme, path, started, resumed = op
                    values = (watch_id, _clean(provider), _clean(host), scheme, _clean(project_id),
                              _clean(dataset_id), _clean(task_id), started, os.getpid(), _HOSTNAME,
                              _PROCESS_STARTED, resumed, path)
                    self._watch_values[watch_id] = values
                    conn.execute(_INSERT_WATCH, values)
                elif kind == _END:
                    _, watch_id, ended, how, state, error = op
                    if watch_id not in keys:
                        self._wkey(conn, watch_id, keys)  # in memory after a fault the row may not be there yet
                    ends.append((ended, _clean(how), _clean(state), _clean(error), watch_id))
            if polls:
                conn.executemany(_INSERT_POLL, polls)
                conn.executemany(_UPDATE_LAST, [(s, t, k) for k, (s, t) in last.items()])
            if ends:
                conn.executemany(_END_WATCH, ends)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._wkeys.update(keys)

    def _wkey(self, conn: sqlite3.Connection, watch_id: str, keys: dict[str, int]) -> int | None:
        """The database key of a watch, inserting its row if this database lacks it (after a switch to memory)."""
        key = self._wkeys.get(watch_id)
        if key is None:
            found = conn.execute("SELECT wkey FROM watches WHERE watch_id = ?", (watch_id,)).fetchone()
            if found is None and watch_id in self._watch_values:
                conn.execute(_INSERT_WATCH, self._watch_values[watch_id])
                found = conn.execute("SELECT wkey FROM watches WHERE watch_id = ?", (watch_id,)).fetchone()
            if found is None:
                return None
            key = int(found[0])
        keys[watch_id] = key
        return key

    # -- connections -------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The open connection (opening the file, or memory, on first use). Caller holds ``_db_lock``."""
        if self._conn is not None:
            return self._conn
        if self._mode == "file":
            assert self.path is not None
            self._conn = self._open_file(self.path)
        else:
            self._conn = _open_memory()
        return self._conn

    def _open_file(self, path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():  # private from the start: sqlite would create it 0644
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise _DegradeToMemory(_describe(exc)) from None
        conn = sqlite3.connect(str(path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            _check_not_newer(conn)  # before WAL: switching journal modes rewrites the header of a file not ours
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across a kernel crash; WAL keeps it consistent
            for name, value in self._pragmas.items():
                conn.execute(f"PRAGMA {name} = {int(value)}")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _to_memory(self, reason: str) -> None:
        """Give up on the file: one warning, then an in-memory database. Caller holds ``_db_lock``."""
        where = str(self.path)
        self._warn_once(f"export_widgets: the watch store {where} cannot be used ({reason}); watching goes on "
                        f"and history is kept in memory only. Move the file away, or set {STORE_ENV}=off.")
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = _open_memory()
        self._wkeys.clear()  # keys belong to the file
        self._mode = MEMORY
        self._busy_failures = 0

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s", message)

    def _query(self, run: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read after flushing; a file that fails here degrades like a failed write."""
        self.flush()
        with self._db_lock:
            try:
                return run(self._connection())
            except Exception as exc:  # noqa: BLE001 - classified: never raised into the caller
                if self._mode != "file":
                    raise
                self._to_memory(exc.reason if isinstance(exc, _DegradeToMemory) else _describe(exc))
                return run(self._connection())

    # -- reading -----------------------------------------------------------------------------------------

    def _watch_rows(self, where: str = "", args: Sequence[Any] = ()) -> list[WatchRecord]:
        rows = self._query(lambda c: c.execute(f"{_WATCH_SELECT} {where} ORDER BY started_at, watch_id",
                                               args).fetchall())
        records = []
        for r in rows:
            alive = owner_alive(r[13], r[14], r[15]) if r[8] is None else None
            records.append(WatchRecord(
                watch_id=r[0], provider=r[1], task_id=r[2], dataset_id=r[3], project_id=r[4], endpoint_host=r[5],
                endpoint_scheme=r[6], started_at=r[7], ended_at=r[8], end_reason=r[9], last_state=r[10],
                last_polled_at=r[11], last_error=r[12], pid=r[13], hostname=r[14], process_started_at=r[15],
                resumed_from=r[16], polls=r[17], owner_alive=alive, endpoint_path=r[18]))
        return records

    def watch(self, watch_id: str) -> WatchRecord | None:
        """One stored watch, or None."""
        found = self._watch_rows("WHERE watch_id = ?", (watch_id,))
        return found[0] if found else None

    def watches(self, provider: str | None = None, task_id: str | None = None, tz: str = "UTC") -> pd.DataFrame:
        """Every stored watch (``WATCH_COLUMNS``), oldest first; ``owner_alive`` is set for unfinished ones."""
        import pandas as pd

        where, args = _task_filter(provider, task_id)
        records = self._watch_rows(where, args)
        frame: pd.DataFrame = pd.DataFrame([{c: getattr(r, c) for c in WATCH_COLUMNS} for r in records],
                                           columns=list(WATCH_COLUMNS))
        for column in ("watch_id", "provider", "task_id", "dataset_id", "project_id", "endpoint_host", "end_reason",
                       "last_state", "last_error", "hostname", "resumed_from"):
            frame[column] = frame[column].astype("string")
        for column in ("started_at", "ended_at", "last_polled_at", "process_started_at"):
            frame[column] = _epoch_to_datetime(frame[column], tz)
        frame["polls"] = frame["polls"].astype("int64")
        frame["pid"] = frame["pid"].astype("Int64")
        frame["owner_alive"] = frame["owner_alive"].astype("boolean")
        return frame

    def unfinished_watches(self, include_running: bool = False) -> list[WatchRecord]:
        """Watches that never ended and whose process has gone (a kernel restart, a crash): what to resume.

        With ``include_running`` every unfinished watch, also those whose process still runs or ran on another
        host (``owner_alive`` True or None).
        """
        records = self._watch_rows("WHERE ended_at IS NULL")
        return records if include_running else [r for r in records if r.owner_alive is False]

    def polls(self, provider: str | None = None, task_id: str | None = None, watch_id: str | None = None,
              tz: str = "UTC") -> pd.DataFrame:
        """Every stored poll (``POLL_COLUMNS``: the history frame's columns and dtypes, plus ``watch_id``),
        ordered by time; filtered by task and/or watch."""
        where, args = _task_filter(provider, task_id)
        if watch_id is not None:
            where = f"{where} AND w.watch_id = ?" if where else "WHERE w.watch_id = ?"
            args = [*args, watch_id]
        rows = self._query(lambda c: c.execute(f"{_POLL_SELECT} {where} {_POLL_ORDER}",
                                               args).fetchall())
        return _polls_frame(rows, tz)

    def load_history(self, watch: WatchRecord | str | None = None, *, provider: str | None = None,
                     task_id: str | None = None) -> History:
        """A :class:`~export_widgets.history.History` rebuilt from stored polls, so ETA and rate continue.

        ``watch`` (a record or id) gives that watch's polls and those of the watches it resumed; ``provider`` and
        ``task_id`` give every poll of the task, across all watches.
        """
        if watch is not None:
            watch_id = watch.watch_id if isinstance(watch, WatchRecord) else str(watch)
            chain = self._query(lambda c: [r[0] for r in c.execute(
                "WITH RECURSIVE chain(id) AS (SELECT ? UNION SELECT w.resumed_from FROM watches w JOIN chain "
                "ON w.watch_id = chain.id WHERE w.resumed_from IS NOT NULL) SELECT id FROM chain", (watch_id,))])
            marks = ",".join("?" * len(chain))
            where, args = f"WHERE w.watch_id IN ({marks})", list(chain)
        elif provider is not None and task_id is not None:
            where, args = _task_filter(provider, task_id)
        else:
            raise ValueError("load_history needs a watch (record or id), or provider= and task_id=")
        rows = self._query(lambda c: c.execute(f"{_POLL_SELECT} {where} {_POLL_ORDER}",
                                               args).fetchall())
        if rows:
            provider, task_id = rows[0][0], rows[0][1]
        elif isinstance(watch, WatchRecord):
            provider, task_id = watch.provider, watch.task_id
        history = History(provider or "", task_id or "")
        for r in rows:
            _replay(history, r)
        return history

    def claim(self, watch: WatchRecord | str, how: str = "resumed") -> bool:
        """Mark an unfinished watch as ended (``how``) now, atomically: True for the one caller that did it.

        Two processes resuming the same watch: only one gets True, so only one reattaches.
        """
        watch_id = watch.watch_id if isinstance(watch, WatchRecord) else str(watch)

        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("UPDATE watches SET ended_at = ?, end_reason = ? WHERE watch_id = ? AND "
                                  "ended_at IS NULL", (time.time(), how, watch_id))
            return cursor.rowcount == 1

        return bool(self._query(run))


    # -- started exports ------------------------------------------------------------------------------------

    def record_start(self, request_key: str, provider: str, task_id: str, *, dataset_id: str | None = None,
                     created_at: float | None = None) -> None:
        """Remember an export just started by the create request with digest ``request_key`` (written at once:
        a kernel restarted a second later must find it)."""
        values = (request_key, provider, _clean(task_id) or task_id, _clean(dataset_id),
                  time.time() if created_at is None else float(created_at))
        self._query(lambda c: c.execute("INSERT INTO starts (request_key, provider, task_id, dataset_id, "
                                        "created_at) VALUES (?,?,?,?,?)", values))

    def last_start(self, request_key: str, since: float) -> StartRecord | None:
        """The newest export started by ``request_key`` at or after ``since`` (epoch seconds), or None."""
        row = self._query(lambda c: c.execute(
            "SELECT provider, task_id, dataset_id, created_at FROM starts WHERE request_key = ? AND created_at >= ? "
            "ORDER BY created_at DESC LIMIT 1", (request_key, float(since))).fetchone())
        return None if row is None else StartRecord(*row)


class _MonitorRecorder:
    """``monitor.on_update`` subscriber of :meth:`Store.attach`: writes new history rows and the end, once."""

    def __init__(self, store: Store, watch_id: str, seen: int) -> None:
        self.store = store
        self.watch_id = watch_id
        self.seen = seen
        self.ended = False
        self.lock = threading.Lock()  # stop() notifies from the user's thread while a poll may be in flight

    def __call__(self, monitor: Any) -> None:
        with self.lock:
            history = monitor.history
            n = len(history)
            for i in range(self.seen, n):
                self.store.record_history_row(self.watch_id, history, i)
            self.seen = n
            if monitor.done and not self.ended:
                self.ended = True
                latest = monitor.latest
                error = monitor.last_poll_error
                if error is None and getattr(monitor, "error", None) is not None:
                    error = str(monitor.error)
                self.store.end_watch(self.watch_id, getattr(monitor.status, "value", monitor.status),
                                     last_state=latest.state if latest is not None else None, error=error)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` in one transaction (a fresh file is created as v1 and migrated).

    Returns the version found. A file from a newer version raises :class:`_DegradeToMemory` and is not touched.
    """
    found = _check_not_newer(conn)
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])  # another process may have won the race
        if version == 0:
            for statement in SCHEMA_V1:
                conn.execute(statement)
            version = 1
        while version < SCHEMA_VERSION:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            version += 1
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return found


def _check_not_newer(conn: sqlite3.Connection) -> int:
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise _DegradeToMemory(f"written by a newer export_widgets (schema {found}, this one knows {SCHEMA_VERSION})")
    return found


def _open_memory() -> sqlite3.Connection:
    conn = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False)
    migrate(conn)
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _describe(exc: BaseException) -> str:
    """A fault in a few words (sqlite's and the OS's messages carry paths at most, never secrets)."""
    text = redact_text(str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())[:200]


_OUTCOME_NAMES = tuple(outcome.label for outcome in Outcome)  # by value: History stores an Outcome as its int
_STATE_VALUES = tuple(state.value for state in TaskState)  # History stores TaskState by its position
_NO_STATE = 255


def _history_values(wkey: int, seq: int, h: History, i: int, clean: Callable[[str | None], str | None]
                    ) -> tuple[Any, ...]:
    """An insert row for poll ``i`` of ``h``, read straight from its columns (row ``i`` is immutable once
    appended, and ``i`` is below the committed length the caller saw)."""
    latency, progress, size = h.latency_s[i], h.progress[i], h.size_mb[i]
    state, finished, total = h.state[i], h.finished[i], h.total[i]
    message = h.messages.get(i)
    return (wkey, seq, h.polled_at[i], None if latency != latency else latency * 1000.0,  # x != x: NaN
            _OUTCOME_NAMES[h.outcome[i]], clean(h.codes.values[h.error_code[i]]),
            None if message is None else _clean(message), None if state == _NO_STATE else _STATE_VALUES[state],
            clean(h.statuses.values[h.raw_status[i]]), None if progress != progress else progress,
            None if finished < 0 else finished, None if total < 0 else total, None if size != size else size,
            _FETCHED_BY[h.fetched_by[i]])


def _record_values(wkey: int, seq: int, p: PollRecord, clean: Callable[[str | None], str | None]
                   ) -> tuple[Any, ...]:
    return (wkey, seq, p.polled_at, None if p.latency_s is None else p.latency_s * 1000.0, p.outcome,
            clean(p.error_code), _clean(p.error_message), None if p.state is None else p.state.value,
            clean(p.raw_status), _finite(p.progress), p.finished_samples, p.total_samples, _finite(p.size_mb),
            p.fetched_by)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _task_filter(provider: str | None, task_id: str | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if provider is not None:
        clauses.append("w.provider = ?")
        args.append(provider)
    if task_id is not None:
        clauses.append("w.task_id = ?")
        args.append(task_id)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


_OUTCOME_INDEX = {name: i for i, name in enumerate(_OUTCOME_NAMES)}


def _replay(history: History, row: Sequence[Any]) -> None:
    (provider, task_id, polled_at, latency_ms, outcome, error_code, error_message, state, raw_status, progress,
     finished, total, size_mb, fetched_by, _watch) = row
    latency = None if latency_ms is None else latency_ms / 1000.0
    if outcome == "ok":
        try:
            task_state = TaskState(state)
        except ValueError:
            task_state = TaskState.UNKNOWN
        task = ExportTask(provider=provider, task_id=task_id, state=task_state,
                          raw_status=raw_status or "", progress=progress, finished_samples=finished,
                          total_samples=total, size_mb=size_mb, error_code=error_code)
        history.record_task(polled_at, latency, task, fetched_by=fetched_by)
    else:
        history.record_error(polled_at, latency, Outcome(_OUTCOME_INDEX.get(outcome, Outcome.INTERNAL)), error_code,
                             error_message or "", fetched_by=fetched_by)


def _epoch_to_datetime(values: pd.Series, tz: str) -> pd.Series:
    """Epoch seconds (NaN/None = missing) as ``datetime64[ns, tz]``, the unit the other frames use."""
    import pandas as pd

    stamps = pd.to_datetime(values.astype("float64"), unit="s", utc=True)
    return stamps.astype("datetime64[ns, UTC]").dt.tz_convert(tz)


def _polls_frame(rows: list[tuple[Any, ...]], tz: str) -> pd.DataFrame:
    """Rows of ``_POLL_SELECT`` with the dtypes of :func:`export_widgets.frames.history`."""
    import numpy as np
    import pandas as pd

    from .frames import _epoch_ms, _float32_values  # one conversion for both frames: the very same values

    frame: pd.DataFrame = pd.DataFrame.from_records(rows, columns=list(POLL_COLUMNS), coerce_float=True)
    n = len(frame)
    seconds = frame["polled_at"].to_numpy(dtype="float64")
    frame["polled_at"] = pd.DatetimeIndex(_epoch_ms(seconds, n)).tz_localize("UTC").tz_convert(tz)
    # Stored as the history holds them (float32 widened): back to the values as sent, as frames.history shows them.
    frame["latency_ms"] = np.round(frame["latency_ms"].to_numpy(dtype="float64"), 3)
    for column in ("progress", "size_mb"):
        frame[column] = _float32_values(frame[column].to_numpy(dtype="float32"), n) if n else \
            frame[column].astype("float64")
    frame["outcome"] = frame["outcome"].astype(pd.CategoricalDtype(list(_OUTCOME_NAMES)))
    frame["state"] = frame["state"].astype(pd.CategoricalDtype([s.value for s in TaskState]))
    for column in ("provider", "task_id", "error_code", "raw_status"):
        frame[column] = frame[column].astype(object).astype("category")
    frame["error_message"] = frame["error_message"].astype("string")
    for column in ("finished_samples", "total_samples"):
        frame[column] = frame[column].astype("Int64")
    frame["fetched_by"] = frame["fetched_by"].astype(pd.CategoricalDtype(list(_FETCHED_BY)))
    frame["watch_id"] = frame["watch_id"].astype("string")
    return frame


_default: Store | None = None
_default_lock = threading.Lock()
#: Stores with a writer thread: written out when the interpreter exits (a kernel shut down or restarted).
_running_stores: weakref.WeakSet[Store] = weakref.WeakSet()
EXIT_FLUSH_TIMEOUT = 2.0


@atexit.register
def _flush_at_exit() -> None:
    for store in list(_running_stores):
        store.close(EXIT_FLUSH_TIMEOUT)


def default_store() -> Store:
    """The process-wide store (``$EXPORT_WIDGETS_STORE`` or :func:`default_path`), created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Store()
        return _default


def set_default_store(location: Store | str | os.PathLike[str] | None) -> Store:
    """Replace the process-wide store (``%config ExportStatus.store = ...``): a :class:`Store`, or a location as
    :class:`Store` takes it. The previous one is closed after writing what it had queued; returns the new one."""
    global _default
    store = location if isinstance(location, Store) else Store(location)
    with _default_lock:
        previous, _default = _default, store
    if previous is not None and previous is not store:
        previous.close()
    return store

