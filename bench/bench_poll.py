"""1. Per-poll client cost (sign + send + parse + normalise) vs a raw ``requests.Session`` call.

Both hit the same fixed-body loopback server with the same body, so the ratio is our overhead per poll.
Rounds alternate raw and client calls so machine noise hits both alike. The official ``qianfan`` SDK is
measured against the same server as a reference when it is installed.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile

import requests

from export_widgets import ModelArtsClient, QianfanClient

from .common import FixedBodyServer, Result, per_call

MODELARTS_BODY = {
    "task_id": "TZMuy7OKbClkGCAc3gb", "path": "/test-obs/daoChu/", "export_type": 3, "version_format": "Default",
    "export_format": 2, "status": "RUNNING", "progress": 42.0, "finished_sample_count": 420,
    "total_sample_count": 1000, "create_time": 1606103424662, "update_time": 1606103494124,
    "export_params": {"sample_state": "", "export_dest": "DIR", "clear_hard_property": True,
                      "clear_difficult": False, "train_sample_ratio": 1.0, "ratio_sample_usage": False},
}
QIANFAN_BODY = {
    "requestId": "bdb7afcc-d9a4-4804-7587-8d9afaa53007",
    "result": {"storageType": "sysStorage", "storagePath": "bos:/bucketName/some/path/exportFileName.zip",
               "sizeMB": 0.05, "sampleCount": 55, "exportStatus": "Exporting", "progress": "45%",
               "startTime": "2024-08-01 10:31:48", "finishTime": "", "downloadUrl": ""},
}
AK, SK = "BENCHMARKACCESSKEY01", "BenchmarkSecretKey0123456789abcdefghij"


def _ratio(raw, ours, *, rounds: int, calls: int) -> tuple[float, list[float], float, float]:
    for _ in range(50):  # warm the connection pools and caches
        raw()
        ours()
    ratios, raw_times, our_times = [], [], []
    for _ in range(rounds):
        r = per_call(raw, calls)
        o = per_call(ours, calls)
        raw_times.append(r)
        our_times.append(o)
        ratios.append(o / r)
    return statistics.median(ratios), ratios, statistics.median(raw_times), statistics.median(our_times)


def _sessions() -> tuple[requests.Session, requests.Session]:
    """A default ``requests.Session``, and one that skips the per-request env scan as our clients do."""
    lean = requests.Session()
    lean.trust_env = False
    return requests.Session(), lean


def _pair(label: str, raw_call, lean_call, ours, rounds: int, calls: int) -> list[Result]:
    ratio, runs, raw_s, our_s = _ratio(raw_call, ours, rounds=rounds, calls=calls)
    lean_ratio, lean_runs, lean_s, ours_again = _ratio(lean_call, ours, rounds=rounds, calls=calls)
    return [
        Result(f"per-poll cost, {label} (client / raw requests)", ratio, "x", "<= 1.15x", ratio <= 1.15, runs,
               f"raw {raw_s * 1e6:.0f} us, client {our_s * 1e6:.0f} us per poll"),
        # Reference: the same raw call without requests' per-request env scan, which our clients skip by
        # design; what is left over is our own signing, parsing and normalising.
        Result(f"reference: {label} client / raw with trust_env off", lean_ratio, "x", "(reference)", True,
               lean_runs, f"sign+parse+normalise = {(ours_again - lean_s) * 1e6:.0f} us"),
    ]


def bench_modelarts(rounds: int, calls: int) -> list[Result]:
    with FixedBodyServer(json.dumps(MODELARTS_BODY).encode()) as server:
        client = ModelArtsClient(project_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9", endpoint=server.url, ak=AK, sk=SK,
                                 environ={})
        default, lean = _sessions()
        url = f"{server.url}/v2/0a1b2c3d4e5f60718293a4b5c6d7e8f9/datasets/ds/export-tasks/TZMuy7OKbClkGCAc3gb"
        return _pair("ModelArts", lambda: default.get(url, timeout=5).json(), lambda: lean.get(url, timeout=5).json(),
                     lambda: client.get_export_task("ds", "TZMuy7OKbClkGCAc3gb"), rounds, calls)


def bench_qianfan(rounds: int, calls: int) -> list[Result]:
    body = json.dumps(QIANFAN_BODY).encode()
    with FixedBodyServer(body) as server:
        client = QianfanClient(ak=AK, sk=SK, endpoint=server.url, environ={})
        default, lean = _sessions()
        url = f"{server.url}/v2/dataset?Action=DescribeExportTask"

        def post(session: requests.Session):
            return lambda: session.post(url, data=b'{"taskId": "task-xxx"}',
                                        headers={"Content-Type": "application/json"}, timeout=5).json()

        raw = post(default)
        results = _pair("Qianfan", raw, post(lean), lambda: client.get_export_task("task-xxx"), rounds, calls)
        sdk = _qianfan_sdk(server.url)
        if sdk is not None:
            sdk_ratio, sdk_runs, _, sdk_s = _ratio(raw, sdk, rounds=rounds, calls=calls)
            results.append(Result("reference: qianfan SDK get_dataset_version_export_task_info / raw", sdk_ratio,
                                  "x", "(reference)", True, sdk_runs, f"SDK {sdk_s * 1e6:.0f} us per call"))
    return results


def _qianfan_sdk(base_url: str):
    """The official SDK call against ``base_url``, or None when qianfan is not installed."""
    os.environ.update({"QIANFAN_ACCESS_KEY": AK, "QIANFAN_SECRET_KEY": SK, "QIANFAN_CONSOLE_API_BASE_URL": base_url,
                       "QIANFAN_LOG_LEVEL": "ERROR"})
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp())  # qianfan reads ./.env at import
    try:
        from qianfan.resources.console.data import Data
    except ImportError:
        return None
    finally:
        os.chdir(cwd)
    return lambda: Data.V2.get_dataset_version_export_task_info("task-xxx")


def run(quick: bool = False) -> list[Result]:
    rounds, calls = (3, 200) if quick else (7, 600)
    return [*bench_modelarts(rounds, calls), *bench_qianfan(rounds, calls)]
