"""How each vendor words its answers: response objects, error bodies and headers.

ModelArts errors are ``{"error_code", "error_msg"}``; its API gateway (APIG) adds ``request_id``. Qianfan
errors are ``{"requestId", "code", "message"}`` (sometimes inside HTTP 200), and gateway/IAM failures
repeat the code in ``X-Bce-Error-Code``/``X-Bce-Error-Message``. Codes follow ``../shared/api-spec.md`` §1.6/§2.5.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from .faults import Fault

__all__ = [
    "Response",
    "apig_throttle",
    "fault_reply",
    "html_page",
    "json_response",
    "modelarts_error",
    "new_request_id",
    "not_found",
    "qianfan_error",
    "rate_limit_error",
    "reason",
    "server_error",
    "shape_task",
]

SERVER_NAME = "export-widgets-simulator"


@dataclass(frozen=True)
class Response:
    """What the app wants the server to do.

    ``action``: ``send`` (normal), ``drop`` (close without answering), ``hold`` (keep the connection open
    ``hold`` seconds, then close unanswered) or ``reset_mid_body`` (send headers and half the body, close).
    ``delay`` is waited before sending. Waits are cut short when the server shuts down.

    Downloads stream: ``stream()`` yields the body in pieces (``stream_length`` bytes in all, never held whole);
    ``cut_after`` closes the connection after that many body bytes; ``chunk_delay`` pauses between pieces;
    ``head_only`` sends the headers alone (HEAD).
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    action: str = "send"
    delay: float = 0.0
    hold: float = 0.0
    stream: Callable[[], Iterator[bytes]] | None = None
    stream_length: int = 0
    cut_after: int | None = None
    chunk_delay: float = 0.0
    head_only: bool = False

    def json(self) -> Any:
        """The body parsed as JSON (for tests)."""
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        """First header called ``name`` (case-insensitive)."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def head_bytes(self, reason: str) -> bytes:
        """Status line and headers (``Content-Length`` is the stream's length for a streamed body)."""
        length = self.stream_length if self.stream is not None else len(self.body)
        head = [f"HTTP/1.1 {self.status} {reason}", f"Date: {formatdate(usegmt=True)}", f"Server: {SERVER_NAME}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        head.append(f"Content-Length: {length}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")

    def to_bytes(self, reason: str) -> bytes:
        """Status line, headers and body as one buffer, so it leaves in a single send (no Nagle stall)."""
        return self.head_bytes(reason) + (b"" if self.head_only else self.body)


def new_request_id(provider: str) -> str:
    """A fresh request id in the vendor's style (32 hex for Huawei, a dashed UUID for Baidu)."""
    return uuid.uuid4().hex if provider == "modelarts" else str(uuid.uuid4())


def json_response(status: int, body: Any, *, provider: str, request_id: str,
                  extra_headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A JSON answer with the vendor's request-id header."""
    id_header = "X-Request-Id" if provider == "modelarts" else "X-Bce-Request-Id"
    content_type = "application/json" if provider == "modelarts" else "application/json;charset=UTF-8"
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, (("Content-Type", content_type), (id_header, request_id)) + extra_headers, payload)


def modelarts_error(status: int, code: str, message: str, request_id: str, *, gateway: bool = False,
                    extra_headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """ModelArts (or, with ``gateway=True``, APIG) error answer."""
    body: dict[str, Any] = {"error_code": code, "error_msg": message}
    if gateway:
        body["request_id"] = request_id
    return json_response(status, body, provider="modelarts", request_id=request_id, extra_headers=extra_headers)


def qianfan_error(status: int, code: str, message: str, request_id: str, *, gateway: bool = False,
                  extra_headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Qianfan/BCE error answer; ``gateway=True`` also sets the ``X-Bce-Error-*`` headers."""
    headers = extra_headers
    if gateway:
        headers += (("X-Bce-Error-Code", code), ("X-Bce-Error-Message", message))
    return json_response(status, {"requestId": request_id, "code": code, "message": message},
                         provider="qianfan", request_id=request_id, extra_headers=headers)


def rate_limit_error(provider: str, request_id: str, retry_after: int | None) -> Response:
    """HTTP 429 in the vendor's words, with ``Retry-After`` when given."""
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    if provider == "modelarts":
        return modelarts_error(429, "ModelArts.4395", "Too many requests to the dataset service. Try again later.",
                               request_id, extra_headers=headers)
    return qianfan_error(429, "RequestLimitReached", "Request limit reached, please retry later.", request_id,
                         extra_headers=headers)


def apig_throttle(request_id: str) -> Response:
    """Huawei API gateway throttling (APIG.0308), as documented."""
    return modelarts_error(429, "APIG.0308", "The throttling threshold has been reached: policy user over "
                           "ratelimit,limit:20,time:1 minute", request_id, gateway=True)


def server_error(provider: str, status: int, request_id: str) -> Response:
    """A 5xx in the vendor's words (the gateway's for 502-504 on Huawei)."""
    if provider == "modelarts":
        if status == 500:
            return modelarts_error(500, "ModelArts.6102", "Internal server error.", request_id)
        code, text = {502: ("APIGW.0202", "Backend unavailable"), 503: ("APIGW.0203", "Service unavailable"),
                      504: ("APIGW.0201", "Backend timeout")}[status]
        return modelarts_error(status, code, text, request_id, gateway=True)
    code = "InternalError" if status == 500 else "ServiceUnavailable"
    return qianfan_error(status, code, "We encountered an internal error. Please try again.", request_id)


def reason(status: int) -> str:
    """The HTTP reason phrase."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def html_page(status: int) -> Response:
    """The kind of HTML error page a load balancer returns in front of either API."""
    title = f"{status} {reason(status)}"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode("ascii")
    return Response(status, (("Content-Type", "text/html"),), body)


def not_found(provider: str, task_id: str | None, rid: str, status: int | None = None) -> Response:
    """The vendor's missing-task answer: ModelArts 400 ``ModelArts.4359`` (documented); Qianfan 404
    ``ResourceNotFound`` (an assumption: Baidu documents no code for it)."""
    if provider == "modelarts":
        return modelarts_error(status or 400, "ModelArts.4359", "Export task does not exist.", rid)
    return qianfan_error(status or 404, "ResourceNotFound", f"export task {task_id} does not exist", rid)


def fault_reply(provider: str, task_id: str | None, fault: Fault, rid: str) -> Response:
    """The answer for a fault that replaces the whole response (not the body-shaping kinds)."""
    kind = fault.kind
    if kind == "drop":
        return Response(0, action="drop")
    if kind == "timeout":
        return Response(0, action="hold", hold=fault.seconds if fault.seconds is not None else 90.0)
    if kind == "rate_limit":
        return rate_limit_error(provider, rid, fault.retry_after if fault.retry_after is not None else 2)
    if kind == "rate_limit_no_retry_after":
        return rate_limit_error(provider, rid, None)
    if kind == "apig_throttle":
        return apig_throttle(rid)
    if kind == "qps_limit":
        if provider == "qianfan":
            return qianfan_error(200, "QPSLimitReached", "QPS limit reached, please retry later.", rid)
        return rate_limit_error(provider, rid, None)
    if kind == "server_error":
        return server_error(provider, fault.status or 500, rid)
    if kind == "html":
        return html_page(fault.status or 502)
    if kind == "empty_body":
        return dataclasses.replace(json_response(200, None, provider=provider, request_id=rid), body=b"")
    if kind == "error_in_200":
        if provider == "qianfan":
            return qianfan_error(200, fault.code or "InternalError",
                                 fault.message or "Internal error, please retry later.", rid)
        return modelarts_error(200, fault.code or "ModelArts.6101", fault.message or "System busy.", rid)
    if kind == "not_found":
        return not_found(provider, task_id, rid, fault.status)
    if kind == "auth_revoked":
        if provider == "qianfan":
            return qianfan_error(403, "AccessDenied", "Access denied.", rid, gateway=True)
        return modelarts_error(403, "APIGW.0302", "The IAM user is not authorized to access the API: the "
                               "access key has been disabled.", rid, gateway=True)
    raise AssertionError(f"unhandled fault kind {kind}")  # FAULT_KINDS and this function must agree


def shape_task(payload: dict[str, Any], provider: str, fault: Fault | None) -> dict[str, Any]:
    """Apply the body-shaping faults (unknown status, missing fields, ill-typed values) to one task object."""
    kind = fault.kind if fault else None
    if kind == "unknown_status":
        key = "status" if provider == "modelarts" else "exportStatus"
        payload[key] = fault.value if fault and fault.value else ("QUEUING" if provider == "modelarts"
                                                                   else "ExportQueued")
    elif kind == "missing_fields":
        keep = ("task_id", "status") if provider == "modelarts" else ("exportStatus",)
        payload = {k: v for k, v in payload.items() if k in keep}
    elif kind == "ill_typed" and provider == "modelarts":
        payload.update(progress=str(payload.get("progress")), finished_sample_count=None,
                       total_sample_count=-1, create_time=str(payload.get("create_time")), update_time="n/a")
    elif kind == "ill_typed":
        payload.update(progress=f"{payload.get('progress')} done", sampleCount=-1,
                       sizeMB=f"{payload.get('sizeMB')} MB", startTime=1717243200, finishTime=None)
    return payload
