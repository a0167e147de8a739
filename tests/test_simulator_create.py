"""Create operations in the simulator: both vendors' bodies validated as documented, new tasks run through the
scenario's timeline, a running-task limit, a read-side lag, and faults that lose a create's answer."""

from __future__ import annotations

import json
import re

import pytest
import requests

from export_widgets.signing import BceAuth, SdkHmacAuth
from export_widgets.simulator import CreatePolicy, FakeClock, Fault, Scenario, Simulator, TaskSpec, serve

OK_BODY = {"path": "/drive-exports/may/", "export_type": 3,
           "export_params": {"sample_state": "", "export_dest": "DIR"}}


def ma_create(sim: Simulator, body, *, dataset: str | None = None, project: str | None = None,
              raw: bytes | None = None):
    session = requests.Session()
    session.auth = SdkHmacAuth(sim.credentials.modelarts_ak, sim.credentials.modelarts_sk)
    url = f"{sim.url}/v2/{project or sim.project_id}/datasets/{dataset or sim.dataset_id}/export-tasks"
    data = raw if raw is not None else json.dumps(body).encode()
    return session.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=5)


def ma_status(sim: Simulator, task_id: str, dataset: str | None = None):
    return requests.get(f"{sim.url}/v2/{sim.project_id}/datasets/{dataset or sim.dataset_id}/export-tasks/{task_id}",
                        headers={"X-Auth-Token": sim.token}, timeout=5)


def ma_list(sim: Simulator, query: str = "limit=100&offset=0"):
    return requests.get(f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks?{query}",
                        headers={"X-Auth-Token": sim.token}, timeout=5).json()


def qf_call(sim: Simulator, action: str, body):
    session = requests.Session()
    session.auth = BceAuth(sim.credentials.qianfan_ak, sim.credentials.qianfan_sk, expiration=300)
    return session.post(f"{sim.url}/v2/dataset?Action={action}", data=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"}, timeout=5)


# -- ModelArts ExportTask ----------------------------------------------------------------------------------------

def test_modelarts_create_starts_a_task_on_the_scenario_clock(empty_sim):
    empty_sim.set_create_policy({"template": {"duration": 20, "start_delay": 2, "total_samples": 400}})
    body = {"path": "/drive-exports/q3/", "export_type": 1, "export_format": 1, "version_format": "CSV",
            "version_id": "Vx2kQ9", "export_params": {"sample_state": "NONE", "clear_hard_property": False}}
    created = ma_create(empty_sim, body)
    assert created.status_code == 200, created.text
    task_id = created.json()["task_id"]
    assert set(created.json()) == {"task_id"} and re.fullmatch(r"[A-Za-z0-9]{19}", task_id)
    first = ma_status(empty_sim, task_id).json()
    assert (first["status"], first["progress"], first["path"]) == ("INIT", 0.0, "/drive-exports/q3/")
    assert (first["export_type"], first["export_format"], first["version_format"], first["version_id"]) == (
        1, 1, "CSV", "Vx2kQ9")
    assert first["export_params"]["sample_state"] == "NONE" and first["export_params"]["clear_hard_property"] is False
    assert first["export_params"]["export_dest"] == "DIR"  # the documented default fills what the body left out
    empty_sim.clock.advance(12)
    assert (ma_status(empty_sim, task_id).json()["status"], ma_status(empty_sim, task_id).json()["progress"]) == (
        "RUNNING", 50.0)
    empty_sim.clock.advance(10)
    done = ma_status(empty_sim, task_id).json()
    assert (done["status"], done["finished_sample_count"]) == ("SUCCESSED", 400)
    record = [r for r in empty_sim.requests if r.kind == "create"][0]
    assert (record.operation, record.task_id, record.status) == ("ExportTask", task_id, 200)


def test_created_ids_are_deterministic_and_distinct():
    ids = []
    for _ in range(2):
        with serve([], clock=FakeClock()) as sim:
            ids.append([ma_create(sim, OK_BODY).json()["task_id"] for _ in range(3)])
    assert ids[0] == ids[1] and len(set(ids[0])) == 3


@pytest.mark.parametrize("body,code", [
    ([1, 2], "ModelArts.0104"),
    ({**OK_BODY, "export_type": "3"}, "ModelArts.0104"),
    ({**OK_BODY, "export_type": True}, "ModelArts.0104"),
    ({**OK_BODY, "with_column_header": "yes"}, "ModelArts.0104"),
    ({**OK_BODY, "export_params": []}, "ModelArts.0104"),
    ({**OK_BODY, "export_params": {"samples": "s1"}}, "ModelArts.0104"),
    ({**OK_BODY, "export_type": 4}, "ModelArts.4384"),
    ({**OK_BODY, "export_format": 3}, "ModelArts.4384"),
    ({**OK_BODY, "version_format": "Parquet"}, "ModelArts.4384"),
    ({**OK_BODY, "annotation_format": "YOLO"}, "ModelArts.4384"),
    ({**OK_BODY, "source_type_header": "https://"}, "ModelArts.4384"),
    ({**OK_BODY, "export_params": {"export_dest": "FTP"}}, "ModelArts.4384"),
    ({**OK_BODY, "export_params": {"sample_state": "DONE"}}, "ModelArts.4384"),
    ({**OK_BODY, "export_params": {"train_sample_ratio": "1.5"}}, "ModelArts.4384"),
    ({**OK_BODY, "export_params": {"export_dest": "NEW_DATASET"}}, "ModelArts.4384"),
    ({"export_type": 0}, "ModelArts.4358"),
    ({**OK_BODY, "path": "obs://drive-exports/may/"}, "ModelArts.4358"),
    ({**OK_BODY, "path": "drive-exports/may/"}, "ModelArts.4358"),
    ({**OK_BODY, "path": "/"}, "ModelArts.4358"),
    ({**OK_BODY, "path": "/Upper_Case/dir/"}, "ModelArts.4358"),
    ({**OK_BODY, "export_params": {"export_dest": "NEW_DATASET", "export_new_dataset_name": "n",
                                   "export_new_dataset_work_path": "work/"}}, "ModelArts.4358"),
])
def test_modelarts_create_rejects_bodies_as_documented(empty_sim, body, code):
    response = ma_create(empty_sim, body)
    assert (response.status_code, response.json()["error_code"]) == (400, code), response.text
    assert response.json()["error_msg"] and not empty_sim.tasks  # nothing was started
    record = empty_sim.requests[-1]
    assert (record.kind, record.task_id, record.status) == ("create", None, 400)


@pytest.mark.parametrize("body", [
    {"path": "/b-1/x/"},
    {**OK_BODY, "export_params": {"export_dest": "NEW_DATASET", "export_new_dataset_name": "copy",
                                  "export_new_dataset_work_path": "/work-bucket/out/"}},
    {**OK_BODY, "export_params": {"train_sample_ratio": 0.8, "search_conditions": [{"sample_time": "month"}],
                                  "samples": ["a", "b"], "ratio_sample_usage": True}},
    {**OK_BODY, "annotation_format": "COCO", "source_type_header": "s3://", "with_column_header": False,
     "dataset_type": 400, "unknown_future_field": {"x": 1}},
])
def test_modelarts_create_accepts_documented_bodies(empty_sim, body):
    response = ma_create(empty_sim, body)
    assert response.status_code == 200, response.text
    assert ma_status(empty_sim, response.json()["task_id"]).status_code == 200


def test_modelarts_create_route_errors(sim):
    assert ma_create(sim, OK_BODY, project="0" * 32).json()["error_code"] == "ModelArts.0112"
    missing = ma_create(sim, OK_BODY, dataset="no-such-dataset")
    assert (missing.status_code, missing.json()["error_code"]) == (400, "ModelArts.4352")
    broken = ma_create(sim, None, raw=b"{not json")
    assert (broken.status_code, broken.json()["error_code"]) == (400, "ModelArts.0104")
    unsigned = requests.post(f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks",
                             json=OK_BODY, timeout=5)
    assert (unsigned.status_code, unsigned.json()["error_code"]) == (401, "APIGW.0301")
    assert sim.request_count(operation="create") == 4 and len(sim.tasks) == 6  # the demo set, nothing added


def test_modelarts_running_limit_is_per_dataset_and_frees_up(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "elsewhere", dataset_id="otherDataset01", duration=1000))
    empty_sim.set_create_policy(CreatePolicy(template={"duration": 10}, running_limit=2))
    first, second = (ma_create(empty_sim, OK_BODY) for _ in range(2))
    assert first.status_code == second.status_code == 200
    third = ma_create(empty_sim, OK_BODY)
    assert (third.status_code, third.json()["error_code"]) == (400, "ModelArts.4409")
    assert "2 running" in third.json()["error_msg"]
    assert ma_create(empty_sim, OK_BODY, dataset="otherDataset01").status_code == 200  # 1 of 2 there
    empty_sim.clock.advance(10)  # the first two finish
    assert ma_create(empty_sim, OK_BODY).status_code == 200


# -- Qianfan CreateExportTask ------------------------------------------------------------------------------------

def test_qianfan_create_and_describe(empty_sim):
    empty_sim.set_create_policy({"template": {"duration": 8, "size_mb": 3.5}})
    bos = qf_call(empty_sim, "CreateExportTask", {"versionId": "ds-9ctdwp8xcmu", "storageType": "BOS",
                                                  "storagePath": "bos:/my-exports/night/"})
    assert bos.status_code == 200, bos.text
    task_id = bos.json()["result"]
    assert re.fullmatch(r"task-[0-9a-f]{10}", task_id) and bos.json()["requestId"]
    described = qf_call(empty_sim, "DescribeExportTask", {"taskId": task_id}).json()["result"]
    assert (described["exportStatus"], described["storageType"], described["downloadUrl"]) == ("Exporting", "BOS", "")
    assert described["storagePath"] == f"bos:/my-exports/night/ds-9ctdwp8xcmu-{task_id}.zip"
    sys_task = qf_call(empty_sim, "CreateExportTask", {"versionId": "ds-abc", "storageType": "sysStorage"})
    assert sys_task.json()["result"] != task_id
    empty_sim.clock.advance(8)
    done = qf_call(empty_sim, "DescribeExportTask", {"taskId": task_id}).json()["result"]
    assert (done["exportStatus"], done["sizeMB"]) == ("ExportFinished", 3.5)
    assert done["downloadUrl"].startswith(f"{empty_sim.url}/bos/my-exports/night/")
    assert empty_sim.request_count(operation="create", provider="qianfan") == 2


@pytest.mark.parametrize("body,message", [
    ({"storageType": "BOS", "storagePath": "bos:/b1/x/"}, "versionId is required"),
    ({"versionId": 42, "storageType": "sysStorage"}, "versionId is required"),
    ({"versionId": "v-1", "storageType": "sysStorage"}, "ds-"),
    ({"versionId": "ds-1"}, "storageType"),
    ({"versionId": "ds-1", "storageType": "bos", "storagePath": "bos:/b1/x/"}, "storageType"),
    ({"versionId": "ds-1", "storageType": "BOS"}, "bos:/bucket/dir/"),
    ({"versionId": "ds-1", "storageType": "BOS", "storagePath": "/b1/x/"}, "bos:/bucket/dir/"),
    ({"versionId": "ds-1", "storageType": "BOS", "storagePath": "bos://b1/x/"}, "bos:/bucket/dir/"),
    ({"versionId": "ds-1", "storageType": "sysStorage", "storagePath": "bos:/b1/x/"}, "empty"),
])
def test_qianfan_create_rejects_bodies(empty_sim, body, message):
    response = qf_call(empty_sim, "CreateExportTask", body)
    assert (response.status_code, response.json()["code"]) == (400, "InvalidParameter"), response.text
    assert message in response.json()["message"] and not empty_sim.tasks


def test_qianfan_running_limit_answers_inside_http_200(empty_sim):
    empty_sim.set_create_policy({"running_limit": 1, "template": {"duration": 5}})
    body = {"versionId": "ds-1", "storageType": "sysStorage"}
    assert "result" in qf_call(empty_sim, "CreateExportTask", body).json()
    refused = qf_call(empty_sim, "CreateExportTask", body)
    assert refused.status_code == 200 and "result" not in refused.json()
    assert refused.json()["code"] == "ExportTaskLimitExceeded" and refused.json()["requestId"]
    empty_sim.clock.advance(5)
    assert "result" in qf_call(empty_sim, "CreateExportTask", body).json()


def test_qianfan_sdk_creates_through_the_simulator(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the SDK reads ./.env
    data = pytest.importorskip("qianfan.resources.console.data")
    consts = pytest.importorskip("qianfan.resources.console.consts")
    with serve([], clock=FakeClock()) as sim:
        creds = dict(ak=sim.credentials.qianfan_ak, sk=sim.credentials.qianfan_sk, host=sim.url, retry_count=1)
        created = data.Data.V2.create_dataset_version_export_task(
            "ds-sdk01", consts.V2.StorageType.Bos, "bos:/sdk-bucket/out/", **creds)
        task_id = created.body["result"]
        info = data.Data.V2.get_dataset_version_export_task_info(task_id, **creds)
        assert info.body["result"]["storagePath"].startswith("bos:/sdk-bucket/out/ds-sdk01-")
        assert [r.auth_ok for r in sim.requests] == [True, True]


# -- behaviour of created tasks: template, scenario files, read lag, faults ----------------------------------------

def test_scenario_file_sets_the_create_policy_and_speed_scales_it(tmp_path):
    path = tmp_path / "creates.json"
    path.write_text(json.dumps({"speed": 2, "tasks": [], "create": {
        "template": {"duration": 30, "outcome": "fail", "fail_at": 40, "error_code": "ModelArts.4311"},
        "running_limit": 5, "read_lag": 4}}))
    scenario = Scenario.from_file(path)
    assert scenario.create.running_limit == 5 and Scenario.from_dict(scenario.to_dict()) == scenario
    with serve(scenario=scenario, clock=FakeClock()) as sim:
        task_id = ma_create(sim, OK_BODY).json()["task_id"]
        assert ma_status(sim, task_id).status_code == 400  # read lag 4 s at speed 2 = 2 s
        sim.clock.advance(2)
        assert ma_status(sim, task_id).json()["status"] == "RUNNING"
        sim.clock.advance(6)  # 30 s at speed 2 = 15 s; it fails at 40 % = 6 s
        failed = ma_status(sim, task_id).json()
    assert (failed["status"], failed["progress"], failed["error_code"]) == ("FAILED", 40.0, "ModelArts.4311")


@pytest.mark.parametrize("policy,message", [
    ({"template": {"path": "/x/y/"}}, "come from the create request"),
    ({"template": {"colour": "red"}}, "unknown create template field"),
    ({"template": {"outcome": "explode"}}, "outcome"),
    ({"running_limit": 0}, "running_limit"),
    ({"read_lag": -1}, "read_lag"),
    ({"limit": 3}, "unknown create field"),
    ({"template": {"size_mb": 5000}}, "4000 MiB"),
])
def test_bad_create_policies_say_what_is_wrong(policy, message):
    with pytest.raises(ValueError, match=message):
        CreatePolicy.from_dict(policy)


def test_read_lag_hides_a_new_task_from_status_and_list(empty_sim):
    assert empty_sim.create_policy.read_lag == 0  # off by default: a new task answers at once
    visible = ma_create(empty_sim, OK_BODY).json()["task_id"]
    assert ma_status(empty_sim, visible).status_code == 200

    empty_sim.set_create_policy({"read_lag": 3})
    task_id = ma_create(empty_sim, OK_BODY).json()["task_id"]
    hidden = ma_status(empty_sim, task_id)
    assert (hidden.status_code, hidden.json()["error_code"]) == (400, "ModelArts.4359")
    assert [t["task_id"] for t in ma_list(empty_sim)["export_tasks"]] == [visible]
    qf_id = qf_call(empty_sim, "CreateExportTask", {"versionId": "ds-1", "storageType": "sysStorage"}).json()["result"]
    assert qf_call(empty_sim, "DescribeExportTask", {"taskId": qf_id}).status_code == 404
    empty_sim.clock.advance(3)
    assert ma_status(empty_sim, task_id).status_code == 200
    assert ma_list(empty_sim)["total_count"] == 2
    assert qf_call(empty_sim, "DescribeExportTask", {"taskId": qf_id}).status_code == 200


def test_read_lag_in_requests_is_clock_independent(empty_sim):
    empty_sim.set_create_policy({"read_lag_requests": 2})
    task_id = ma_create(empty_sim, OK_BODY).json()["task_id"]
    assert [ma_status(empty_sim, task_id).status_code for _ in range(3)] == [400, 400, 200]
    assert ma_list(empty_sim)["total_count"] == 1


def test_an_error_fault_creates_nothing_but_a_lost_answer_still_creates(empty_sim):
    empty_sim.set_faults("*", [Fault("server_error", status=503)])
    assert ma_create(empty_sim, OK_BODY).status_code == 503 and not empty_sim.tasks

    empty_sim.set_faults("*", [Fault("drop")])
    with pytest.raises(requests.ConnectionError):
        ma_create(empty_sim, OK_BODY)
    record = empty_sim.requests[-1]
    assert (record.kind, record.fault, record.status) == ("create", "drop", None)
    assert list(empty_sim.tasks) == [record.task_id]  # the export started; its id never reached the client

    empty_sim.set_faults("*", [Fault("malformed_json")])
    spoiled = qf_call(empty_sim, "CreateExportTask", {"versionId": "ds-1", "storageType": "sysStorage"})
    with pytest.raises(ValueError):
        spoiled.json()
    assert len(empty_sim.tasks) == 2


def test_concurrent_creates_never_exceed_the_running_limit(empty_sim):
    import threading

    empty_sim.set_create_policy({"running_limit": 3})
    statuses: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        status = ma_create(empty_sim, OK_BODY).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200] * 3 + [400] * 5 and len(empty_sim.tasks) == 3


def test_a_stop_template_stops_modelarts_creates_and_fails_qianfan_ones(empty_sim):
    empty_sim.set_create_policy({"template": {"duration": 10, "outcome": "stop", "stop_at": 30}})
    ma_id = ma_create(empty_sim, OK_BODY).json()["task_id"]
    qf_id = qf_call(empty_sim, "CreateExportTask", {"versionId": "ds-1", "storageType": "sysStorage"}).json()["result"]
    empty_sim.clock.advance(10)
    assert ma_status(empty_sim, ma_id).json()["status"] == "STOPPED"
    described = qf_call(empty_sim, "DescribeExportTask", {"taskId": qf_id}).json()["result"]
    assert described["exportStatus"] == "ExportFailed"
