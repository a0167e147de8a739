"""The ``export-widgets`` command (also ``python -m export_widgets``).

Subcommands::

    export-widgets status --provider modelarts|qianfan [--dataset D] [--project P] [--region R]
                          [--endpoint URL] [--request-timeout S] TASK_ID...
    export-widgets watch --provider modelarts|qianfan [--dataset D] [...] [--interval S] [--timeout S]
                         [--notify URL [--notify-format F] [--notify-stalled]] TASK_ID...
    export-widgets watch --resume [TASK_ID...]     (the watches whose process went away)
    export-widgets history [--task T ...] [--provider P] [--csv FILE]
    export-widgets simulate [--port N] [--scenario FILE] [--duration-scale X]
    export-widgets demo [--output DIR] [--speed X] [--no-notebook]

Exit codes: 0 success; 1 some task could not be fetched (one line each on stderr); 2 bad arguments or
configuration (one line on stderr, never a traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO

from . import _version, render
from .errors import ConfigError, ExportWidgetsError
from .models import ExportTask, TaskState
from .monitor import MonitorStatus
from .providers import REGISTRY, ClientSettings, ProviderClient, TaskRef, get_provider, make_client
from .redact import one_line
from .store import STORE_ENV, Store

__all__ = ["build_parser", "main"]

PROG = "export-widgets"


class _UsageError(Exception):
    """An argument error, already worded as the one line to print."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become one line (no usage dump) and exit code 2 is decided by :func:`main`."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# -- status --------------------------------------------------------------------------------------------------

#: Location flags: (flag, argparse attribute, the provider setting it feeds; dataset is a task's, not a client's).
_LOCATION_FLAGS = (("--dataset", "dataset", "dataset"), ("--project", "project", "project_id"),
                   ("--region", "region", "region"))


def _status_client(args: argparse.Namespace, environ: Mapping[str, str]) -> ProviderClient:
    """The client for ``--provider`` (built by the providers' factory), after checking the location flags."""
    client_class = get_provider(args.provider)
    used = set(client_class.settings_used) | ({"dataset"} if client_class.needs_dataset else set())
    misplaced = [(flag, setting) for flag, attribute, setting in _LOCATION_FLAGS
                 if getattr(args, attribute) and setting not in used]
    if misplaced:
        flags = ", ".join(flag for flag, _ in misplaced)
        takers = [name for name, cls in REGISTRY.items()
                  if misplaced[0][1] in cls.settings_used or (misplaced[0][1] == "dataset" and cls.needs_dataset)]
        raise ConfigError(f"{flags} applies to --provider {'|'.join(takers) or 'none'} only")
    if client_class.needs_dataset and not args.dataset:
        raise ConfigError(f"--provider {client_class.name} needs --dataset DATASET_ID")
    return make_client(client_class.name, ClientSettings(endpoint=args.endpoint, region=args.region,
                                                         project_id=args.project,
                                                         request_timeout=args.request_timeout, environ=environ))


def _refs(client: ProviderClient, args: argparse.Namespace) -> list[TaskRef]:
    dataset = args.dataset if client.needs_dataset else None
    return [TaskRef(client.name, task_id, dataset) for task_id in args.task_ids]


def run_status(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Fetch each task once and print the table; 1 if any task could not be fetched."""
    client = _status_client(args, environ)
    tasks: list[ExportTask] = []
    failed = 0
    try:
        for ref in _refs(client, args):
            try:
                task = client.fetch(ref)
            except ExportWidgetsError as exc:
                failed += 1
                err.write(f"{PROG} status: {ref.task_id}: {one_line(exc)}\n")
                continue
            tasks.append(task)
    finally:
        client.close()
    if tasks:
        out.write(render.task_table(tasks) + "\n")
    return 1 if failed else 0


# -- watch ---------------------------------------------------------------------------------------------------

def run_watch(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Watch tasks to their end with text lines; 0 only when every task succeeded."""
    from .monitor import ExportMonitor, MonitorGroup
    from .persist import follow

    if args.resume:
        return run_resume(args, out, err, environ)
    if not args.provider or not args.task_ids:
        raise ConfigError(f"--provider and at least one TASK_ID are required, or --resume (see {PROG} watch --help)")
    notifier = _notifier(args)
    client = _status_client(args, environ)
    watch_timeout = args.timeout
    store = _open_store(args, environ)
    try:
        monitors = [ExportMonitor(client, ref.task_id, ref.dataset_id, interval=args.interval,
                                  timeout=watch_timeout, start=False) for ref in _refs(client, args)]
        group = MonitorGroup(follow(monitor, store=store) for monitor in monitors)
        _follow_to_end(group, args, notifier, out)
    finally:
        client.close()
        _close(store, notifier)
    return _watch_exit(group, watch_timeout, out, err)


def _watch_exit(group: Any, watch_timeout: float | None, out: TextIO, err: TextIO) -> int:
    """The final table, one line per task that did not end well, and the exit code."""
    if any(m.latest is not None for m in group):
        out.write("\n" + render.monitor_table(group) + "\n")
    for monitor in group:
        if monitor.error is not None:
            err.write(f"{PROG} watch: {monitor.task_id}: {one_line(monitor.error)}\n")
        elif monitor.status is MonitorStatus.TIMED_OUT:
            last = monitor.latest.state.value if monitor.latest else "unknown"
            err.write(f"{PROG} watch: {monitor.task_id}: still {last} after --timeout {watch_timeout:g} s\n")
    succeeded = all(m.latest is not None and m.latest.state is TaskState.SUCCEEDED for m in group)
    return 0 if succeeded else 1


def run_resume(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """``watch --resume [TASK_ID ...]``: continue the watches whose process went away, their history loaded."""
    from .monitor import MonitorGroup
    from .persist import resume

    if args.provider or args.dataset or args.project or args.region or args.endpoint:
        raise ConfigError("--resume takes the provider, endpoint, project and dataset of each stored watch: "
                          "drop --provider/--dataset/--project/--region/--endpoint")
    notifier = _notifier(args)
    store = _open_store(args, environ)
    clients: dict[tuple[Any, ...], ProviderClient] = {}
    try:
        result = resume(store, args.task_ids, environ=environ, request_timeout=args.request_timeout,
                        clients=clients, interval=args.interval, timeout=args.timeout)
        for line in result.skipped:
            err.write(f"{PROG} watch --resume: {line}\n")
        if not result.monitors:
            out.write("nothing to resume: no unfinished watch whose process has gone\n")
            return 1 if result.skipped else 0
        for old in result.resumed_from:
            out.write(f"resuming {old.provider} {old.task_id} ({old.polls} earlier polls, last state "
                      f"{old.last_state or 'unknown'})\n")
        group = MonitorGroup(result.monitors)
        for monitor in group:
            monitor.start()
        _follow_to_end(group, args, notifier, out)
    finally:
        for client in clients.values():
            client.close()
        _close(store, notifier)
    return max(_watch_exit(group, args.timeout, out, err), 1 if result.skipped else 0)


def _follow_to_end(group: Any, args: argparse.Namespace, notifier: Any, out: TextIO) -> None:
    from .persist import notify
    from .textview import TextView

    if notifier is not None:
        notify(group.monitors, notifier, stalled=args.notify_stalled)
    TextView(group.monitors, stream=out)
    try:
        group.wait(stop_on_interrupt=True, reraise=True)
    finally:  # Ctrl-C: stop polling, then main() reports "interrupted" and exits 130
        group.stop()


def _notifier(args: argparse.Namespace) -> Any:
    """The webhook notifier of ``--notify`` (checked before anything starts), or None."""
    if (args.notify_format or args.notify_stalled) and not args.notify:
        raise ConfigError("--notify-format and --notify-stalled go with --notify URL")
    if not args.notify:
        return None
    from .notify import Notifier

    try:
        return Notifier(args.notify, args.notify_format)
    except ValueError as exc:
        raise ConfigError(f"--notify: {exc}") from None


def _open_store(args: argparse.Namespace, environ: Mapping[str, str]) -> Store:
    """``--store``, else ``EXPORT_WIDGETS_STORE`` (from ``environ``, then this process), else the default file."""
    return Store(args.store, environ={**os.environ, **environ})


NOTIFY_FLUSH_TIMEOUT = 30.0


def _close(store: Store, notifier: Any) -> None:
    """Write the store and send the last notifications before the process exits."""
    store.close()
    if notifier is not None and not notifier.flush(NOTIFY_FLUSH_TIMEOUT):
        sys.stderr.write(f"{PROG}: a notification was still being sent after {NOTIFY_FLUSH_TIMEOUT:g} s\n")


# -- history -------------------------------------------------------------------------------------------------

_WATCH_TABLE = (("WATCH", "watch_id"), ("PROVIDER", "provider"), ("TASK ID", "task_id"), ("STARTED", "started_at"),
                ("ENDED", "ended_at"), ("HOW", "end_reason"), ("LAST STATE", "last_state"), ("POLLS", "polls"))
_POLL_TABLE = (("POLLED AT", "polled_at"), ("TASK ID", "task_id"), ("OUTCOME", "outcome"), ("STATE", "state"),
               ("PROGRESS", "progress"), ("DONE", "finished_samples"), ("TOTAL", "total_samples"),
               ("ERROR", "error_message"))


def run_history(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Past watches (or every poll of ``--task``) from the store, as a table or ``--csv``."""
    from .persist import history_frame

    store = _open_store(args, environ)
    try:
        if store.mode == "off":
            raise ConfigError(f"the watch store is off ({STORE_ENV}=off): no history is kept")
        if store.path is not None and not store.path.exists():
            raise ConfigError(f"no watch store at {store.path} yet: watch a task first, or pass --store FILE")
        frame = history_frame(store, args.task or (), provider=args.provider, tz=args.tz)
    finally:
        store.close()
    if args.csv:
        frame.to_csv(args.csv if args.csv != "-" else out, index=False)
        if args.csv != "-":
            out.write(f"wrote {len(frame)} rows to {args.csv}\n")
        return 0
    if frame.empty:
        out.write("no polls of " + ", ".join(args.task) + " in the store\n" if args.task else
                  "no watches in the store\n")
        return 0
    columns = _POLL_TABLE if args.task else _WATCH_TABLE
    rows = [[_cell(name, row[name]) for _, name in columns] for _, row in frame.iterrows()]
    out.write(render.text_table(rows, [header for header, _ in columns]) + "\n")
    return 0


def _cell(name: str, value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or value is pd.NaT:
        return "-"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if name == "watch_id":
        return str(value)[:8]
    if name == "progress":
        return f"{value:.1f}%"
    return str(value)


# -- demo ----------------------------------------------------------------------------------------------------

def run_demo(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """The README's main job: everything, offline, on the embedded simulator."""
    from .demo import run_demo as demo

    return demo(args.output, speed=args.speed, notebook=not args.no_notebook, stream=out)


# -- simulate ------------------------------------------------------------------------------------------------

def run_simulate(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Serve the simulator in the foreground until Ctrl-C or SIGTERM."""
    from .simulator import Scenario, Simulator
    from .simulator.banner import banner

    try:
        scenario = Scenario.from_file(args.scenario) if args.scenario else Scenario.demo()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.duration_scale != 1.0:
        scenario = dataclasses.replace(scenario, speed=scenario.speed / args.duration_scale)
    try:
        sim = Simulator(scenario=scenario, port=args.port).start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc}): pick another --port, "
                          "or 0 for any free port") from None
    stop = threading.Event()
    restore = _on_signals((signal.SIGINT, signal.SIGTERM), lambda *_: stop.set())
    try:
        out.write(banner(sim, scenario, prog=PROG) + "\n")
        out.flush()
        while not stop.wait(0.25):
            pass
    except KeyboardInterrupt:  # signals could not be hooked (not the main thread)
        pass
    finally:
        sim.stop()
        restore()
    out.write(f"{PROG} simulator stopped ({sim.request_count()} requests served)\n")
    out.flush()
    return 0


def _on_signals(signals: Sequence[int], handler: Callable[..., None]) -> Callable[[], None]:
    """Install ``handler`` for ``signals`` (main thread only); returns a function restoring the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, handler) for sig in signals}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


# -- start and download (issue 15) ------------------------------------------------------------------------------

def run_start(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Start an export, watch it to its end with text lines, optionally download it; 0 when it succeeded."""
    from .providers import CreatesExports
    from .start import CREATE_OPTIONS, start_export
    from .textview import TextView

    client_class = get_provider(args.provider)
    if not issubclass(client_class, CreatesExports):
        raise ConfigError(f"{client_class.label} cannot start exports here")
    options = {name: getattr(args, name) for name in CREATE_OPTIONS}
    create_args, create_fields = client_class.create_arguments(options)  # before any request
    client = _status_client(args, environ)
    store = _open_store(args, environ)
    try:
        assert isinstance(client, CreatesExports)
        monitor = start_export(client, *create_args, interval=args.interval, timeout=args.timeout, new=args.new,
                               store=store, new_hint="pass --new for another",
                               notify=lambda text: print(f"{PROG} start: {text}", file=err), **create_fields)
        TextView(monitor, stream=out)
        monitor.wait(stop_on_interrupt=True)
        task = monitor.latest
        if monitor.error is not None:
            err.write(f"{PROG} start: {monitor.task_id}: {one_line(monitor.error)}\n")
        elif monitor.status is MonitorStatus.TIMED_OUT:
            err.write(f"{PROG} start: {monitor.task_id}: still {task.state.value if task else 'unknown'} after "
                      f"--timeout {args.timeout:g} s (watch it with: {PROG} watch --provider {client.name} "
                      f"{monitor.task_id})\n")
        if task is None or task.state is not TaskState.SUCCEEDED:
            return 1
        if args.download:
            from .download import TextDownloadView

            out.write(str(monitor.download(args.download, progress=TextDownloadView(out))) + "\n")
    finally:
        client.close()
        store.close()  # the watch's last polls and its end
    return 0


def run_download(args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> int:
    """Download a finished export (Qianfan) or print its copy command (ModelArts)."""
    from .download import TextDownloadView, download_export

    client = _status_client(args, environ)
    try:
        ref = TaskRef(client.name, args.task_id, args.dataset if client.needs_dataset else None)
        result = download_export(client, ref, args.directory, progress=TextDownloadView(out))
    finally:
        client.close()
    out.write(str(result) + "\n")
    return 0


def _add_flow_commands(commands: Any, target: argparse.ArgumentParser) -> None:
    """The ``start`` and ``download`` subcommands."""
    start = commands.add_parser(
        "start", parents=[target], help="start an export, watch it to its end (and download it)",
        description="Create an export task, then print a line per change until it ends. ModelArts: --dataset D "
                    "--path obs://bucket/dir/ [--export-type N] [--export-format N] [--version V] "
                    "[--sample-state S]; Qianfan: --version ds-... [--bos bos:/bucket/dir/ | --sys-storage]. "
                    "Exit 0 when the export succeeded.")
    start.add_argument("--path", help="ModelArts: the OBS directory to export to (obs://bucket/dir/)")
    start.add_argument("--version", help="Qianfan: the dataset version ds-...; ModelArts: a dataset version id")
    start.add_argument("--export-type", type=int, help="ModelArts: 0 labeled, 1 unlabeled, 2 all, 3 search")
    start.add_argument("--export-format", type=int, help="ModelArts: 1 tree, 2 tile")
    start.add_argument("--sample-state", help="ModelArts: ALL, NONE, ACCEPTED, ... (export_params.sample_state)")
    start.add_argument("--bos", metavar="BOS_PATH", help="Qianfan: export to bos:/bucket/dir/")
    start.add_argument("--sys-storage", action="store_true", help="Qianfan: export to platform storage (default)")
    start.add_argument("--interval", type=_positive, default=2.0, help="poll floor in seconds (default 2)")
    start.add_argument("--timeout", type=_positive, help="stop watching after this many seconds")
    start.add_argument("--request-timeout", type=_positive, help="read timeout per request in seconds")
    start.add_argument("--download", metavar="DIR", help="when it succeeded, download it into DIR")
    start.add_argument("--new", action="store_true", help="start another export even if an identical one was "
                                                          "started in the last 15 minutes (default: reuse it)")
    _store_flags(start)
    start.set_defaults(handler=run_start)

    download = commands.add_parser(
        "download", parents=[target], help="download a finished export (Qianfan) or print its copy command",
        description="Qianfan: stream the export's file into DIR (resumable, atomic, size-checked). ModelArts: "
                    "print the obsutil command that copies the export's OBS directory into DIR.")
    download.add_argument("--request-timeout", type=_positive, help="read timeout per request in seconds")
    download.add_argument("directory", metavar="DIR")
    download.add_argument("task_id", metavar="TASK_ID")
    download.set_defaults(handler=run_download)


# -- parser and entry point ------------------------------------------------------------------------------------

def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: use 0..65535 (0 = any free port)")
    return int(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


_REQUEST_TIMEOUT_HELP = "seconds one request may take in all (connect, headers and body; default 30)"


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="FILE",
                        help=f"the watch store: a file, 'off' or ':memory:' (default: env {STORE_ENV}, else "
                             "the user's state directory)")


def _notify_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notify", metavar="URL", help="webhook to POST to when every task has ended (Feishu/Lark, "
                                                        "DingTalk, Slack or JSON)")
    parser.add_argument("--notify-format", metavar="NAME", help="feishu, dingtalk, slack or json (default: by "
                                                               "the URL's host)")
    parser.add_argument("--notify-stalled", action="store_true",
                        help="also notify when a task stops moving for 5 minutes")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog=PROG, description="Watch ModelArts and Qianfan dataset export tasks; run the offline "
                                            "simulator of both APIs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    # Where the tasks are: shared by `status` and `watch` (whose --resume takes them from the store instead).
    def target_flags(provider_required: bool) -> _Parser:
        target = _Parser(add_help=False)
        target.add_argument("--provider", required=provider_required, choices=tuple(REGISTRY))
        target.add_argument("--dataset", help="ModelArts dataset id (required for modelarts)")
        target.add_argument("--project", help="ModelArts project id (default: env HUAWEICLOUD_SDK_PROJECT_ID)")
        target.add_argument("--region", help="ModelArts region, e.g. cn-north-4")
        target.add_argument("--endpoint", help="base URL (default: the provider's env var, e.g. " + "; ".join(
            f"{cls.label}: {cls.env.endpoint}" for cls in REGISTRY.values() if cls.env.endpoint) + ")")
        return target

    status = commands.add_parser(
        "status", parents=[target_flags(provider_required=True)],
        help="print the current status of export tasks as a table",
        description="Fetch each task once and print a table. Credentials come from the environment "
                    "(HUAWEICLOUD_SDK_AK/SK/PROJECT_ID or QIANFAN_ACCESS_KEY/SECRET_KEY).")
    status.add_argument("--request-timeout", type=_positive, help=_REQUEST_TIMEOUT_HELP)
    status.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    status.set_defaults(handler=run_status)

    simulate = commands.add_parser(
        "simulate", help="run the embedded simulator of both APIs in the foreground",
        description="Serve simulated ModelArts and Qianfan export tasks on 127.0.0.1 and print the env vars "
                    "that point clients at it. Stops on Ctrl-C or SIGTERM.")
    simulate.add_argument("--port", type=_port, default=0, help="port to listen on (default: any free port)")
    simulate.add_argument("--scenario", metavar="FILE", help="scenario JSON file (default: the built-in demo set)")
    simulate.add_argument("--duration-scale", type=_positive, default=1.0, metavar="X",
                          help="multiply every task duration by X (0.5 = twice as fast)")
    simulate.set_defaults(handler=run_simulate)

    watch = commands.add_parser(
        "watch", parents=[target_flags(provider_required=False)],
        help="follow export tasks until they end, one status line per change",
        description="Poll in the background, print a line whenever a task changes, then a final table. "
                    "Exit 0 when every task succeeded, 1 otherwise (failed, stopped, timed out, not found).")
    watch.add_argument("--interval", type=_positive, default=2.0, help="poll floor in seconds (default 2)")
    watch.add_argument("--timeout", type=_positive, help="stop watching after this many seconds")
    watch.add_argument("--request-timeout", type=_positive, help=_REQUEST_TIMEOUT_HELP)
    watch.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    watch.add_argument("--resume", action="store_true",
                       help="continue the watches (all, or of the TASK_IDs) whose process went away, their poll "
                            "history loaded; provider, endpoint and ids come from the store")
    _store_flags(watch)
    _notify_flags(watch)
    watch.set_defaults(handler=run_watch)

    history = commands.add_parser(
        "history", help="past watches and every poll of a task, from the watch store",
        description="The watch store records every watch and poll (of this command, the magic and watch() in "
                    "Python). Without --task: one row per watch. With --task: every poll of those tasks, across "
                    "sessions.")
    history.add_argument("--task", action="append", metavar="TASK_ID", help="every poll of this task (repeatable)")
    history.add_argument("--provider", choices=tuple(REGISTRY), help="only this provider's tasks")
    history.add_argument("--csv", metavar="FILE", help="write the DataFrame as CSV (- for stdout)")
    history.add_argument("--tz", default="UTC", help="time zone of the times shown (default UTC)")
    _store_flags(history)
    history.set_defaults(handler=run_history)

    demo = commands.add_parser(
        "demo", help="watch the simulator's demo exports and run the quickstart notebook (offline)",
        description="Start the embedded simulator, watch its demo export tasks in the terminal, save the "
                    "DataFrames as CSV and run notebooks/quickstart.ipynb headlessly. Needs no credentials.")
    demo.add_argument("--output", metavar="DIR", default="export-widgets-demo",
                      help="where to write the CSVs and the executed notebook (default ./export-widgets-demo)")
    demo.add_argument("--speed", type=_positive, default=3.0,
                      help="time compression of the simulated exports (default 3 = three times faster)")
    demo.add_argument("--no-notebook", action="store_true", help="skip running the quickstart notebook")
    demo.set_defaults(handler=run_demo)
    _add_flow_commands(commands, target_flags(provider_required=True))
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         environ: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        err.write(f"{exc}\n")
        return 2
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    try:
        return int(args.handler(args, out, err, os.environ if environ is None else environ))
    except (ConfigError, ValueError) as exc:
        err.write(f"{PROG} {args.command}: error: {one_line(exc)}\n")
        return 2
    except ExportWidgetsError as exc:
        err.write(f"{PROG} {args.command}: error: {one_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        err.write(f"{PROG} {args.command}: interrupted\n")
        return 130
