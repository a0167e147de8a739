"""The provider registry: one module per cloud, one line here each, and one factory that builds clients.

``REGISTRY`` maps a provider name to its client class (see :class:`~.base.ProviderClient`). The magic, the CLI
and the demo build clients only through :func:`make_client`, so a third provider needs no edit anywhere else.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import (
    ClientSettings,
    CreatesExports,
    EnvNames,
    ErrorCodes,
    ExportRequest,
    ListsTasks,
    ProviderClient,
    TaskRef,
    TaskSource,
)
from .modelarts import ModelArtsClient
from .qianfan import QianfanClient

__all__ = [
    "REGISTRY",
    "ClientSettings",
    "CreatesExports",
    "EnvNames",
    "ErrorCodes",
    "ExportRequest",
    "ListsTasks",
    "ModelArtsClient",
    "ProviderClient",
    "QianfanClient",
    "TaskRef",
    "TaskSource",
    "as_task_source",
    "get_provider",
    "infer_provider",
    "make_client",
    "provider_label",
    "provider_names",
    "register",
]

REGISTRY: dict[str, type[ProviderClient]] = {
    ModelArtsClient.name: ModelArtsClient,
    QianfanClient.name: QianfanClient,
}


def register(client_class: type[ProviderClient]) -> type[ProviderClient]:
    """Add (or replace) a provider; usable as a class decorator. Returns the class."""
    if not isinstance(getattr(client_class, "name", None), str) or not client_class.name:
        raise ConfigError(f"{client_class.__name__} has no provider name: set the class attribute name = '...'")
    REGISTRY[client_class.name] = client_class
    return client_class


def provider_names() -> tuple[str, ...]:
    """The registered provider names, in registration order."""
    return tuple(REGISTRY)


def get_provider(name: str) -> type[ProviderClient]:
    """The client class registered as ``name``; a one-line ConfigError for an unknown name."""
    key = name.strip().lower() if isinstance(name, str) else ""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}: use one of {', '.join(REGISTRY)}") from None


def provider_label(name: str) -> str:
    """How people write a provider's name (``ModelArts``); an unknown name as given."""
    client_class = REGISTRY.get(name)
    return str(client_class.label) if client_class is not None else name


def infer_provider(task_id: str, *, has_dataset: bool = False) -> str | None:
    """The provider a task id can only belong to, else the only dataset-scoped one when a dataset was given."""
    claimed = [name for name, cls in REGISTRY.items() if cls.claims_task_id(task_id)]
    if len(claimed) == 1:
        return claimed[0]
    if has_dataset:
        scoped = [name for name, cls in REGISTRY.items() if cls.needs_dataset]
        if len(scoped) == 1:
            return scoped[0]
    return None


class _DuckTypedClient:
    """Adapts a client written against earlier versions (``provider`` + ``get_export_task``) to the contract."""

    def __init__(self, client: Any, provider: str) -> None:
        self.client = client
        self.name = provider
        self.label = provider_label(provider)
        registered = REGISTRY.get(provider)
        self.needs_dataset = bool(getattr(registered, "needs_dataset", False))

    def fetch(self, ref: TaskRef) -> Any:
        if ref.dataset_id is not None:
            return self.client.get_export_task(ref.dataset_id, ref.task_id)
        return self.client.get_export_task(ref.task_id)

    def __repr__(self) -> str:
        return repr(self.client)


def as_task_source(client: object) -> TaskSource:
    """``client`` as something a monitor can poll: a provider client as is, or an object with ``provider`` and
    ``get_export_task`` (the duck type of earlier versions) adapted; a one-line ConfigError for anything else."""
    if isinstance(client, TaskSource):
        return client
    provider = getattr(client, "provider", None)
    if isinstance(provider, str) and provider and callable(getattr(client, "get_export_task", None)):
        return _DuckTypedClient(client, provider)  # type: ignore[return-value]  # ClassVars set per instance
    raise ConfigError(f"expected a provider client (ModelArtsClient, QianfanClient, ...) as client, got "
                      f"{type(client).__name__} {client!r:.60}")


def make_client(provider: str, settings: ClientSettings | None = None, **fields: Any) -> ProviderClient:
    """Build the client of ``provider`` from ``settings`` (or keyword fields of :class:`ClientSettings`),
    then the provider's environment variables."""
    if settings is None:
        settings = ClientSettings(**fields)
    client: ProviderClient = get_provider(provider).from_settings(settings)
    return client
