"""Create requests: validate the body as each vendor does, and turn an accepted one into a :class:`TaskSpec`.

ModelArts ``POST /v2/{project_id}/datasets/{dataset_id}/export-tasks`` (api-spec §1.2, §5.1). Every body field is
optional in the docs; the simulator rejects what the service cannot run:

* not a JSON object, or a field of the wrong JSON type -> 400 ``ModelArts.0104`` (parameter error);
* an enum value outside the documented set (``export_type``, ``export_format``, ``version_format``,
  ``annotation_format``, ``source_type_header``, ``export_params.export_dest`` / ``sample_state``), or a
  ``NEW_DATASET`` export without its name and work path -> 400 ``ModelArts.4384`` (invalid export parameter);
* no ``path``, or one that is not an OBS directory ``/bucket/dir/`` (``obs://...`` included: the API takes the
  bucket-first form) -> 400 ``ModelArts.4358`` (invalid export path);
* more running exports of the dataset than :attr:`CreatePolicy.running_limit` -> 400 ``ModelArts.4409``.

Qianfan ``POST /v2/dataset?Action=CreateExportTask`` (api-spec §2.3, §5.3): ``versionId`` (``ds-...``) and
``storageType`` (``BOS`` | ``sysStorage``) are required; ``storagePath`` is required for ``BOS`` and must be
``bos:/bucket/...``, and must be empty for ``sysStorage``. Violations -> HTTP 400 ``InvalidParameter`` (the
simulator's Describe uses the same code). Unknown fields are ignored, as BCE documents. Too many running
exports -> ``ExportTaskLimitExceeded`` **inside HTTP 200** (an assumption: Baidu documents no code; §5.3 warns
that create errors can arrive as HTTP 200 with ``{code, message}``, so one of them does here).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .scenario import EXPORT_FORMATS, EXPORT_TYPES, VERSION_FORMATS, CreatePolicy, TaskSpec

__all__ = ["Rejection", "modelarts_create_spec", "new_task_id", "qianfan_create_spec"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_QIANFAN_VERSION = re.compile(r"ds-[A-Za-z0-9]{1,64}")
SAMPLE_STATES = ("", "ALL", "NONE", "UNCHECK", "ACCEPTED", "REJECTED", "UNREVIEWED", "REVIEWED", "WORKFORCE_SAMPLED",
                 "WORKFORCE_SAMPLED_UNCHECK", "WORKFORCE_SAMPLED_CHECKED", "WORKFORCE_SAMPLED_ACCEPTED",
                 "WORKFORCE_SAMPLED_REJECTED", "AUTO_ANNOTATION")
_DEFAULT_EXPORT_PARAMS: dict[str, Any] = {"sample_state": "", "export_dest": "DIR", "clear_hard_property": True,
                                          "clear_difficult": False, "train_sample_ratio": 1.0,
                                          "ratio_sample_usage": False}


@dataclass(frozen=True)
class Rejection:
    """A create request the vendor would refuse: HTTP status, vendor code and message."""

    status: int
    code: str
    message: str


def new_task_id(provider: str, number: int, salt: str) -> str:
    """A deterministic id in the vendor's style: 19 letters/digits (ModelArts) or ``task-`` + 10 hex (Qianfan)."""
    digest = hashlib.sha256(f"{provider}:{salt}:{number}".encode()).digest()
    if provider == "qianfan":
        return "task-" + digest.hex()[:10]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    value = int.from_bytes(digest, "big")
    chars = []
    for _ in range(19):
        value, index = divmod(value, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


# -- ModelArts -------------------------------------------------------------------------------------------------

def _param_error(message: str) -> Rejection:
    return Rejection(400, "ModelArts.0104", f"Invalid parameter: {message}")


def _export_error(message: str) -> Rejection:
    return Rejection(400, "ModelArts.4384", f"Invalid export parameter: {message}")


def _obs_dir_problem(path: Any, name: str) -> Rejection | None:
    if not isinstance(path, str) or not path:
        return Rejection(400, "ModelArts.4358", f"Invalid export path: {name} is required (an OBS directory such "
                                                "as /bucket/dir/).")
    bucket = path[1:].split("/", 1)[0] if path.startswith("/") else ""
    if not _BUCKET.fullmatch(bucket):
        return Rejection(400, "ModelArts.4358", f"Invalid export path: {name} {path!r} must be /bucket/dir/ with "
                                                "a valid OBS bucket name.")
    return None


_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "path": (str, "a string"), "annotation_format": (str, "a string"), "dataset_id": (str, "a string"),
    "dataset_type": (int, "an integer"), "export_format": (int, "an integer"), "export_params": (dict, "an object"),
    "export_type": (int, "an integer"), "sample_state": (str, "a string"), "source_type_header": (str, "a string"),
    "status": (int, "an integer"), "task_id": (str, "a string"), "version_format": (str, "a string"),
    "version_id": (str, "a string"), "with_column_header": (bool, "a boolean"),
}
_PARAM_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "clear_hard_property": (bool, "a boolean"), "clear_difficult": (bool, "a boolean"),
    "export_dataset_version_format": (str, "a string"), "export_dataset_version_name": (str, "a string"),
    "export_dest": (str, "a string"), "export_new_dataset_name": (str, "a string"),
    "export_new_dataset_work_path": (str, "a string"), "ratio_sample_usage": (bool, "a boolean"),
    "sample_state": (str, "a string"), "samples": (list, "an array"), "search_conditions": (list, "an array"),
    "train_sample_ratio": ((str, int, float), "a string or a number"),
}
_ENUMS: dict[str, tuple[Any, ...]] = {
    "export_type": EXPORT_TYPES, "export_format": EXPORT_FORMATS, "version_format": VERSION_FORMATS,
    "annotation_format": ("VOC", "COCO"), "source_type_header": ("obs://", "s3://"), "sample_state": SAMPLE_STATES,
}


def _type_problem(data: Mapping[str, Any], types: Mapping[str, tuple[type | tuple[type, ...], str]],
                  where: str) -> Rejection | None:
    for name, (kind, words) in types.items():
        value = data.get(name)
        if value is None:
            continue
        accepts_bool = kind is bool or (isinstance(kind, tuple) and bool in kind)
        if (isinstance(value, bool) and not accepts_bool) or not isinstance(value, kind):  # JSON true is no int
            return _param_error(f"{where}{name} must be {words}, got {value!r}.")
    return None


def modelarts_create_spec(body: Any, dataset_id: str, task_id: str,
                          policy: CreatePolicy) -> TaskSpec | Rejection:
    """Validate a ModelArts create body; the new task's spec, or the vendor's rejection."""
    if not isinstance(body, dict):
        return _param_error("the request body must be a JSON object.")
    problem = _type_problem(body, _TYPES, "")
    params = body.get("export_params") or {}
    problem = problem or _type_problem(params, _PARAM_TYPES, "export_params.")
    if problem:
        return problem
    checks = [(name, body.get(name), allowed) for name, allowed in _ENUMS.items()]
    checks.append(("export_params.sample_state", params.get("sample_state"), SAMPLE_STATES))
    for name, value, allowed in checks:
        if value is not None and value not in allowed:
            return _export_error(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    dest = params.get("export_dest", "DIR")
    if dest not in ("DIR", "NEW_DATASET"):
        return _export_error(f"export_params.export_dest must be 'DIR' or 'NEW_DATASET', got {dest!r}.")
    problem = _obs_dir_problem(body.get("path"), "path")
    if problem is None and dest == "NEW_DATASET":
        if not params.get("export_new_dataset_name"):
            return _export_error("export_params.export_new_dataset_name is required when export_dest is "
                                 "NEW_DATASET.")
        problem = _obs_dir_problem(params.get("export_new_dataset_work_path"),
                                   "export_params.export_new_dataset_work_path")
    if problem:
        return problem
    ratio = params.get("train_sample_ratio")
    if ratio is not None:
        try:
            ok = 0.0 <= float(ratio) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            return _export_error(f"export_params.train_sample_ratio must be between 0 and 1, got {ratio!r}.")
    export_params = {**_DEFAULT_EXPORT_PARAMS, **params}
    if "sample_state" not in params and body.get("sample_state") is not None:
        export_params["sample_state"] = body["sample_state"]
    return policy.spec(provider="modelarts", task_id=task_id, dataset_id=dataset_id, path=body["path"],
                       export_params=export_params, export_type=body.get("export_type"),
                       export_format=body.get("export_format") or 2,
                       version_format=body.get("version_format") or "Default", version_id=body.get("version_id"))


# -- Qianfan ---------------------------------------------------------------------------------------------------

def _qianfan_invalid(message: str) -> Rejection:
    return Rejection(400, "InvalidParameter", message)


def qianfan_create_spec(body: Any, task_id: str, policy: CreatePolicy) -> TaskSpec | Rejection:
    """Validate a Qianfan CreateExportTask body; the new task's spec, or the vendor's rejection."""
    if not isinstance(body, dict):
        return Rejection(400, "MalformedJSON", "The JSON you provided was not well-formed.")
    version = body.get("versionId")
    if not isinstance(version, str) or not version:
        return _qianfan_invalid("versionId is required")
    if not _QIANFAN_VERSION.fullmatch(version):
        return _qianfan_invalid(f"versionId {version!r} is invalid: dataset version ids look like ds-xxxxxxxx")
    storage = body.get("storageType")
    if storage not in ("BOS", "sysStorage"):
        return _qianfan_invalid(f"storageType must be BOS or sysStorage, got {storage!r}")
    path = body.get("storagePath")
    if path is not None and not isinstance(path, str):
        return _qianfan_invalid(f"storagePath must be a string, got {path!r}")
    if storage == "sysStorage":
        if path:
            return _qianfan_invalid("storagePath must be empty when storageType is sysStorage")
        return policy.spec(provider="qianfan", task_id=task_id, storage_type="sysStorage", version_id=version)
    bucket, _, directory = (path or "").removeprefix("bos:/").partition("/")
    if not path or not path.startswith("bos:/") or not _BUCKET.fullmatch(bucket):
        return _qianfan_invalid(f"storagePath {path!r} must be bos:/bucket/dir/ when storageType is BOS")
    directory = directory.strip("/")
    key = f"{directory}/{version}-{task_id}.zip" if directory else f"{version}-{task_id}.zip"
    return policy.spec(provider="qianfan", task_id=task_id, storage_type="BOS", version_id=version,
                       path=f"bos:/{bucket}/{key}")
