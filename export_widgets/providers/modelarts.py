"""ModelArts (Huawei Cloud / Open Telekom Cloud) dataset export tasks.

Supported operations:

* ``GET /v2/{project_id}/datasets/{dataset_id}/export-tasks/{task_id}`` (GetExportTaskStatusOfDataset)
* ``GET /v2/{project_id}/datasets/{dataset_id}/export-tasks`` (GetExportTasksStatusOfDataset; ``offset`` is a
  *page index*, ``limit`` at most 100)
* ``POST /v2/{project_id}/datasets/{dataset_id}/export-tasks`` (ExportTask: start an export; api-spec §5.1).
  There is no cancel operation.

Auth: AK/SK (``SDK-HMAC-SHA256``, optionally with ``X-Security-Token``) or an IAM token (``X-Auth-Token``).

Vendor reference: ModelArts API Reference, "Querying the Status of a Dataset Export Task" and "Querying the
Dataset Export Task List" (https://support.huaweicloud.com/intl/en-us/api-modelarts/, Open Telekom Cloud's copy at
https://docs.otc.t-systems.com/modelarts/api-ref/).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import requests

from .._bulk import bulk_map
from .._coerce import as_bool, as_count, as_list, as_percent, as_str, from_epoch_ms
from .._http import HttpClient, Reply, body_snippet
from ..config import normalise_endpoint, resolve_credentials, validate_id
from ..errors import ConfigError, ExportWidgetsError, ResponseFormatError, classify_error
from ..models import (
    SAMPLE_STATE_MEANINGS,
    ExportParams,
    ExportTask,
    SearchCondition,
    SearchLabel,
    SearchLabels,
    SearchProp,
    TaskState,
)
from ..signing import SdkHmacAuth
from .base import GENERIC_CODES, ClientSettings, EnvNames, ErrorCodes, ExportRequest, ListPage, TaskRef

__all__ = ["ENV", "ERROR_CODES", "MODELARTS_REGIONS", "ModelArtsClient", "parse_export_params", "parse_export_task"]

PROVIDER = "modelarts"
LABEL = "ModelArts"
OP_GET = "GetExportTaskStatusOfDataset"
OP_LIST = "GetExportTasksStatusOfDataset"
OP_CREATE = "ExportTask"
#: Create-request enums (api-spec §1.3, §5.1).
EXPORT_TYPES: Mapping[int, str] = {0: "labeled", 1: "unlabeled", 2: "all", 3: "conditional search"}
EXPORT_FORMATS: Mapping[int, str] = {1: "tree", 2: "tile"}
VERSION_FORMATS = ("Default", "CarbonData", "CSV")
ANNOTATION_FORMATS = ("VOC", "COCO")
EXPORT_DESTS = ("DIR", "NEW_DATASET")
#: OBS bucket names: 3-63 lower-case letters, digits, hyphens and dots, starting and ending with a letter or digit.
OBS_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
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

    name: ClassVar[str] = PROVIDER
    label: ClassVar[str] = LABEL
    needs_dataset: ClassVar[bool] = True
    env: ClassVar[EnvNames] = ENV
    #: How a finished export reaches the user: the export stays in OBS: the result is a copy command.
    delivers_by_link: ClassVar[bool] = False
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
        request_timeout: float | None = None,
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
        super().__init__(endpoint_for(endpoint, region, env), auth, timeout=timeout,
                         request_timeout=request_timeout, session=session,
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
                   request_timeout=settings.request_timeout, environ=env)

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

    def export_request(
        self,
        dataset_id: str,
        *,
        path: str,
        export_type: int | None = None,
        export_format: int | None = None,
        sample_state: str | None = None,
        version_id: str | None = None,
        version_format: str | None = None,
        annotation_format: str | None = None,
        with_column_header: bool | None = None,
        export_dest: str | None = None,
        new_dataset_name: str | None = None,
        new_dataset_work_path: str | None = None,
        train_sample_ratio: float | str | None = None,
        search_conditions: list[dict[str, Any]] | None = None,
        samples: list[str] | None = None,
    ) -> ExportRequest:
        """A validated ExportTask body (no request sent). Bad input raises a one-line ConfigError.

        ``path`` is the OBS directory (``obs://bucket/dir/`` or ``/bucket/dir/``; sent as ``/bucket/dir/``);
        ``export_type`` 0 labeled, 1 unlabeled, 2 all, 3 conditional search (needs ``search_conditions``);
        ``export_format`` 1 tree, 2 tile; ``sample_state`` e.g. ``ALL``/``NONE``/``ACCEPTED``; ``export_dest``
        ``DIR`` (default) or ``NEW_DATASET`` (with ``new_dataset_name`` and ``new_dataset_work_path``).
        """
        dataset = validate_id(dataset_id, "dataset_id")
        body: dict[str, Any] = {"path": obs_api_path(path)}
        params: dict[str, Any] = {}
        if export_type is not None:
            body["export_type"] = _choice(export_type, EXPORT_TYPES, "export type")
        if export_format is not None:
            body["export_format"] = _choice(export_format, EXPORT_FORMATS, "export format")
        if sample_state is not None:
            if sample_state not in SAMPLE_STATE_MEANINGS:
                raise ConfigError(f"unknown sample state {sample_state!r}: use one of "
                                  f"{', '.join(s for s in SAMPLE_STATE_MEANINGS if s)}")
            params["sample_state"] = sample_state
        if version_id is not None:
            body["version_id"] = validate_id(version_id, "version_id")
        for name, value, allowed in (("version format", version_format, VERSION_FORMATS),
                                     ("annotation format", annotation_format, ANNOTATION_FORMATS),
                                     ("export destination", export_dest, EXPORT_DESTS)):
            if value is not None and value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}: use one of {', '.join(allowed)}")
        if version_format is not None:
            body["version_format"] = version_format
        if annotation_format is not None:
            body["annotation_format"] = annotation_format
        if with_column_header is not None:
            body["with_column_header"] = bool(with_column_header)
        if export_dest == "NEW_DATASET":
            if not new_dataset_name or not new_dataset_work_path:
                raise ConfigError("export_dest NEW_DATASET needs new_dataset_name= and new_dataset_work_path= "
                                  "(an OBS directory)")
            params.update(export_dest="NEW_DATASET", export_new_dataset_name=new_dataset_name,
                          export_new_dataset_work_path=obs_api_path(new_dataset_work_path))
        elif new_dataset_name or new_dataset_work_path:
            raise ConfigError("new_dataset_name/new_dataset_work_path need export_dest='NEW_DATASET'")
        elif export_dest is not None:
            params["export_dest"] = export_dest
        if train_sample_ratio is not None:
            params["train_sample_ratio"] = _ratio(train_sample_ratio)
        if search_conditions is not None:
            if not isinstance(search_conditions, list) or not all(isinstance(c, dict) for c in search_conditions):
                raise ConfigError("search_conditions must be a list of SearchCondition objects (dicts)")
            params["search_conditions"] = list(search_conditions)
        if body.get("export_type") == 3 and not params.get("search_conditions"):
            raise ConfigError("export type 3 (conditional search) needs search_conditions=[...]")
        if samples is not None:
            params["samples"] = [str(sample) for sample in samples]
        if params:
            body["export_params"] = params
        kind = f" ({EXPORT_TYPES[body['export_type']]} samples)" if "export_type" in body else ""
        return ExportRequest(PROVIDER, body, dataset_id=dataset,
                             summary=f"dataset {dataset}{kind} to obs:/{body['path']}")

    @staticmethod
    def create_arguments(options: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """:meth:`export_request` arguments from the magic's / CLI's options (``dataset``, ``path``, ``version``,
        ``export_type``, ``export_format``, ``sample_state``); a one-line ConfigError for a missing or foreign one."""
        foreign = [f"--{name.replace('_', '-')}" for name in ("bos", "sys_storage") if options.get(name)]
        if foreign:
            raise ConfigError(f"{', '.join(foreign)} apply to Qianfan exports; a ModelArts export takes --dataset D "
                              "--path obs://bucket/dir/")
        if not options.get("dataset"):
            raise ConfigError("a ModelArts export needs --dataset DATASET_ID")
        if not options.get("path"):
            raise ConfigError("a ModelArts export needs --path obs://bucket/dir/ (the OBS directory to write to)")
        fields = {name: options.get(key) for name, key in (
            ("path", "path"), ("export_type", "export_type"), ("export_format", "export_format"),
            ("sample_state", "sample_state"), ("version_id", "version"))}
        return (options["dataset"],), {name: value for name, value in fields.items() if value is not None}

    def submit_export(self, request: ExportRequest) -> TaskRef:
        """Send a validated ExportTask request; the new task's reference. Not retried: a lost answer may still
        have started the export."""
        if not request.dataset_id:
            raise ConfigError("a ModelArts export request needs its dataset id")
        reply = self._send(OP_CREATE, "POST", self._tasks_url(request.dataset_id), json_body=dict(request.body))
        body = self._checked(OP_CREATE, reply)
        task_id = as_str(body.get("task_id"))
        if not task_id:
            raise self._format_error(OP_CREATE, reply)
        return TaskRef(PROVIDER, task_id, request.dataset_id)

    def create_export_task(self, dataset_id: str, **fields: Any) -> TaskRef:
        """Start exporting ``dataset_id`` (keyword arguments as :meth:`export_request`)."""
        return self.submit_export(self.export_request(dataset_id, **fields))

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
        tasks = bulk_map(partial(parse_export_task, dataset_id=dataset),
                         (item for item in items if isinstance(item, dict)))
        return ListPage(page, tuple(tasks), as_count(body.get("total_count")))

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


def obs_api_path(path: str) -> str:
    """An OBS directory as the API takes it (``/bucket/dir/``) from ``obs://bucket/dir`` or ``/bucket/dir``."""
    text = path.strip() if isinstance(path, str) else ""
    rest = text[len("obs://"):] if text.startswith("obs://") else text[1:] if text.startswith("/") else None
    if rest is None:
        raise ConfigError(f"OBS path {path!r} must look like obs://bucket/dir/ (or /bucket/dir/)")
    bucket, _, directory = rest.partition("/")
    if not OBS_BUCKET.fullmatch(bucket):
        raise ConfigError(f"OBS path {path!r} names no valid bucket: write obs://BUCKET/dir/ (3-63 lower-case "
                          "letters, digits, hyphens or dots)")
    if any(ch.isspace() or ord(ch) < 32 for ch in directory) or ".." in directory.split("/"):
        raise ConfigError(f"OBS path {path!r} has an invalid directory part: use obs://bucket/dir/")
    directory = "/".join(part for part in directory.split("/") if part)
    return f"/{bucket}/{directory}/" if directory else f"/{bucket}/"


def _choice(value: Any, allowed: Mapping[int, str], name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        options = ", ".join(f"{key} {meaning}" for key, meaning in allowed.items())
        raise ConfigError(f"unknown {name} {value!r}: use {options}")
    return value


def _ratio(value: float | str) -> str:
    """``train_sample_ratio`` as the documented string (``"0.80"``), checked to be within 0..1."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"train_sample_ratio must be a number between 0 and 1, got {value!r}")
    return f"{number:.2f}"


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
