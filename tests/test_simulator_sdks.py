"""The simulator as the vendors' own SDKs see it: the official ``qianfan`` and ``huaweicloudsdkcore`` clients talk to
it over real HTTP on 127.0.0.1, and what they accept, reject and report is the oracle."""

from __future__ import annotations

import json
import os
import types

import pytest
import requests

from export_widgets.simulator import FakeClock, Scenario, TaskSpec, serve

QF_TASK = "task-sdk0001"


# -- the official clients, pointed at a simulator ---------------------------------------------------------------

@pytest.fixture(scope="module")
def huawei(tmp_path_factory):
    """``huaweicloudsdkcore`` (imported with HOME in a temporary folder: it writes ~/.huaweicloud on import)."""
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        client_mod = pytest.importorskip("huaweicloudsdkcore.client")
        credentials_mod = pytest.importorskip("huaweicloudsdkcore.auth.credentials")
        exceptions_mod = pytest.importorskip("huaweicloudsdkcore.exceptions.exceptions")
        response_mod = pytest.importorskip("huaweicloudsdkcore.sdk_response")
    finally:
        if old is not None:
            os.environ["HOME"] = old

    class RawResponse(response_mod.SdkResponse):  # no model: keep the raw bytes for the test to read
        openapi_types: dict[str, str] = {}
        attribute_map: dict[str, str] = {}

    def client(sim, ak=None, sk=None, security_token=None):
        creds = credentials_mod.BasicCredentials(ak or sim.credentials.modelarts_ak,
                                                 sk or sim.credentials.modelarts_sk, sim.project_id)
        if security_token:
            creds = creds.with_security_token(security_token)
        built = client_mod.ClientBuilder(client_mod.Client).with_credentials(creds).with_endpoints([sim.url]).build()
        built.model_package = types.SimpleNamespace(RawResponse=RawResponse)
        return built

    def call(built, method, path, *, query=None, body=None, **path_params):
        response = built.do_http_request(method, path, path_params=path_params, query_params=query or [],
                                         body=body, response_type="RawResponse")
        return response.raw_content

    return types.SimpleNamespace(client=client, call=call, ClientRequestException=exceptions_mod.ClientRequestException)


@pytest.fixture
def qianfan_data(monkeypatch, tmp_path):
    """``qianfan``'s ``Data.V2`` with no keys from the environment or a ``.env`` (keys go per call)."""
    for name in ("QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY", "QIANFAN_AK", "QIANFAN_SK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the SDK reads ./.env
    data = pytest.importorskip("qianfan.resources.console.data")
    errors = pytest.importorskip("qianfan.errors")
    return types.SimpleNamespace(V2=data.Data.V2, RequestError=errors.RequestError)


STATUS_PATH = "/v2/{project_id}/datasets/{dataset_id}/export-tasks/{task_id}"


# -- Qianfan: the gateway's authentication wording -----------------------------------------------------------------

def _qianfan_failure(qianfan_data, sim, ak, sk):
    with pytest.raises(qianfan_data.RequestError) as info:
        qianfan_data.V2.get_dataset_version_export_task_info(QF_TASK, ak=ak, sk=sk, host=sim.url, retry_count=1)
    return info.value


def test_qianfan_sdk_reads_the_simulator_and_gets_its_hint_for_a_wrong_secret(qianfan_data):
    with serve([TaskSpec("qianfan", QF_TASK)], clock=FakeClock()) as sim:
        creds = sim.credentials
        ok = qianfan_data.V2.get_dataset_version_export_task_info(QF_TASK, ak=creds.qianfan_ak, sk=creds.qianfan_sk,
                                                                  host=sim.url, retry_count=1)
        assert ok.body["result"]["exportStatus"] == "Exporting"

        error = _qianfan_failure(qianfan_data, sim, creds.qianfan_ak, "not-" + creds.qianfan_sk)
        assert error.status_code == 403
        assert error.headers["X-Bce-Error-Code"] == "SignatureDoesNotMatch"
        assert error.headers["X-Bce-Error-Message"] == ("SignatureDoesNotMatch, cause: Fail to authn user: "
                                                        "Signature does not match")
        assert "可能的原因：Secret Key" in str(error)  # the SDK recognised the gateway's wording


def test_qianfan_sdk_gets_its_hint_for_an_unknown_access_key(qianfan_data):
    with serve([TaskSpec("qianfan", QF_TASK)], clock=FakeClock()) as sim:
        error = _qianfan_failure(qianfan_data, sim, "0" * 32, sim.credentials.qianfan_sk)
        assert error.status_code == 403
        assert error.headers["X-Bce-Error-Message"] == "NotFound, cause: Could not find credential."
        assert "可能的原因：Access Key" in str(error)
        assert sim.requests[-1].auth_ok is False


# -- ModelArts: every credential kind through huaweicloudsdkcore -----------------------------------------------------

def test_huawei_sdk_signs_what_the_simulator_accepts_for_every_credential_kind(huawei):
    with serve([TaskSpec("modelarts", "sdk-task", duration=20)], clock=FakeClock()) as sim:
        sim.clock.advance(10)
        creds = sim.credentials
        permanent = huawei.client(sim)
        body = json.loads(huawei.call(permanent, "GET", STATUS_PATH, dataset_id=sim.dataset_id, task_id="sdk-task"))
        assert (body["task_id"], body["status"], body["progress"]) == ("sdk-task", "RUNNING", 50.0)

        temporary = huawei.client(sim, creds.temp_ak, creds.temp_sk, creds.security_token)
        assert json.loads(huawei.call(temporary, "GET", STATUS_PATH, dataset_id=sim.dataset_id,
                                      task_id="sdk-task"))["status"] == "RUNNING"

        listed = json.loads(huawei.call(permanent, "GET", "/v2/{project_id}/datasets/{dataset_id}/export-tasks",
                                        dataset_id=sim.dataset_id, query=[("limit", 100), ("offset", 0)]))
        assert listed["total_count"] == 1

        token = requests.get(f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks/sdk-task",
                             headers={"X-Auth-Token": sim.token}, timeout=5)
        assert token.status_code == 200
        assert [r.auth_ok for r in sim.requests] == [True, True, True, True]


@pytest.mark.parametrize("kind", ["wrong secret", "unknown key", "temporary key without its token"])
def test_huawei_sdk_sees_the_gateway_rejection(huawei, kind):
    with serve([TaskSpec("modelarts", "sdk-task")], clock=FakeClock()) as sim:
        creds = sim.credentials
        client = {"wrong secret": lambda: huawei.client(sim, sk="x" + creds.modelarts_sk),
                  "unknown key": lambda: huawei.client(sim, ak="HPUAUNKNOWNKEY000001"),
                  "temporary key without its token": lambda: huawei.client(sim, creds.temp_ak, creds.temp_sk)}[kind]()
        with pytest.raises(huawei.ClientRequestException) as info:
            huawei.call(client, "GET", STATUS_PATH, dataset_id=sim.dataset_id, task_id="sdk-task")
        assert (info.value.status_code, info.value.error_code) == (401, "APIGW.0301")
        assert len(info.value.request_id) == 32  # from X-Request-Id, as APIG sends it
        assert sim.requests[-1].auth_ok is False


# -- ModelArts body shapes a scenario controls ---------------------------------------------------------------------

def _raw_status(sim, task_id):
    response = requests.get(f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks/{task_id}",
                            headers={"X-Auth-Token": sim.token}, timeout=5)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("spec,advance", [
    (TaskSpec("modelarts", "int-fail", duration=10, outcome="fail", fail_at=60), 30),
    (TaskSpec("modelarts", "int-stall", duration=10, outcome="stall", stall_at=50), 30),
    (TaskSpec("modelarts", "int-stop", duration=10, outcome="stop", stop_at=20), 30),
    (TaskSpec("modelarts", "running", duration=10), 5),
    (TaskSpec("modelarts", "pending", start_delay=10), 1),
    (TaskSpec("modelarts", "done", duration=10), 30),
])
def test_modelarts_progress_is_always_a_json_float(spec, advance):
    with serve([spec], clock=FakeClock()) as sim:
        sim.clock.advance(advance)
        text = _raw_status(sim, spec.task_id).text
        progress = json.loads(text, parse_float=lambda s: ("float", s), parse_int=lambda s: ("int", s))["progress"]
        assert progress[0] == "float", text
        listed = requests.get(f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks",
                              headers={"X-Auth-Token": sim.token}, timeout=5).text
        item = json.loads(listed, parse_float=lambda s: ("float", s), parse_int=int)["export_tasks"][0]
        assert item["progress"][0] == "float"


def test_version_fields_and_formats_come_from_the_scenario(tmp_path):
    path = tmp_path / "versions.json"
    path.write_text(json.dumps({"tasks": [
        {"provider": "modelarts", "task_id": "tree-csv", "export_format": 1, "version_format": "CSV",
         "version_id": "Hy7XrTd9pQ2wLm4sK8v"},
        {"provider": "modelarts", "task_id": "carbon", "version_format": "CarbonData", "version_id": "v-2"},
        {"provider": "modelarts", "task_id": "plain"}]}))
    scenario = Scenario.from_file(path)
    with serve(scenario=scenario, clock=FakeClock()) as sim:
        tree = _raw_status(sim, "tree-csv").json()
        carbon = _raw_status(sim, "carbon").json()
        plain = _raw_status(sim, "plain").json()
    assert (tree["export_format"], tree["version_format"], tree["version_id"]) == (1, "CSV", "Hy7XrTd9pQ2wLm4sK8v")
    assert (carbon["export_format"], carbon["version_format"], carbon["version_id"]) == (2, "CarbonData", "v-2")
    assert (plain["export_format"], plain["version_format"]) == (2, "Default") and "version_id" not in plain
    assert TaskSpec.from_dict(scenario.tasks[0].to_dict()) == scenario.tasks[0]


@pytest.mark.parametrize("field,value,message", [
    ("export_format", 3, "export_format"),
    ("version_format", "Parquet", "version_format"),
    ("version_id", "", "version_id"),
    ("export_type", 7, "export_type"),
])
def test_bad_version_fields_say_what_is_allowed(field, value, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec.from_dict({"provider": "modelarts", "task_id": "x", field: value})


# -- export-widgets simulate -----------------------------------------------------------------------------------------

def test_simulate_banner_lists_every_credential_kind():
    from export_widgets.simulator.banner import banner as _banner

    with serve(scenario=Scenario.demo(), clock=FakeClock()) as sim:
        text = _banner(sim, Scenario.demo())
    creds = sim.credentials
    for value in (creds.modelarts_ak, creds.modelarts_sk, creds.token, creds.temp_ak, creds.temp_sk,
                  creds.security_token, creds.qianfan_ak, creds.qianfan_sk):
        assert value in text
    assert "X-Auth-Token" in text and "HUAWEICLOUD_SDK_SECURITY_TOKEN" in text
    assert "Exports started by a create request: succeeds after 10 s (no running limit)" in text
    # Only the permanent AK/SK block is pasteable: a shell taking every "export" line gets one consistent set.
    exported = dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines()
                    if line.startswith("export "))
    assert exported["HUAWEICLOUD_SDK_AK"] == creds.modelarts_ak and "HUAWEICLOUD_SDK_SECURITY_TOKEN" not in exported


def test_huawei_sdk_creates_an_export_through_the_simulator(huawei):
    with serve([], clock=FakeClock()) as sim:
        client = huawei.client(sim)
        body = {"path": "/sdk-exports/run/", "export_type": 0, "version_format": "CSV",
                "export_params": {"sample_state": "ALL", "export_dest": "DIR"}}
        created = json.loads(huawei.call(client, "POST", "/v2/{project_id}/datasets/{dataset_id}/export-tasks",
                                         dataset_id=sim.dataset_id, body=body))
        status = json.loads(huawei.call(client, "GET", STATUS_PATH, dataset_id=sim.dataset_id,
                                        task_id=created["task_id"]))
        assert (status["path"], status["version_format"], status["export_params"]["sample_state"]) == (
            "/sdk-exports/run/", "CSV", "ALL")
        with pytest.raises(huawei.ClientRequestException) as info:
            huawei.call(client, "POST", "/v2/{project_id}/datasets/{dataset_id}/export-tasks",
                        dataset_id=sim.dataset_id, body={**body, "export_type": 9})
        assert (info.value.status_code, info.value.error_code) == (400, "ModelArts.4384")
        assert sim.request_count(operation="create") == 2 and len(sim.tasks) == 1


def test_qianfan_sdk_creates_waits_and_downloads_the_file_itself(qianfan_data, tmp_path):
    """The SDK's own export -> describe -> download path (the one its dataset loader uses) runs offline."""
    import zipfile

    utils = pytest.importorskip("qianfan.dataset.data_source.utils")
    consts = pytest.importorskip("qianfan.resources.console.consts")
    with serve([], clock=FakeClock(), create={"template": {"duration": 4, "size_bytes": 250_000}}) as sim:
        keys = dict(ak=sim.credentials.qianfan_ak, sk=sim.credentials.qianfan_sk, host=sim.url, retry_count=1)
        task_id = qianfan_data.V2.create_dataset_version_export_task(
            "ds-sdkdl01", consts.V2.StorageType.Bos, "bos:/sdk-bucket/out/", **keys).body["result"]
        sim.clock.advance(4)
        result = qianfan_data.V2.get_dataset_version_export_task_info(task_id, **keys).body["result"]
        assert (result["exportStatus"], result["sizeMB"]) == ("ExportFinished", 0.24)
        target = tmp_path / "export.zip"
        utils._download_file_from_url_streamly(result["downloadUrl"], str(target))
        assert target.read_bytes() == sim.export_file(task_id).read()
        assert zipfile.ZipFile(target).testzip() is None
        assert sim.request_counts() == {"create": 1, "status": 1, "download": 1}
