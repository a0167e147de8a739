"""The provider-neutral task model: :class:`TaskState`, :class:`ExportTask` and the ModelArts filter types.

Both providers' answers are normalised into :class:`ExportTask`; the JSON as received stays in ``ExportTask.raw``.
Nothing here does I/O, so the model imports in microseconds and is shared by clients, monitor, frames and widgets.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ._coerce import valid_text
from .redact import redact_text, redact_url

__all__ = [
    "ExportParams",
    "ExportTask",
    "SearchCondition",
    "SearchLabel",
    "SearchLabels",
    "SearchProp",
    "TaskState",
]


class TaskState(str, enum.Enum):
    """Normalised life-cycle state of an export task (a ``str`` so it compares and serialises as text)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"
    #: A stop was requested and the task is winding down (ModelArts ``STOPPING``): not over yet, since it may
    #: still end STOPPED, SUCCEEDED or FAILED. Last, so the positions of the others never change.
    STOPPING = "STOPPING"

    @property
    def is_terminal(self) -> bool:
        """True for states a task never leaves (SUCCEEDED, FAILED, STOPPED)."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.STOPPED})


def _shown(value: Any) -> Any:
    """A string field as it may be shown or exported: valid UTF-8 and with secrets masked (see ``_sanitise``)."""
    if isinstance(value, enum.Enum):
        return value
    if isinstance(value, str):
        return redact_text(valid_text(value))
    if isinstance(value, tuple):
        return tuple(_shown(item) for item in value)
    if isinstance(value, Mapping):
        return {_shown(key): [_shown(item) for item in items] for key, items in value.items()}
    return value


def _sanitise(obj: Any, keep: tuple[str, ...] = ()) -> None:
    """The one boundary for server text: every string field of a model object is made encodable (a lone
    surrogate kills Jupyter's messages and ``to_csv``) and redacted (a signed URL, URL user info or an echoed
    access key can come in any field), whichever parser built it. Fields in ``keep`` are left as given."""
    for name in _field_names(type(obj), keep):
        value = getattr(obj, name)
        if value is None or isinstance(value, enum.Enum):
            continue
        if isinstance(value, (str, tuple)) or (isinstance(value, Mapping) and name != "raw"):
            object.__setattr__(obj, name, _shown(value))


_FIELD_NAMES: dict[tuple[type, tuple[str, ...]], tuple[str, ...]] = {}


def _field_names(cls: type, keep: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of ``cls`` not in ``keep``, computed once per class (``fields()`` is slow per call)."""
    key = (cls, keep)
    if key not in _FIELD_NAMES:
        _FIELD_NAMES[key] = tuple(item.name for item in fields(cls) if item.name not in keep)
    return _FIELD_NAMES[key]


@dataclass(frozen=True)
class SearchLabel:
    """One label criterion of a ModelArts search condition (``SearchLabel``)."""

    name: str | None = None
    type: int | None = None
    op: str | None = None
    property: Mapping[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _sanitise(self)


@dataclass(frozen=True)
class SearchLabels:
    """The ``label_list`` of a search condition: labels joined by ``op`` (``OR``/``AND``)."""

    labels: tuple[SearchLabel, ...] = ()
    op: str | None = None

    def __post_init__(self) -> None:
        _sanitise(self, keep=("labels",))


@dataclass(frozen=True)
class SearchProp:
    """Sample-attribute criteria (``metadata``): ``props`` joined by ``op``."""

    op: str | None = None
    props: Mapping[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _sanitise(self)


@dataclass(frozen=True)
class SearchCondition:
    """One ModelArts export filter. Several conditions in one export are OR-ed."""

    label_list: SearchLabels | None = None
    metadata: SearchProp | None = None
    coefficient: str | None = None
    frame_in_video: int | None = None
    hard: str | None = None
    import_origin: str | None = None
    kvp: str | None = None
    labeler: str | None = None
    parent_sample_id: str | None = None
    sample_dir: str | None = None
    sample_name: str | None = None
    sample_time: str | None = None
    score: str | None = None
    slice_thickness: str | None = None
    study_date: str | None = None
    time_in_video: str | None = None

    def __post_init__(self) -> None:
        _sanitise(self)

    @classmethod
    def scalar_fields(cls) -> tuple[str, ...]:
        """Names of the fields that hold a plain value (everything but ``label_list`` and ``metadata``)."""
        return tuple(f.name for f in fields(cls) if f.name not in ("label_list", "metadata"))


@dataclass(frozen=True)
class ExportParams:
    """ModelArts ``ExportParams``: where the export goes and which samples it takes."""

    sample_state: str | None = None
    export_dest: str | None = None
    export_new_dataset_name: str | None = None
    export_new_dataset_work_path: str | None = None
    export_dataset_version_format: str | None = None
    export_dataset_version_name: str | None = None
    clear_hard_property: bool | None = None
    clear_difficult: bool | None = None
    ratio_sample_usage: bool | None = None
    train_sample_ratio: str | None = None
    samples: tuple[str, ...] = ()
    search_conditions: tuple[SearchCondition, ...] = ()

    def __post_init__(self) -> None:
        _sanitise(self, keep=("search_conditions",))


#: Meaning of ModelArts ``sample_state`` values (from the API reference).
SAMPLE_STATE_MEANINGS: Mapping[str, str] = {
    "": "not set",
    "ALL": "labeled",
    "NONE": "unlabeled",
    "UNCHECK": "pending acceptance",
    "ACCEPTED": "accepted",
    "REJECTED": "rejected",
    "UNREVIEWED": "pending review",
    "REVIEWED": "reviewed",
    "WORKFORCE_SAMPLED": "sampled",
    "WORKFORCE_SAMPLED_UNCHECK": "sampling unchecked",
    "WORKFORCE_SAMPLED_CHECKED": "sampling checked",
    "WORKFORCE_SAMPLED_ACCEPTED": "sampling accepted",
    "WORKFORCE_SAMPLED_REJECTED": "sampling rejected",
    "AUTO_ANNOTATION": "to be confirmed",
}


@dataclass(frozen=True, repr=False)
class ExportTask:
    """One observation of an export task, the same shape for every provider.

    ``progress`` is a percentage (0–100) or None when the service did not say; datetimes are timezone-aware.
    ``raw`` is the JSON object as received (for Qianfan the ``result`` object), kept for anything not normalised.
    ``download_url`` is a bearer URL: ``repr`` and every display in this package show it without its query.
    Every other string field is redacted when the task is built (whatever parser built it), and every string
    field, ``raw`` excepted, holds valid UTF-8 text.
    The ModelArts fields ``version_id``, ``export_type`` (0 labeled, 1 unlabeled, 2 all, 3 conditional search),
    ``export_format`` (1 tree, 2 tile) and ``version_format`` (``Default``, ``CarbonData``, ``CSV``) are None for
    Qianfan.
    """

    provider: str
    task_id: str
    state: TaskState
    raw_status: str = ""
    progress: float | None = None
    finished_samples: int | None = None
    total_samples: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    destination: str | None = None
    size_mb: float | None = None
    download_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    export_params: ExportParams | None = None
    dataset_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    version_id: str | None = None
    export_type: int | None = None
    export_format: int | None = None
    version_format: str | None = None

    def __post_init__(self) -> None:
        # download_url is kept whole (the user may fetch it); displays show it through redact_url.
        _sanitise(self, keep=("download_url",))
        if self.download_url is not None:
            object.__setattr__(self, "download_url", valid_text(self.download_url))

    @property
    def is_terminal(self) -> bool:
        """True once the task reached SUCCEEDED, FAILED or STOPPED (STOPPING is not over yet)."""
        return self.state.is_terminal

    @property
    def search_conditions(self) -> tuple[SearchCondition, ...]:
        """The export's filters (ModelArts only; empty otherwise)."""
        return self.export_params.search_conditions if self.export_params else ()

    def __repr__(self) -> str:
        parts = [f"provider={self.provider!r}", f"task_id={self.task_id!r}", f"state={self.state.value}"]
        if self.raw_status and self.raw_status != self.state.value:
            parts.append(f"raw_status={self.raw_status!r}")
        for name in ("progress", "finished_samples", "total_samples", "size_mb", "destination",
                     "error_code", "error_message"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        if self.download_url:
            parts.append(f"download_url={redact_url(self.download_url)!r}")
        return f"ExportTask({', '.join(parts)})"
