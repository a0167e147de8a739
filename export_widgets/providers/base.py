"""The provider contract: what names a task, and what every cloud's client implements.

The monitor, the magic, the CLI and the views only speak this contract; everything a provider knows about its
own cloud (labels, env var names, error-code tables, id rules, request signing) lives in that provider's module.
Adding a provider is one module with a client class plus one line in :mod:`export_widgets.providers`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..errors import ExportWidgetsError
    from ..models import ExportTask

__all__ = [
    "ClientSettings",
    "CreatesExports",
    "EnvNames",
    "ErrorCodes",
    "ExportRequest",
    "FetchesMany",
    "GENERIC_CODES",
    "ListPage",
    "ListsTasks",
    "ProviderClient",
    "TaskRef",
    "TaskSource",
]


@dataclass(frozen=True)
class TaskRef:
    """One export task, named the same way everywhere (monitor, magic, CLI, store).

    ``dataset_id`` is set only for providers whose tasks belong to a dataset (ModelArts).
    """

    provider: str
    task_id: str
    dataset_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.dataset_id}/" if self.dataset_id else ""
        return f"{self.provider}:{where}{self.task_id}"


@dataclass(frozen=True)
class EnvNames:
    """The environment variables a provider reads (the vendor SDK's own names wherever one exists)."""

    access_key: str
    secret_key: str
    security_token: str | None = None
    project_id: str | None = None
    endpoint: str | None = None

    def all(self) -> tuple[str, ...]:
        """Every name that is set, in declaration order."""
        return tuple(name for name in (self.access_key, self.secret_key, self.security_token, self.project_id,
                                       self.endpoint) if name)


@dataclass(frozen=True)
class ErrorCodes:
    """A provider's vendor error codes, by what they mean for a watch (read by :func:`errors.classify_error`)."""

    auth: frozenset[str] = frozenset()
    not_found: frozenset[str] = frozenset()
    rate_limited: frozenset[str] = frozenset()
    #: Server-side failures: worth retrying whatever HTTP status they arrive with.
    server: frozenset[str] = frozenset()

    def __or__(self, other: ErrorCodes) -> ErrorCodes:
        return ErrorCodes(auth=self.auth | other.auth, not_found=self.not_found | other.not_found,
                          rate_limited=self.rate_limited | other.rate_limited, server=self.server | other.server)


#: Codes any cloud gateway may answer with (AWS-style names used by Baidu, Huawei and most proxies).
GENERIC_CODES = ErrorCodes(
    auth=frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestExpired"}),
    not_found=frozenset({"NotFound", "ResourceNotFound"}),
    rate_limited=frozenset({"TooManyRequests", "Throttling"}),
    server=frozenset({"InternalError", "ServiceUnavailable"}),
)


@dataclass(frozen=True)
class ClientSettings:
    """What a caller of :func:`~export_widgets.providers.make_client` knows; ``None`` means "not given".

    Each provider takes the fields it understands and falls back to its environment variables for the rest.
    """

    endpoint: str | None = None
    region: str | None = None
    project_id: str | None = None
    timezone: str | None = None
    request_timeout: float | None = None
    environ: Mapping[str, str] | None = field(default=None, repr=False)


@runtime_checkable
class TaskSource(Protocol):
    """The part of a client a monitor needs: who it is, and one fetch."""

    #: Registry name, e.g. ``"modelarts"``.
    name: ClassVar[str]
    #: How people write it, e.g. ``"ModelArts"``.
    label: ClassVar[str]
    #: Whether a task is addressed within a dataset (then :attr:`TaskRef.dataset_id` is required).
    needs_dataset: ClassVar[bool]

    def fetch(self, ref: TaskRef) -> ExportTask:
        """The task's current status."""
        ...


@runtime_checkable
class ProviderClient(TaskSource, Protocol):
    """What every provider client implements (ModelArts and Qianfan do; tests register a fake one)."""

    #: The environment variables it reads.
    env: ClassVar[EnvNames]
    #: The :class:`ClientSettings` fields it reads (the CLI rejects flags a provider would ignore).
    settings_used: ClassVar[frozenset[str]]
    #: The base URL requests go to.
    base_url: str

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> ProviderClient:
        """Build a client from explicit settings, then the environment; ConfigError says what is missing."""
        ...

    @classmethod
    def claims_task_id(cls, task_id: str) -> bool:
        """Whether ``task_id`` can only be one of this provider's (used to infer ``--provider``)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ListsTasks(Protocol):
    """Optional operation: list a dataset's export tasks."""

    def list_export_tasks(self, dataset_id: str, export_type: int | None = None) -> list[ExportTask]:
        """Every export task of ``dataset_id``."""
        ...


@dataclass(frozen=True)
class ExportRequest:
    """A validated create request, not yet sent: the vendor's JSON body and where it goes.

    Built by a provider's ``export_request(...)`` (which raises one-line ConfigErrors for bad input), sent by
    its ``submit_export(request)``. Two requests with the same :attr:`key` would start the same export.
    """

    provider: str
    body: Mapping[str, Any]
    dataset_id: str | None = None
    #: A short human description, e.g. ``"version ds-1 to bos:/b/dir/"``.
    summary: str = ""

    @property
    def key(self) -> str:
        """The request's identity: provider, dataset and the body with sorted keys."""
        return json.dumps([self.provider, self.dataset_id, self.body], sort_keys=True, default=str)


@runtime_checkable
class CreatesExports(Protocol):
    """Optional operation: start an export task (both vendors have one; neither can cancel it).

    Each provider's keyword arguments mirror its vendor's fields, so the signatures differ.
    """

    @staticmethod
    def create_arguments(options: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``export_request`` arguments from the magic's / CLI's option names (``dataset``, ``path``,
        ``version``, ``bos``, ...); a one-line ConfigError for a missing option or one of another provider."""
        ...

    def export_request(self, *args: Any, **kwargs: Any) -> ExportRequest:
        """Validate the fields (no request is sent); a one-line ConfigError names the bad one."""
        ...

    def submit_export(self, request: ExportRequest) -> TaskRef:
        """Send a validated create request; the new task's reference."""
        ...

    def create_export_task(self, *args: Any, **kwargs: Any) -> TaskRef:
        """``submit_export(export_request(...))``."""
        ...


@dataclass(frozen=True)
class ListPage:
    """One page of a dataset's export-task list: the tasks on it and the dataset's total at that moment."""

    page: int
    tasks: tuple[ExportTask, ...]
    #: How many tasks the dataset has in all (None when the server did not say).
    total_count: int | None


@runtime_checkable
class FetchesMany(Protocol):
    """Optional operation: answer many tasks of one dataset with few requests (list pages).

    A poller groups due tasks per (client, dataset) and uses :meth:`list_page` and :meth:`fetch` by a cost
    estimate; :meth:`fetch_many` is the same idea as one call. Providers without a list operation (Qianfan's v2
    API has none) simply do not implement this and keep one request per task.
    """

    #: Tasks per page (the most the list operation allows, so pages are as few as possible).
    page_size: ClassVar[int]

    def list_page(self, dataset_id: str, page: int) -> ListPage:
        """Page ``page`` (0 = first) of ``dataset_id``'s export tasks, in the server's order."""
        ...

    def fetch(self, ref: TaskRef) -> ExportTask:
        """One task's status (the fallback for tasks a page did not show)."""
        ...

    def fetch_many(self, refs: Iterable[TaskRef]) -> dict[TaskRef, ExportTask | ExportWidgetsError]:
        """The status of every ref, each answered by a list page or its own request; errors per ref."""
        ...
