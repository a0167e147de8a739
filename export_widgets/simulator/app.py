"""The simulator's core: one request in, one vendor-shaped response out. No sockets here.

Order of checks, as a gateway does it: route (unknown API -> 404), authenticate (signature, token,
freshness), validate the request (project, dataset, list parameters), then faults, then the answer, which
is the pure task state at the scenario clock's ``now``.

Operations (``RequestRecord.operation`` / ``.kind``): ModelArts ``GetExportTaskStatusOfDataset`` (status),
``GetExportTasksStatusOfDataset`` (list), ``ExportTask`` (create); Qianfan ``DescribeExportTask`` (status),
``CreateExportTask`` (create); BOS ``GetObject`` (download of a finished Qianfan export, see :mod:`.bos`).

Creates (see :mod:`.create` for the validation) start a task on the scenario clock from the app's
:class:`.CreatePolicy`. A fault that replaces the answer (an error status) creates nothing; ``drop``,
``timeout``, ``reset_mid_body``, ``slow`` and ``malformed_json`` create the task and then lose or spoil the
answer, as a real network would -- a client that retries blindly starts a second export.

Assumption (not documented by Baidu): a missing Qianfan task is HTTP 404 ``ResourceNotFound``.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote

from . import bos
from .clock import Clock, SystemClock
from .create import Rejection, modelarts_create_spec, new_task_id, qianfan_create_spec
from .credentials import DEFAULT_PROJECT_ID, SimulatorCredentials
from .exportfile import ExportFile, export_file_size
from .faults import ANY_TASK, Fault, FaultBook
from .requestlog import RequestLog, RequestRecord
from .scenario import DEFAULT_DATASET_ID, DEFAULT_DOWNLOAD_TTL, CreatePolicy, TaskSpec, demo_tasks
from .state import PENDING, RUNNING, SUCCEEDED, modelarts_status, phase_at, qianfan_result
from .vendor import (
    Response,
    fault_reply,
    json_response,
    modelarts_error,
    new_request_id,
    not_found,
    qianfan_error,
    shape_task,
)
from .verify import Verdict, verify_bce, verify_sdk_hmac

__all__ = ["OPERATIONS", "OPERATION_KINDS", "QIANFAN_AUTH_MESSAGES", "Request", "SimulatorApp"]

MA_GET, MA_LIST, QF_DESCRIBE = "GetExportTaskStatusOfDataset", "GetExportTasksStatusOfDataset", "DescribeExportTask"
MA_CREATE, QF_CREATE, BOS_GET = "ExportTask", "CreateExportTask", "GetObject"
OPERATIONS = (MA_GET, MA_LIST, MA_CREATE, QF_DESCRIBE, QF_CREATE, BOS_GET)
#: Vendor operation -> the short kind the request log counts by: status, list, create, download.
OPERATION_KINDS = {MA_GET: "status", QF_DESCRIBE: "status", MA_LIST: "list", MA_CREATE: "create",
                   QF_CREATE: "create", BOS_GET: "download"}
#: ``X-Bce-Error-Message`` (and body ``message``) of the BCE gateway for these authentication failures.
QIANFAN_AUTH_MESSAGES = {
    "signature_mismatch": "SignatureDoesNotMatch, cause: Fail to authn user: Signature does not match",
    "unknown_key": "NotFound, cause: Could not find credential.",
}
_BODY_FAULTS = frozenset({"unknown_status", "missing_fields", "ill_typed", "huge_body", "malformed_json",
                          "slow", "reset_mid_body"})
_ANSWER_LOST = frozenset({"drop", "timeout"})  # on a create: the task exists, the answer never arrives


@dataclass(frozen=True)
class Request:
    """An HTTP request as received: raw target (path + query, still percent-encoded), headers, body bytes."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    connection_id: int = 0

    @property
    def path(self) -> str:
        """The raw path, without the query."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The raw query string (without ``?``)."""
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header_map(self) -> dict[str, str]:
        """Lower-cased header names to values (the first occurrence wins)."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            out.setdefault(name.lower(), value)
        return out


@dataclass(frozen=True)
class _Route:
    provider: str | None
    operation: str | None = None
    project_id: str | None = None
    dataset_id: str | None = None
    task_id: str | None = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    problem: tuple[int, str, str] | None = None  # (status, code, message), answered after authentication
    body: Any = None  # a create's parsed JSON body
    bos_object: tuple[str, str] | None = None  # (bucket, key) of a download


class SimulatorApp:
    """Routes, authenticates and answers ModelArts and Qianfan export-task requests.

    Parameters
    ----------
    tasks : iterable of TaskSpec (or dicts), optional
        None loads the demo set (:func:`.scenario.demo_tasks`); pass ``[]`` for none.
    clock : Clock, optional
        The scenario clock (default: wall time). Task state is a pure function of its reading.
    wall_clock : callable, optional
        Real time for signature freshness (default ``time.time``); tests may skew it.
    create : CreatePolicy or dict, optional
        What create requests start (default: tasks that succeed after 10 s, no running limit, no read lag).
    download_ttl : int
        Lifetime of a Qianfan ``downloadUrl`` in scenario seconds (default 1800).
    """

    def __init__(
        self,
        tasks: Iterable[TaskSpec | Mapping[str, Any]] | None = None,
        *,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
        dataset_id: str = DEFAULT_DATASET_ID,
        credentials: SimulatorCredentials | None = None,
        create: CreatePolicy | Mapping[str, Any] | None = None,
        download_ttl: int = DEFAULT_DOWNLOAD_TTL,
    ) -> None:
        if not isinstance(download_ttl, int) or download_ttl < 1:
            raise ValueError(f"download_ttl must be a positive number of seconds, got {download_ttl!r}")
        self.create_policy = CreatePolicy.from_dict(create)
        self.download_ttl = download_ttl
        #: Base URL that download links point at; the server sets it when it starts.
        self.public_url: str | None = None
        self._created = 0
        self._lag_left: dict[str, int] = {}
        self._files: dict[tuple[str, int], ExportFile] = {}
        self.clock: Clock = clock or SystemClock()
        self.wall_clock = wall_clock or time.time
        self.project_id = project_id
        self.dataset_id = dataset_id
        self.credentials = credentials or SimulatorCredentials()
        self.faults = FaultBook()
        self.requests = RequestLog()
        self.started_at = self.clock.now()
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskSpec] = {}
        for spec in demo_tasks() if tasks is None else tasks:
            self.add_task(spec)

    # -- tasks and faults -----------------------------------------------------------------------------

    def add_task(self, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
        """Add (or replace) a task; a missing ``created_at`` becomes the clock's now. Returns the stored spec."""
        if not isinstance(spec, TaskSpec):
            spec = TaskSpec.from_dict(spec)
        if spec.created_at is None:
            spec = dataclasses.replace(spec, created_at=self.clock.now())
        with self._lock:
            self._store(spec)
        return spec

    def _store(self, spec: TaskSpec) -> None:  # under self._lock
        self._tasks[spec.task_id] = spec
        self._lag_left[spec.task_id] = spec.read_lag_requests
        self.faults.set(spec.task_id, spec.faults)

    def remove_task(self, task_id: str) -> None:
        """Forget a task (later requests get the vendor's not-found answer)."""
        with self._lock:
            self._tasks.pop(task_id, None)
            self._lag_left.pop(task_id, None)
        self.faults.clear(task_id)

    def set_create_policy(self, policy: CreatePolicy | Mapping[str, Any]) -> None:
        """Change what later create requests start (see :class:`.CreatePolicy`)."""
        self.create_policy = CreatePolicy.from_dict(policy)

    # -- the export files behind Qianfan's downloadUrl --------------------------------------------------

    def export_file(self, task_id: str) -> ExportFile:
        """The file a finished Qianfan export serves (exists whether or not the task has finished)."""
        spec = self.tasks.get(task_id)
        if spec is None or spec.provider != "qianfan":
            raise KeyError(f"no Qianfan task {task_id!r}")
        size = export_file_size(spec.task_id, spec.size_mb, spec.size_bytes)
        with self._lock:  # one instance per file, so its CRC is computed once
            return self._files.setdefault((spec.task_id, size), ExportFile(spec.task_id, size))

    def download_url_for(self, task_id: str, now: float | None = None) -> str:
        """The ``downloadUrl`` DescribeExportTask gives for ``task_id`` at ``now`` (default: the clock's now).

        Raises ``ValueError`` until the export has finished, and when no server address is known yet.
        """
        now = self.clock.now() if now is None else now
        spec = self.tasks.get(task_id)
        if spec is None or spec.provider != "qianfan":
            raise ValueError(f"no Qianfan task {task_id!r}")
        if phase_at(spec, now).state != SUCCEEDED:
            raise ValueError(f"Qianfan task {task_id!r} has not finished successfully at {now}")
        url = self._download_url(spec, now)
        if url is None:
            raise ValueError("the simulator is not serving yet: start it first")
        return url

    def _download_url(self, spec: TaskSpec, now: float) -> str | None:
        if self.public_url is None:
            return None  # no server: qianfan_result() keeps its realistic bcebos.com URL
        bucket, key = bos.object_location(spec.task_id, spec.path)
        return bos.presign(self.public_url, bucket, key, now=now, ttl=self.download_ttl,
                           access_key=self.credentials.bos_ak, secret_key=self.credentials.bos_sk)

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        """A copy of ``{task_id: TaskSpec}``."""
        with self._lock:
            return dict(self._tasks)

    def set_faults(self, task_id: str, faults: Iterable[Fault | Mapping[str, Any] | str]) -> None:
        """Replace the faults of ``task_id`` (``"*"`` = every request); an empty list clears them."""
        self.faults.set(task_id, faults)

    def clear_faults(self, task_id: str | None = None) -> None:
        """Remove the faults of one task, or all faults."""
        self.faults.clear(task_id)

    # -- the request cycle ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request and record it in :attr:`requests`."""
        now = self.clock.now()
        route = self._route(request)
        provider = route.provider or "modelarts"
        rid = new_request_id(provider)
        auth_ok: bool | None = None
        fault: Fault | None = None
        task_id = route.task_id
        if route.operation == BOS_GET:
            response, fault, auth_ok, task_id = self._download(request, route, now, rid)
        elif route.provider is None:
            response = modelarts_error(404, "APIGW.0101", "The API does not exist or has not been published in "
                                       "the environment", rid, gateway=True)
        else:
            verdict = self._authenticate(route.provider, request)
            auth_ok = verdict.ok
            problem = route.problem or self._validate(route)
            if not verdict.ok:
                response = self._auth_error(route.provider, verdict, rid)
            elif problem:
                response = self._error(route.provider, problem, rid)
            else:
                fault = self._take_fault(route, now)
                if route.operation in (MA_CREATE, QF_CREATE):
                    response, task_id = self._create_answer(route, now, rid, fault)
                else:
                    response = self._answer(route, now, rid, fault)
        answered = response.action not in ("drop", "hold")
        self.requests.append(RequestRecord(
            time=now, wall_time=self.wall_clock(), method=request.method, path=request.path,
            provider=route.provider, operation=route.operation, task_id=task_id,
            status=response.status if answered else None, auth_ok=auth_ok,
            fault=fault.kind if fault else None, connection_id=request.connection_id,
            kind=OPERATION_KINDS.get(route.operation or "")))
        return response

    # -- routing --------------------------------------------------------------------------------------

    def _route(self, request: Request) -> _Route:
        segments = request.path.split("/")
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        if request.path == "/v2/dataset":
            return self._route_qianfan(request, params)
        if request.path.startswith(bos.BOS_PREFIX) and request.method in ("GET", "HEAD"):
            location = bos.split_object_path(request.path)
            if location is not None:
                return _Route("qianfan", BOS_GET, params=params, bos_object=location)
        if (len(segments) in (6, 7) and segments[0] == "" and segments[1] == "v2" and segments[3] == "datasets"
                and segments[5] == "export-tasks"):
            task = unquote(segments[6]) if len(segments) == 7 and segments[6] else None
            project, dataset = unquote(segments[2]), unquote(segments[4])
            if request.method == "GET":
                return _Route("modelarts", MA_GET if task else MA_LIST, project_id=project, dataset_id=dataset,
                              task_id=task, params=params)
            if request.method == "POST" and task is None:
                body, malformed = _json_body(request.body)
                problem = (400, "ModelArts.0104", "Invalid parameter: the request body is not valid JSON.")
                return _Route("modelarts", MA_CREATE, project_id=project, dataset_id=dataset, params=params,
                              body=body, problem=problem if malformed else None)
        return _Route(None)

    def _route_qianfan(self, request: Request, params: Mapping[str, str]) -> _Route:
        action = params.get("Action", "")
        if request.method != "POST" or action not in (QF_DESCRIBE, QF_CREATE):
            return _Route("qianfan", action or None, problem=(
                400, "InvalidAction", f"the simulator serves only POST Action={QF_DESCRIBE} and {QF_CREATE}"))
        body, malformed = _json_body(request.body)
        if malformed:
            return _Route("qianfan", action, problem=(400, "MalformedJSON", "The JSON you provided was "
                                                      "not well-formed."))
        if action == QF_CREATE:
            return _Route("qianfan", QF_CREATE, body=body)
        task = body.get("taskId") if isinstance(body, dict) else None
        if not isinstance(task, str) or not task:
            return _Route("qianfan", QF_DESCRIBE, problem=(400, "InvalidParameter", "taskId is required"))
        return _Route("qianfan", QF_DESCRIBE, task_id=task)

    def _validate(self, route: _Route) -> tuple[int, str, str] | None:
        if route.provider != "modelarts":
            return None
        if route.project_id != self.project_id:
            action = "update" if route.operation == MA_CREATE else "get"
            return (403, "ModelArts.0112", f"Policy doesn't allow modelarts:dataset:{action} to be performed on "
                    f"project {route.project_id}.")
        known = {self.dataset_id} | {t.dataset_id for t in self.tasks.values() if t.provider == "modelarts"}
        if route.dataset_id not in known:
            return (400, "ModelArts.4352", "Dataset does not exist.")
        if route.operation == MA_LIST:
            for name, low, high in (("limit", 1, 100), ("offset", 0, 10**6), ("export_type", 0, 3)):
                text = route.params.get(name)
                if text is not None and not (text.isdigit() and low <= int(text) <= high):
                    return (400, "ModelArts.0104", f"Invalid parameter: {name} must be an integer in "
                            f"{low}..{high}, got {text!r}.")
        return None

    # -- authentication -------------------------------------------------------------------------------

    def _authenticate(self, provider: str, request: Request) -> Verdict:
        headers = request.header_map()
        if provider == "qianfan":
            return verify_bce(request.method, request.path, request.query, headers,
                              self.credentials.qianfan_secret, self.wall_clock())
        token = headers.get("x-auth-token")
        if token is not None:
            if hmac.compare_digest(token.encode(), self.credentials.token.encode()):
                return Verdict(True)
            return Verdict.fail("bad_token", "decrypt token fail")
        verdict = verify_sdk_hmac(request.method, request.path, request.query, headers, request.body,
                                  self.credentials.modelarts_secret, self.wall_clock())
        if not verdict.ok:
            return verdict
        sent = headers.get("x-security-token")
        if verdict.access_key == self.credentials.temp_ak:
            if sent is None or "x-security-token" not in verdict.signed_headers \
                    or not hmac.compare_digest(sent.encode(), self.credentials.security_token.encode()):
                return Verdict.fail("security_token", "the security token of these temporary credentials is "
                                    "missing, unsigned or invalid", verdict.access_key)
        elif sent is not None:
            return Verdict.fail("security_token", "X-Security-Token was sent with a permanent access key",
                                verdict.access_key)
        return verdict

    @staticmethod
    def _auth_error(provider: str, verdict: Verdict, rid: str) -> Response:
        if provider == "modelarts":
            return modelarts_error(401, "APIGW.0301", f"Incorrect IAM authentication information: {verdict.detail}",
                                   rid, gateway=True)
        status, code = {
            "expired": (400, "RequestExpired"),
            "unknown_key": (403, "InvalidAccessKeyId"),
            "signature_mismatch": (403, "SignatureDoesNotMatch"),
        }.get(verdict.reason, (400, "InvalidHTTPAuthHeader"))
        # The BCE gateway's IAM wording, verbatim: the qianfan SDK compares X-Bce-Error-Message with these
        # exact strings to add its "wrong Access Key / Secret Key" hint.
        message = QIANFAN_AUTH_MESSAGES.get(verdict.reason, verdict.detail)
        return qianfan_error(status, code, message, rid, gateway=True)

    # -- answers --------------------------------------------------------------------------------------

    @staticmethod
    def _error(provider: str, problem: tuple[int, str, str], rid: str) -> Response:
        status, code, message = problem
        if provider == "modelarts":
            return modelarts_error(status, code, message, rid)
        return qianfan_error(status, code, message, rid)

    def _take_fault(self, route: _Route, now: float) -> Fault | None:
        if route.task_id:
            spec = self.tasks.get(route.task_id)
            created = spec.created_at if spec and spec.created_at is not None else self.started_at
            fault = self.faults.take(route.task_id, now - created)
            if fault:
                return fault
        return self.faults.take(ANY_TASK, now - self.started_at)

    def _find(self, route: _Route, now: float) -> TaskSpec | None:
        spec = self.tasks.get(route.task_id or "")
        if spec is None or spec.provider != route.provider or not phase_at(spec, now).exists:
            return None
        if route.provider == "modelarts" and spec.dataset_id != route.dataset_id:
            return None
        return None if self._lagging(spec, now, count=True) else spec

    def _lagging(self, spec: TaskSpec, now: float, *, count: bool) -> bool:
        """Whether reads still miss ``spec`` (its read lag); ``count`` uses up one lagging status read."""
        created = spec.created_at if spec.created_at is not None else now
        if spec.read_lag and now - created < spec.read_lag:
            return True
        with self._lock:
            left = self._lag_left.get(spec.task_id, 0)
            if left > 0 and count:
                self._lag_left[spec.task_id] = left - 1
        return left > 0

    def _answer(self, route: _Route, now: float, rid: str, fault: Fault | None) -> Response:
        provider = route.provider or "modelarts"
        kind = fault.kind if fault else None
        if fault is not None and kind not in _BODY_FAULTS:
            return fault_reply(provider, route.task_id, fault, rid)
        if route.operation == MA_LIST:
            payload: Any = self._list_page(route, now, fault)
        else:
            spec = self._find(route, now)
            if spec is None:
                return not_found(provider, route.task_id, rid)
            if provider == "modelarts":
                payload = shape_task(modelarts_status(spec, now), "modelarts", fault)
            else:
                result = qianfan_result(spec, now, download_url=self._download_url(spec, now))
                payload = {"requestId": rid, "result": shape_task(result, "qianfan", fault)}
        if kind == "huge_body":
            payload["debug_trace" if provider == "modelarts" else "debugInfo"] = "x" * (
                fault.size if fault and fault.size is not None else 5_000_000)
        return _spoil(json_response(200, payload, provider=provider, request_id=rid), fault)

    # -- creates --------------------------------------------------------------------------------------

    def _create_answer(self, route: _Route, now: float, rid: str, fault: Fault | None) -> tuple[Response, str | None]:
        """Answer a create; returns the response and the new task's id (None when nothing was created)."""
        provider = route.provider or "modelarts"
        kind = fault.kind if fault else None
        if fault is not None and kind not in _BODY_FAULTS | _ANSWER_LOST:
            return fault_reply(provider, None, fault, rid), None  # refused before anything was created
        outcome = self._create(route, now)
        if isinstance(outcome, Rejection):
            if provider == "modelarts":
                response = modelarts_error(outcome.status, outcome.code, outcome.message, rid)
            else:
                response = qianfan_error(outcome.status, outcome.code, outcome.message, rid)
            return response, None
        if fault is not None and kind in _ANSWER_LOST:
            return fault_reply(provider, outcome.task_id, fault, rid), outcome.task_id
        payload = {"task_id": outcome.task_id} if provider == "modelarts" else {"requestId": rid,
                                                                                "result": outcome.task_id}
        return _spoil(json_response(200, payload, provider=provider, request_id=rid), fault), outcome.task_id

    def _create(self, route: _Route, now: float) -> TaskSpec | Rejection:
        provider = route.provider or "modelarts"
        policy = self.create_policy
        with self._lock:  # id, limit and insertion at once: concurrent creates cannot both pass the limit
            while True:
                self._created += 1
                task_id = new_task_id(provider, self._created, f"{self.project_id}:{route.dataset_id}")
                if task_id not in self._tasks:
                    break
            if provider == "modelarts":
                outcome = modelarts_create_spec(route.body, route.dataset_id or "", task_id, policy)
            else:
                outcome = qianfan_create_spec(route.body, task_id, policy)
            if isinstance(outcome, Rejection):
                return outcome
            limit = policy.running_limit
            if limit is not None and self._running(provider, route.dataset_id, now) >= limit:
                if provider == "modelarts":
                    return Rejection(400, "ModelArts.4409", f"Too many running tasks: the dataset already has "
                                     f"{limit} running export task(s). Try again after one finishes.")
                return Rejection(200, "ExportTaskLimitExceeded", f"Too many running export tasks (limit {limit}); "
                                 "try again after one finishes.")
            spec = dataclasses.replace(outcome, created_at=now)
            self._store(spec)
        return spec

    def _running(self, provider: str, dataset_id: str | None, now: float) -> int:  # under self._lock
        return sum(1 for s in self._tasks.values()
                   if s.provider == provider and (provider == "qianfan" or s.dataset_id == dataset_id)
                   and phase_at(s, now).state in (PENDING, RUNNING))

    # -- downloads ------------------------------------------------------------------------------------

    def _download(self, request: Request, route: _Route, now: float,
                  rid: str) -> tuple[Response, Fault | None, bool, str | None]:
        """Answer a GET/HEAD of an export file: (response, fault, signature ok, task id)."""
        bucket, key = route.bos_object or ("", "")
        problem = bos.check_presigned(request.path, request.query, request.header_map().get("host"), now=now,
                                      access_key=self.credentials.bos_ak, secret_key=self.credentials.bos_sk)
        if problem:
            return bos.bos_error(*problem, rid), None, False, None
        spec = next((s for s in self.tasks.values() if s.provider == "qianfan"
                     and bos.object_location(s.task_id, s.path) == (bucket, key)
                     and phase_at(s, now).state == SUCCEEDED), None)
        if spec is None:
            return bos.bos_error(404, "NoSuchKey", "The specified key does not exist.", rid), None, True, None
        created = spec.created_at if spec.created_at is not None else self.started_at
        fault = (self.faults.take(spec.task_id, now - created, download=True)
                 or self.faults.take(ANY_TASK, now - self.started_at, download=True))
        return self._serve_file(request, spec, now, rid, fault), fault, True, spec.task_id

    def _serve_file(self, request: Request, spec: TaskSpec, now: float, rid: str, fault: Fault | None) -> Response:
        kind = fault.kind if fault else None
        if fault is not None and kind == "download_error":
            status = fault.status or 503
            code = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError"}.get(status, "ServiceUnavailable")
            return bos.bos_error(status, fault.code or code, fault.message or "Please reduce your request rate.", rid)
        file = self.export_file(spec.task_id)
        headers = request.header_map()
        finished = phase_at(spec, now).finished_at or now
        base: tuple[tuple[str, str], ...] = (
            ("Content-Type", "application/zip"), ("ETag", file.etag), ("Accept-Ranges", "bytes"),
            ("Last-Modified", formatdate(finished, usegmt=True)), ("x-bce-request-id", rid))
        wanted = None if kind == "download_no_range" else headers.get("range")
        validator = headers.get("if-range")
        if validator is not None and validator.strip() != file.etag:
            wanted = None  # the client's partial copy is of another version: send it all
        try:
            span = bos.parse_range(wanted, file.size)
        except bos.RangeError:
            return bos.bos_error(416, "InvalidRange", "The requested range cannot be satisfied.", rid,
                                 extra_headers=(("Content-Range", f"bytes */{file.size}"),))
        start, end = span if span is not None else (0, file.size)
        status = 206 if span is not None else 200
        if span is not None:
            base += (("Content-Range", f"bytes {start}-{end - 1}/{file.size}"),)
        cut = None
        if kind == "download_cut":
            cut = fault.size if fault and fault.size is not None else (end - start) // 2
        delay = (fault.seconds if fault and fault.seconds is not None else 0.05) if kind == "download_slow" else 0.0
        return Response(status, base, stream=lambda: file.iter_range(start, end), stream_length=end - start,
                        cut_after=cut, chunk_delay=delay, head_only=request.method == "HEAD")

    def _list_page(self, route: _Route, now: float, fault: Fault | None) -> dict[str, Any]:
        """One page of GetExportTasksStatusOfDataset.

        The API has no sort parameter (its only query parameters are ``export_type``, ``limit`` and ``offset``,
        api-spec §1.2); its documented example lists the newer task first (``create_time`` 1606103820120 before
        1606103424662), so pages are newest first by creation time, and tasks created at the same instant
        newest-added first. ``offset`` is a page index; ``total_count`` counts every matching task.
        """
        limit = int(route.params.get("limit") or 10)
        offset = int(route.params.get("offset") or 0)
        wanted_type = route.params.get("export_type")
        ordered = [(index, s) for index, s in enumerate(self.tasks.values())
                   if s.provider == "modelarts" and s.dataset_id == route.dataset_id and phase_at(s, now).exists
                   and (wanted_type is None or s.effective_export_type == int(wanted_type))
                   and not self._lagging(s, now, count=False)]
        ordered.sort(key=lambda item: (-(item[1].created_at or 0.0), -item[0]))
        specs = [s for _, s in ordered]
        page = specs[offset * limit:(offset + 1) * limit]  # offset is a PAGE index
        return {"total_count": len(specs),
                "export_tasks": [shape_task(modelarts_status(s, now), "modelarts", fault) for s in page]}


def _json_body(raw: bytes) -> tuple[Any, bool]:
    """(parsed body, malformed?)"""
    try:
        return json.loads(raw.decode("utf-8")), False
    except (UnicodeDecodeError, ValueError):
        return None, True


def _spoil(response: Response, fault: Fault | None) -> Response:
    """Apply the faults that damage an otherwise normal answer on its way out."""
    kind = fault.kind if fault else None
    if kind == "malformed_json":
        return dataclasses.replace(response, body=response.body[: max(1, len(response.body) // 2)])
    if kind == "slow":
        return dataclasses.replace(response, delay=fault.seconds if fault and fault.seconds is not None else 2.0)
    if kind == "reset_mid_body":
        return dataclasses.replace(response, action="reset_mid_body")
    return response
