"""The ``%export_status`` line magic. Parsing and settings only; the work is in clients, monitor and views.

Settings are traitlets on :class:`ExportStatus` (``%config ExportStatus.interval = 5``), checked when they are
set; a flag beats a setting. Credentials are never settings: they come from the clients' env vars.

One live monitor per task per kernel: the magic keeps a registry keyed by (provider, endpoint, project, dataset,
task id). Running ``%export_status`` again for a task still being watched attaches the new view to that monitor
(its history goes on, ``--interval``/``--timeout`` apply to it) and turns the earlier cell's view into a static
snapshot saying where the watch moved. ``watch()`` in Python always makes an independent monitor.
Every watch is recorded in the watch store (:mod:`export_widgets.store`; ``%config ExportStatus.store``), which
``--resume`` and ``--history`` read.
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import keyword
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split  # type: ignore[attr-defined]  # re-exported, not declared
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from ._magic_flow import run_download, run_start
from .errors import ExportWidgetsError
from .models import ExportTask
from .monitor import ExportMonitor, MonitorGroup, MonitorStatus
from .persist import history_frame, notify, record, resume
from .providers import (
    REGISTRY,
    ClientSettings,
    ListsTasks,
    ProviderClient,
    TaskRef,
    get_provider,
    infer_provider,
    make_client,
    provider_names,
)
from .redact import one_line

__all__ = ["ExportStatus", "load_ipython_extension"]

#: A task to watch: the client that reaches it and its reference.
Target = tuple[ProviderClient, TaskRef]
#: What makes two watches the same: provider, endpoint, project, dataset, task id.
WatchKey = tuple[str, str, str, str, str]

#: Names ``-o`` must not take: they belong to IPython (besides builtins and keywords).
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_i", "_ii", "_iii",
                            "_ih", "_oh", "_dh", "_sh", "__builtins__", "__builtin__", "__name__", "__doc__"})


@dataclass(eq=False)
class _Watch:
    """A view the magic showed, and the callbacks it subscribed on each monitor it shows."""

    view: Any
    cell: int | None
    subscriptions: dict[ExportMonitor, list[Any]] = field(default_factory=dict)


@magics_class
class ExportStatus(Magics, Configurable):
    """Watch ModelArts / Qianfan dataset export tasks: ``%export_status [options] TASK_ID ...``."""

    default_provider = Unicode(
        "", config=True,
        help="Provider used when --provider is not given and the task id does not tell (modelarts or qianfan).")
    interval = Float(2.0, config=True, help="Poll floor in seconds; it grows while nothing changes (cap 60 s).")
    timeout = Float(0.0, config=True, help="Stop watching after this many seconds (0 = no limit).")
    stall_after = Float(300.0, config=True, help="Seconds without progress while RUNNING before 'stalled' shows.")
    modelarts_endpoint = Unicode("", config=True,
                                 help="ModelArts base URL (wins over region), e.g. the OTC endpoint.")
    region = Unicode("", config=True, help="Huawei Cloud region for ModelArts, e.g. cn-north-4.")
    project_id = Unicode("", config=True,
                         help="ModelArts project id (else env HUAWEICLOUD_SDK_PROJECT_ID).")
    dataset = Unicode("", config=True, help="Default ModelArts dataset id for --dataset.")
    qianfan_endpoint = Unicode("", config=True,
                               help="Qianfan console base URL (else env QIANFAN_CONSOLE_API_BASE_URL).")
    qianfan_timezone = Unicode("Asia/Shanghai", config=True, help="Zone of Qianfan's zone-less times.")
    timezone = Unicode("UTC", config=True, help="Time zone of datetime columns in the DataFrames shown.")
    max_rows = Int(50, config=True, help="Rows drawn at most in the multi-task dashboard.")
    short_errors = Bool(True, config=True, help="One-line errors (False shows the full traceback).")
    reuse_window = Float(900.0, config=True,
                         help="Seconds within which re-running an identical --start reuses its export (0 = never).")
    simulator_speed = Float(1.0, config=True,
                            help="Time compression of the embedded simulator's demo tasks (3 = three times faster).")
    unreachable_grace = Float(180.0, config=True,
                              help="Seconds to retry an endpoint that never answered before the watch ends with an "
                                   "error (0 = retry forever).")
    store = Unicode("", config=True,
                    help="Where watches are recorded (for --resume and --history): a file or directory, 'off', or "
                         "':memory:'; empty = env EXPORT_WIDGETS_STORE, else the user's state directory.")

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._clients: dict[tuple[object, ...], ProviderClient] = {}
        self._simulator: Any = None
        self._simulated: list[ExportMonitor] = []  # watches of the embedded simulator: they end with it
        self._live: dict[WatchKey, ExportMonitor] = {}  # one live monitor per task in this kernel
        self._watches: dict[ExportMonitor, _Watch] = {}  # the view showing each live monitor now

    # -- settings, checked when set (``%config`` reports the message and keeps the old value) --------------

    @validate("timezone", "qianfan_timezone")
    def _valid_zone(self, proposal: dict[str, Any]) -> str:
        name = str(proposal["value"]).strip()
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(name)
        except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError; "../x" a ValueError
            raise TraitError(f"ExportStatus.{proposal['trait'].name} = {proposal['value']!r} is not a time zone: "
                             "use an IANA name such as 'UTC', 'Europe/Berlin' or 'Asia/Shanghai'") from None
        return name

    @validate("interval", "stall_after", "simulator_speed")
    def _valid_positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 < value < math.inf:
            raise TraitError(f"ExportStatus.{proposal['trait'].name} = {proposal['value']!r}: use a number > 0")
        return value

    @validate("timeout", "unreachable_grace")
    def _valid_limit(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 <= value < math.inf:
            raise TraitError(f"ExportStatus.{proposal['trait'].name} = {proposal['value']!r}: use a number of "
                             "seconds >= 0 (0 = no limit)")
        return value

    @validate("max_rows")
    def _valid_rows(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"ExportStatus.max_rows = {value!r}: use a number of rows >= 1")
        return value

    @observe("store")
    def _store_changed(self, change: dict[str, Any]) -> None:
        from .store import set_default_store

        set_default_store(str(change["new"]).strip() or None)  # process-wide: watch() in Python records there too

    @validate("default_provider")
    def _valid_provider(self, proposal: dict[str, Any]) -> str:
        name = str(proposal["value"]).strip().lower()
        if name and name not in provider_names():
            raise TraitError(f"unknown provider {proposal['value']!r}: use one of {', '.join(provider_names())}")
        return name

    # -- the magic --------------------------------------------------------------------------------------

    @magic_arguments()
    @argument("task_ids", nargs="*", metavar="TASK_ID", help="Export task id(s).")
    @argument("--provider", help="modelarts or qianfan (inferred when unambiguous).")
    @argument("--dataset", help="ModelArts dataset id.")
    @argument("--project", help="ModelArts project id.")
    @argument("--region", help="Huawei Cloud region, e.g. cn-north-4.")
    @argument("--endpoint", help="Base URL of the provider's API.")
    @argument("--interval", type=float, help="Poll floor in seconds.")
    @argument("--timeout", type=float, help="Stop watching after this many seconds.")
    @argument("--once", action="store_true", help="Fetch once and show the summary DataFrame.")
    @argument("--wait", action="store_true", help="Block until the tasks end (safe under Run All).")
    @argument("--no-widget", action="store_true", help="Print text lines instead of the widget.")
    @argument("-o", "--output", metavar="VAR", help="Store the monitor (or the DataFrame) in VAR.")
    @argument("--list", action="store_true", help="List the dataset's export tasks (ModelArts).")
    @argument("--export-type", type=int, help="With --list: 0 labeled, 1 unlabeled, 2 all, 3 search.")
    @argument("--simulate", action="store_true", help="Use the embedded simulator (no credentials needed).")
    @argument("--start", action="store_true",
              help="Start an export, then watch it (ModelArts: --dataset D --path obs://bucket/dir/; "
                   "Qianfan: --version ds-... [--bos bos:/bucket/dir/ | --sys-storage]).")
    @argument("--new", action="store_true", help="With --start: start another export even if an identical one "
                                                  "was started within the reuse window.")
    @argument("--path", help="With --start: the OBS directory a ModelArts export writes to.")
    @argument("--version", help="With --start: the dataset version (Qianfan ds-...; ModelArts version id).")
    @argument("--export-format", type=int, help="With --start: ModelArts 1 tree, 2 tile.")
    @argument("--sample-state", help="With --start: ModelArts sample state (ALL, NONE, ACCEPTED, ...).")
    @argument("--bos", metavar="BOS_PATH", help="With --start: Qianfan export to bos:/bucket/dir/.")
    @argument("--sys-storage", action="store_true", help="With --start: Qianfan export to platform storage.")
    @argument("--reuse-window", type=float, help="With --start: seconds within which an identical start reuses "
                                                 "the export (default %%config ExportStatus.reuse_window).")
    @argument("--download", metavar="DIR", help="Download the finished export TASK_ID into DIR (Qianfan), or show "
                                                "the copy command (ModelArts).")
    @argument("--resume", action="store_true",
              help="Reattach to the watches (all, or of the TASK_IDs given) whose kernel went away.")
    @argument("--history", action="store_true",
              help="DataFrame of past watches, or of every poll of the TASK_IDs given, across sessions.")
    @argument("--notify", metavar="URL", help="Webhook to tell when the watch (or all of a dashboard) ends.")
    @argument("--notify-format", metavar="NAME", help="feishu, dingtalk, slack or json (default: by the URL).")
    @argument("--notify-stalled", action="store_true", help="Also notify when a task stops moving (stall_after).")
    @line_magic
    def export_status(self, line: str = "") -> Any:
        """Watch dataset export tasks: a live widget by default, ``--once`` for a DataFrame, ``--wait`` to block.

        Examples::

            %export_status --simulate
            %export_status --provider modelarts --dataset DS TASK_ID
            %export_status task-4f2c --wait -o mon
            %export_status --list --dataset DS -o tasks
            %export_status --start --version ds-7a1b2c3d --sys-storage --wait -o mon    # Qianfan: start, watch
            %export_status --start --dataset DS --path obs://bucket/dir/ --wait          # ModelArts
            %export_status --download ./data task-4f2c                                   # fetch the result
            %export_status --resume                  # after a kernel restart
            %export_status --history task-4f2c -o polls
        """
        args = self.export_status.parser.parse_args(_split(line))
        if args.output is not None:
            self._check_name(args.output)
        try:
            return self._run(args)
        except ExportWidgetsError as exc:
            if not self.short_errors:
                raise
            raise UsageError(one_line(exc)) from None

    def _run(self, args: argparse.Namespace) -> Any:
        self._check_numbers(args)
        if args.once and args.wait:
            raise UsageError("--once and --wait exclude each other: --once fetches one status, --wait blocks "
                             "until the end")
        self._check_store_flags(args)
        if args.history:
            return self._history(args)
        if args.resume:
            return self._resume(args)
        if args.simulate:
            self._ensure_simulator()
        if args.start:
            return run_start(self, args)
        if args.download:
            return run_download(self, args)
        if args.list:
            return self._list(args)
        task_ids = list(args.task_ids)
        if not task_ids and args.simulate:
            task_ids = list(self._simulator.tasks)
        if not task_ids:
            raise UsageError("no task id given: %export_status [--provider modelarts|qianfan] [--dataset D] "
                             "TASK_ID ... (or --simulate, or --list --dataset D)")
        targets = [self._target(args, task_id) for task_id in task_ids]
        if args.once:
            return self._once(args, targets)
        return self._watch(args, targets)

    @staticmethod
    def _check_numbers(args: argparse.Namespace) -> None:
        for name in ("interval", "timeout"):
            value = getattr(args, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{name} must be a positive number of seconds, got {value}")

    # -- clients ----------------------------------------------------------------------------------------

    def _provider_of(self, args: argparse.Namespace, task_id: str) -> str:
        if args.provider:
            if args.provider.strip().lower() not in provider_names():
                raise UsageError(f"argument --provider: invalid choice {args.provider!r} "
                                 f"(choose from {', '.join(provider_names())})")
            return str(get_provider(args.provider).name)
        if self._simulator is not None and args.simulate and task_id in self._simulator.tasks:
            return str(self._simulator.tasks[task_id].provider)
        inferred = infer_provider(task_id) or self.default_provider or \
            infer_provider(task_id, has_dataset=bool(args.dataset))
        if inferred:
            return inferred
        raise UsageError(f"cannot tell the provider of task {task_id!r}: pass --provider "
                         f"{'|'.join(provider_names())} (Qianfan ids look like task-…; ModelArts also needs --dataset)")

    def _target(self, args: argparse.Namespace, task_id: str) -> Target:
        provider = self._provider_of(args, task_id)
        client_class = get_provider(provider)
        if not client_class.needs_dataset:
            return self._client(args, provider), TaskRef(provider, task_id)
        dataset = args.dataset or self.dataset
        if not dataset and self._simulator is not None and args.simulate:
            spec = self._simulator.tasks.get(task_id)
            dataset = getattr(spec, "dataset_id", None) or self._simulator.dataset_id
        if not dataset:
            raise UsageError(f"{client_class.label} task {task_id!r} needs --dataset DATASET_ID "
                             "(or %config ExportStatus.dataset = '...')")
        return self._client(args, provider), TaskRef(provider, task_id, dataset)

    def _settings(self, args: argparse.Namespace, provider: str) -> ClientSettings:
        """Flags first, then this provider's ``%config`` settings (``<provider>_endpoint``, ...)."""
        if args.simulate:  # the simulator's own env: its URL and fake credentials
            return ClientSettings(endpoint=self._simulator.url, environ=self._simulator.env)
        return ClientSettings(
            endpoint=args.endpoint or getattr(self, f"{provider}_endpoint", "") or None,
            region=args.region or self.region or None,
            project_id=args.project or self.project_id or None,
            timezone=getattr(self, f"{provider}_timezone", "") or None,
        )

    def _client(self, args: argparse.Namespace, provider: str) -> ProviderClient:
        settings = self._settings(args, provider)
        key = (provider, args.simulate, settings.endpoint, settings.region, settings.project_id, settings.timezone)
        if key not in self._clients:
            self._clients[key] = make_client(provider, settings)
        return self._clients[key]

    def _ensure_simulator(self) -> None:
        if self._simulator is not None:
            return
        import dataclasses

        from . import simulator

        scenario = dataclasses.replace(simulator.Scenario.demo(), speed=self.simulator_speed)
        self._simulator = simulator.Simulator(scenario=scenario).start()
        atexit.register(self._stop_simulated)  # the simulator dies with the kernel: no watch of it to resume
        # An ordinary info line on stdout (not a red error box), without the port: a saved notebook keeps it.
        print("Using the embedded simulator (no credentials needed; it runs until the kernel stops).")

    def _stop_simulated(self) -> None:
        for monitor in self._simulated:
            monitor.stop()
        self._simulated.clear()

    def close(self) -> None:
        """Stop this kernel's live watches and the embedded simulator, if this magic started one."""
        self._stop_simulated()
        for monitor in list(self._live.values()):
            monitor.stop()
        self._live.clear()
        self._watches.clear()
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
            self._clients = {key: client for key, client in self._clients.items() if not key[1]}

    # -- modes ------------------------------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        """``-o NAME`` must be a plain new-able variable: an identifier, not a keyword, not a builtin or one of
        IPython's own names (overwriting ``print`` or ``Out`` would break the session)."""
        if not name.isidentifier():
            raise UsageError(f"-o {name!r} is not a valid variable name: use letters, digits and _ "
                             "(not starting with a digit), e.g. -o mon")
        if keyword.iskeyword(name):
            raise UsageError(f"-o {name!r} is a Python keyword: pick another name, e.g. -o mon")
        hidden = getattr(self.shell, "user_ns_hidden", None) or {}
        if name in _IPYTHON_NAMES or name in hidden or _is_output_cache_name(name):
            raise UsageError(f"-o {name!r} would overwrite an IPython name: pick another name, e.g. -o mon")
        if hasattr(builtins, name):
            raise UsageError(f"-o {name!r} would shadow the builtin {name}(): pick another name, e.g. -o mon")

    def _store(self, args: argparse.Namespace, value: object) -> None:
        if args.output:
            self._check_name(args.output)
            if self.shell is not None:
                self.shell.push({args.output: value})

    def _list(self, args: argparse.Namespace) -> Any:
        from . import frames

        provider = str(get_provider(args.provider).name) if args.provider else \
            infer_provider("", has_dataset=True) or ""
        client_class = get_provider(provider)
        if not issubclass(client_class, ListsTasks):
            listers = [cls.label for cls in REGISTRY.values() if issubclass(cls, ListsTasks)]
            raise UsageError(f"--list works for {', '.join(listers)} only: {client_class.label} has no "
                             "list-export-tasks API")
        client = self._client(args, provider)
        assert isinstance(client, ListsTasks)  # its class lists tasks
        dataset = args.dataset or self.dataset or (self._simulator.dataset_id if args.simulate else None)
        if not dataset:
            raise UsageError("--list needs --dataset DATASET_ID")
        frame = frames.summary(client.list_export_tasks(dataset, export_type=args.export_type), tz=self.timezone)
        self._store(args, frame)
        return frame

    def _once(self, args: argparse.Namespace, targets: list[Target]) -> Any:
        from . import frames

        tasks: list[ExportTask] = []
        errors: list[ExportWidgetsError] = []
        for client, ref in targets:
            try:
                tasks.append(client.fetch(ref))
            except ExportWidgetsError as exc:
                errors.append(exc)
        if errors and not tasks:
            raise errors[0]
        for error in errors:
            print(f"export_status: {one_line(error)}", file=sys.stderr)
        frame = frames.summary(tasks, tz=self.timezone)
        self._store(args, frame)
        return frame

    def _monitor(self, args: argparse.Namespace, target: Target, *, start: bool = True) -> ExportMonitor:
        client, ref = target
        monitor = ExportMonitor(client, ref.task_id, ref.dataset_id, start=False, **self._monitor_options(args))
        record(monitor)  # before the first poll, so the store has every one
        if args.simulate:
            self._simulated.append(monitor)
        if start:
            monitor.start()
        return monitor

    def _monitor_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"interval": args.interval or self.interval, "timeout": args.timeout or self.timeout or None,
                "stall_after": self.stall_after, "unreachable_grace": self.unreachable_grace or None}

    # -- the registry of live monitors ------------------------------------------------------------------

    @staticmethod
    def watch_key(target: Target) -> WatchKey:
        """What identifies a watch: provider, endpoint, project, dataset and task id."""
        client, ref = target
        return (ref.provider, str(getattr(client, "base_url", "") or ""), str(getattr(client, "project_id", "") or ""),
                ref.dataset_id or "", ref.task_id)

    def live_monitors(self) -> list[ExportMonitor]:
        """The monitors this kernel's magic is running now (one per task; get one in a variable with ``-o``)."""
        self._prune()
        return list(self._live.values())

    def _prune(self) -> None:
        """Forget ended monitors: the next magic for their task starts a new watch."""
        for key, monitor in list(self._live.items()):
            if monitor.done:
                del self._live[key]
        for monitor in [m for m in self._watches if m.done]:
            del self._watches[monitor]

    def _live_monitor(self, args: argparse.Namespace, target: Target, *, start: bool) -> tuple[ExportMonitor, bool]:
        """The live monitor of ``target`` (re-configured by the flags given again), or a new one: (monitor, new?)."""
        key = self.watch_key(target)
        monitor = self._live.get(key)
        if monitor is not None and not monitor.done:
            monitor.configure(interval=args.interval, timeout=args.timeout)
            return monitor, False
        monitor = self._monitor(args, target, start=start)
        self._live[key] = monitor
        return monitor, True

    def _cell(self) -> int | None:
        count = getattr(self.shell, "execution_count", None)
        return count if isinstance(count, int) else None

    def _move(self, monitors: list[ExportMonitor]) -> None:
        """Detach earlier views from ``monitors`` (now shown by this cell); an earlier view left with no monitor
        becomes a static snapshot saying where the watch moved."""
        cell = self._cell()
        where = f"cell [{cell}]" if cell is not None else "a newer cell"
        for monitor in monitors:
            watch = self._watches.pop(monitor, None)
            if watch is None:
                continue
            for callback in watch.subscriptions.pop(monitor, []):
                monitor.unsubscribe(callback)
            if not watch.subscriptions:
                watch.view.finalize(note=f"This watch moved to {where}; its history goes on there.")

    def _show(self, args: argparse.Namespace, watched: ExportMonitor | MonitorGroup) -> Any:
        """Show the view and remember which callbacks it subscribed (to detach them when the watch moves)."""
        monitors = watched.monitors if isinstance(watched, MonitorGroup) else [watched]
        before = {monitor: monitor.subscriptions() for monitor in monitors}
        view = self._view(args, watched)
        watch = _Watch(view, self._cell())
        for monitor in monitors:
            watch.subscriptions[monitor] = [cb for cb in monitor.subscriptions() if cb not in before[monitor]]
            self._watches[monitor] = watch
        return view

    def _watch(self, args: argparse.Namespace, targets: list[Target]) -> None:
        self._prune()
        if len(targets) == 1:
            monitor, new = self._live_monitor(args, targets[0], start=False)
            if new:
                delay = monitor.poll_once()  # first answer in the cell: a wrong id or key fails right here
                if monitor.status is MonitorStatus.ERROR and monitor.error is not None:
                    self._store(args, monitor)
                    raise monitor.error
                if delay is not None:
                    monitor.start(delay)
            watched: ExportMonitor | MonitorGroup = monitor
        else:
            watched = MonitorGroup(self._live_monitor(args, target, start=True)[0] for target in targets)
        self._store(args, watched)
        self._notify(args, watched)
        self._move(watched.monitors if isinstance(watched, MonitorGroup) else [watched])
        view = self._show(args, watched)
        if args.wait:
            watched.wait(stop_on_interrupt=True)
            view.finalize()
            error = watched.error if isinstance(watched, ExportMonitor) else None
            if error is not None:
                raise error
        return None

    # -- the store and notifications ----------------------------------------------------------------------

    @staticmethod
    def _check_store_flags(args: argparse.Namespace) -> None:
        if args.resume and args.history:
            raise UsageError("--resume and --history exclude each other")
        if (args.notify_format or args.notify_stalled) and not args.notify:
            raise UsageError("--notify-format and --notify-stalled go with --notify URL")
        if args.notify and (args.once or args.list or args.history):
            raise UsageError("--notify goes with a watch (not --once, --list or --history)")
        if args.notify:
            from .notify import format_for

            try:
                format_for(args.notify, args.notify_format)
            except ValueError as exc:
                raise UsageError(f"--notify: {exc}") from None

    def _notify(self, args: argparse.Namespace, watched: ExportMonitor | MonitorGroup) -> None:
        if args.notify:
            from .notify import Notifier

            notify(watched.monitors if isinstance(watched, MonitorGroup) else watched,
                   Notifier(args.notify, args.notify_format), stalled=args.notify_stalled)

    def _history(self, args: argparse.Namespace) -> Any:
        """``--history [TASK_ID ...]``: the stored watches, or every poll of those tasks."""
        from .store import default_store

        store = default_store()
        if store.mode == "off":
            raise UsageError("the watch store is off (EXPORT_WIDGETS_STORE or %config ExportStatus.store = 'off'):"
                             " no history is kept")
        provider = str(get_provider(args.provider).name) if args.provider else None
        frame = history_frame(store, args.task_ids, provider=provider, tz=self.timezone)
        self._store(args, frame)
        return frame

    def _resume(self, args: argparse.Namespace) -> Any:
        """``--resume [TASK_ID ...]``: reattach to the watches whose kernel went away, their history loaded."""
        from .store import default_store

        store = default_store()
        result = resume(store, args.task_ids, timezone=self.qianfan_timezone or None, **self._monitor_options(args))
        for line in result.skipped:
            print(f"export_status --resume: {line}", file=sys.stderr)
        if not result.monitors:
            where = "the watch store is off" if store.mode == "off" else \
                f"no watch in {store.path or 'the in-memory store'} was left unfinished by a kernel that has gone"
            print(f"Nothing to resume: {where}.")
            return None
        self._prune()
        for monitor in result.monitors:  # live in this kernel now: %export_status TASK attaches to it
            self._live[self.watch_key((monitor.client, monitor.ref))] = monitor
        if len(result.monitors) == 1:  # as a new watch: the first answer in the cell (a finished task ends here)
            monitor = result.monitors[0]
            delay = monitor.poll_once()
            if delay is not None:
                monitor.start(delay)
            watched: ExportMonitor | MonitorGroup = monitor
        else:
            for monitor in result.monitors:
                monitor.start()
            watched = MonitorGroup(result.monitors)
        self._store(args, watched)
        self._notify(args, watched)
        view = self._show(args, watched)
        if args.wait:
            watched.wait(stop_on_interrupt=True)
            view.finalize()
        return None

    def _view(self, args: argparse.Namespace, watched: ExportMonitor | MonitorGroup) -> Any:
        from IPython.display import display

        from .textview import TextView, in_kernel, widgets_available

        if args.no_widget or not widgets_available():
            monitors = watched.monitors if isinstance(watched, MonitorGroup) else watched
            if in_kernel():  # a notebook: one output that updates itself, not lines printed into later cells
                mode = "display"
            elif args.wait and sys.stdout.isatty():  # blocking on a terminal: self-updating lines, like tqdm
                mode = "tty"
            else:  # a background watch on a terminal: a line per state change only, never a flood
                mode = "lines"
            return TextView(monitors, mode=mode)
        if isinstance(watched, MonitorGroup):
            from .dashboard import ExportDashboard

            view: Any = ExportDashboard(watched, max_rows=self.max_rows)
        else:
            from .widget import ExportStatusWidget

            view = ExportStatusWidget(watched)
        display(view)
        return view


def _split(line: str) -> list[str]:
    """The magic's arguments, with one pair of surrounding quotes removed from each (IPython's own split
    keeps them, so ``"task-1"`` would reach the server with its quotes); backslashes stay as typed."""
    try:
        parts = arg_split(line, strict=True)
    except ValueError as exc:  # shlex: "No closing quotation" / "No escaped character"
        raise UsageError(f"cannot read the arguments ({str(exc).lower()}): close the quote, or put the value "
                         "in matching quotes") from None
    return [arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"" else arg for arg in parts]


def _is_output_cache_name(name: str) -> bool:
    """``_12``, ``_i12``, ``_ii`` ...: names IPython's output and input caches write to."""
    return name.startswith("_") and (name[1:].isdigit() or (name.startswith("_i") and name[2:].isdigit()))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext export_widgets``: register the magic and its ``%config ExportStatus`` settings."""
    magics = ExportStatus(shell=ipython, config=ipython.config)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext export_widgets``: stop the embedded simulator if one was started."""
    for configurable in list(getattr(ipython, "configurables", [])):
        if isinstance(configurable, ExportStatus):
            configurable.close()
            ipython.configurables.remove(configurable)
