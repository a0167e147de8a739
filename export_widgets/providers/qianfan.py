"""Baidu Qianfan dataset-version export tasks.

Supported operation: ``POST /v2/dataset?Action=DescribeExportTask`` with body ``{"taskId": ...}``, signed with
``bce-auth-v1``. Errors may arrive as HTTP 200 carrying ``{requestId, code, message}``; those raise too.
Qianfan has no list-export-tasks action.

Vendor reference: Qianfan console API, "获取数据集版本导出详情" (DescribeExportTask, updated 2024-09-09), and the
``qianfan`` SDK's ``get_dataset_version_export_task_info``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from .._coerce import as_count, as_float, as_percent, as_str, from_local_text
from .._http import HttpClient, Reply, body_snippet
from ..config import normalise_endpoint, resolve_credentials
from ..errors import ConfigError, ResponseFormatError, classify_error
from ..models import ExportTask, TaskState
from ..signing import BceAuth
from .base import GENERIC_CODES, ClientSettings, EnvNames, ErrorCodes, TaskRef

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_TIMEZONE", "ENV", "ERROR_CODES", "QianfanClient", "parse_export_task"]

PROVIDER = "qianfan"
LABEL = "Qianfan"
DEFAULT_ENDPOINT = "https://qianfan.baidubce.com"
#: The qianfan SDK's own names.
ENV = EnvNames(access_key="QIANFAN_ACCESS_KEY", secret_key="QIANFAN_SECRET_KEY",
               endpoint="QIANFAN_CONSOLE_API_BASE_URL")
ENV_SIGN_EXPIRATION = "QIANFAN_IAM_SIGN_EXPIRATION_SEC"
#: Task ids the console shows: ``task-`` and a hex string (the magic infers the provider from it).
TASK_ID_PREFIX = "task-"

#: BCE (Baidu Cloud) and Qianfan console error codes, by what they mean for a watch. The console sends
#: errors inside HTTP 200 too; the qianfan SDK itself retries 500000 ("console internal error") and 336100.
ERROR_CODES = GENERIC_CODES | ErrorCodes(
    auth=frozenset({"InvalidHTTPAuthHeader", "OptInRequired"}),
    not_found=frozenset({"TaskNotFound", "DatasetNotFound"}),
    rate_limited=frozenset({"QPSLimitReached", "RPMLimitReached", "ServerHighLoad", "RequestLimitReached"}),
    server=frozenset({"500000", "336100"}),
)
OP_DESCRIBE = "DescribeExportTask"
#: Qianfan console times carry no zone; the console shows Beijing time.
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_SIGN_EXPIRATION = 300  # seconds, as the qianfan SDK

STATUS_MAP: Mapping[str, TaskState] = {
    "Exporting": TaskState.RUNNING,
    "ExportFinished": TaskState.SUCCEEDED,
    "ExportFailed": TaskState.FAILED,
}


def _zone(name: str | tzinfo) -> tzinfo:
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai' or 'UTC'") from exc


class QianfanClient(HttpClient):
    """Read Qianfan dataset-version export tasks.

    Parameters
    ----------
    ak, sk : str, optional
        IAM Access Key / Secret Key (env ``QIANFAN_ACCESS_KEY``, ``QIANFAN_SECRET_KEY``).
    endpoint : str, optional
        Console API base URL (env ``QIANFAN_CONSOLE_API_BASE_URL``, default ``https://qianfan.baidubce.com``).
    timezone : str or tzinfo
        Zone of the naive ``startTime``/``finishTime`` strings (default ``Asia/Shanghai``).
    sign_expiration : int, optional
        Signature validity in seconds (env ``QIANFAN_IAM_SIGN_EXPIRATION_SEC``, default 300).
    timeout : float or (connect, read), optional
        Timeout of each socket operation in seconds (default 5 s connect, 30 s read).
    request_timeout : float, optional
        Deadline of a whole request, body included (default 30 s): a server trickling its answer cannot hold it.
    """

    name: ClassVar[str] = PROVIDER
    label: ClassVar[str] = LABEL
    needs_dataset: ClassVar[bool] = False
    env: ClassVar[EnvNames] = ENV
    settings_used: ClassVar[frozenset[str]] = frozenset({"endpoint", "timezone", "request_timeout"})
    error_codes: ClassVar[ErrorCodes] = ERROR_CODES

    def __init__(
        self,
        ak: str | None = None,
        sk: str | None = None,
        endpoint: str | None = None,
        *,
        timezone: str | tzinfo = DEFAULT_TIMEZONE,
        sign_expiration: int | None = None,
        timeout: float | tuple[float, float] | None = None,
        request_timeout: float | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.credentials = resolve_credentials(LABEL, ENV, ak=ak, sk=sk, environ=env)
        base = endpoint or env.get(ENV.endpoint or "") or DEFAULT_ENDPOINT
        self.timezone = _zone(timezone)
        expiration = sign_expiration or _int_env(env, ENV_SIGN_EXPIRATION, DEFAULT_SIGN_EXPIRATION)
        auth = BceAuth(self.credentials.access_key or "", self.credentials.secret_key or "",
                       expiration=expiration, clock=clock)
        super().__init__(normalise_endpoint(base), auth, timeout=timeout, request_timeout=request_timeout,
                         session=session)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> QianfanClient:
        """The client for ``settings`` (endpoint > env > the public console)."""
        return cls(endpoint=settings.endpoint, timezone=settings.timezone or DEFAULT_TIMEZONE,
                   request_timeout=settings.request_timeout, environ=settings.environ)

    @classmethod
    def claims_task_id(cls, task_id: str) -> bool:
        """Qianfan export task ids start with ``task-``."""
        return task_id.startswith(TASK_ID_PREFIX)

    def fetch(self, ref: TaskRef) -> ExportTask:
        """The status of ``ref`` (Qianfan tasks belong to no dataset)."""
        return self.get_export_task(ref.task_id)

    def get_export_task(self, task_id: str) -> ExportTask:
        """Fetch one export task's status (DescribeExportTask)."""
        task = task_id.strip() if isinstance(task_id, str) else ""
        if not task or any(ch.isspace() or ord(ch) < 32 for ch in task):
            raise ConfigError(f"task_id {task_id!r} is not a valid Qianfan task id (e.g. 'task-xxx')")
        reply = self._send(OP_DESCRIBE, "POST", f"{self.base_url}/v2/dataset?Action={OP_DESCRIBE}",
                           json_body={"taskId": task})
        return parse_export_task(self._checked(reply), requested_id=task, zone=self.timezone)

    def _request_id(self, reply: Reply) -> str:
        body_id = reply.body.get("requestId") if isinstance(reply.body, dict) else None
        return str(body_id or reply.headers.get("X-Bce-Request-Id", "") or "")

    def _checked(self, reply: Reply) -> dict[str, Any]:
        """The ``result`` object, or the right typed error (also for errors inside HTTP 200)."""
        body = reply.body if isinstance(reply.body, dict) else None
        ok = 200 <= reply.status < 300
        result = body.get("result") if body is not None else None
        if ok and body is not None and not body.get("code") and isinstance(result, dict):
            return result
        if ok and (body is None or not body.get("code")):
            raise self._format_error(OP_DESCRIBE, reply)
        code = str((body or {}).get("code") or reply.headers.get("X-Bce-Error-Code", "") or "")
        message = str((body or {}).get("message") or reply.headers.get("X-Bce-Error-Message", "") or "")
        if not code and not message:
            message = body_snippet(reply)
        raise classify_error(ERROR_CODES, provider=PROVIDER, operation=OP_DESCRIBE, http_status=reply.status,
                             code=code, message=message, request_id=self._request_id(reply), headers=reply.headers)


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"env {name}={value!r} must be a whole number of seconds") from None
    if number <= 0:
        raise ConfigError(f"env {name} must be positive, got {number}")
    return number


def parse_export_task(result: Mapping[str, Any], *, requested_id: str, zone: tzinfo | None = None) -> ExportTask:
    """Normalise a DescribeExportTask ``result`` object. Unknown or missing fields never raise."""
    if not isinstance(result, Mapping):
        raise ResponseFormatError(provider=PROVIDER, operation=OP_DESCRIBE, http_status=200,
                                  message=f"expected a JSON object, got {type(result).__name__}")
    zone = zone or ZoneInfo(DEFAULT_TIMEZONE)
    raw_status = as_str(result.get("exportStatus")) or ""
    state = STATUS_MAP.get(raw_status.strip(), TaskState.UNKNOWN)
    total = as_count(result.get("sampleCount"))
    started = from_local_text(result.get("startTime"), zone)
    finished = from_local_text(result.get("finishTime"), zone)
    return ExportTask(
        provider=PROVIDER,
        task_id=as_str(result.get("taskId")) or requested_id,
        state=state,
        raw_status=raw_status,
        progress=as_percent(result.get("progress")),
        # Qianfan reports only the total; the finished count is known exactly once the export is done.
        finished_samples=total if state is TaskState.SUCCEEDED else None,
        total_samples=total,
        created_at=started,
        updated_at=finished or None,
        finished_at=finished,
        destination=as_str(result.get("storagePath")),  # ExportTask redacts every shown field
        size_mb=as_float(result.get("sizeMB")),
        download_url=as_str(result.get("downloadUrl")),
        error_code=as_str(result.get("errorCode") or result.get("code")),
        error_message=as_str(result.get("errorMessage") or result.get("message")),
        raw=dict(result),
    )
