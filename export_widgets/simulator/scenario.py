"""Declarative scenarios: what each simulated export task does over time.

A :class:`TaskSpec` says, for example, "ModelArts task X: wait 5 s in INIT, run 30 s, fail at 60 %"; the
vendor JSON at any instant is then a pure function of (spec, clock) -- see :mod:`.state`. Specs and
:class:`Scenario` files are plain data (dicts / JSON), so notebooks and tests can write them inline.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import Fault

__all__ = ["CreatePolicy", "DEFAULT_DATASET_ID", "DEFAULT_DOWNLOAD_TTL", "EXPORT_FORMATS", "EXPORT_TYPES",
           "OUTCOMES", "PROVIDERS", "Scenario", "TaskSpec", "VERSION_FORMATS", "demo_tasks"]

PROVIDERS = ("modelarts", "qianfan")
OUTCOMES = ("succeed", "fail", "stall", "stop")
#: ModelArts enums (api-spec §1.3): export types, directory formats, dataset version formats.
EXPORT_TYPES = (0, 1, 2, 3)
EXPORT_FORMATS = (1, 2)
VERSION_FORMATS = ("Default", "CarbonData", "CSV")
#: Dataset id used when a ModelArts spec names none (the id from the ModelArts API examples).
DEFAULT_DATASET_ID = "gfghHSokody6AJigS5A"

#: How long a Qianfan ``downloadUrl`` stays valid by default (seconds; BOS's default pre-signed URL lifetime).
DEFAULT_DOWNLOAD_TTL = 1800
#: TaskSpec fields a create request decides (so a :class:`CreatePolicy` template may not set them).
_REQUEST_FIELDS = frozenset({"provider", "task_id", "dataset_id", "path", "storage_type", "export_params",
                             "export_type", "export_format", "version_format", "version_id", "created_at"})
_ALIASES = {"storage_path": "path", "storagePath": "path", "exportType": "export_type"}


@dataclass(frozen=True)
class TaskSpec:
    """How one simulated export task behaves.

    Parameters
    ----------
    provider : "modelarts" or "qianfan"
    task_id : str
    dataset_id : str, optional
        ModelArts dataset holding the task (default :data:`DEFAULT_DATASET_ID`); unused for Qianfan.
    duration : float
        Seconds from 0 % to 100 % once running (progress is linear in time).
    start_delay : float
        Seconds spent before running: ModelArts ``INIT``; Qianfan has no pending state and shows
        ``Exporting`` at ``0%``.
    outcome : "succeed", "fail", "stall" or "stop"
        What happens at ``fail_at`` / ``stall_at`` / ``stop_at`` percent (``succeed`` ends at 100 %).
        ``stall`` keeps the task RUNNING forever; ``stop`` (ModelArts only) ends in ``STOPPED``.
    total_samples, size_mb
        Realistic sizes; finished counts are ``round(progress / 100 * total_samples)``.
    error_code, error_message
        ModelArts ``error_code``/``error_msg`` of a failed task.
    export_params : dict, optional
        Raw ModelArts ``export_params`` (``search_conditions``, ``sample_state``, ...).
    export_type : int, optional
        ModelArts export type; default 3 (conditional search) with search conditions, else 0.
    export_format : 1 or 2
        ModelArts directory layout: 1 tree (``cat/1.jpg``), 2 tile (default, as in the API examples).
    version_format : "Default", "CarbonData" or "CSV"
        ModelArts dataset version format (default ``Default``).
    version_id : str, optional
        ModelArts dataset version id; the ``version_id`` field is present only when set.
    path : str, optional
        ModelArts OBS output dir / Qianfan ``storagePath`` (``storage_path`` is accepted as an alias).
    size_bytes : int, optional
        Qianfan: the exact size of the export file the simulator serves; ``sizeMB`` then reports it in MiB
        rounded to 2 decimals. Default: ``size_mb`` MiB give or take a few KB (see :mod:`.exportfile`).
    version_id : str, optional
        Also kept for Qianfan tasks started by ``CreateExportTask`` (their ``versionId``; not in the answer).
    read_lag, read_lag_requests
        Reads lag behind the creation: for ``read_lag`` scenario seconds after ``created_at``, and for the first
        ``read_lag_requests`` status calls, the task answers "not found" and is missing from list pages.
    created_at : float, optional
        Creation instant (epoch seconds); None = the simulator clock when the task is added.
    faults : tuple of Fault
        Faults armed for this task when it is added.
    """

    provider: str
    task_id: str
    dataset_id: str | None = None
    duration: float = 10.0
    start_delay: float = 0.0
    outcome: str = "succeed"
    fail_at: float = 60.0
    stall_at: float = 50.0
    stop_at: float = 50.0
    total_samples: int = 1000
    size_mb: float = 100.0
    error_code: str = "ModelArts.4311"
    error_message: str = "OBS bucket does not exist"
    export_params: Mapping[str, Any] | None = field(default=None, hash=False)
    export_type: int | None = None
    export_format: int = 2
    version_format: str = "Default"
    version_id: str | None = None
    path: str | None = None
    storage_type: str = "sysStorage"
    size_bytes: int | None = None
    read_lag: float = 0.0
    read_lag_requests: int = 0
    created_at: float | None = None
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, got {self.provider!r}")
        if not isinstance(self.task_id, str) or not self.task_id.strip():
            raise ValueError("task_id must be a non-empty string")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.provider == "qianfan" and self.outcome == "stop":
            raise ValueError("Qianfan export tasks cannot be stopped: use outcome 'fail' or 'stall'")
        if not self.duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        if self.start_delay < 0:
            raise ValueError(f"start_delay must be >= 0, got {self.start_delay}")
        for name in ("fail_at", "stall_at", "stop_at"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be a percentage 0..100, got {getattr(self, name)}")
        if self.outcome == "stall" and self.stall_at >= 100:
            raise ValueError("stall_at must be below 100 (a task at 100 % is finished)")
        if self.export_type is not None and self.export_type not in EXPORT_TYPES:
            raise ValueError(f"export_type must be one of {EXPORT_TYPES}, got {self.export_type!r}")
        if self.export_format not in EXPORT_FORMATS:
            raise ValueError(f"export_format must be 1 (tree) or 2 (tile), got {self.export_format!r}")
        if self.version_format not in VERSION_FORMATS:
            raise ValueError(f"version_format must be one of {VERSION_FORMATS}, got {self.version_format!r}")
        if self.version_id is not None and (not isinstance(self.version_id, str) or not self.version_id):
            raise ValueError(f"version_id must be a non-empty string, got {self.version_id!r}")
        if self.total_samples < 0 or self.size_mb < 0 or (self.size_bytes is not None and self.size_bytes < 0):
            raise ValueError("total_samples, size_mb and size_bytes must be >= 0")
        if self.provider == "qianfan" and (self.size_bytes if self.size_bytes is not None
                                           else self.size_mb * 1024 * 1024) > 4000 * 1024 * 1024:
            raise ValueError("the simulator serves Qianfan export files up to 4000 MiB (size_mb / size_bytes)")
        if self.storage_type not in ("BOS", "sysStorage"):
            raise ValueError(f"storage_type must be 'BOS' or 'sysStorage', got {self.storage_type!r}")
        if self.read_lag < 0 or not isinstance(self.read_lag_requests, int) or self.read_lag_requests < 0:
            raise ValueError("read_lag and read_lag_requests must be >= 0")
        if self.provider == "modelarts" and self.dataset_id is None:
            object.__setattr__(self, "dataset_id", DEFAULT_DATASET_ID)
        object.__setattr__(self, "faults", tuple(
            f if isinstance(f, Fault) else Fault.from_dict(f) for f in self.faults))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Build from a JSON-style dict; unknown keys raise ``ValueError`` naming the allowed ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(key, key)
            if name not in known:
                raise ValueError(f"unknown task field {key!r}; allowed: {', '.join(sorted(known))}")
            values[name] = value
        values["faults"] = tuple(Fault.from_dict(f) for f in values.get("faults") or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the non-default fields (round-trips through :meth:`from_dict`)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("provider", "task_id") or value != f.default:
                out[f.name] = [x.to_dict() for x in value] if f.name == "faults" else value
        return out

    def scaled(self, factor: float) -> TaskSpec:
        """The same task with every duration (and fault window) multiplied by ``factor``."""
        if not factor > 0:
            raise ValueError(f"time scale must be > 0, got {factor}")
        return dataclasses.replace(self, duration=self.duration * factor, start_delay=self.start_delay * factor,
                                   read_lag=self.read_lag * factor, faults=tuple(f.scaled(factor) for f in self.faults))

    @property
    def effective_export_type(self) -> int:
        """``export_type``, defaulting to 3 (conditional search) when there are search conditions."""
        if self.export_type is not None:
            return int(self.export_type)
        return 3 if (self.export_params or {}).get("search_conditions") else 0


@dataclass(frozen=True)
class CreatePolicy:
    """What the simulator does with create requests (``Simulator(create=...)`` or a scenario's ``"create"``).

    Parameters
    ----------
    template : dict
        :class:`TaskSpec` fields every created task gets, e.g. ``{"duration": 5, "outcome": "fail"}``
        (default: succeed after 10 s). Fields that come from the request (``path``, ``version_id``, ...) and
        ``provider``/``task_id``/``created_at`` are not allowed here. Qianfan exports cannot be stopped, so a
        template's ``outcome: "stop"`` makes Qianfan creates fail at ``stop_at`` instead.
    running_limit : int, optional
        At most this many exports may be running (pending or running) at once -- per dataset for ModelArts, per
        account for Qianfan; the next create gets the vendor's "too many running tasks" error. None = no limit.
    read_lag : float
        Scenario seconds after a create during which the new task answers "not found" to status calls and is
        missing from list pages (the vendors' read side can lag). 0 = off (default).
    read_lag_requests : int
        Alternatively, the first N status calls for a new task answer "not found" (clock-independent).
    """

    template: Mapping[str, Any] = field(default_factory=dict, hash=False)
    running_limit: int | None = None
    read_lag: float = 0.0
    read_lag_requests: int = 0

    def __post_init__(self) -> None:
        bad = sorted(set(self.template) & _REQUEST_FIELDS)
        if bad:
            raise ValueError(f"create template field(s) {', '.join(bad)} come from the create request; "
                             "leave them out")
        known = {f.name for f in dataclasses.fields(TaskSpec)}
        unknown = sorted(set(self.template) - known)
        if unknown:
            raise ValueError(f"unknown create template field(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(known - _REQUEST_FIELDS))}")
        for provider in ("modelarts", "qianfan"):  # fail now, not at the first create
            self.spec(provider=provider, task_id="template-check")
        if self.running_limit is not None and (not isinstance(self.running_limit, int) or self.running_limit < 1):
            raise ValueError(f"running_limit must be a positive integer or None, got {self.running_limit!r}")
        if self.read_lag < 0 or not isinstance(self.read_lag_requests, int) or self.read_lag_requests < 0:
            raise ValueError("read_lag and read_lag_requests must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | CreatePolicy | None) -> CreatePolicy:
        """Build from a scenario's ``"create"`` object (or pass a policy / None through)."""
        if data is None:
            return cls()
        if isinstance(data, CreatePolicy):
            return data
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown create field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what :meth:`from_dict` reads)."""
        return {"template": dict(self.template), "running_limit": self.running_limit, "read_lag": self.read_lag,
                "read_lag_requests": self.read_lag_requests}

    def scaled(self, factor: float) -> CreatePolicy:
        """Durations (template and read lag) multiplied by ``factor``, as :meth:`TaskSpec.scaled` does."""
        probe = TaskSpec.from_dict({"provider": "modelarts", "task_id": "x", **self.template}).scaled(factor)
        template = dict(self.template)
        for name in ("duration", "start_delay"):
            if name in template:
                template[name] = getattr(probe, name)
        if "faults" in template:
            template["faults"] = [f.to_dict() for f in probe.faults]
        return dataclasses.replace(self, template=template, read_lag=self.read_lag * factor)

    def spec(self, **request_fields: Any) -> TaskSpec:
        """The task a create starts: the template plus what the request said."""
        values = {**self.template, **request_fields}
        if values.get("provider") == "qianfan" and values.get("outcome") == "stop":
            values.update(outcome="fail", fail_at=values.get("stop_at", 50.0))
        values["faults"] = tuple(f if isinstance(f, Fault) else Fault.from_dict(f) for f in values.get("faults") or ())
        values.setdefault("read_lag", self.read_lag)
        values.setdefault("read_lag_requests", self.read_lag_requests)
        return TaskSpec(**values)


@dataclass(frozen=True)
class Scenario:
    """A named set of tasks; ``speed`` > 1 compresses time (a 30 s task at speed 3 takes 10 s).

    JSON file format: ``{"name": ..., "speed": 1, "tasks": [{TaskSpec fields}, ...], "create": {CreatePolicy
    fields}, "download_ttl": 1800}`` or a bare task list. ``create`` says what create requests start;
    ``download_ttl`` is how long (scenario seconds) a Qianfan ``downloadUrl`` stays valid.
    """

    name: str = "custom"
    tasks: tuple[TaskSpec, ...] = ()
    speed: float = 1.0
    description: str = ""
    create: CreatePolicy = field(default_factory=CreatePolicy)
    download_ttl: int = DEFAULT_DOWNLOAD_TTL

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        object.__setattr__(self, "create", CreatePolicy.from_dict(self.create))
        if not isinstance(self.download_ttl, int) or self.download_ttl < 1:
            raise ValueError(f"download_ttl must be a positive number of seconds, got {self.download_ttl!r}")
        object.__setattr__(self, "tasks", tuple(
            t if isinstance(t, TaskSpec) else TaskSpec.from_dict(t) for t in self.tasks))
        ids = [(t.provider, t.task_id) for t in self.tasks]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        if duplicate:
            raise ValueError(f"scenario {self.name!r} lists {duplicate[0]} task {duplicate[1]!r} twice")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | list[Any]) -> Scenario:
        """Build from parsed JSON (an object with ``tasks`` or a bare list of tasks)."""
        if isinstance(data, list):
            data = {"tasks": data}
        unknown = sorted(set(data) - {"name", "tasks", "speed", "description", "create", "download_ttl"})
        if unknown:
            raise ValueError(f"unknown scenario field(s) {', '.join(unknown)}; "
                             "allowed: create, description, download_ttl, name, speed, tasks")
        return cls(name=str(data.get("name", "custom")), tasks=tuple(data.get("tasks") or ()),
                   speed=float(data.get("speed", 1.0)), description=str(data.get("description", "")),
                   create=CreatePolicy.from_dict(data.get("create")),
                   download_ttl=data.get("download_ttl", DEFAULT_DOWNLOAD_TTL))

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """Load a scenario JSON file. Errors name the file and what is wrong with it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read scenario file {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"scenario file {path} is not valid JSON: {exc}") from exc
        try:
            scenario = cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"scenario file {path}: {exc}") from exc
        return scenario if scenario.name != "custom" else dataclasses.replace(scenario, name=path.stem)

    @classmethod
    def demo(cls) -> Scenario:
        """The built-in demo set (see :func:`demo_tasks`)."""
        return cls(name="demo", tasks=tuple(demo_tasks()),
                   description="4 ModelArts + 2 Qianfan export tasks: successes, failures, a slow start")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what :meth:`from_dict` reads)."""
        return {"name": self.name, "description": self.description, "speed": self.speed,
                "tasks": [t.to_dict() for t in self.tasks], "create": self.create.to_dict(),
                "download_ttl": self.download_ttl}

    def scaled_tasks(self) -> list[TaskSpec]:
        """The tasks with time compressed by ``speed``."""
        return [t.scaled(1.0 / self.speed) if self.speed != 1.0 else t for t in self.tasks]

    def scaled_create(self) -> CreatePolicy:
        """The create policy with time compressed by ``speed``."""
        return self.create.scaled(1.0 / self.speed) if self.speed != 1.0 else self.create


# -- the demo set ---------------------------------------------------------------------------------------

_SEARCH_CONDITIONS = [
    {
        "label_list": {
            "op": "OR",
            "labels": [
                {"name": "car", "type": 1, "op": "OR", "property": {"color": ["red", "blue"], "occluded": ["false"]}},
                {"name": "pedestrian", "type": 1, "op": "AND", "property": {"@modelarts:hard": ["true"]}},
            ],
        },
        "metadata": {"op": "AND", "props": {"camera": ["front-left", "front-right"], "weather": ["rain"]}},
        "sample_time": "20240501-20240530",
        "hard": "1",
        "sample_dir": "/drive-logs/2024-05/front/",
    },
    {
        "label_list": {"labels": [{"name": "cyclist", "type": 1, "property": {}}]},
        "metadata": {"op": "OR", "props": {"city": ["Beijing"]}},
        "sample_time": "month",
        "hard": "0",
    },
]


def demo_tasks() -> list[TaskSpec]:
    """Six tasks covering the interesting cases, realistic counts and sizes, done within ~40 s."""
    return [
        TaskSpec(
            provider="modelarts", task_id="rF9NNoB56k5rtYKg2Y7", duration=8, total_samples=4812, size_mb=1236.4,
            path="/drive-exports/hard-cases-may/",
            export_params={
                "sample_state": "ALL", "export_dest": "DIR", "clear_hard_property": False,
                "clear_difficult": False, "train_sample_ratio": 1.0, "ratio_sample_usage": False,
                "search_conditions": _SEARCH_CONDITIONS,
            },
        ),
        TaskSpec(provider="modelarts", task_id="Vb3kQ8mZ1xT7pLw2sEa", duration=30, total_samples=12000,
                 size_mb=3480.0, path="/drive-exports/full-2024q2/"),
        TaskSpec(provider="modelarts", task_id="Hn2cX5yR8uJ4tGv6kDq", duration=15, outcome="fail", fail_at=60,
                 total_samples=3300, path="/missing-bucket/exports/", error_code="ModelArts.4311",
                 error_message="OBS bucket does not exist"),
        TaskSpec(provider="modelarts", task_id="Pq7wE1rT9yU3iO5aS2d", start_delay=6, duration=12,
                 total_samples=2048, path="/drive-exports/unlabeled/", export_type=1,
                 export_params={"sample_state": "NONE", "export_dest": "DIR", "clear_hard_property": True,
                                "clear_difficult": False, "train_sample_ratio": "1.00", "ratio_sample_usage": False}),
        TaskSpec(provider="qianfan", task_id="task-7f3a9c1e2b", duration=10, total_samples=55000, size_mb=842.37,
                 path="bos:/qianfan-exports/ds-1042/v3/export-20240601.zip", storage_type="BOS"),
        TaskSpec(provider="qianfan", task_id="task-c41d09e8a6", duration=12, outcome="fail", fail_at=40,
                 total_samples=9120, size_mb=210.5),
    ]
