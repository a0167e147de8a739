"""The simulator itself: deterministic scenarios, every fault kind at the HTTP level, routing and parameter
errors, signature verification (pinned by the official-SDK golden vectors), keep-alive, prompt shutdown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from export_widgets import TransportError
from export_widgets.signing import BceAuth, SdkHmacAuth
from export_widgets.simulator import (
    DOWNLOAD_FAULT_KINDS,
    FAULT_KINDS,
    FakeClock,
    Fault,
    Scenario,
    Simulator,
    SimulatorApp,
    SimulatorServer,
    TaskSpec,
    demo_tasks,
    serve,
)
from export_widgets.simulator.state import modelarts_status, phase_at, qianfan_result
from export_widgets.simulator.verify import verify_bce, verify_sdk_hmac

VECTORS = Path(__file__).parent / "vectors"
HUAWEI = json.loads((VECTORS / "sdk_hmac_sha256.json").read_text())
BCE = json.loads((VECTORS / "bce_auth_v1.json").read_text())
MA_OK, QF_OK = "rF9NNoB56k5rtYKg2Y7", "task-7f3a9c1e2b"
TASK_FOR = {"modelarts": MA_OK, "qianfan": QF_OK}


def signed_session(sim: Simulator, provider: str) -> requests.Session:
    session = requests.Session()
    creds = sim.credentials
    session.auth = (SdkHmacAuth(creds.modelarts_ak, creds.modelarts_sk) if provider == "modelarts"
                    else BceAuth(creds.qianfan_ak, creds.qianfan_sk, expiration=300))
    return session


def raw(sim: Simulator, provider: str, task_id: str | None = None, *, session: requests.Session | None = None,
        query: str = "", timeout: float = 5.0):
    """One signed request as a plain ``requests`` call: the Response, or the exception it raised."""
    session = session or signed_session(sim, provider)
    try:
        if provider == "modelarts":
            path = f"/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks"
            path += f"/{task_id}" if task_id != "" else ""
            return session.get(sim.url + path + (f"?{query}" if query else ""),
                               headers={"Content-Type": "application/json"}, timeout=timeout)
        return session.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", timeout=timeout,
                            data=json.dumps({"taskId": task_id or QF_OK}), headers={"Content-Type": "application/json"})
    except requests.RequestException as exc:
        return exc


# -- scenarios are pure functions of time ----------------------------------------------------------------------

def test_same_spec_and_clock_give_the_same_json():
    spec = TaskSpec("modelarts", "det-task", duration=30, outcome="fail", fail_at=60, created_at=1_700_000_000.0)
    for now in (1_700_000_000.0, 1_700_000_007.5, 1_700_000_030.0, 1_800_000_000.0):
        assert modelarts_status(spec, now) == modelarts_status(spec, now)
    bodies = []
    for _ in range(2):
        with serve([spec, TaskSpec("qianfan", "task-det", created_at=1_700_000_000.0)],
                   clock=FakeClock(1_700_000_012.0)) as sim:
            qianfan = raw(sim, "qianfan", "task-det").json()["result"]
            # Each server links to itself, and the pre-signature covers its host:port.
            qianfan["downloadUrl"] = re.sub(r"host%2F[0-9a-f]{64}$", "host%2FSIG",
                                            qianfan["downloadUrl"].replace(sim.url, "SIM"))
            bodies.append((raw(sim, "modelarts", "det-task").json(), qianfan))
    assert bodies[0] == bodies[1] and bodies[0][1]["downloadUrl"].startswith("SIM/bos/")
    assert bodies[0][0]["progress"] == 40.0 and bodies[0][0]["finished_sample_count"] == 400


def test_progress_is_linear_and_outcomes_end_where_the_spec_says():
    spec = TaskSpec("modelarts", "t", duration=20, start_delay=5, total_samples=3000, created_at=100.0)
    assert not phase_at(spec, 99.0).exists
    assert (phase_at(spec, 104.9).state, phase_at(spec, 104.9).progress) == ("pending", 0.0)
    assert phase_at(spec, 110.0).progress == 25.0 and phase_at(spec, 120.0).progress == 75.0
    done = phase_at(spec, 500.0)
    assert (done.state, done.progress, done.finished_at, done.updated_at) == ("succeeded", 100.0, 125.0, 125.0)
    body = modelarts_status(spec, 101.0)
    assert body["status"] == "INIT" and "total_sample_count" not in body  # counts appear once running
    assert modelarts_status(spec, 110.0)["finished_sample_count"] == 750
    failed = modelarts_status(TaskSpec("modelarts", "f", duration=10, outcome="fail", fail_at=60,
                                       created_at=0.0), 100.0)
    assert (failed["status"], failed["progress"], failed["update_time"], failed["error_code"]) == (
        "FAILED", 60.0, 6000, "ModelArts.4311")


def test_qianfan_result_formats():
    spec = TaskSpec("qianfan", "task-1", duration=10, start_delay=4, created_at=1717243200.0,
                    path="bos:/my-bucket/exports/v1.zip")
    pending = qianfan_result(spec, 1717243202.0)
    assert (pending["exportStatus"], pending["progress"], pending["finishTime"], pending["downloadUrl"]) == (
        "Exporting", "0%", "", "")
    assert pending["startTime"] == "2024-06-01 20:00:00"  # Beijing time
    assert qianfan_result(spec, 1717243211.5)["progress"] == "75%"
    done = qianfan_result(spec, 1717243300.0)
    assert (done["exportStatus"], done["progress"], done["finishTime"]) == (
        "ExportFinished", "100%", "2024-06-01 20:00:14")
    assert re.fullmatch(r"https://my-bucket\.bj\.bcebos\.com/exports/v1\.zip\?authorization=bce-auth-v1%2F[0-9a-f]{32}"
                        r"%2F2024-06-01T12%3A00%3A14Z%2F86400%2Fhost%2F[0-9a-f]{64}", done["downloadUrl"])
    failed = qianfan_result(TaskSpec("qianfan", "t2", outcome="fail", created_at=0.0), 100.0)
    assert failed["progress"] == 0 and failed["downloadUrl"] == "" and failed["finishTime"] != ""


def test_tasks_do_not_exist_before_their_creation(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "future-task", created_at=empty_sim.clock.now() + 60))
    assert raw(empty_sim, "modelarts", "future-task").json()["error_code"] == "ModelArts.4359"
    assert raw(empty_sim, "modelarts", "").json()["total_count"] == 0
    empty_sim.clock.advance(60)
    assert raw(empty_sim, "modelarts", "future-task").json()["status"] == "RUNNING"


# -- specs and scenarios are data ---------------------------------------------------------------------------------

def test_task_spec_from_dict_and_back():
    spec = TaskSpec.from_dict({"provider": "qianfan", "task_id": "task-x", "duration": 30, "outcome": "fail",
                               "fail_at": 60, "storage_path": "bos:/b/x.zip",
                               "faults": [{"kind": "rate_limit", "retry_after": 3}, "drop"]})
    assert spec.path == "bos:/b/x.zip" and spec.faults == (Fault("rate_limit", retry_after=3), Fault("drop"))
    assert TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert TaskSpec("modelarts", "m").dataset_id == "gfghHSokody6AJigS5A"
    scaled = TaskSpec("modelarts", "m", duration=30, start_delay=6, faults=(Fault("html", after=10),)).scaled(0.5)
    assert (scaled.duration, scaled.start_delay, scaled.faults[0].after) == (15, 3, 5)


@pytest.mark.parametrize("data,message", [
    ({"provider": "aws", "task_id": "x"}, "provider"),
    ({"provider": "modelarts", "task_id": "x", "outcome": "explode"}, "outcome"),
    ({"provider": "qianfan", "task_id": "x", "outcome": "stop"}, "cannot be stopped"),
    ({"provider": "modelarts", "task_id": "x", "duration": 0}, "duration"),
    ({"provider": "modelarts", "task_id": "x", "fail_at": 120}, "fail_at"),
    ({"provider": "modelarts", "task_id": "x", "colour": "red"}, "unknown task field 'colour'"),
    ({"provider": "modelarts", "task_id": "x", "faults": [{"kind": "meteor"}]}, "unknown fault kind"),
])
def test_bad_specs_say_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec.from_dict(data)


def test_scenario_files_and_speed(tmp_path):
    path = tmp_path / "night-run.json"
    path.write_text(json.dumps({"speed": 3, "tasks": [
        {"provider": "modelarts", "task_id": "m1", "duration": 30, "start_delay": 3},
        {"provider": "qianfan", "task_id": "task-q1", "duration": 12, "outcome": "fail", "fail_at": 50}]}))
    scenario = Scenario.from_file(path)
    assert scenario.name == "night-run" and [t.task_id for t in scenario.tasks] == ["m1", "task-q1"]
    assert [(t.duration, t.start_delay) for t in scenario.scaled_tasks()] == [(10, 1), (4, 0)]
    with serve(scenario=scenario, clock=FakeClock()) as sim:
        sim.clock.advance(1 + 5)
        assert raw(sim, "modelarts", "m1").json()["progress"] == 50.0
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([{"provider": "modelarts", "task_id": "only"}]))
    assert Scenario.from_file(bare).tasks[0].task_id == "only"
    demo = Scenario.demo()
    assert [t.provider for t in demo.tasks].count("modelarts") == 4 and len(demo.tasks) == 6
    with pytest.raises(ValueError):
        Simulator([], scenario=demo)


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"tasks": [], "colour": 1}), "unknown scenario field"),
    (json.dumps({"tasks": [{"provider": "modelarts"}]}), "scenario file"),
    (json.dumps({"tasks": [{"provider": "modelarts", "task_id": "a"}, {"provider": "modelarts", "task_id": "a"}]}),
     "twice"),
])
def test_bad_scenario_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        Scenario.from_file(path)
    assert "broken.json" in str(info.value)
    with pytest.raises(ValueError, match="cannot read"):
        Scenario.from_file(tmp_path / "missing.json")


def test_demo_set_covers_the_advertised_cases():
    specs = {t.task_id: t for t in demo_tasks()}
    conditions = specs[MA_OK].export_params["search_conditions"]
    assert len(conditions) == 2 and specs[MA_OK].export_params["sample_state"] == "ALL" and specs[MA_OK].duration == 8
    assert {"label_list", "metadata", "sample_time", "hard", "sample_dir"} <= set(conditions[0])
    assert any(t.outcome == "fail" and t.error_code == "ModelArts.4311" and t.fail_at == 60 for t in specs.values())
    assert any(t.start_delay > 0 and t.provider == "modelarts" for t in specs.values())
    assert {t.outcome for t in specs.values() if t.provider == "qianfan"} == {"succeed", "fail"}
    assert all(t.total_samples >= 1000 for t in specs.values())


# -- faults -----------------------------------------------------------------------------------------------------

def _json(result):
    assert isinstance(result, requests.Response), result
    return result.json()


FAULT_CHECKS = {
    "rate_limit": (Fault("rate_limit"), lambda p, r: r.status_code == 429 and r.headers["Retry-After"] == "2"
                   and (_json(r).get("error_code") or _json(r)["code"]) in ("ModelArts.4395", "RequestLimitReached")),
    "rate_limit_no_retry_after": (Fault("rate_limit_no_retry_after"),
                                  lambda p, r: r.status_code == 429 and "Retry-After" not in r.headers),
    "apig_throttle": (Fault("apig_throttle"),
                      lambda p, r: r.status_code == 429 and _json(r)["error_code"] == "APIG.0308"
                      and _json(r)["request_id"]),
    "qps_limit": (Fault("qps_limit"), lambda p, r: (r.status_code, _json(r).get("code")) == (200, "QPSLimitReached")
                  if p == "qianfan" else (r.status_code, _json(r)["error_code"]) == (429, "ModelArts.4395")),
    "server_error": (Fault("server_error", status=503), lambda p, r: r.status_code == 503
                     and (_json(r).get("error_code") or _json(r)["code"]) in ("APIGW.0203", "ServiceUnavailable")),
    "slow": (Fault("slow", seconds=0.2), lambda p, r: r.status_code == 200 and r.elapsed.total_seconds() >= 0.2),
    "timeout": (Fault("timeout", seconds=0.2), lambda p, r: isinstance(r, requests.ConnectionError)),
    "drop": (Fault("drop"), lambda p, r: isinstance(r, requests.ConnectionError)),
    "reset_mid_body": (Fault("reset_mid_body"), lambda p, r: isinstance(r, requests.RequestException)),
    "html": (Fault("html"), lambda p, r: r.status_code == 502 and r.headers["Content-Type"] == "text/html"
             and r.text.startswith("<html>")),
    "empty_body": (Fault("empty_body"), lambda p, r: r.status_code == 200 and r.content == b""),
    "malformed_json": (Fault("malformed_json"), lambda p, r: r.status_code == 200 and r.content.startswith(b"{")
                       and pytest.raises(ValueError, r.json)),
    "error_in_200": (Fault("error_in_200"), lambda p, r: r.status_code == 200
                     and (_json(r).get("error_code") or _json(r)["code"]) in ("ModelArts.6101", "InternalError")),
    "unknown_status": (Fault("unknown_status", value="PAUSED"), lambda p, r: r.status_code == 200 and
                       (_json(r).get("status") or _json(r)["result"]["exportStatus"]) == "PAUSED"),
    "missing_fields": (Fault("missing_fields"), lambda p, r: set(_json(r) if p == "modelarts" else _json(r)["result"])
                       == ({"task_id", "status"} if p == "modelarts" else {"exportStatus"})),
    "ill_typed": (Fault("ill_typed"), lambda p, r: (isinstance(_json(r)["progress"], str)
                                                    and _json(r)["total_sample_count"] == -1
                                                    and _json(r)["finished_sample_count"] is None) if p == "modelarts"
                  else (isinstance(_json(r)["result"]["sizeMB"], str) and _json(r)["result"]["sampleCount"] == -1)),
    "huge_body": (Fault("huge_body"), lambda p, r: len(r.content) > 5_000_000 and _json(r)),
    "not_found": (Fault("not_found"), lambda p, r: (r.status_code, _json(r).get("error_code") or _json(r)["code"])
                  in ((400, "ModelArts.4359"), (404, "ResourceNotFound"))),
    "auth_revoked": (Fault("auth_revoked"), lambda p, r: r.status_code == 403),
}


def test_every_fault_kind_has_a_check():
    # Download kinds fire only on downloads: tests/test_simulator_downloads.py checks each of them.
    assert set(FAULT_CHECKS) == set(FAULT_KINDS) - DOWNLOAD_FAULT_KINDS


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("kind", sorted(FAULT_CHECKS))
def test_fault_kind_on_the_wire(sim, provider, kind):
    fault, check = FAULT_CHECKS[kind]
    sim.set_faults(TASK_FOR[provider], [fault])
    result = raw(sim, provider, TASK_FOR[provider])
    assert check(provider, result), result
    record = sim.requests[-1]
    assert (record.fault, record.task_id, record.auth_ok) == (kind, TASK_FOR[provider], True)
    after = raw(sim, provider, TASK_FOR[provider])  # times=1: the next request is normal again
    assert isinstance(after, requests.Response) and after.status_code == 200, after


def test_fault_times_windows_and_clearing(sim):
    sim.set_faults(MA_OK, [Fault("server_error", times=2)])
    assert [raw(sim, "modelarts", MA_OK).status_code for _ in range(3)] == [500, 500, 200]

    sim.set_faults(MA_OK, [Fault("rate_limit", after=5, until=10)])  # a window: every request inside it
    assert raw(sim, "modelarts", MA_OK).status_code == 200
    sim.clock.advance(5)
    assert [raw(sim, "modelarts", MA_OK).status_code for _ in range(3)] == [429, 429, 429]
    sim.clock.advance(5)
    assert raw(sim, "modelarts", MA_OK).status_code == 200

    sim.set_faults(MA_OK, [Fault("html", times=None)])
    assert {raw(sim, "modelarts", MA_OK).status_code for _ in range(3)} == {502}
    sim.clear_faults(MA_OK)
    assert raw(sim, "modelarts", MA_OK).status_code == 200

    sim.set_faults("*", ["server_error"])  # any request, the list endpoint too
    assert raw(sim, "modelarts", "").status_code == 500 and raw(sim, "modelarts", "").status_code == 200
    sim.set_faults("*", [Fault("drop", times=None)])
    assert isinstance(raw(sim, "qianfan"), requests.ConnectionError)
    sim.clear_faults()
    assert raw(sim, "qianfan").status_code == 200


def test_faults_in_a_spec_are_armed_when_the_task_is_added(empty_sim):
    empty_sim.add_task({"provider": "modelarts", "task_id": "flaky", "faults": [{"kind": "html", "times": 2}]})
    assert [raw(empty_sim, "modelarts", "flaky").status_code for _ in range(3)] == [502, 502, 200]


def test_fault_validation():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("meteor")
    with pytest.raises(ValueError, match="server_error status"):
        Fault("server_error", status=418)
    with pytest.raises(ValueError, match="times"):
        Fault("drop", times=0)
    assert Fault("drop").times == 1 and Fault("drop", until=5).times is None


# -- routing, parameters and the request log --------------------------------------------------------------------

@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=x", "offset=-1", "export_type=7"])
def test_list_parameter_errors(sim, query):
    response = raw(sim, "modelarts", "", query=query)
    assert response.status_code == 400 and response.json()["error_code"] == "ModelArts.0104"


def test_list_pages_by_page_index(sim):
    page = raw(sim, "modelarts", "", query="limit=3&offset=1").json()
    assert page["total_count"] == 4 and len(page["export_tasks"]) == 1
    assert raw(sim, "modelarts", "", query="limit=100&offset=5").json() == {"total_count": 4, "export_tasks": []}
    typed = raw(sim, "modelarts", "", query="export_type=1&limit=100&offset=0").json()
    assert [t["task_id"] for t in typed["export_tasks"]] == ["Pq7wE1rT9yU3iO5aS2d"]


def test_routing_errors(sim):
    unknown = requests.get(f"{sim.url}/v1/nothing-here", timeout=5)  # unsigned: APIG rejects the route first
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "APIGW.0101"
    session = signed_session(sim, "modelarts")
    other = session.get(f"{sim.url}/v2/{'0' * 32}/datasets/{sim.dataset_id}/export-tasks/{MA_OK}", timeout=5)
    assert other.status_code == 403 and other.json()["error_code"] == "ModelArts.0112"
    qf = signed_session(sim, "qianfan")
    assert qf.post(f"{sim.url}/v2/dataset?Action=DeleteDataset", json={}, timeout=5).json()["code"] == "InvalidAction"
    bad_json = qf.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", data=b"{oops",
                       headers={"Content-Type": "application/json"}, timeout=5)
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, "MalformedJSON")
    no_id = qf.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", json={"id": 1}, timeout=5)
    assert (no_id.status_code, no_id.json()["code"]) == (400, "InvalidParameter")


def test_request_log_records_what_happened(sim):
    raw(sim, "modelarts", MA_OK)
    sim.clock.advance(3)
    raw(sim, "qianfan", "task-missing")
    first, second = sim.requests
    assert (first.provider, first.operation, first.task_id, first.status, first.auth_ok) == (
        "modelarts", "GetExportTaskStatusOfDataset", MA_OK, 200, True)
    assert (second.provider, second.task_id, second.status, second.time - first.time) == (
        "qianfan", "task-missing", 404, 3)
    assert sim.request_count() == 2 and sim.request_count(provider="qianfan") == 1 and sim.request_count(MA_OK) == 1


# -- authentication on the wire ----------------------------------------------------------------------------------

def test_unsigned_and_malformed_requests(sim):
    url = f"{sim.url}/v2/{sim.project_id}/datasets/{sim.dataset_id}/export-tasks/{MA_OK}"
    assert requests.get(url, timeout=5).json()["error_code"] == "APIGW.0301"
    sm3 = requests.get(url, timeout=5,
                       headers={"Authorization": "SDK-HMAC-SM3 Access=A, SignedHeaders=host, Signature=00"})
    assert sm3.status_code == 401 and "not supported" in sm3.json()["error_msg"]
    qf = requests.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", json={"taskId": QF_OK}, timeout=5)
    assert (qf.status_code, qf.json()["code"], qf.headers["X-Bce-Error-Code"]) == (400, "InvalidHTTPAuthHeader",
                                                                                   "InvalidHTTPAuthHeader")


def test_query_must_arrive_in_the_signed_canonical_order(sim):
    class ReorderAfterSigning(SdkHmacAuth):
        def __call__(self, request):
            signed = super().__call__(request)
            base, query = signed.url.split("?")
            signed.url = base + "?" + "&".join(reversed(query.split("&")))
            return signed

    session = requests.Session()
    session.auth = ReorderAfterSigning(sim.credentials.modelarts_ak, sim.credentials.modelarts_sk)
    response = raw(sim, "modelarts", "", session=session, query="limit=5&offset=0")
    assert response.status_code == 401
    assert raw(sim, "modelarts", "", query="offset=0&limit=5").status_code == 200  # the hook sorts before signing


def test_bce_date_and_expiry_rules(sim):
    app = SimulatorApp([], clock=FakeClock())
    creds = app.credentials
    when = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    request = requests.Request("POST", "http://127.0.0.1:1/v2/dataset?Action=DescribeExportTask",
                               data=b'{"taskId": "x"}', headers={"Content-Type": "application/json"}).prepare()
    BceAuth(creds.qianfan_ak, creds.qianfan_sk, expiration=300, clock=lambda: when)(request)
    headers = dict(request.headers)

    def check(now, **changes):
        return verify_bce("POST", "/v2/dataset", "Action=DescribeExportTask", {**headers, **changes},
                          creds.qianfan_secret, now)

    assert check(when.timestamp() + 299).ok
    assert check(when.timestamp() + 301).reason == "expired"
    assert check(when.timestamp() - 16 * 60).reason == "expired"  # signed too far in the future
    assert check(when.timestamp(), **{"x-bce-date": "2024-06-01T12:00:01Z"}).reason == "date_mismatch"


# -- the verifiers against the official signers' golden vectors ----------------------------------------------------

def _huawei_inputs(case):
    headers = dict(case["headers"])
    if not any(name.lower() == "host" for name in headers):
        headers["Host"] = case["host"]  # the signer adds Host itself
    headers["Authorization"] = case["expected"]["authorization"]
    now = datetime.strptime(case["headers"]["X-Sdk-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    return dict(method=case["method"], raw_path=case["path"], raw_query=case["expected"]["wire_query"],
                headers=headers, body=case["body"].encode("utf-8"),
                secret_for={case["ak"]: case["sk"]}.get, now=now)


def _flip(text: str, index: int = -1) -> str:
    chars = list(text)
    chars[index] = "0" if chars[index] != "0" else "1"
    return "".join(chars)


@pytest.mark.parametrize("case", HUAWEI, ids=[c["name"] for c in HUAWEI])
def test_sdk_hmac_verifier_accepts_every_golden_vector_and_rejects_one_byte_changes(case):
    inputs = _huawei_inputs(case)
    assert verify_sdk_hmac(**inputs).ok
    mutations = {
        "path": {"raw_path": _flip(inputs["raw_path"], 4)},
        "signature": {"headers": {**inputs["headers"], "Authorization": _flip(case["expected"]["authorization"])}},
        "signed header": {"headers": {k: (v + "x" if k.lower() == "host" else v)
                                      for k, v in inputs["headers"].items()}},
    }
    if inputs["raw_query"]:
        mutations["query"] = {"raw_query": _flip(inputs["raw_query"])}
    if inputs["body"]:
        mutations["body"] = {"body": inputs["body"][:-1] + b" "}
    for what, change in mutations.items():
        assert verify_sdk_hmac(**{**inputs, **change}).reason == "signature_mismatch", what
    assert verify_sdk_hmac(**{**inputs, "secret_for": {}.get}).reason == "unknown_key"
    assert verify_sdk_hmac(**{**inputs, "now": inputs["now"] + 16 * 60}).reason == "expired"


def _bce_inputs(case):
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" if v is not None else f"{quote(k, safe='')}="
                     for k, v in case["params"].items())
    return dict(method=case["method"], raw_path=case["path"], raw_query=query,
                headers={**case["headers"], "Authorization": case["expected"]["authorization"]},
                secret_for={case["ak"]: case["sk"]}.get, now=float(case["timestamp"]))


@pytest.mark.parametrize("case", BCE, ids=[c["name"] for c in BCE])
def test_bce_verifier_accepts_every_golden_vector_and_rejects_one_byte_changes(case):
    inputs = _bce_inputs(case)
    assert verify_bce(**inputs).ok
    mutations = {
        "path": {"raw_path": inputs["raw_path"] + "s"},
        "query": {"raw_query": inputs["raw_query"].replace("DescribeExportTask", "DescribeExportTasc")},
        "signed header": {"headers": {k: (v + "x" if k.lower() == "host" else v)
                                      for k, v in inputs["headers"].items()}},
        "signature": {"headers": {**inputs["headers"], "Authorization": _flip(case["expected"]["authorization"])}},
    }
    for what, change in mutations.items():
        assert verify_bce(**{**inputs, **change}).reason == "signature_mismatch", what
    assert verify_bce(**{**inputs, "secret_for": {}.get}).reason == "unknown_key"
    assert verify_bce(**{**inputs, "now": inputs["now"] + case["expiration"] + 1}).reason == "expired"


# -- the server ---------------------------------------------------------------------------------------------

def test_keep_alive_one_connection_for_many_requests(sim):
    client = sim.modelarts_client()
    for _ in range(25):
        client.get_export_task(sim.dataset_id, MA_OK)
    assert len({r.connection_id for r in sim.requests}) == 1 and len(sim.requests) == 25


@pytest.mark.parametrize("fault", [Fault("slow", seconds=60), Fault("timeout", seconds=60)])
def test_shutdown_is_prompt_during_a_held_request(fault):
    sim = Simulator([TaskSpec("modelarts", "held")], clock=FakeClock()).start()
    sim.set_faults("held", [fault])
    outcome: list[object] = []
    client = sim.modelarts_client(timeout=(2.0, 30.0))
    worker = threading.Thread(target=lambda: outcome.append(_catch(client.get_export_task, sim.dataset_id, "held")))
    worker.start()
    deadline = time.monotonic() + 5
    while sim.request_count() == 0 and time.monotonic() < deadline:  # wait for the request to be in the server
        time.sleep(0.005)
    started = time.monotonic()
    sim.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome[0], TransportError)


def _catch(function, *args):
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_env_points_the_clients_and_cli_at_the_simulator(sim):
    from export_widgets.providers import modelarts, qianfan

    assert sim.env[modelarts.ENV.endpoint] == sim.env[qianfan.ENV.endpoint] == sim.url
    assert set(modelarts.ENV.all()) - {modelarts.ENV.security_token} | set(qianfan.ENV.all()) <= set(sim.env)


def test_binds_to_loopback_only(sim):
    assert sim.url.startswith("http://127.0.0.1:")
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        SimulatorServer(SimulatorApp([]), host="0.0.0.0")


def test_quiet_by_default(capfd):
    with serve(clock=FakeClock()) as sim:
        sim.set_faults(MA_OK, [Fault("drop")])
        raw(sim, "modelarts", MA_OK)
        raw(sim, "modelarts", MA_OK)
        requests.get(f"{sim.url}/nowhere", timeout=5)
        requests.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", json={}, timeout=5)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_simulator_never_imports_pandas_or_ipywidgets():
    code = ("import sys, export_widgets.simulator as s\n"
            "with s.serve(clock=s.FakeClock()) as sim: sim.modelarts_client().get_export_task(sim.dataset_id, "
            f"'{MA_OK}')\n"
            "print(sorted(m for m in ('pandas', 'ipywidgets', 'IPython') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
