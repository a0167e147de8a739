"""Watch ModelArts and Qianfan dataset export tasks from Python, IPython and Jupyter.

``%load_ext export_widgets`` registers the ``%export_status`` magic; the clients, task model and errors are
importable without IPython.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    ExportWidgetsError,
    RateLimitedError,
    ResponseFormatError,
    TaskNotFoundError,
    TransportError,
)
from .models import ExportParams, ExportTask, SearchCondition, TaskState
from .monitor import ExportMonitor, MonitorGroup, MonitorStatus, watch, watch_many
from .providers import ModelArtsClient, QianfanClient, TaskRef, make_client
from .start import start_export

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigError",
    "ExportMonitor",
    "ExportParams",
    "ExportTask",
    "ExportWidgetsError",
    "ModelArtsClient",
    "MonitorGroup",
    "MonitorStatus",
    "QianfanClient",
    "RateLimitedError",
    "ResponseFormatError",
    "SearchCondition",
    "TaskNotFoundError",
    "TaskRef",
    "TaskState",
    "TransportError",
    "__version__",
    "make_client",
    "start_export",
    "watch",
    "watch_many",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext export_widgets``: registers ``%export_status`` (IPython is imported only now)."""
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext export_widgets``."""
    from .magic import unload_ipython_extension as unload

    unload(ipython)
