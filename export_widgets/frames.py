"""pandas DataFrames of tasks, filters and poll history. Column names are stable, snake_case and documented.

``summary(tasks)`` — one row per task (``SUMMARY_COLUMNS``):
    provider, task_id, dataset_id, state (category), raw_status, progress (float %), finished_samples,
    total_samples (Int64), size_mb, created_at, updated_at, finished_at (datetime64[ns, tz]), destination,
    download_url (query redacted), error_code, error_message.

``dashboard(monitors)`` — ``summary`` plus the monitor's view (``DASHBOARD_EXTRA_COLUMNS``):
    display_state (ordered category of DisplayState values: what the views show),
    display_detail (why: retry reason, vendor reason, error), monitor_status, polls, elapsed_s,
    rate_pct_per_s, rate_samples_per_s, eta_s, stalled, last_poll_error.

``filters(task)`` — the ModelArts export filters, one row per search condition × label (``FILTER_COLUMNS``):
    condition (0-based index; conditions are OR-ed), labels_op, label_name, label_type, label_type_name,
    label_op, label_properties ("key: v1, v2; key2: v3"), metadata_op, metadata_props, then every scalar
    SearchCondition field (sample_time, hard, sample_dir, …), then the export's params (sample_state,
    sample_state_meaning, export_dest, export_new_dataset_name, train_sample_ratio, ratio_sample_usage,
    clear_hard_property). An export without filters gives an empty frame with these columns.

``params(task)`` — the export params as ``field, value, meaning`` rows.

``history(monitor_or_group_or_history)`` — one row per poll (``HISTORY_COLUMNS``):
    provider, task_id, polled_at (datetime64[ns, tz]), latency_ms (float), outcome (category: ok,
    transport_error, rate_limited, server_error, bad_response, auth_error, not_found, api_error, config_error,
    internal_error), error_code (category), error_message, state (category), raw_status (category),
    progress (float), finished_samples, total_samples (Int64), size_mb (float).

Every frame can be saved with ``to_csv``/``to_parquet`` (:func:`to_parquet` explains a missing pyarrow).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .display import DisplayState, describe
from .errors import Outcome
from .history import History
from .models import SAMPLE_STATE_MEANINGS, ExportTask, SearchCondition, TaskState
from .redact import redact_url

__all__ = [
    "DASHBOARD_EXTRA_COLUMNS",
    "FILTER_COLUMNS",
    "HISTORY_COLUMNS",
    "SUMMARY_COLUMNS",
    "dashboard",
    "filters",
    "history",
    "params",
    "summary",
    "to_parquet",
]

SUMMARY_COLUMNS = (
    "provider", "task_id", "dataset_id", "state", "raw_status", "progress", "finished_samples", "total_samples",
    "size_mb", "created_at", "updated_at", "finished_at", "destination", "download_url", "error_code",
    "error_message",
)
DASHBOARD_EXTRA_COLUMNS = (
    "display_state", "display_detail", "monitor_status", "polls", "elapsed_s", "rate_pct_per_s",
    "rate_samples_per_s", "eta_s", "stalled", "last_poll_error",
)
_PARAM_COLUMNS = (
    "sample_state", "sample_state_meaning", "export_dest", "export_new_dataset_name", "train_sample_ratio",
    "ratio_sample_usage", "clear_hard_property",
)
FILTER_COLUMNS = (
    "condition", "labels_op", "label_name", "label_type", "label_type_name", "label_op", "label_properties",
    "metadata_op", "metadata_props", *SearchCondition.scalar_fields(), *_PARAM_COLUMNS,
)
HISTORY_COLUMNS = (
    "provider", "task_id", "polled_at", "latency_ms", "outcome", "error_code", "error_message", "state",
    "raw_status", "progress", "finished_samples", "total_samples", "size_mb",
)

LABEL_TYPE_NAMES = {
    0: "image classification", 1: "object detection", 100: "text classification",
    101: "named entity recognition", 102: "text triplet relationship", 103: "text triplet entity",
    200: "speech classification", 201: "speech content", 202: "speech paragraph labeling",
    600: "video classification",
}
_STATE_DTYPE = pd.CategoricalDtype([s.value for s in TaskState])
_OUTCOME_DTYPE = pd.CategoricalDtype([outcome.label for outcome in Outcome])
_DISPLAY_DTYPE = pd.CategoricalDtype([s.value for s in DisplayState], ordered=True)  # attention order


def _times(values: Iterable[Any], tz: str) -> pd.Series:
    series = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True)
    converted: pd.Series = series.astype("datetime64[ns, UTC]").dt.tz_convert(tz)
    return converted


def _tasks_of(source: Any) -> list[ExportTask]:
    if isinstance(source, ExportTask):
        return [source]
    return [item for item in source if item is not None]


def summary(tasks: Iterable[ExportTask] | ExportTask, tz: str = "UTC") -> pd.DataFrame:
    """One row per task; signed download URLs are shown without their query."""
    rows = [
        {
            "provider": t.provider, "task_id": t.task_id, "dataset_id": t.dataset_id, "state": t.state.value,
            "raw_status": t.raw_status, "progress": t.progress, "finished_samples": t.finished_samples,
            "total_samples": t.total_samples, "size_mb": t.size_mb, "created_at": t.created_at,
            "updated_at": t.updated_at, "finished_at": t.finished_at, "destination": t.destination,
            "download_url": redact_url(t.download_url), "error_code": t.error_code,
            "error_message": t.error_message,
        }
        for t in _tasks_of(tasks)
    ]
    return _typed_summary(pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)), tz)


def _as_text(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Nullable ``string`` dtype, so text columns have one dtype whether empty, all-None or filled."""
    for column in columns:
        frame[column] = frame[column].astype("string")


_SUMMARY_TEXT = ("provider", "task_id", "dataset_id", "raw_status", "destination", "download_url", "error_code",
                 "error_message")


def _typed_summary(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    _as_text(frame, _SUMMARY_TEXT)
    frame["state"] = frame["state"].astype(_STATE_DTYPE)
    frame["progress"] = frame["progress"].astype("float64")
    frame["size_mb"] = frame["size_mb"].astype("float64")
    for column in ("finished_samples", "total_samples"):
        frame[column] = frame[column].astype("Int64")
    for column in ("created_at", "updated_at", "finished_at"):
        frame[column] = _times(frame[column], tz)
    return frame


def dashboard(monitors: Iterable[Any], tz: str = "UTC") -> pd.DataFrame:
    """``summary`` of each monitor's latest task plus its status and derived figures.

    A monitor with no answer yet still gets a row (its id and ``last_poll_error``), so failures are visible.
    """
    rows = []
    for monitor in monitors:
        task = monitor.latest
        base = summary(task, tz).iloc[0].to_dict() if task is not None else {
            "provider": monitor.provider, "task_id": monitor.task_id, "dataset_id": monitor.dataset_id}
        fig = monitor.figures()
        shown = describe(monitor, fig)
        base.update({
            "display_state": shown.state.value, "display_detail": shown.detail() or None,
            "monitor_status": monitor.status, "polls": len(monitor.history), "elapsed_s": fig.elapsed_s,
            "rate_pct_per_s": fig.rate_pct_per_s, "rate_samples_per_s": fig.rate_samples_per_s,
            "eta_s": fig.eta_s, "stalled": fig.stalled,
            "last_poll_error": monitor.last_poll_error,
        })
        rows.append(base)
    frame = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *DASHBOARD_EXTRA_COLUMNS])
    frame = _typed_summary(frame, tz)
    for column in ("elapsed_s", "rate_pct_per_s", "rate_samples_per_s", "eta_s"):
        frame[column] = frame[column].astype("float64")
    frame["polls"] = frame["polls"].astype("int64")
    frame["stalled"] = frame["stalled"].astype("bool")
    frame["display_state"] = frame["display_state"].astype(_DISPLAY_DTYPE)
    _as_text(frame, ("display_detail", "monitor_status", "last_poll_error"))
    return frame


def _join_map(mapping: Any) -> str | None:
    if not mapping:
        return None
    return "; ".join(f"{key}: {', '.join(values)}" for key, values in mapping.items())


def filters(task: ExportTask) -> pd.DataFrame:
    """The export's search conditions flattened: one row per condition × label (see module docstring)."""
    p = task.export_params
    param_values = {
        "sample_state": p.sample_state if p else None,
        "sample_state_meaning": SAMPLE_STATE_MEANINGS.get(p.sample_state or "") if p else None,
        "export_dest": p.export_dest if p else None,
        "export_new_dataset_name": p.export_new_dataset_name if p else None,
        "train_sample_ratio": p.train_sample_ratio if p else None,
        "ratio_sample_usage": p.ratio_sample_usage if p else None,
        "clear_hard_property": p.clear_hard_property if p else None,
    }
    rows = []
    for index, condition in enumerate(task.search_conditions):
        common = {
            "condition": index,
            "labels_op": condition.label_list.op if condition.label_list else None,
            "metadata_op": condition.metadata.op if condition.metadata else None,
            "metadata_props": _join_map(condition.metadata.props) if condition.metadata else None,
            **{name: getattr(condition, name) for name in SearchCondition.scalar_fields()},
            **param_values,
        }
        labels = condition.label_list.labels if condition.label_list else ()
        for label in labels or (None,):
            rows.append({
                **common,
                "label_name": label.name if label else None,
                "label_type": label.type if label else None,
                "label_type_name": LABEL_TYPE_NAMES.get(label.type) if label and label.type is not None else None,
                "label_op": label.op if label else None,
                "label_properties": _join_map(label.property) if label else None,
            })
    frame: pd.DataFrame = pd.DataFrame(rows, columns=list(FILTER_COLUMNS))
    frame["condition"] = frame["condition"].astype("int64")
    numeric = {"condition", "label_type", "frame_in_video", "ratio_sample_usage", "clear_hard_property"}
    for column in ("label_type", "frame_in_video"):
        frame[column] = frame[column].astype("Int64")
    for column in ("ratio_sample_usage", "clear_hard_property"):
        frame[column] = frame[column].astype("boolean")
    _as_text(frame, [c for c in FILTER_COLUMNS if c not in numeric])
    return frame


def params(task: ExportTask) -> pd.DataFrame:
    """The export params as ``field, value, meaning`` rows (empty for tasks without params)."""
    p = task.export_params
    rows = []
    if p is not None:
        for name in ("sample_state", "export_dest", "export_new_dataset_name", "export_new_dataset_work_path",
                     "export_dataset_version_name", "export_dataset_version_format", "train_sample_ratio",
                     "ratio_sample_usage", "clear_hard_property", "clear_difficult"):
            value = getattr(p, name)
            if value is None:
                continue
            meaning = SAMPLE_STATE_MEANINGS.get(value) if name == "sample_state" else None
            rows.append({"field": name, "value": str(value), "meaning": meaning})
        if p.samples:
            rows.append({"field": "samples", "value": f"{len(p.samples)} sample ids", "meaning": None})
        rows.append({"field": "search_conditions", "value": str(len(p.search_conditions)),
                     "meaning": "conditions are OR-ed"})
    frame: pd.DataFrame = pd.DataFrame(rows, columns=["field", "value", "meaning"])
    _as_text(frame, frame.columns)
    return frame


def _histories(source: Any) -> list[History]:
    if isinstance(source, History):
        return [source]
    if hasattr(source, "history") and isinstance(source.history, History):
        return [source.history]
    return [item.history if hasattr(item, "history") else item for item in source]


def _one_history(h: History, tz: str) -> pd.DataFrame:
    cols = h.snapshot()
    n = len(cols)
    state_codes = np.frombuffer(cols.state, dtype=np.uint8).astype(np.int16) if n else np.empty(0, np.int16)
    state_codes[state_codes == 255] = -1
    codes = cols.codes
    statuses = cols.statuses
    finished = np.frombuffer(cols.finished, dtype=np.int64) if n else np.empty(0, np.int64)
    total = np.frombuffer(cols.total, dtype=np.int64) if n else np.empty(0, np.int64)
    messages = pd.Series(pd.NA, index=range(n), dtype="string")
    if cols.messages:
        sparse = cols.messages
        messages.iloc[list(sparse)] = list(sparse.values())
    frame: pd.DataFrame = pd.DataFrame({
        "provider": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), dtype=pd.CategoricalDtype([h.provider])),
        "task_id": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), dtype=pd.CategoricalDtype([h.task_id])),
        # Whole-array conversion: to_datetime on a million floats costs ~0.5 s, a view costs ~5 ms.
        "polled_at": pd.DatetimeIndex(_epoch_ms(cols.polled_at, n)).tz_localize("UTC").tz_convert(tz),
        "latency_ms": np.round(np.frombuffer(cols.latency_s, dtype=np.float32).astype(np.float64) * 1000.0, 3)
        if n else np.empty(0),
        "outcome": pd.Categorical.from_codes(np.frombuffer(cols.outcome, dtype=np.uint8).astype(np.int16)
                                             if n else np.empty(0, np.int16), dtype=_OUTCOME_DTYPE),
        "error_code": _interned(cols.error_code, codes, n),
        "error_message": messages.array,
        "state": pd.Categorical.from_codes(state_codes, dtype=_STATE_DTYPE),
        "raw_status": _interned(cols.raw_status, statuses, n),
        "progress": _float32_values(cols.progress, n),
        "finished_samples": _counts(finished),
        "total_samples": _counts(total),
        "size_mb": _float32_values(cols.size_mb, n),
    }, columns=list(HISTORY_COLUMNS))
    return frame


def _float32_values(buffer: Any, n: int) -> np.ndarray:
    """A float32 history column as float64 values equal to what the server sent.

    The history keeps floats in 4 bytes; widening 2.81f gives 2.809999942779541. Rounding to float32's 7
    significant digits gives back 2.81 (the value as sent, for any value with at most 7 significant digits).
    """
    if not n:
        return np.empty(0)
    values = np.frombuffer(buffer, dtype=np.float32).astype(np.float64)
    finite = np.isfinite(values) & (values != 0)
    magnitude = np.zeros_like(values)
    magnitude[finite] = np.floor(np.log10(np.abs(values[finite])))
    scale = 10.0 ** (6 - magnitude)
    rounded = np.round(values * scale) / scale
    return np.where(finite, rounded, values)


def _epoch_ms(buffer: Any, n: int) -> np.ndarray:
    """Epoch seconds (float64) as datetime64[ns] rounded to the millisecond (no float noise in the ns)."""
    if not n:
        return np.empty(0, dtype="datetime64[ns]")
    seconds = np.frombuffer(buffer, dtype=np.float64)
    return (np.round(seconds * 1e3).astype(np.int64) * 1_000_000).view("datetime64[ns]")


def _counts(values: np.ndarray) -> pd.arrays.IntegerArray:
    """int64 counts with -1 meaning unknown, as a nullable Int64 array."""
    return pd.arrays.IntegerArray(np.where(values < 0, 0, values), mask=values < 0)


def _interned(codes_array: Any, values: list[str | None], n: int) -> pd.Categorical:
    """Interned codes (0 = None) as a categorical over the non-None values."""
    codes = np.frombuffer(codes_array, dtype=np.uint16).astype(np.int32) - 1 if n else np.empty(0, np.int32)
    categories = [v for v in values[1:]]
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def history(source: Any, tz: str = "UTC") -> pd.DataFrame:
    """Every poll of a monitor, a group, a History or a list of them, oldest first per task."""
    parts = [_one_history(h, tz) for h in _histories(source)]
    if not parts:
        return _one_history(History(), tz)
    if len(parts) == 1:
        return parts[0]
    frame = pd.concat(parts, ignore_index=True)
    for column in ("provider", "task_id", "error_code", "raw_status"):
        frame[column] = frame[column].astype("category")
    return frame


def to_parquet(frame: pd.DataFrame, path: Any, **kwargs: Any) -> None:
    """``frame.to_parquet`` with a clear message when no parquet engine is installed."""
    try:
        frame.to_parquet(path, **kwargs)
    except ImportError as exc:
        raise ImportError("Saving parquet needs pyarrow: pip install pyarrow (or save with to_csv)") from exc
