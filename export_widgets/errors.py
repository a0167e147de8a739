"""The exception tree of ``export_widgets``.

Every error the package raises on purpose is an :class:`ExportWidgetsError`::

    ExportWidgetsError
    ├── ConfigError(ExportWidgetsError, ValueError)   missing/invalid credentials, region, project, arguments
    ├── TransportError                                timeout, connection refused/reset; keeps ``__cause__``
    ├── APIError                                      the service answered with an error
    │   ├── AuthenticationError                       401/403, AccessDenied, APIGW.0301, signature mismatch
    │   ├── TaskNotFoundError                         ModelArts.4359 (HTTP 400), 404
    │   └── RateLimitedError                          429, APIG.0308, ModelArts.4395, QPSLimitReached (.retry_after)
    └── ResponseFormatError(APIError)                 a 2xx answer whose body cannot be understood

Messages read in one line: provider, operation, HTTP status, code, message, request id.
They never contain credentials or signed URLs (callers pass text through :func:`redact.redact_text`).
"""

from __future__ import annotations

from .models import provider_label

__all__ = [
    "APIError",
    "AuthenticationError",
    "ConfigError",
    "ExportWidgetsError",
    "RateLimitedError",
    "ResponseFormatError",
    "TaskNotFoundError",
    "TransportError",
]



class ExportWidgetsError(Exception):
    """Base class of every error raised by ``export_widgets``."""

    #: Whether retrying the same request later may succeed (used by the monitor's backoff).
    transient: bool = False


class ConfigError(ExportWidgetsError, ValueError):
    """Missing or invalid configuration; the message says which argument or env var to set."""


class TransportError(ExportWidgetsError):
    """The request did not get an HTTP answer (timeout, connection refused or reset)."""

    transient = True

    def __init__(self, message: str, *, provider: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation


class APIError(ExportWidgetsError):
    """The service answered with an error.

    Attributes
    ----------
    provider : str
        ``"modelarts"`` or ``"qianfan"``.
    operation : str
        The vendor operation name, e.g. ``"GetExportTaskStatusOfDataset"``.
    http_status : int or None
        The HTTP status code (200 for Qianfan's error-inside-200 answers).
    code, message : str
        The vendor's error code and message (``error_code``/``error_msg`` or ``code``/``message``).
    request_id : str
        The vendor's request id, for support tickets.
    transient : bool, optional
        Override of the default (5xx = transient), for server-side codes sent with another status.
    """

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
    ) -> None:
        self._transient = transient
        self.provider = provider
        self.operation = operation
        self.http_status = http_status
        self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(self._one_line())

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """5xx and 408 answers (and server-side codes, whatever the status) are worth retrying; others are not."""
        if self._transient is not None:
            return self._transient
        return self.http_status is not None and (self.http_status >= 500 or self.http_status == 408)

    def _one_line(self) -> str:
        name = provider_label(self.provider)
        where = f"{name} {self.operation}".strip()
        status = f"HTTP {self.http_status}" if self.http_status is not None else "no HTTP status"
        head = f"{where} failed ({status}"
        head += f", {self.code})" if self.code else ")"
        text = f"{head}: {self.message}" if self.message else head
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return " ".join(text.split())  # one line, whatever the server sent


class AuthenticationError(APIError):
    """Credentials were rejected (bad AK/SK or token, expired signature, no permission)."""


class TaskNotFoundError(APIError):
    """The export task (or its dataset) does not exist."""


class RateLimitedError(APIError):
    """The service throttled the request. ``retry_after`` is the server's hint in seconds, if any."""

    transient = True  # type: ignore[assignment]

    def __init__(self, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)  # type: ignore[arg-type]


class ResponseFormatError(APIError):
    """A successful HTTP answer whose body is not the JSON the API documents."""
