"""Watch ModelArts and Qianfan dataset export tasks from Python, IPython and Jupyter.

``%load_ext export_widgets`` registers the ``%export_status`` magic; the clients, task model and errors are
importable without IPython.
"""

from __future__ import annotations

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
from .providers import ModelArtsClient, QianfanClient

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigError",
    "ExportParams",
    "ExportTask",
    "ExportWidgetsError",
    "ModelArtsClient",
    "QianfanClient",
    "RateLimitedError",
    "ResponseFormatError",
    "SearchCondition",
    "TaskNotFoundError",
    "TaskState",
    "TransportError",
    "__version__",
]
