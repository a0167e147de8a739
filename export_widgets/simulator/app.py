"""The simulator's core: one request in, one vendor-shaped response out. No sockets here.

Order of checks, as a gateway does it: route (unknown API -> 404), authenticate (signature, token,
freshness), validate the request (project, dataset, list parameters), then faults, then the answer, which
is the pure task state at the scenario clock's ``now``.

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
from typing import Any
from urllib.parse import parse_qsl, unquote

from .clock import Clock, SystemClock
from .credentials import DEFAULT_PROJECT_ID, SimulatorCredentials
from .faults import ANY_TASK, Fault, FaultBook
from .requestlog import RequestLog, RequestRecord
from .scenario import DEFAULT_DATASET_ID, TaskSpec, demo_tasks
from .state import modelarts_status, phase_at, qianfan_result
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

__all__ = ["OPERATIONS", "QIANFAN_AUTH_MESSAGES", "Request", "SimulatorApp"]

MA_GET, MA_LIST, QF_DESCRIBE = "GetExportTaskStatusOfDataset", "GetExportTasksStatusOfDataset", "DescribeExportTask"
OPERATIONS = (MA_GET, MA_LIST, QF_DESCRIBE)
#: ``X-Bce-Error-Message`` (and body ``message``) of the BCE gateway for these authentication failures.
QIANFAN_AUTH_MESSAGES = {
    "signature_mismatch": "SignatureDoesNotMatch, cause: Fail to authn user: Signature does not match",
    "unknown_key": "NotFound, cause: Could not find credential.",
}
_BODY_FAULTS = frozenset({"unknown_status", "missing_fields", "ill_typed", "huge_body", "malformed_json",
                          "slow", "reset_mid_body"})


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
    ) -> None:
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
            self._tasks[spec.task_id] = spec
        self.faults.set(spec.task_id, spec.faults)
        return spec

    def remove_task(self, task_id: str) -> None:
        """Forget a task (later requests get the vendor's not-found answer)."""
        with self._lock:
            self._tasks.pop(task_id, None)
        self.faults.clear(task_id)

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
        if route.provider is None:
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
                response = self._answer(route, now, rid, fault)
        answered = response.action not in ("drop", "hold")
        self.requests.append(RequestRecord(
            time=now, wall_time=self.wall_clock(), method=request.method, path=request.path,
            provider=route.provider, operation=route.operation, task_id=route.task_id,
            status=response.status if answered else None, auth_ok=auth_ok,
            fault=fault.kind if fault else None, connection_id=request.connection_id))
        return response

    # -- routing --------------------------------------------------------------------------------------

    def _route(self, request: Request) -> _Route:
        segments = request.path.split("/")
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        if request.path == "/v2/dataset":
            return self._route_qianfan(request, params)
        if (len(segments) in (6, 7) and segments[0] == "" and segments[1] == "v2" and segments[3] == "datasets"
                and segments[5] == "export-tasks" and request.method == "GET"):
            task = unquote(segments[6]) if len(segments) == 7 and segments[6] else None
            return _Route("modelarts", MA_GET if task else MA_LIST, project_id=unquote(segments[2]),
                          dataset_id=unquote(segments[4]), task_id=task, params=params)
        return _Route(None)

    def _route_qianfan(self, request: Request, params: Mapping[str, str]) -> _Route:
        action = params.get("Action", "")
        if request.method != "POST" or action != QF_DESCRIBE:
            return _Route("qianfan", action or None,
                          problem=(400, "InvalidAction", f"the simulator serves only POST Action={QF_DESCRIBE}"))
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _Route("qianfan", QF_DESCRIBE, problem=(400, "MalformedJSON", "The JSON you provided was "
                                                           "not well-formed."))
        task = body.get("taskId") if isinstance(body, dict) else None
        if not isinstance(task, str) or not task:
            return _Route("qianfan", QF_DESCRIBE, problem=(400, "InvalidParameter", "taskId is required"))
        return _Route("qianfan", QF_DESCRIBE, task_id=task)

    def _validate(self, route: _Route) -> tuple[int, str, str] | None:
        if route.provider != "modelarts":
            return None
        if route.project_id != self.project_id:
            return (403, "ModelArts.0112", f"Policy doesn't allow modelarts:dataset:get to be performed on "
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
        return spec

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
                payload = {"requestId": rid, "result": shape_task(qianfan_result(spec, now), "qianfan", fault)}
        if kind == "huge_body":
            payload["debug_trace" if provider == "modelarts" else "debugInfo"] = "x" * (
                fault.size if fault and fault.size is not None else 5_000_000)
        response = json_response(200, payload, provider=provider, request_id=rid)
        if kind == "malformed_json":
            return dataclasses.replace(response, body=response.body[: max(1, len(response.body) // 2)])
        if kind == "slow":
            return dataclasses.replace(response, delay=fault.seconds if fault and fault.seconds is not None else 2.0)
        if kind == "reset_mid_body":
            return dataclasses.replace(response, action="reset_mid_body")
        return response

    def _list_page(self, route: _Route, now: float, fault: Fault | None) -> dict[str, Any]:
        limit = int(route.params.get("limit") or 10)
        offset = int(route.params.get("offset") or 0)
        wanted_type = route.params.get("export_type")
        specs = [s for s in self.tasks.values()
                 if s.provider == "modelarts" and s.dataset_id == route.dataset_id and phase_at(s, now).exists
                 and (wanted_type is None or s.effective_export_type == int(wanted_type))]
        specs.sort(key=lambda s: (-(s.created_at or 0.0), s.task_id))  # newest first, like the console
        page = specs[offset * limit:(offset + 1) * limit]  # offset is a PAGE index
        return {"total_count": len(specs),
                "export_tasks": [shape_task(modelarts_status(s, now), "modelarts", fault) for s in page]}
