"""The magic's ``--start`` and ``--download`` modes: create (or reuse) an export and watch it; fetch its result.

Parsing, settings and the watch registry stay in :mod:`export_widgets.magic`; these functions take its
:class:`~export_widgets.magic.ExportStatus` and the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .monitor import MonitorStatus
from .providers import REGISTRY, CreatesExports, as_task_source, get_provider, infer_provider
from .start import CREATE_OPTIONS, start_export

if TYPE_CHECKING:
    from .magic import ExportStatus

__all__ = ["run_download", "run_start"]


def _start_provider(magics: ExportStatus, args: argparse.Namespace) -> str:
    """--provider, else the configured default, else the dataset-scoped provider when --dataset/--path is given,
    else the only creating provider whose tasks need no dataset."""
    if args.provider:
        return str(get_provider(args.provider).name)
    if magics.default_provider:
        return str(magics.default_provider)
    if args.dataset or args.path or magics.dataset:
        scoped = infer_provider("", has_dataset=True)
        if scoped:
            return scoped
    free = [name for name, cls in REGISTRY.items() if not cls.needs_dataset and issubclass(cls, CreatesExports)]
    if len(free) == 1:
        return free[0]
    raise UsageError(f"cannot tell which provider to start an export on: pass --provider {'|'.join(REGISTRY)}")


def run_start(magics: ExportStatus, args: argparse.Namespace) -> None:
    """``%export_status --start ...``: create (or reuse) the export, then watch it with the watch flags."""
    if args.task_ids:
        raise UsageError("--start takes no TASK_ID: it starts a new export (see %export_status? for its options)")
    if args.once:
        raise UsageError("--start watches the export it starts: drop --once (add --wait to block)")
    provider = _start_provider(magics, args)
    client = magics._client(args, provider)
    if not isinstance(client, CreatesExports):
        raise UsageError(f"{get_provider(provider).label} cannot start exports here")
    options = {name: getattr(args, name) for name in CREATE_OPTIONS}
    if get_provider(provider).needs_dataset:
        options["dataset"] = options["dataset"] or magics.dataset or \
            (magics._simulator.dataset_id if args.simulate and magics._simulator is not None else None)
    create_args, create_fields = client.create_arguments(options)  # ConfigErrors before any request
    window = args.reuse_window if args.reuse_window is not None else magics.reuse_window
    magics._prune()
    monitor = start_export(client, *create_args, new=args.new, reuse_window=window,
                           interval=args.interval or magics.interval, timeout=args.timeout or magics.timeout or None,
                           stall_after=magics.stall_after, start=False,
                           monitor_options={"unreachable_grace": magics.unreachable_grace or None},
                           notify=lambda text: print(text, file=sys.stderr),
                           new_hint="pass --new for another", **create_fields)
    if monitor.reused and monitor.polling:  # still watched in this kernel: take the flags given again
        monitor.configure(interval=args.interval, timeout=args.timeout)
    else:
        delay = monitor.poll_once()  # first answer in the cell (not found is retried within the grace window)
        if monitor.status is MonitorStatus.ERROR and monitor.error is not None:
            magics._store(args, monitor)
            raise monitor.error
        if delay is not None:
            monitor.start(delay)
    magics._live[magics.watch_key((client, monitor.ref))] = monitor  # a plain watch of the task joins this one
    magics._store(args, monitor)
    magics._move([monitor])  # a re-run cell takes the watch over from the earlier one
    view = magics._show(args, monitor)
    if args.wait:
        monitor.wait(stop_on_interrupt=True)
        view.finalize()
        if monitor.error is not None:
            raise monitor.error
    return None


def run_download(magics: ExportStatus, args: argparse.Namespace) -> Any:
    """``%export_status --download DIR TASK_ID``: the file (Qianfan) or the copy command (ModelArts)."""
    # imported when first used, so %load_ext export_widgets does not pay for them
    from .download import TextDownloadView, download_export
    from .downloadview import DownloadCardView
    from .textview import in_kernel

    if len(args.task_ids) != 1:
        raise UsageError("--download DIR takes exactly one TASK_ID: %export_status --download DIR TASK_ID")
    client, ref = magics._target(args, args.task_ids[0])
    if not getattr(as_task_source(client), "delivers_by_link", False):
        result = download_export(client, ref, args.download)  # a copy command: nothing moves, nothing to follow
    elif in_kernel():
        # one output updated in place (<= 2/s and the end), HTML card + text line: a saved notebook keeps the end
        card = DownloadCardView(ref.task_id, ref.provider, every=0.5, html=not args.no_widget)
        try:
            result = download_export(client, ref, args.download, progress=card)
        except BaseException as exc:
            card.fail(exc)
            raise
    else:
        result = download_export(client, ref, args.download, progress=TextDownloadView(sys.stderr))
    magics._store(args, result)
    print(str(result))
    return None
