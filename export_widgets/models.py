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

from .redact import redact_url

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

    @property
    def is_terminal(self) -> bool:
        """True for states a task never leaves (SUCCEEDED, FAILED, STOPPED)."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.STOPPED})


@dataclass(frozen=True)
class SearchLabel:
    """One label criterion of a ModelArts search condition (``SearchLabel``)."""

    name: str | None = None
    type: int | None = None
    op: str | None = None
    property: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchLabels:
    """The ``label_list`` of a search condition: labels joined by ``op`` (``OR``/``AND``)."""

    labels: tuple[SearchLabel, ...] = ()
    op: str | None = None


@dataclass(frozen=True)
class SearchProp:
    """Sample-attribute criteria (``metadata``): ``props`` joined by ``op``."""

    op: str | None = None
    props: Mapping[str, list[str]] = field(default_factory=dict)


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

    @property
    def is_terminal(self) -> bool:
        """True once the task reached SUCCEEDED, FAILED or STOPPED."""
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
