"""Baidu Qianfan dataset-version export tasks.

Supported operations, both signed with ``bce-auth-v1``:

* ``POST /v2/dataset?Action=DescribeExportTask`` with body ``{"taskId": ...}``;
* ``POST /v2/dataset?Action=CreateExportTask`` with body ``{"versionId", "storageType", "storagePath"}``; the new
  task id is the string in ``result`` (api-spec §5.3).

Errors may arrive as HTTP 200 carrying ``{requestId, code, message}``; those raise too.
Qianfan has no list-export-tasks action and no way to cancel an export.

Vendor references: Qianfan console API, "获取数据集版本导出详情" (DescribeExportTask, updated 2024-09-09) and
"创建数据集版本导出任务" (CreateExportTask), and the ``qianfan`` SDK's ``get_dataset_version_export_task_info`` /
``create_dataset_version_export_task``.
"""

from __future__ import annotations

import os
import re
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
from .base import GENERIC_CODES, ClientSettings, EnvNames, ErrorCodes, ExportRequest, TaskRef

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
OP_CREATE = "CreateExportTask"
#: Dataset version ids as the console shows them: ``ds-`` and letters/digits.
VERSION_ID = re.compile(r"ds-[A-Za-z0-9]{1,64}")
#: BOS bucket names: 3-63 lower-case letters, digits and hyphens, starting and ending with a letter or digit.
BOS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
STORAGE_BOS, STORAGE_SYS = "BOS", "sysStorage"
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
    #: How a finished export reaches the user: a finished export has a pre-signed ``downloadUrl``.
    delivers_by_link: ClassVar[bool] = True
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

    def export_request(self, version_id: str, *, bos_path: str | None = None,
                       sys_storage: bool = False) -> ExportRequest:
        """A validated CreateExportTask body (no request sent): export dataset version ``version_id`` to
        ``bos_path`` (``bos:/bucket/dir/``, your BOS) or to platform storage (``sys_storage=True``, the default
        when no ``bos_path`` is given). Bad input raises a one-line ConfigError."""
        version = version_id.strip() if isinstance(version_id, str) else ""
        if not VERSION_ID.fullmatch(version):
            raise ConfigError(f"Qianfan version id {version_id!r} has the wrong shape: dataset version ids look "
                              "like ds-7a1b2c3d (the console's dataset version page shows it)")
        if bos_path is not None and sys_storage:
            raise ConfigError("pass either a BOS path (--bos bos:/bucket/dir/) or --sys-storage, not both")
        if bos_path is None:
            return ExportRequest(PROVIDER, {"versionId": version, "storageType": STORAGE_SYS},
                                 summary=f"version {version} to platform storage")
        path = normalise_bos_path(bos_path)
        return ExportRequest(PROVIDER, {"versionId": version, "storageType": STORAGE_BOS, "storagePath": path},
                             summary=f"version {version} to {path}")

    @staticmethod
    def create_arguments(options: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """:meth:`export_request` arguments from the magic's / CLI's options (``version``, ``bos``,
        ``sys_storage``); a one-line ConfigError for an option Qianfan does not take."""
        foreign = [f"--{name.replace('_', '-')}" for name in ("dataset", "path", "export_type", "export_format",
                                                              "sample_state") if options.get(name) is not None]
        if foreign:
            raise ConfigError(f"{', '.join(foreign)} apply to ModelArts exports; a Qianfan export takes --version "
                              "ds-... [--bos bos:/bucket/dir/ | --sys-storage]")
        if not options.get("version"):
            raise ConfigError("a Qianfan export needs --version ds-... (the dataset version to export)")
        return (options["version"],), {"bos_path": options.get("bos"), "sys_storage": bool(options.get("sys_storage"))}

    def submit_export(self, request: ExportRequest) -> TaskRef:
        """Send a validated CreateExportTask; the new task's reference. Not retried: a lost answer may still
        have started the export."""
        reply = self._send(OP_CREATE, "POST", f"{self.base_url}/v2/dataset?Action={OP_CREATE}",
                           json_body=dict(request.body))
        body = reply.body if isinstance(reply.body, dict) else None
        task_id = body.get("result") if body is not None and 200 <= reply.status < 300 else None
        if isinstance(task_id, str) and task_id.strip() and not (body or {}).get("code"):
            return TaskRef(PROVIDER, task_id.strip())
        self._raise_for(reply, OP_CREATE)
        raise self._format_error(OP_CREATE, reply)  # a 2xx answer without a task id

    def create_export_task(self, version_id: str, *, bos_path: str | None = None,
                           sys_storage: bool = False) -> TaskRef:
        """Start exporting dataset version ``version_id`` (see :meth:`export_request` for the arguments)."""
        return self.submit_export(self.export_request(version_id, bos_path=bos_path, sys_storage=sys_storage))

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
        self._raise_for(reply, OP_DESCRIBE)
        raise self._format_error(OP_DESCRIBE, reply)

    def _raise_for(self, reply: Reply, operation: str) -> None:
        """Raise the typed error of an error answer (HTTP error, or ``{code, message}`` inside HTTP 200)."""
        body = reply.body if isinstance(reply.body, dict) else None
        if 200 <= reply.status < 300 and (body is None or not body.get("code")):
            return
        code = str((body or {}).get("code") or reply.headers.get("X-Bce-Error-Code", "") or "")
        message = str((body or {}).get("message") or reply.headers.get("X-Bce-Error-Message", "") or "")
        if not code and not message:
            message = body_snippet(reply)
        raise classify_error(ERROR_CODES, provider=PROVIDER, operation=operation, http_status=reply.status,
                             code=code, message=message, request_id=self._request_id(reply), headers=reply.headers)


def normalise_bos_path(path: str) -> str:
    """``bos:/bucket/dir/`` checked (one slash after ``bos:``, a valid bucket) and ending in ``/``."""
    text = path.strip() if isinstance(path, str) else ""
    if not text.startswith("bos:/") or text.startswith("bos://"):
        raise ConfigError(f"BOS path {path!r} must start with bos:/ (one slash), e.g. bos:/my-bucket/exports/")
    bucket, _, rest = text.removeprefix("bos:/").partition("/")
    if not BOS_BUCKET.fullmatch(bucket):
        raise ConfigError(f"BOS path {path!r} names no valid bucket: write bos:/BUCKET/dir/ (3-63 lower-case "
                          "letters, digits or hyphens)")
    if any(ch.isspace() or ord(ch) < 32 for ch in rest) or "//" in rest or ".." in rest.split("/"):
        raise ConfigError(f"BOS path {path!r} has an invalid directory part: use bos:/bucket/dir/")
    return f"bos:/{bucket}/{rest.strip('/')}/" if rest.strip("/") else f"bos:/{bucket}/"


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
