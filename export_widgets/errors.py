"""The exception tree of ``export_widgets``, and the one place that classifies a vendor's error answer.

Every error the package raises on purpose is an :class:`ExportWidgetsError`::

    ExportWidgetsError
    ├── ConfigError(ExportWidgetsError, ValueError)   missing/invalid credentials, region, project, arguments
    ├── TransportError                                timeout, connection refused/reset; transient
    └── APIError                                      the service answered with an error
        ├── AuthenticationError                       401/403, AccessDenied, APIGW.0301, signature mismatch
        ├── TaskNotFoundError                         ModelArts.4359 (HTTP 400), 404
        ├── RateLimitedError                          429, APIG.0308, ModelArts.4395, QPSLimitReached
        └── ResponseFormatError                       a 2xx answer whose body cannot be understood

Each error carries plain attributes the monitor reads instead of testing classes: :attr:`~ExportWidgetsError.
transient` (worth retrying later), :attr:`~ExportWidgetsError.outcome` (how the poll is recorded) and, for
answers, ``retry_after``, ``code`` and ``request_id``. :func:`classify_error` maps (provider code tables, HTTP
status, vendor code, headers) to the right class; the code tables live in each provider's module.

Messages read in one line: provider, operation, HTTP status, code, message, request id. They never contain
credentials or signed URLs (messages go through :func:`redact.redact_text`).
"""

from __future__ import annotations

import email.utils
import enum
import time
from collections.abc import Mapping
from datetime import timezone
from typing import TYPE_CHECKING, ClassVar

from .redact import redact_text

if TYPE_CHECKING:
    from .providers.base import ErrorCodes

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigError",
    "ExportWidgetsError",
    "Outcome",
    "RateLimitedError",
    "ResponseFormatError",
    "TaskNotFoundError",
    "TransportError",
    "classify_error",
    "parse_retry_after",
]

#: The longest wait a ``Retry-After`` header can impose (a larger value is capped, not ignored).
MAX_RETRY_AFTER_S = 3600.0


class Outcome(enum.IntEnum):
    """How a poll ended, as stored in a history (``uint8``) and shown (:attr:`label`)."""

    OK = 0
    TRANSPORT = 1
    RATE_LIMITED = 2
    SERVER_ERROR = 3
    BAD_RESPONSE = 4
    AUTH = 5
    NOT_FOUND = 6
    API_ERROR = 7
    CONFIG = 8
    INTERNAL = 9

    @property
    def label(self) -> str:
        """The name shown in frames and stored in CSVs (``"transport_error"``)."""
        return _OUTCOME_LABELS[self]


_OUTCOME_LABELS: Mapping[Outcome, str] = {
    Outcome.OK: "ok", Outcome.TRANSPORT: "transport_error", Outcome.RATE_LIMITED: "rate_limited",
    Outcome.SERVER_ERROR: "server_error", Outcome.BAD_RESPONSE: "bad_response", Outcome.AUTH: "auth_error",
    Outcome.NOT_FOUND: "not_found", Outcome.API_ERROR: "api_error", Outcome.CONFIG: "config_error",
    Outcome.INTERNAL: "internal_error",
}


class ExportWidgetsError(Exception):
    """Base class of every error raised by ``export_widgets``."""

    #: Whether retrying the same request later may succeed (the monitor backs off and goes on).
    transient: bool = False
    #: How a poll that raised this is recorded.
    outcome: Outcome = Outcome.INTERNAL
    #: Seconds the server asked us to wait before the next request, if it said.
    retry_after: float | None = None


class ConfigError(ExportWidgetsError, ValueError):
    """Missing or invalid configuration; the message says which argument or env var to set."""

    outcome = Outcome.CONFIG


class TransportError(ExportWidgetsError):
    """The request did not get an HTTP answer (timeout, connection refused or reset).

    ``connected`` is False when no connection could be made at all (refused, name not resolved, connect timeout):
    before a task's first answer that points at a wrong endpoint rather than a passing fault.
    """

    transient = True
    outcome = Outcome.TRANSPORT

    def __init__(self, message: str, *, provider: str = "", operation: str = "", connected: bool = True) -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.connected = connected


class APIError(ExportWidgetsError):
    """The service answered with an error.

    Attributes
    ----------
    provider : str
        The provider's registry name, e.g. ``"modelarts"``.
    operation : str
        The vendor operation name, e.g. ``"GetExportTaskStatusOfDataset"``.
    http_status : int or None
        The HTTP status code (200 for errors sent inside a 200 answer).
    code, message : str
        The vendor's error code and message.
    request_id : str
        The vendor's request id, for support tickets.
    transient : bool
        Worth retrying: by default 5xx and 408 answers are, others are not (subclasses fix their own).
    retry_after : float or None
        The server's ``Retry-After``, in seconds, whatever the status.
    """

    #: ``None``: decided by the HTTP status; subclasses that know better fix it.
    default_transient: ClassVar[bool | None] = None
    #: The outcome of this class of error; ``None``: server error when transient, else API error.
    kind: ClassVar[Outcome | None] = None

    def __init__(
        self,
        *,
        provider: str,
        operation: str,
        http_status: int | None,
        code: str = "",
        message: str = "",
        request_id: str = "",
        transient: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        if transient is None:
            transient = self.default_transient
        if transient is None:
            transient = http_status is not None and (http_status >= 500 or http_status == 408)
        self.provider = provider
        self.operation = operation
        self.http_status = http_status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.transient = transient
        self.retry_after = retry_after
        self.outcome = self.kind if self.kind is not None else (
            Outcome.SERVER_ERROR if transient else Outcome.API_ERROR)
        super().__init__(self._one_line())

    def _one_line(self) -> str:
        where = f"{_label(self.provider)} {self.operation}".strip()
        status = f"HTTP {self.http_status}" if self.http_status is not None else "no HTTP status"
        head = f"{where} failed ({status}"
        head += f", {self.code})" if self.code else ")"
        text = f"{head}: {self.message}" if self.message else head
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return " ".join(text.split())  # one line, whatever the server sent


class AuthenticationError(APIError):
    """Credentials were rejected (bad AK/SK or token, expired signature, no permission)."""

    default_transient = False
    kind = Outcome.AUTH


class TaskNotFoundError(APIError):
    """The export task (or its dataset) does not exist."""

    default_transient = False
    kind = Outcome.NOT_FOUND


class RateLimitedError(APIError):
    """The service throttled the request. ``retry_after`` is the server's hint in seconds, if any."""

    default_transient = True
    kind = Outcome.RATE_LIMITED


class ResponseFormatError(APIError):
    """A successful HTTP answer whose body is not the JSON the API documents (retried: often a proxy's page)."""

    default_transient = True
    kind = Outcome.BAD_RESPONSE


def _label(provider: str) -> str:
    from .providers import provider_label  # the registry imports this module: look it up when a message is made

    return provider_label(provider)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), capped at
    :data:`MAX_RETRY_AFTER_S`; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as such
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN: "nan" parses as a float
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_S))


def classify_error(
    codes: ErrorCodes,
    *,
    provider: str,
    operation: str,
    http_status: int | None,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> APIError:
    """The most specific :class:`APIError` for a vendor's error answer.

    ``codes`` is the provider's own table (``ModelArtsClient.error_codes``); ``Retry-After`` is read from
    ``headers`` whatever the status (429, 503, 502, 504, or a vendor code inside a 200).
    """
    error_class: type[APIError] = APIError
    transient: bool | None = None
    if http_status == 429 or code in codes.rate_limited:
        error_class = RateLimitedError
    elif http_status in (401, 403) or code in codes.auth:
        error_class = AuthenticationError
    elif http_status == 404 or code in codes.not_found:
        error_class = TaskNotFoundError
    elif code in codes.server:
        transient = True
    return error_class(provider=provider, operation=operation, http_status=http_status, code=redact_text(code),
                       message=redact_text(message), request_id=request_id, transient=transient,
                       retry_after=parse_retry_after((headers or {}).get("Retry-After")))
