"""Baidu Qianfan dataset-version export tasks.

Supported operation: ``POST /v2/dataset?Action=DescribeExportTask`` with body ``{"taskId": ...}``, signed with
``bce-auth-v1``. Errors may arrive as HTTP 200 carrying ``{requestId, code, message}``; those raise too.
Qianfan has no list-export-tasks action.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from .._coerce import as_count, as_float, as_percent, as_str, from_local_text
from .._http import HttpClient, Reply, body_snippet, classify_error, parse_retry_after
from ..config import ENV, QIANFAN_DEFAULT_ENDPOINT, normalise_endpoint, resolve_credentials
from ..errors import ConfigError, ResponseFormatError
from ..models import ExportTask, TaskState
from ..signing import BceAuth

__all__ = ["DEFAULT_TIMEZONE", "QianfanClient", "parse_export_task"]

PROVIDER = "qianfan"
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

    provider = PROVIDER

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
        self.credentials = resolve_credentials(PROVIDER, ak=ak, sk=sk, environ=env)
        base = endpoint or env.get(ENV.QIANFAN_BASE_URL) or QIANFAN_DEFAULT_ENDPOINT
        self.timezone = _zone(timezone)
        expiration = sign_expiration or _int_env(env, ENV.QIANFAN_SIGN_EXPIRATION, DEFAULT_SIGN_EXPIRATION)
        auth = BceAuth(self.credentials.access_key or "", self.credentials.secret_key or "",
                       expiration=expiration, clock=clock)
        super().__init__(normalise_endpoint(base), auth, timeout=timeout, request_timeout=request_timeout,
                         session=session)

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
        if ok and body is not None and not body.get("code") and isinstance(body.get("result"), dict):
            return body["result"]
        if ok and (body is None or not body.get("code")):
            raise self._format_error(OP_DESCRIBE, reply)
        code = str((body or {}).get("code") or reply.headers.get("X-Bce-Error-Code", "") or "")
        message = str((body or {}).get("message") or reply.headers.get("X-Bce-Error-Message", "") or "")
        if not code and not message:
            message = body_snippet(reply)
        raise classify_error(provider=PROVIDER, operation=OP_DESCRIBE, http_status=reply.status, code=code,
                             message=message, request_id=self._request_id(reply),
                             retry_after=parse_retry_after(reply.headers.get("Retry-After")))


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
