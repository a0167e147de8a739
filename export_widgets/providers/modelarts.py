"""ModelArts (Huawei Cloud / Open Telekom Cloud) dataset export tasks.

Supported operations:

* ``GET /v2/{project_id}/datasets/{dataset_id}/export-tasks/{task_id}`` (GetExportTaskStatusOfDataset)
* ``GET /v2/{project_id}/datasets/{dataset_id}/export-tasks`` (GetExportTasksStatusOfDataset; ``offset`` is a
  *page index*, ``limit`` at most 100)

Auth: AK/SK (``SDK-HMAC-SHA256``, optionally with ``X-Security-Token``) or an IAM token (``X-Auth-Token``).

Vendor reference: ModelArts API Reference, "Querying the Status of a Dataset Export Task" and "Querying the
Dataset Export Task List" (https://support.huaweicloud.com/intl/en-us/api-modelarts/, Open Telekom Cloud's copy at
https://docs.otc.t-systems.com/modelarts/api-ref/).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import requests

from .._coerce import as_bool, as_count, as_percent, as_str, from_epoch_ms
from .._http import HttpClient, Reply, body_snippet
from ..config import normalise_endpoint, resolve_credentials, validate_id
from ..errors import ConfigError, ExportWidgetsError, ResponseFormatError, classify_error
from ..models import (
    ExportParams,
    ExportTask,
    SearchCondition,
    SearchLabel,
    SearchLabels,
    SearchProp,
    TaskState,
)
from ..redact import redact_text
from ..signing import SdkHmacAuth
from .base import GENERIC_CODES, ClientSettings, EnvNames, ErrorCodes, ListPage, TaskRef

__all__ = ["ENV", "ERROR_CODES", "MODELARTS_REGIONS", "ModelArtsClient", "parse_export_params", "parse_export_task"]

PROVIDER = "modelarts"
LABEL = "ModelArts"
OP_GET = "GetExportTaskStatusOfDataset"
OP_LIST = "GetExportTasksStatusOfDataset"
MAX_PAGE_SIZE = 100
# A server that keeps answering full pages must not keep us looping: 1,000 pages = 100,000 tasks.
_MAX_PAGES = 1000

#: The huaweicloudsdkcore names, plus this package's own for a base URL (OTC, a proxy, the simulator).
ENV = EnvNames(
    access_key="HUAWEICLOUD_SDK_AK",
    secret_key="HUAWEICLOUD_SDK_SK",
    security_token="HUAWEICLOUD_SDK_SECURITY_TOKEN",
    project_id="HUAWEICLOUD_SDK_PROJECT_ID",
    endpoint="EXPORT_WIDGETS_MODELARTS_ENDPOINT",
)

#: ModelArts and API Gateway (APIG/APIGW) error codes, by what they mean for a watch.
ERROR_CODES = GENERIC_CODES | ErrorCodes(
    auth=frozenset({"APIGW.0301", "APIGW.0101", "APIG.0301", "APIG.0101", "ModelArts.4504", "ModelArts.5001",
                    "ModelArts.5002", "ModelArts.6620", "ModelArts.0112", "ModelArts.4336"}),
    not_found=frozenset({"ModelArts.4359", "ModelArts.4352", "ModelArts.4338", "ModelArts.6623",
                         "ModelArts.0015"}),
    rate_limited=frozenset({"APIG.0308", "ModelArts.4395", "ModelArts.6101"}),
    server=frozenset({"ModelArts.6102", "ModelArts.6692", "ModelArts.6699", "APIGW.0201", "APIGW.0202",
                      "APIGW.0203"}),
)

OTC_ENDPOINT = "https://modelarts.eu-de.otc.t-systems.com"

#: Huawei Cloud regions with ModelArts (huaweicloudsdkmodelarts 3.1.219 ``ModelArtsRegion``).
MODELARTS_REGIONS: Mapping[str, str] = {
    region: f"https://modelarts.{region}.myhuaweicloud.com"
    for region in (
        "cn-north-1", "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12",
        "cn-east-3", "cn-east-4", "cn-south-1", "cn-southwest-2", "cn-southwest-3",
        "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "af-south-1", "af-north-1",
        "la-south-2", "la-north-2", "sa-brazil-1", "tr-west-1", "me-east-1",
    )
} | {"ap-southeast-1": "https://modelarts.ap-southeast-1.myhuaweicloud.cn"}  # the one .cn exception

STATUS_MAP: Mapping[str, TaskState] = {
    "INIT": TaskState.PENDING,
    "RUNNING": TaskState.RUNNING,
    "SUCCESSED": TaskState.SUCCEEDED,  # sic: the API's own spelling
    "SUCCEEDED": TaskState.SUCCEEDED,
    "FAILED": TaskState.FAILED,
    "STOPPING": TaskState.STOPPED,
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
        Per-request timeout in seconds.
    """

    name: ClassVar[str] = PROVIDER
    label: ClassVar[str] = LABEL
    needs_dataset: ClassVar[bool] = True
    env: ClassVar[EnvNames] = ENV
    settings_used: ClassVar[frozenset[str]] = frozenset({"endpoint", "region", "project_id", "request_timeout"})
    error_codes: ClassVar[ErrorCodes] = ERROR_CODES
    #: Tasks per list page: the most ``limit`` allows.
    page_size: ClassVar[int] = MAX_PAGE_SIZE
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
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        project = project_id or (env.get(ENV.project_id) if ENV.project_id else None)
        if not project:
            raise ConfigError(f"ModelArtsClient has no project: pass project_id= (or env {ENV.project_id})")
        self.project_id = validate_id(project, "project_id")
        self.region = region
        creds = resolve_credentials(LABEL, ENV, ak=ak, sk=sk, security_token=security_token, token=token,
                                    environ=env, token_allowed=True)
        self.credentials = creds
        auth: requests.auth.AuthBase
        if creds.token:
            auth = _TokenAuth(creds.token)
        else:
            auth = SdkHmacAuth(creds.access_key or "", creds.secret_key or "", creds.security_token, clock=clock)
        super().__init__(endpoint_for(endpoint, region, env), auth, timeout=timeout, session=session,
                         default_headers={"X-Project-Id": self.project_id})

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> ModelArtsClient:
        """The client for ``settings`` (endpoint > region > env), with one-line errors naming the flags to pass."""
        env = os.environ if settings.environ is None else settings.environ
        if not (settings.project_id or env.get(ENV.project_id or "")):
            raise ConfigError(f"ModelArts needs a project id: pass --project P (project_id=), or set "
                              f"%config ExportStatus.project_id or env {ENV.project_id}")
        if not (settings.endpoint or settings.region or env.get(ENV.endpoint or "")):
            raise ConfigError(f"ModelArts needs --region R (e.g. cn-north-4) or --endpoint URL "
                              f"(Open Telekom Cloud: {OTC_ENDPOINT}), or env {ENV.endpoint}")
        return cls(project_id=settings.project_id, region=settings.region, endpoint=settings.endpoint,
                   timeout=settings.request_timeout, environ=env)

    @classmethod
    def claims_task_id(cls, task_id: str) -> bool:
        """ModelArts ids have no telling shape (the dataset tells instead)."""
        return False

    def fetch(self, ref: TaskRef) -> ExportTask:
        """The status of ``ref`` (its ``dataset_id`` is required)."""
        if not ref.dataset_id:
            raise ConfigError("ModelArts tasks need dataset_id= (the dataset the export belongs to)")
        return self.get_export_task(ref.dataset_id, ref.task_id)

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
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        tasks: list[ExportTask] = []
        for page in range(_MAX_PAGES):
            listed = self._list(dataset_id, page, page_size, export_type)
            tasks.extend(listed.tasks)
            if _last_page(listed, page_size):
                break
        return tasks

    def list_page(self, dataset_id: str, page: int) -> ListPage:
        """Page ``page`` (0 = first, :attr:`page_size` tasks) of the dataset's export tasks, every type.

        The API has no sort parameter; its documented example and the simulator list the newest task first.
        """
        return self._list(dataset_id, page, self.page_size, None)

    def fetch_many(self, refs: Iterable[TaskRef]) -> dict[TaskRef, ExportTask | ExportWidgetsError]:
        """The status of every ref: list pages per dataset while a page costs fewer requests than it
        saves, then one GET for each task the pages did not show. Errors are returned per ref, not raised.

        (The monitors' sweep groups use :meth:`list_page` and :meth:`fetch` with a cost model that also
        remembers each task's place in the list; this is the stateless version.)
        """
        results: dict[TaskRef, ExportTask | ExportWidgetsError] = {}
        by_dataset: dict[str, dict[str, list[TaskRef]]] = {}
        for ref in refs:
            if not ref.dataset_id:
                results[ref] = ConfigError("ModelArts tasks need dataset_id= (the dataset the export belongs to)")
            else:
                by_dataset.setdefault(ref.dataset_id, {}).setdefault(ref.task_id, []).append(ref)
        for dataset, unseen in by_dataset.items():
            page, pages_left = 0, None  # unknown until the first page tells total_count
            # One page answers up to page_size tasks: worth it while it costs fewer requests than it saves.
            while unseen and (len(unseen) >= 2 if pages_left is None else 0 < pages_left < len(unseen)):
                try:
                    listed = self.list_page(dataset, page)
                except ExportWidgetsError as exc:  # the page was meant to answer every task still unseen
                    results.update((ref, exc) for wanted in unseen.values() for ref in wanted)
                    unseen = {}
                    break
                for task in listed.tasks:
                    results.update((ref, task) for ref in unseen.pop(task.task_id, ()))
                page += 1
                pages_left = 0 if _last_page(listed, self.page_size) or page >= _MAX_PAGES else (
                    None if listed.total_count is None else -(-listed.total_count // self.page_size) - page)
            for wanted in unseen.values():  # not on the pages read (a race, an older task, a deleted one)
                try:
                    task = self.fetch(wanted[0])
                except ExportWidgetsError as exc:
                    results.update((ref, exc) for ref in wanted)
                else:
                    results.update((ref, task) for ref in wanted)
        return results

    # -- helpers ----------------------------------------------------------------------------------------

    def _list(self, dataset_id: str, page: int, page_size: int, export_type: int | None) -> ListPage:
        """One list request (GetExportTasksStatusOfDataset): ``offset`` is a page index, not a row offset."""
        dataset = validate_id(dataset_id, "dataset_id")
        if page < 0:
            raise ConfigError(f"page must be 0 or more, got {page}")
        query: dict[str, Any] = {"limit": page_size, "offset": page}
        if export_type is not None:
            query["export_type"] = int(export_type)
        reply = self._send(OP_LIST, "GET", self._tasks_url(dataset) + "?" + urlencode(query))
        body = self._checked(OP_LIST, reply)
        items = body.get("export_tasks")
        if not isinstance(items, list):
            raise self._format_error(OP_LIST, reply)
        return ListPage(page, tuple(parse_export_task(item, dataset_id=dataset) for item in items
                                    if isinstance(item, dict)), as_count(body.get("total_count")))

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
        raise classify_error(ERROR_CODES, provider=PROVIDER, operation=operation, http_status=reply.status,
                             code=code, message=message, request_id=self._request_id(reply), headers=reply.headers)


def _last_page(listed: ListPage, page_size: int) -> bool:
    """Whether ``listed`` ends the list: short or empty, or its total says so (``(page+1)*limit >= total``)."""
    total = listed.total_count
    return len(listed.tasks) < page_size or (total is not None and (listed.page + 1) * page_size >= total)


def endpoint_for(endpoint: str | None, region: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The ModelArts base URL: ``endpoint``, else ``region``, else env ``EXPORT_WIDGETS_MODELARTS_ENDPOINT``."""
    if endpoint:
        return normalise_endpoint(endpoint)
    if not region:
        from_env = (os.environ if environ is None else environ).get(ENV.endpoint or "")
        if from_env:
            return normalise_endpoint(from_env, f"env {ENV.endpoint}")
        raise ConfigError(
            "ModelArtsClient needs region= (e.g. 'cn-north-4') or endpoint= "
            f"(Open Telekom Cloud: endpoint='{OTC_ENDPOINT}'), or env {ENV.endpoint}"
        )
    key = region.strip().lower()
    if key in MODELARTS_REGIONS:
        return MODELARTS_REGIONS[key]
    if key.startswith("eu-"):
        raise ConfigError(f"region {region!r} is an Open Telekom Cloud region: pass endpoint='{OTC_ENDPOINT}'")
    raise ConfigError(
        f"unknown ModelArts region {region!r}: pass endpoint= or one of {', '.join(sorted(MODELARTS_REGIONS))}"
    )


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
        if isinstance(items, list):
            result[str(key)] = [str(item) for item in items if item is not None]
        elif items is None:
            result[str(key)] = []
        else:
            result[str(key)] = [str(items)]
    return result


def _parse_condition(data: Mapping[str, Any]) -> SearchCondition:
    label_list = None
    raw_labels = data.get("label_list")
    if isinstance(raw_labels, dict):
        labels = tuple(
            SearchLabel(name=as_str(item.get("name")), type=as_count(item.get("type")), op=as_str(item.get("op")),
                        property=_str_list_map(item.get("property")))
            for item in raw_labels.get("labels") or [] if isinstance(item, dict)
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
        samples=tuple(str(s) for s in samples if s is not None) if isinstance(samples, list) else (),
        search_conditions=tuple(_parse_condition(c) for c in conditions if isinstance(c, dict))
        if isinstance(conditions, list) else (),
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
    destination = redact_text(destination) if destination else destination  # shown to people: no secrets
    if params and params.export_dest == "NEW_DATASET" and params.export_new_dataset_name:
        destination = f"new dataset {params.export_new_dataset_name}"
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
        error_message=redact_text(error_message) if error_message else None,
        export_params=params,
        dataset_id=dataset_id,
        raw=dict(data),
    )
