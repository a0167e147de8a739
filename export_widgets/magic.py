"""The ``%export_status`` line magic. Parsing and settings only; the work is in clients, monitor and views.

Settings are traitlets on :class:`ExportStatus` (``%config ExportStatus.interval = 5``); a flag beats a
setting. Credentials are never settings: they come from the clients' env vars.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode
from traitlets.config import Configurable

from .config import ENV
from .errors import ExportWidgetsError
from .monitor import ExportMonitor, MonitorGroup
from .providers import ModelArtsClient, QianfanClient
from .redact import one_line

__all__ = ["ExportStatus", "load_ipython_extension"]

PROVIDERS = ("modelarts", "qianfan")


@magics_class
class ExportStatus(Magics, Configurable):
    """Watch ModelArts / Qianfan dataset export tasks: ``%export_status [options] TASK_ID ...``."""

    default_provider = CaselessStrEnum(
        ("", *PROVIDERS), default_value="", config=True,
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
    simulator_speed = Float(1.0, config=True,
                            help="Time compression of the embedded simulator's demo tasks (3 = three times faster).")

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._simulator: Any = None

    # -- the magic --------------------------------------------------------------------------------------

    @magic_arguments()
    @argument("task_ids", nargs="*", metavar="TASK_ID", help="Export task id(s).")
    @argument("--provider", choices=PROVIDERS, help="modelarts or qianfan (inferred when unambiguous).")
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
    @line_magic
    def export_status(self, line: str = "") -> Any:
        """Watch dataset export tasks: a live widget by default, ``--once`` for a DataFrame, ``--wait`` to block.

        Examples::

            %export_status --simulate
            %export_status --provider modelarts --dataset DS TASK_ID
            %export_status task-4f2c --wait -o mon
            %export_status --list --dataset DS -o tasks
        """
        args = self.export_status.parser.parse_args(_split(line))
        try:
            return self._run(args)
        except ExportWidgetsError as exc:
            if not self.short_errors:
                raise
            raise UsageError(one_line(exc)) from None

    def _run(self, args: Any) -> Any:
        self._check_numbers(args)
        if args.once and args.wait:
            raise UsageError("--once and --wait exclude each other: --once fetches one status, --wait blocks "
                             "until the end")
        if args.simulate:
            self._ensure_simulator()
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
    def _check_numbers(args: Any) -> None:
        for name in ("interval", "timeout"):
            value = getattr(args, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{name} must be a positive number of seconds, got {value}")

    # -- clients ----------------------------------------------------------------------------------------

    def _provider_of(self, args: Any, task_id: str) -> str:
        if args.provider:
            return args.provider
        if self._simulator is not None and args.simulate and task_id in self._simulator.tasks:
            return self._simulator.tasks[task_id].provider
        if task_id.startswith("task-"):
            return "qianfan"
        if self.default_provider:
            return self.default_provider.lower()
        if args.dataset:
            return "modelarts"  # only ModelArts export tasks belong to a dataset
        raise UsageError(f"cannot tell the provider of task {task_id!r}: pass --provider modelarts|qianfan "
                         "(Qianfan ids look like task-…; ModelArts also needs --dataset)")

    def _target(self, args: Any, task_id: str) -> tuple[Any, str, str | None]:
        provider = self._provider_of(args, task_id)
        if provider == "qianfan":
            return self._client(args, provider), task_id, None
        dataset = args.dataset or self.dataset
        if not dataset and self._simulator is not None and args.simulate:
            spec = self._simulator.tasks.get(task_id)
            dataset = getattr(spec, "dataset_id", None) or self._simulator.dataset_id
        if not dataset:
            raise UsageError(f"ModelArts task {task_id!r} needs --dataset DATASET_ID "
                             "(or %config ExportStatus.dataset = '...')")
        return self._client(args, provider), task_id, dataset

    def _client(self, args: Any, provider: str) -> Any:
        if args.simulate:
            key: tuple[Any, ...] = ("simulator", provider)
            if key not in self._clients:
                sim = self._simulator
                self._clients[key] = sim.modelarts_client() if provider == "modelarts" else sim.qianfan_client()
            return self._clients[key]
        if provider == "modelarts":
            endpoint = args.endpoint or self.modelarts_endpoint or None
            region = args.region or self.region or None
            project = args.project or self.project_id or None
            key = ("modelarts", endpoint, region, project)
            if not (project or os.environ.get(ENV.HUAWEI_PROJECT_ID)):
                raise UsageError("ModelArts needs a project id: pass --project P, or set "
                                 f"%config ExportStatus.project_id or env {ENV.HUAWEI_PROJECT_ID}")
            if not (endpoint or region or os.environ.get(ENV.MODELARTS_ENDPOINT)):
                raise UsageError("ModelArts needs --region R (e.g. cn-north-4) or --endpoint URL "
                                 "(Open Telekom Cloud: https://modelarts.eu-de.otc.t-systems.com)")
            if key not in self._clients:
                self._clients[key] = ModelArtsClient(project_id=project, region=region, endpoint=endpoint)
        else:
            endpoint = args.endpoint or self.qianfan_endpoint or None
            key = ("qianfan", endpoint, self.qianfan_timezone)
            if key not in self._clients:
                self._clients[key] = QianfanClient(endpoint=endpoint, timezone=self.qianfan_timezone)
        return self._clients[key]

    def _ensure_simulator(self) -> None:
        if self._simulator is not None:
            return
        import dataclasses

        from . import simulator

        scenario = dataclasses.replace(simulator.Scenario.demo(), speed=self.simulator_speed)
        self._simulator = simulator.Simulator(scenario=scenario).start()
        # An ordinary info line on stdout (not a red error box), without the port: a saved notebook keeps it.
        print("Using the embedded simulator (no credentials needed; it runs until the kernel stops).")

    def close(self) -> None:
        """Stop the embedded simulator, if this magic started one."""
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
            self._clients = {k: v for k, v in self._clients.items() if k[0] != "simulator"}

    # -- modes ------------------------------------------------------------------------------------------

    def _store(self, args: Any, value: Any) -> None:
        if args.output:
            if not args.output.isidentifier():
                raise UsageError(f"-o {args.output!r} is not a valid variable name")
            self.shell.push({args.output: value})

    def _list(self, args: Any) -> Any:
        from . import frames

        if args.provider == "qianfan":
            raise UsageError("--list works for ModelArts only: Qianfan has no list-export-tasks API")
        dataset = args.dataset or self.dataset or (self._simulator.dataset_id if args.simulate else None)
        if not dataset:
            raise UsageError("--list needs --dataset DATASET_ID")
        client = self._client(args, "modelarts")
        frame = frames.summary(client.list_export_tasks(dataset, export_type=args.export_type), tz=self.timezone)
        self._store(args, frame)
        return frame

    def _once(self, args: Any, targets: list[tuple[Any, str, str | None]]) -> Any:
        from . import frames

        tasks, errors = [], []
        for client, task_id, dataset in targets:
            try:
                tasks.append(client.get_export_task(dataset, task_id) if dataset is not None
                             else client.get_export_task(task_id))
            except ExportWidgetsError as exc:
                errors.append(exc)
        if errors and not tasks:
            raise errors[0]
        for exc in errors:
            print(f"export_status: {one_line(exc)}", file=sys.stderr)
        frame = frames.summary(tasks, tz=self.timezone)
        self._store(args, frame)
        return frame

    def _watch(self, args: Any, targets: list[tuple[Any, str, str | None]]) -> None:
        interval = args.interval or self.interval
        timeout = args.timeout or self.timeout or None
        options = dict(interval=interval, timeout=timeout, stall_after=self.stall_after)
        if len(targets) == 1:
            client, task_id, dataset = targets[0]
            monitor = ExportMonitor(client, task_id, dataset, start=False, **options)
            delay = monitor.poll_once()  # first answer in the cell: a wrong id or key fails right here
            if monitor.status == "error":
                self._store(args, monitor)
                raise monitor.error  # type: ignore[misc]
            if delay is not None:
                monitor.start(delay)
            watched: ExportMonitor | MonitorGroup = monitor
        else:
            watched = MonitorGroup(ExportMonitor(c, t, d, **options) for c, t, d in targets)
        self._store(args, watched)
        view = self._view(args, watched)
        if args.wait:
            watched.wait(stop_on_interrupt=True)
            view.finalize()
            error = watched.error if isinstance(watched, ExportMonitor) else None
            if error is not None:
                raise error
        return None

    def _view(self, args: Any, watched: ExportMonitor | MonitorGroup) -> Any:
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
    return [arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"" else arg
            for arg in arg_split(line, strict=True)]


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
