"""ModelArts (Huawei Cloud / Open Telekom Cloud) dataset export tasks.

Supported operations:

* ``GET /v2/{project_id}/datasets/{dataset_id}/export-tasks/{task_id}`` (GetExportTaskStatusOfDataset)
* ``GET /v2/{project_id}/datasets/{dataset_id}/export-tasks`` (GetExportTasksStatusOfDataset; ``offset`` is a
  *page index*, ``limit`` at most 100)

Auth: AK/SK (``SDK-HMAC-SHA256``, optionally with ``X-Security-Token``) or an IAM token (``X-Auth-Token``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from .._coerce import as_bool, as_count, as_list, as_percent, as_str, from_epoch_ms
from .._http import HttpClient, Reply, body_snippet, classify_error, parse_retry_after
from ..config import ENV, modelarts_endpoint, resolve_credentials, validate_id
from ..errors import ConfigError, ResponseFormatError
from ..models import (
    ExportParams,
    ExportTask,
    SearchCondition,
    SearchLabel,
    SearchLabels,
    SearchProp,
    TaskState,
)
from ..signing import SdkHmacAuth

__all__ = ["ModelArtsClient", "parse_export_task", "parse_export_params"]

PROVIDER = "modelarts"
OP_GET = "GetExportTaskStatusOfDataset"
OP_LIST = "GetExportTasksStatusOfDataset"
MAX_PAGE_SIZE = 100
# A server that keeps answering full pages must not keep us looping: 1,000 pages = 100,000 tasks.
_MAX_PAGES = 1000

STATUS_MAP: Mapping[str, TaskState] = {
    "INIT": TaskState.PENDING,
    "RUNNING": TaskState.RUNNING,
    "SUCCESSED": TaskState.SUCCEEDED,  # sic: the API's own spelling
    "SUCCEEDED": TaskState.SUCCEEDED,
    "FAILED": TaskState.FAILED,
    "STOPPING": TaskState.STOPPING,  # winding down, not over: it may still end STOPPED, SUCCEEDED or FAILED
    "STOPPED": TaskState.STOPPED,
}


class _TokenAuth(requests.auth.AuthBase):
    """IAM token auth: the token goes in ``X-Auth-Token`` and nothing is signed."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Auth-Token"] = self._token
        return request


class ModelArtsClient(HttpClient):
    """Read ModelArts dataset export tasks.

    Parameters
    ----------
    project_id : str, optional
        IAM project id of the region (env ``HUAWEICLOUD_SDK_PROJECT_ID``).
    region : str, optional
        Huawei Cloud region such as ``"cn-north-4"``; mapped to the ModelArts endpoint.
    endpoint : str, optional
        Base URL; wins over ``region``. Required for Open Telekom Cloud
        (``"https://modelarts.eu-de.otc.t-systems.com"``) and for the simulator (``"http://127.0.0.1:PORT"``).
    ak, sk, security_token : str, optional
        AK/SK (env ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``, ``HUAWEICLOUD_SDK_SECURITY_TOKEN``).
    token : str, optional
        An IAM token instead of AK/SK (sent as ``X-Auth-Token``).
    timeout : float or (connect, read), optional
        Timeout of each socket operation in seconds (default 5 s connect, 30 s read).
    request_timeout : float, optional
        Deadline of a whole request, body included (default 30 s): a server trickling its answer cannot hold it.
    """

    provider = PROVIDER

    def __init__(
        self,
        project_id: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        ak: str | None = None,
        sk: str | None = None,
        security_token: str | None = None,
        token: str | None = None,
        *,
        timeout: float | tuple[float, float] | None = None,
        request_timeout: float | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        project = project_id or env.get(ENV.HUAWEI_PROJECT_ID)
        if not project:
            raise ConfigError(f"ModelArtsClient has no project: pass project_id= (or env {ENV.HUAWEI_PROJECT_ID})")
        self.project_id = validate_id(project, "project_id")
        self.region = region
        creds = resolve_credentials(PROVIDER, ak=ak, sk=sk, security_token=security_token, token=token,
                                    environ=env)
        self.credentials = creds
        auth: requests.auth.AuthBase
        if creds.token:
            auth = _TokenAuth(creds.token)
        else:
            auth = SdkHmacAuth(creds.access_key or "", creds.secret_key or "", creds.security_token, clock=clock)
        super().__init__(modelarts_endpoint(endpoint, region, env), auth, timeout=timeout,
                         request_timeout=request_timeout, session=session,
                         default_headers={"X-Project-Id": self.project_id})

    # -- operations -------------------------------------------------------------------------------------

    def get_export_task(self, dataset_id: str, task_id: str) -> ExportTask:
        """Fetch one export task's status (GetExportTaskStatusOfDataset)."""
        dataset = validate_id(dataset_id, "dataset_id")
        task = validate_id(task_id, "task_id")
        reply = self._send(OP_GET, "GET", self._tasks_url(dataset, task))
        body = self._checked(OP_GET, reply)
        return parse_export_task(body, dataset_id=dataset, requested_id=task)

    def list_export_tasks(
        self, dataset_id: str, export_type: int | None = None, *, page_size: int = MAX_PAGE_SIZE
    ) -> list[ExportTask]:
        """All export tasks of a dataset, following the page-index pagination to the end.

        ``export_type``: 0 labeled, 1 unlabeled, 2 all, 3 conditional search; None lists every type.
        """
        dataset = validate_id(dataset_id, "dataset_id")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        tasks: list[ExportTask] = []
        for page in range(_MAX_PAGES):
            query: dict[str, Any] = {"limit": page_size, "offset": page}
            if export_type is not None:
                query["export_type"] = int(export_type)
            reply = self._send(OP_LIST, "GET", self._tasks_url(dataset) + "?" + urlencode(query))
            body = self._checked(OP_LIST, reply)
            items = body.get("export_tasks")
            if not isinstance(items, list):
                raise self._format_error(OP_LIST, reply)
            tasks.extend(parse_export_task(item, dataset_id=dataset) for item in items if isinstance(item, dict))
            total = as_count(body.get("total_count"))
            if not items or len(items) < page_size or (total is not None and (page + 1) * page_size >= total):
                break
        return tasks

    # -- helpers ----------------------------------------------------------------------------------------

    def _tasks_url(self, dataset_id: str, task_id: str | None = None) -> str:
        path = f"/v2/{quote(self.project_id, safe='')}/datasets/{quote(dataset_id, safe='')}/export-tasks"
        if task_id is not None:
            path += f"/{quote(task_id, safe='')}"
        return self.base_url + path

    def _request_id(self, reply: Reply) -> str:
        header = reply.headers.get("X-Request-Id", "")
        body_id = reply.body.get("request_id") if isinstance(reply.body, dict) else None
        return str(body_id or header or "")

    def _checked(self, operation: str, reply: Reply) -> dict[str, Any]:
        """The JSON object of a 2xx answer, or the right typed error."""
        if 200 <= reply.status < 300:
            if not isinstance(reply.body, dict):
                raise self._format_error(operation, reply)
            if not _is_error_body(reply.body):
                return reply.body
        code, message = _error_fields(reply.body)
        if not code and not message:
            message = body_snippet(reply)
        raise classify_error(provider=PROVIDER, operation=operation, http_status=reply.status, code=code,
                             message=message, request_id=self._request_id(reply),
                             retry_after=parse_retry_after(reply.headers.get("Retry-After")))


def _is_error_body(body: dict[str, Any]) -> bool:
    """An error object sent with a 2xx status: an error code and none of a task's or a list's own fields
    (a FAILED task carries ``error_code`` too, next to its ``status``)."""
    return bool(body.get("error_code") or body.get("errorCode")) and not any(
        key in body for key in ("status", "task_id", "export_tasks"))


def _error_fields(body: Any, depth: int = 1) -> tuple[str, str]:
    """(code, message) from the several error shapes Huawei services use, one level deep at most."""
    if not isinstance(body, dict):
        return "", ""
    for code_key, msg_key in (("error_code", "error_msg"), ("error_code", "error_message"),
                              ("errorCode", "errorMsg"), ("code", "message")):
        if code_key in body or msg_key in body:
            return str(body.get(code_key) or ""), str(body.get(msg_key) or "")
    if depth > 0:
        for value in body.values():
            if isinstance(value, dict):
                found = _error_fields(value, depth - 1)
                if any(found):
                    return found
    return "", ""


# -- parsing (pure; fuzzed in tests) ----------------------------------------------------------------------

def _str_list_map(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        return {}
    result: dict[str, list[str]] = {}
    for key, items in value.items():
        values = items if isinstance(items, list) else [items]
        result[str(key)] = [text for text in (as_str(item) for item in values) if text is not None]
    return result


def _parse_condition(data: Mapping[str, Any]) -> SearchCondition:
    label_list = None
    raw_labels = data.get("label_list")
    if isinstance(raw_labels, dict):
        labels = tuple(
            SearchLabel(name=as_str(item.get("name")), type=as_count(item.get("type")), op=as_str(item.get("op")),
                        property=_str_list_map(item.get("property")))
            for item in as_list(raw_labels.get("labels")) if isinstance(item, dict)
        )
        label_list = SearchLabels(labels=labels, op=as_str(raw_labels.get("op")))
    metadata = None
    raw_meta = data.get("metadata")
    if isinstance(raw_meta, dict):
        metadata = SearchProp(op=as_str(raw_meta.get("op")), props=_str_list_map(raw_meta.get("props")))
    scalars = {name: as_str(data.get(name)) for name in SearchCondition.scalar_fields()}
    scalars["frame_in_video"] = as_count(data.get("frame_in_video"))  # type: ignore[assignment]
    return SearchCondition(label_list=label_list, metadata=metadata, **scalars)  # type: ignore[arg-type]


def parse_export_params(data: Any) -> ExportParams | None:
    """Parse ModelArts ``ExportParams`` (None when absent or not an object)."""
    if not isinstance(data, dict):
        return None
    conditions = data.get("search_conditions")
    samples = data.get("samples")
    return ExportParams(
        sample_state=as_str(data.get("sample_state")) or ("" if data.get("sample_state") == "" else None),
        export_dest=as_str(data.get("export_dest")),
        export_new_dataset_name=as_str(data.get("export_new_dataset_name")),
        export_new_dataset_work_path=as_str(data.get("export_new_dataset_work_path")),
        export_dataset_version_format=as_str(data.get("export_dataset_version_format")),
        export_dataset_version_name=as_str(data.get("export_dataset_version_name")),
        clear_hard_property=as_bool(data.get("clear_hard_property")),
        clear_difficult=as_bool(data.get("clear_difficult")),
        ratio_sample_usage=as_bool(data.get("ratio_sample_usage")),
        train_sample_ratio=as_str(data.get("train_sample_ratio")),
        samples=tuple(text for text in (as_str(s) for s in as_list(samples)) if text is not None),
        search_conditions=tuple(_parse_condition(c) for c in as_list(conditions) if isinstance(c, dict)),
    )


def parse_export_task(
    data: Mapping[str, Any], *, dataset_id: str | None = None, requested_id: str | None = None
) -> ExportTask:
    """Normalise one ModelArts ``ExportTaskStatus`` object. Unknown or missing fields never raise."""
    if not isinstance(data, Mapping):
        raise ResponseFormatError(provider=PROVIDER, operation=OP_GET, http_status=200,
                                  message=f"expected a JSON object, got {type(data).__name__}")
    raw_status = as_str(data.get("status")) or ""
    state = STATUS_MAP.get(raw_status.strip().upper(), TaskState.UNKNOWN)
    updated = from_epoch_ms(data.get("update_time"))
    params = parse_export_params(data.get("export_params"))
    destination = as_str(data.get("path"))
    if params and params.export_dest == "NEW_DATASET" and params.export_new_dataset_name:
        destination = f"new dataset {params.export_new_dataset_name}"
    # Redaction of every shown field (destination included, once built) happens in ExportTask itself.
    error_message = as_str(data.get("error_msg")) or as_str(data.get("error_message"))
    return ExportTask(
        provider=PROVIDER,
        task_id=as_str(data.get("task_id")) or requested_id or "",
        state=state,
        raw_status=raw_status,
        progress=as_percent(data.get("progress")),
        finished_samples=as_count(data.get("finished_sample_count")),
        total_samples=as_count(data.get("total_sample_count")),
        created_at=from_epoch_ms(data.get("create_time")),
        updated_at=updated,
        finished_at=updated if state.is_terminal else None,
        destination=destination,
        error_code=as_str(data.get("error_code")),
        error_message=error_message,
        export_params=params,
        dataset_id=dataset_id,
        raw=dict(data),
        version_id=as_str(data.get("version_id")),
        export_type=as_count(data.get("export_type")),
        export_format=as_count(data.get("export_format")),
        version_format=as_str(data.get("version_format")),
    )
