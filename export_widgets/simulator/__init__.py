"""An offline stand-in for the ModelArts and Qianfan export-task APIs, over real HTTP on 127.0.0.1.

It verifies signatures (SDK-HMAC-SHA256, IAM token, bce-auth-v1) the way the gateways do, answers in each
vendor's JSON and error shapes, plays declarative scenarios driven by an injectable clock, and injects
faults (throttling, 5xx, timeouts, dropped connections, broken bodies) on demand::

    from export_widgets.simulator import serve, FakeClock, TaskSpec, Fault

    with serve([TaskSpec("modelarts", "task1", duration=30, outcome="fail", fail_at=60)],
               clock=FakeClock()) as sim:
        client = sim.modelarts_client()
        sim.clock.advance(15)
        client.get_export_task(sim.dataset_id, "task1")     # RUNNING, progress 50.0
        sim.clock.advance(5)
        client.get_export_task(sim.dataset_id, "task1")     # FAILED at 60.0 (ModelArts.4311)
        sim.set_faults("task1", [Fault("rate_limit", retry_after=3)])
        client.get_export_task(sim.dataset_id, "task1")     # raises RateLimitedError(retry_after=3.0)

Starting exports and downloading them (issue 15)::

    with serve([], clock=FakeClock(), create={"template": {"duration": 20}, "running_limit": 2,
                                              "read_lag_requests": 1}) as sim:
        task_id = ...  # POST .../export-tasks or Action=CreateExportTask: validated like the vendors (see .create)
        sim.clock.advance(20)
        url = sim.download_url_for(task_id)      # what DescribeExportTask's downloadUrl says now
        sim.export_file(task_id).sha256()        # the exact bytes it serves (a deterministic zip)
        sim.set_faults(task_id, [Fault("download_cut", size=100_000)])   # next download drops after 100 kB

Download faults (keyed by the task id, they fire only on downloads): ``download_cut``, ``download_error``,
``download_slow``, ``download_no_range``. URLs expire ``download_ttl`` scenario seconds after the describe that
issued them (403 ``RequestExpired``); Range gives 206, a bad range 416 (see :mod:`.bos`).

Counting requests (issue 17): ``sim.request_count(operation="list")`` (also ``"status"``, ``"create"``,
``"download"``; with ``task_id=``/``provider=``/``status=`` filters) and ``sim.request_counts()``.

``serve()`` without tasks serves the demo set (:func:`demo_tasks`); ``export-widgets simulate`` runs it from
the shell.

Standard library plus ``export_widgets.signing`` only; it never imports pandas or ipywidgets.
"""

from __future__ import annotations

from .app import OPERATION_KINDS, Request, SimulatorApp
from .clock import DEFAULT_EPOCH, FakeClock, SystemClock
from .credentials import DEFAULT_PROJECT_ID, SimulatorCredentials
from .exportfile import ExportFile
from .faults import ANY_TASK, DOWNLOAD_FAULT_KINDS, FAULT_KINDS, Fault
from .requestlog import RequestLog, RequestRecord
from .scenario import DEFAULT_DATASET_ID, DEFAULT_DOWNLOAD_TTL, CreatePolicy, Scenario, TaskSpec, demo_tasks
from .server import ENDPOINT_ENV, Simulator, SimulatorServer, serve
from .vendor import Response

__all__ = [
    "ANY_TASK",
    "CreatePolicy",
    "DEFAULT_DATASET_ID",
    "DEFAULT_DOWNLOAD_TTL",
    "DEFAULT_EPOCH",
    "DEFAULT_PROJECT_ID",
    "DOWNLOAD_FAULT_KINDS",
    "ENDPOINT_ENV",
    "ExportFile",
    "FAULT_KINDS",
    "FakeClock",
    "Fault",
    "OPERATION_KINDS",
    "Request",
    "RequestLog",
    "RequestRecord",
    "Response",
    "Scenario",
    "Simulator",
    "SimulatorApp",
    "SimulatorCredentials",
    "SimulatorServer",
    "SystemClock",
    "TaskSpec",
    "demo_tasks",
    "serve",
]
