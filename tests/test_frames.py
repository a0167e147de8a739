"""DataFrames: exact columns and dtypes, filter flattening, redaction, history round trip, export."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from export_widgets import frames
from export_widgets.history import History, Outcome
from export_widgets.providers import modelarts, qianfan

SIGNED_URL = "https://bucket.bj.bcebos.com/x/export.zip?authorization=bce-auth-v1%2Fsecretak%2F2024"

FILTERED = {
    "task_id": "TZMuy7OKbClkGCAc3gb", "status": "RUNNING", "progress": 40.0, "export_type": 3,
    "finished_sample_count": 400, "total_sample_count": 1000, "create_time": 1606103424662,
    "update_time": 1606103494124, "path": "/test-obs/daoChu/",
    "export_params": {
        "sample_state": "ACCEPTED", "export_dest": "DIR", "clear_hard_property": True, "train_sample_ratio": 0.8,
        "ratio_sample_usage": True,
        "search_conditions": [
            {"label_list": {"op": "OR", "labels": [
                {"name": "cat", "type": 1, "op": "AND", "property": {"color": ["black", "white"], "pose": ["sit"]}},
                {"name": "dog", "type": 1},
            ]}, "hard": "1", "sample_time": "20240101-20240115",
             "metadata": {"op": "AND", "props": {"camera": ["cam-1"]}}},
            {"sample_dir": "/bucket/raw/2024/", "frame_in_video": 12},
        ],
    },
}


def _ma(data=FILTERED):
    return modelarts.parse_export_task(data, dataset_id="ds-1")


def _dtypes(frame):
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


def test_summary_columns_dtypes_and_redaction():
    qf = qianfan.parse_export_task({"exportStatus": "ExportFinished", "progress": "100%", "sampleCount": 55,
                                    "sizeMB": 0.05, "startTime": "2024-08-01 10:31:48",
                                    "finishTime": "2024-08-01 10:31:58", "downloadUrl": SIGNED_URL,
                                    "storagePath": "bos:/b/x.zip"}, requested_id="task-1")
    frame = frames.summary([_ma(), qf])
    assert tuple(frame.columns) == frames.SUMMARY_COLUMNS
    assert _dtypes(frame) == {
        "provider": "string", "task_id": "string", "dataset_id": "string", "state": "category",
        "raw_status": "string", "progress": "float64", "finished_samples": "Int64", "total_samples": "Int64",
        "size_mb": "float64", "created_at": "datetime64[ns, UTC]", "updated_at": "datetime64[ns, UTC]",
        "finished_at": "datetime64[ns, UTC]", "destination": "string", "download_url": "string",
        "error_code": "string", "error_message": "string",
    }
    assert frame.loc[1, "download_url"] == "https://bucket.bj.bcebos.com/x/export.zip?***"
    assert "authorization" not in frame.to_csv()
    # Qianfan's naive Beijing time, shown in UTC.
    assert frame.loc[1, "finished_at"] == pd.Timestamp("2024-08-01 02:31:58", tz="UTC")
    assert list(frame["state"]) == ["RUNNING", "SUCCEEDED"]


def test_summary_in_another_time_zone_and_empty():
    frame = frames.summary(_ma(), tz="Asia/Shanghai")
    assert str(frame["created_at"].dtype) == "datetime64[ns, Asia/Shanghai]"
    empty = frames.summary([])
    assert tuple(empty.columns) == frames.SUMMARY_COLUMNS and len(empty) == 0
    assert _dtypes(empty) == _dtypes(frames.summary(_ma()))


def test_filters_one_row_per_condition_and_label():
    frame = frames.filters(_ma())
    assert tuple(frame.columns) == frames.FILTER_COLUMNS
    assert len(frame) == 3  # condition 0 has two labels, condition 1 has none
    cat, dog, by_dir = (frame.iloc[i] for i in range(3))
    assert (cat["condition"], cat["label_name"], cat["label_type_name"]) == (0, "cat", "object detection")
    assert cat["label_properties"] == "color: black, white; pose: sit"
    assert cat["labels_op"] == "OR" and cat["label_op"] == "AND"
    assert cat["hard"] == "1" and cat["sample_time"] == "20240101-20240115"
    assert cat["metadata_op"] == "AND" and cat["metadata_props"] == "camera: cam-1"
    assert dog["label_name"] == "dog" and pd.isna(dog["label_properties"])
    assert by_dir["condition"] == 1 and pd.isna(by_dir["label_name"])
    assert by_dir["sample_dir"] == "/bucket/raw/2024/" and by_dir["frame_in_video"] == 12
    assert set(frame["sample_state_meaning"]) == {"accepted"}
    assert set(frame["train_sample_ratio"]) == {"0.8"}
    assert frame["ratio_sample_usage"].all()


def test_filters_without_conditions_is_empty_but_typed():
    plain = _ma({"task_id": "T", "status": "INIT", "export_params": {"sample_state": ""}})
    frame = frames.filters(plain)
    assert len(frame) == 0 and tuple(frame.columns) == frames.FILTER_COLUMNS
    assert _dtypes(frame) == _dtypes(frames.filters(_ma()))
    qf = qianfan.parse_export_task({"exportStatus": "Exporting"}, requested_id="task-1")
    assert len(frames.filters(qf)) == 0


def test_params_frame():
    frame = frames.params(_ma())
    rows = dict(zip(frame["field"], zip(frame["value"], frame["meaning"], strict=True), strict=True))
    assert rows["sample_state"] == ("ACCEPTED", "accepted")
    assert rows["search_conditions"][0] == "2"


def _filled_history():
    history = History("modelarts", "T1")
    t0 = 1_700_000_000.0
    history.record_task(t0, 0.012, _ma())
    history.record_error(t0 + 2, None, Outcome.TRANSPORT, None, "ModelArts GetExportTaskStatusOfDataset timed out")
    history.record_error(t0 + 6, 0.003, Outcome.RATE_LIMITED, "APIG.0308", "throttled")
    history.record_task(t0 + 10, 0.010, _ma({**FILTERED, "status": "SUCCESSED", "progress": 100.0,
                                             "finished_sample_count": 1000}))
    return history


def test_history_frame_columns_dtypes_and_values():
    frame = frames.history(_filled_history())
    assert tuple(frame.columns) == frames.HISTORY_COLUMNS
    assert _dtypes(frame) == {
        "provider": "category", "task_id": "category", "polled_at": "datetime64[ns, UTC]",
        "latency_ms": "float64", "outcome": "category", "error_code": "category", "error_message": "string",
        "state": "category", "raw_status": "category", "progress": "float64", "finished_samples": "Int64",
        "total_samples": "Int64", "size_mb": "float64",
    }
    assert list(frame["outcome"]) == ["ok", "transport_error", "rate_limited", "ok"]
    assert list(frame["state"].astype(object).where(frame["state"].notna(), None)) == \
        ["RUNNING", None, None, "SUCCEEDED"]
    assert frame.loc[1, "error_message"].endswith("timed out")
    assert frame.loc[2, "error_code"] == "APIG.0308"
    assert math.isnan(frame.loc[1, "latency_ms"]) and frame.loc[0, "latency_ms"] == pytest.approx(12.0)
    assert frame.loc[3, "finished_samples"] == 1000 and pd.isna(frame.loc[1, "finished_samples"])
    assert frame.loc[3, "polled_at"] - frame.loc[0, "polled_at"] == pd.Timedelta(seconds=10)
    assert set(frame["state"].cat.categories) == {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED",
                                                  "UNKNOWN"}


def test_history_of_several_and_empty():
    other = History("qianfan", "task-2")
    other.record_task(time.time(), 0.02, qianfan.parse_export_task({"exportStatus": "Exporting",
                                                                     "progress": "5%"}, requested_id="task-2"))
    frame = frames.history([_filled_history(), other])
    assert len(frame) == 5 and set(frame["provider"]) == {"modelarts", "qianfan"}
    assert str(frame["provider"].dtype) == "category"
    empty = frames.history(History())
    assert len(empty) == 0 and tuple(empty.columns) == frames.HISTORY_COLUMNS


def test_history_rows_and_memory():
    history = _filled_history()
    assert history.row(-1).progress == 100.0 and history.row(1).error_message.endswith("timed out")
    assert [r.outcome for r in history] == ["ok", "transport_error", "rate_limited", "ok"]
    assert history.nbytes() / len(history) < 150


def test_every_frame_exports_to_csv_and_parquet(tmp_path):
    for name, frame in {"summary": frames.summary(_ma()), "filters": frames.filters(_ma()),
                        "history": frames.history(_filled_history()), "params": frames.params(_ma())}.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        assert pd.read_csv(tmp_path / f"{name}.csv").shape == frame.shape
        pytest.importorskip("pyarrow")
        frames.to_parquet(frame, tmp_path / f"{name}.parquet")
        assert pd.read_parquet(tmp_path / f"{name}.parquet").shape == frame.shape


def test_to_parquet_explains_missing_engine(tmp_path, monkeypatch):
    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_engine)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        frames.to_parquet(frames.summary(_ma()), tmp_path / "x.parquet")


def test_history_values_equal_what_the_server_sent_and_times_are_to_the_millisecond(tmp_path):
    """History keeps floats in 4 bytes; the frame and its CSV must still say 2.81, not 2.809999942779541."""
    values = [2.81, 37.5, 0.01, 99.99, 33.33, 12.3456, 0.0, 100.0]
    sizes = [210.5, 2.81, 12345.67, 0.001, 1234.5, 99.99, 0.0, 4096.0]
    history = History("modelarts", "T")
    polled = 1717243200.123  # a time with milliseconds (and float noise below them)
    for i, (value, size) in enumerate(zip(values, sizes, strict=True)):
        task = _ma({**FILTERED, "progress": value})
        task = type(task)(**{**task.__dict__, "size_mb": size})
        history.record_task(polled + i * 1.001, 0.0081, task)
    frame = frames.history(history)
    assert list(frame["progress"]) == values and list(frame["size_mb"]) == sizes
    assert list(frame["latency_ms"]) == [8.1] * len(values)
    text = frame.to_csv(tmp_path / "h.csv", index=False) or (tmp_path / "h.csv").read_text()
    assert "2.81," in text and "2.8099" not in text and "8.1," in text
    stamps = frame["polled_at"]
    assert stamps.iloc[0] == pd.Timestamp("2024-06-01 12:00:00.123", tz="UTC")
    assert all(ts.nanosecond == 0 and ts.microsecond % 1000 == 0 for ts in stamps)
    assert history.nbytes() / len(history) <= 150  # the memory budget per poll still holds
