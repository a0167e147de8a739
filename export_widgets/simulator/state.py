"""Task state as a pure function of (spec, now), rendered in each vendor's JSON shape.

Progress is linear in time while running, so a test can compute exactly what any instant shows. The
output follows the documented examples field for field (``../shared/api-spec.md`` §1.3 and §2.2).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from .bos import object_location
from .exportfile import MIB
from .scenario import TaskSpec

__all__ = ["FAILED", "PENDING", "Phase", "RUNNING", "SHANGHAI", "STOPPED", "SUCCEEDED", "modelarts_status", "phase_at",
           "qianfan_result", "qianfan_size_mb", "signed_download_url"]

#: Qianfan console times are Beijing time. China has had no DST since 1991, so a fixed offset is exact
#: and needs no tz database.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED = "pending", "running", "succeeded", "failed", "stopped"

_MODELARTS_STATUS = {PENDING: "INIT", RUNNING: "RUNNING", SUCCEEDED: "SUCCESSED", FAILED: "FAILED",
                     STOPPED: "STOPPED"}
_QIANFAN_STATUS = {PENDING: "Exporting", RUNNING: "Exporting", SUCCEEDED: "ExportFinished", FAILED: "ExportFailed"}

_DEFAULT_EXPORT_PARAMS = {  # the documented example's export_params
    "sample_state": "", "export_dest": "DIR", "clear_hard_property": True, "clear_difficult": False,
    "train_sample_ratio": 1.0, "ratio_sample_usage": False,
}


@dataclass(frozen=True)
class Phase:
    """Where a task is at one instant. Times are epoch seconds."""

    state: str
    progress: float
    updated_at: float
    finished_at: float | None

    @property
    def exists(self) -> bool:
        """False before the task's creation instant."""
        return self.state != "absent"


def phase_at(spec: TaskSpec, now: float) -> Phase:
    """The task's phase at ``now``; ``spec.created_at`` must be set (the simulator fills it in)."""
    created = spec.created_at if spec.created_at is not None else now
    elapsed = now - created
    if elapsed < 0:
        return Phase("absent", 0.0, created, None)
    if elapsed < spec.start_delay:
        return Phase(PENDING, 0.0, created, None)
    end_percent = float({"succeed": 100.0, "fail": spec.fail_at, "stall": spec.stall_at,
                         "stop": spec.stop_at}[spec.outcome])  # a float even when the scenario says 60
    end_time = created + spec.start_delay + spec.duration * end_percent / 100.0
    if now < end_time:
        progress = 100.0 * (elapsed - spec.start_delay) / spec.duration
        return Phase(RUNNING, min(progress, end_percent), now, None)
    state = {"succeed": SUCCEEDED, "fail": FAILED, "stall": RUNNING, "stop": STOPPED}[spec.outcome]
    return Phase(state, end_percent, end_time, None if state == RUNNING else end_time)


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _count(spec: TaskSpec, progress: float) -> int:
    return int(round(progress / 100.0 * spec.total_samples))


def modelarts_status(spec: TaskSpec, now: float) -> dict[str, Any]:
    """ModelArts ``ExportTaskStatus`` JSON for ``spec`` at ``now`` (field order as in the API example)."""
    phase = phase_at(spec, now)
    created = spec.created_at if spec.created_at is not None else now
    body: dict[str, Any] = {
        "task_id": spec.task_id,
        "path": spec.path or f"/obs-export-bucket/exports/{spec.task_id}/",
        "export_type": spec.effective_export_type,
        "version_format": spec.version_format,
        "export_format": spec.export_format,
        "export_params": copy.deepcopy(dict(spec.export_params)) if spec.export_params is not None
        else dict(_DEFAULT_EXPORT_PARAMS),
        "status": _MODELARTS_STATUS[phase.state],
        "progress": float(round(phase.progress, 2)),  # documented as Float: always 50.0, never 50
        "create_time": _ms(created),
        "update_time": _ms(phase.updated_at),
    }
    if spec.version_id is not None:  # the documented examples omit it; a versioned export has it
        body["version_id"] = spec.version_id
    if phase.state != PENDING:  # the service omits the counts until the task has started
        body["finished_sample_count"] = _count(spec, phase.progress)
        body["total_sample_count"] = spec.total_samples
    if phase.state == FAILED:
        body["error_code"] = spec.error_code
        body["error_msg"] = spec.error_message
    return body


def _shanghai(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def signed_download_url(spec: TaskSpec, finished_at: float) -> str:
    """A realistic pre-signed BOS URL for the export file (deterministic; the key material is fake).

    Used when no simulator server is running; a running simulator serves its own URL (see :mod:`.bos`).
    """
    bucket, key = object_location(spec.task_id, spec.path)
    digest = hashlib.sha256(f"bos-ak:{spec.task_id}".encode()).hexdigest()
    access_key = digest[:32]
    when = datetime.fromtimestamp(finished_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    prefix = f"bce-auth-v1/{access_key}/{when}/86400"
    sig = hmac.new(digest.encode(), f"{prefix}/host/{key}".encode(), hashlib.sha256).hexdigest()
    return (f"https://{bucket}.bj.bcebos.com/{quote(key)}"
            f"?authorization={quote(f'{prefix}/host/{sig}', safe='')}")


def qianfan_size_mb(spec: TaskSpec) -> float:
    """``sizeMB``: the spec's figure, or the exact ``size_bytes`` in MiB rounded to 2 decimals."""
    return spec.size_mb if spec.size_bytes is None else round(spec.size_bytes / MIB, 2)


def qianfan_result(spec: TaskSpec, now: float, download_url: str | None = None) -> dict[str, Any]:
    """Qianfan DescribeExportTask ``result`` JSON for ``spec`` at ``now``.

    ``download_url`` is what a finished export links to (the running simulator's own pre-signed URL); None
    gives a realistic but unreachable bcebos.com URL.
    """
    phase = phase_at(spec, now)
    created = spec.created_at if spec.created_at is not None else now
    progress: Any
    if phase.state == SUCCEEDED:
        progress = "100%"
    elif phase.state == FAILED:
        progress = 0  # a number, as documented
    else:
        progress = f"{int(phase.progress)}%"
    return {
        "storageType": spec.storage_type,
        "storagePath": spec.path or f"bos:/qianfan-sys-export/dataset-export/{spec.task_id}/export.zip",
        "sizeMB": qianfan_size_mb(spec),
        "sampleCount": spec.total_samples,
        "exportStatus": _QIANFAN_STATUS[phase.state],
        "progress": progress,
        "startTime": _shanghai(created),
        "finishTime": _shanghai(phase.finished_at) if phase.finished_at is not None else "",
        "downloadUrl": (download_url or signed_download_url(spec, phase.finished_at))
        if phase.state == SUCCEEDED and phase.finished_at is not None else "",
    }
