"""The request log counts requests per operation kind (so sweep tests can assert list vs status calls), and the
ModelArts list operation pages as the API does: limit <= 100, offset = page index, total_count, newest first."""

from __future__ import annotations

import json

import pytest
import requests

from export_widgets.signing import BceAuth, SdkHmacAuth
from export_widgets.simulator import OPERATION_KINDS, FakeClock, Simulator, TaskSpec, serve

DATASET = "sweepDataset000001"


def ma_get(sim: Simulator, suffix: str = "", query: str = "") -> requests.Response:
    url = f"{sim.url}/v2/{sim.project_id}/datasets/{DATASET}/export-tasks{suffix}" + (f"?{query}" if query else "")
    return requests.get(url, headers={"X-Auth-Token": sim.token}, timeout=5)


def page(sim: Simulator, limit: int | None = None, offset: int | None = None, export_type: int | None = None) -> dict:
    query = "&".join(f"{name}={value}" for name, value in
                     (("export_type", export_type), ("limit", limit), ("offset", offset)) if value is not None)
    response = ma_get(sim, query=query)
    assert response.status_code == 200, response.text
    return response.json()


def test_requests_are_counted_per_operation_kind():
    with serve([TaskSpec("modelarts", "ma-1", dataset_id=DATASET, duration=1),
                TaskSpec("qianfan", "task-q1", duration=1, size_bytes=2000)], clock=FakeClock()) as sim:
        sim.clock.advance(1)
        for _ in range(2):
            ma_get(sim, "/ma-1")
        for offset in range(3):
            page(sim, limit=100, offset=offset)
        session = requests.Session()
        session.auth = BceAuth(sim.credentials.qianfan_ak, sim.credentials.qianfan_sk, expiration=300)
        session.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", data=json.dumps({"taskId": "task-q1"}),
                     headers={"Content-Type": "application/json"}, timeout=5)
        session.post(f"{sim.url}/v2/dataset?Action=CreateExportTask", timeout=5,
                     data=json.dumps({"versionId": "ds-1", "storageType": "sysStorage"}),
                     headers={"Content-Type": "application/json"})
        signed = requests.Session()
        signed.auth = SdkHmacAuth(sim.credentials.modelarts_ak, sim.credentials.modelarts_sk)
        signed.post(f"{sim.url}/v2/{sim.project_id}/datasets/{DATASET}/export-tasks", json={"path": "/b-1/x/"},
                    timeout=5)
        requests.get(sim.download_url_for("task-q1"), timeout=5)
        requests.get(f"{sim.url}/nowhere", timeout=5)

        assert sim.request_counts() == {"status": 3, "list": 3, "create": 2, "download": 1, "other": 1}
        assert sim.request_count(operation="list") == 3
        assert sim.request_count(operation="status") == 3
        assert sim.request_count(operation="status", provider="modelarts") == 2
        assert sim.request_count("ma-1", operation="status") == 2
        assert sim.request_count(operation="GetExportTasksStatusOfDataset") == 3  # the vendor's name works too
        assert sim.request_count(operation="create", status=200) == 2
        assert sim.request_count(operation="download", provider="qianfan") == 1
        assert sim.request_count(status=404) == 1 and sim.request_count() == 10
        kinds = {r.operation: r.kind for r in sim.requests if r.operation}
        assert kinds == {op: kind for op, kind in OPERATION_KINDS.items()}
        sim.requests.clear()
        assert sim.request_counts() == {} and sim.request_count(operation="list") == 0


@pytest.fixture
def listed():
    """150 tasks in one dataset, created one second apart (task-000 oldest), plus 5 in another dataset."""
    clock = FakeClock()
    specs = [TaskSpec("modelarts", f"task-{n:03d}", dataset_id=DATASET, export_type=n % 4,
                      created_at=clock.now() - 150 + n) for n in range(150)]
    specs += [TaskSpec("modelarts", f"other-{n}", dataset_id="otherDataset", created_at=clock.now()) for n in range(5)]
    with serve(specs, clock=clock) as sim:
        yield sim


def test_pages_are_newest_first_by_page_index(listed):
    first = page(listed, limit=100, offset=0)
    second = page(listed, limit=100, offset=1)
    assert first["total_count"] == second["total_count"] == 150
    ids = [t["task_id"] for t in first["export_tasks"] + second["export_tasks"]]
    assert ids == [f"task-{n:03d}" for n in range(149, -1, -1)]  # every task once, newest first
    times = [t["create_time"] for t in first["export_tasks"]]
    assert times == sorted(times, reverse=True)
    assert page(listed, limit=100, offset=2) == {"total_count": 150, "export_tasks": []}
    assert listed.request_count(operation="list") == 3


def test_default_page_size_is_10_and_offset_counts_pages_not_rows(listed):
    default = page(listed)
    assert len(default["export_tasks"]) == 10 and default["export_tasks"][0]["task_id"] == "task-149"
    third = page(listed, limit=7, offset=2)
    assert [t["task_id"] for t in third["export_tasks"]] == [f"task-{n:03d}" for n in range(135, 128, -1)]


def test_export_type_filters_the_total(listed):
    conditional = page(listed, limit=100, export_type=3)
    assert conditional["total_count"] == len(conditional["export_tasks"]) == 37
    assert {t["export_type"] for t in conditional["export_tasks"]} == {3}


@pytest.mark.parametrize("query", ["limit=101", "limit=0", "offset=-1", "limit=ten"])
def test_out_of_range_page_parameters_are_rejected(listed, query):
    response = ma_get(listed, query=query)
    assert (response.status_code, response.json()["error_code"]) == (400, "ModelArts.0104")


def test_tasks_created_at_one_instant_list_newest_added_first():
    with serve([], clock=FakeClock()) as sim:  # the clock never moves: every create has the same create_time
        session = requests.Session()
        session.auth = SdkHmacAuth(sim.credentials.modelarts_ak, sim.credentials.modelarts_sk)
        url = f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks"
        created = [session.post(url, json={"path": "/b-1/x/"}, timeout=5).json()["task_id"] for _ in range(4)]
        listed = session.get(url + "?limit=100&offset=0", timeout=5).json()
        assert [t["task_id"] for t in listed["export_tasks"]] == created[::-1]
