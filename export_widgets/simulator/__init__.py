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

``serve()`` without tasks serves the demo set (:func:`demo_tasks`); ``export-widgets simulate`` runs it from
the shell.

Standard library plus ``export_widgets.signing`` only; it never imports pandas or ipywidgets.
"""

from __future__ import annotations

from .app import Request, SimulatorApp
from .clock import DEFAULT_EPOCH, FakeClock, SystemClock
from .credentials import DEFAULT_PROJECT_ID, SimulatorCredentials
from .faults import ANY_TASK, FAULT_KINDS, Fault
from .requestlog import RequestLog, RequestRecord
from .scenario import DEFAULT_DATASET_ID, Scenario, TaskSpec, demo_tasks
from .server import ENDPOINT_ENV, Simulator, SimulatorServer, serve
from .vendor import Response

__all__ = [
    "ANY_TASK",
    "DEFAULT_DATASET_ID",
    "DEFAULT_EPOCH",
    "DEFAULT_PROJECT_ID",
    "ENDPOINT_ENV",
    "FAULT_KINDS",
    "FakeClock",
    "Fault",
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
