"""The client core (ModelArtsClient, QianfanClient) over real HTTP against the embedded simulator.

Every response here was produced by the simulator, signed requests were verified by it, and progress is
driven by its FakeClock (no sleeping). The documented example responses are parsed at the end.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from export_widgets import (
    APIError,
    AuthenticationError,
    ConfigError,
    ExportParams,
    ExportTask,
    ModelArtsClient,
    QianfanClient,
    RateLimitedError,
    ResponseFormatError,
    TaskNotFoundError,
    TaskState,
    TransportError,
)
from export_widgets.providers import modelarts as modelarts_provider
from export_widgets.providers import qianfan as qianfan_provider
from export_widgets.simulator import Fault, TaskSpec

RESPONSES = Path(__file__).parent / "responses"

MA_OK, MA_SLOW = "rF9NNoB56k5rtYKg2Y7", "Vb3kQ8mZ1xT7pLw2sEa"
MA_FAIL, MA_INIT = "Hn2cX5yR8uJ4tGv6kDq", "Pq7wE1rT9yU3iO5aS2d"
QF_OK, QF_FAIL = "task-7f3a9c1e2b", "task-c41d09e8a6"
TASK_FOR = {"modelarts": MA_OK, "qianfan": QF_OK}


def fetch(sim, provider, task_id=None, **client_kwargs):
    """Get one task through the real client of ``provider``."""
    task_id = task_id or TASK_FOR[provider]
    if provider == "modelarts":
        return sim.modelarts_client(**client_kwargs).get_export_task(sim.dataset_id, task_id)
    return sim.qianfan_client(**client_kwargs).get_export_task(task_id)


def fault_error(sim, provider, fault, **client_kwargs):
    """The exception the client raises when ``fault`` is injected on the provider's demo task."""
    sim.set_faults(TASK_FOR[provider], [fault])
    with pytest.raises(Exception) as info:
        fetch(sim, provider, **client_kwargs)
    return info.value


def assert_one_line(error):
    text = str(error)
    assert "\n" not in text and "\r" not in text and 0 < len(text) < 400, text


# -- task life cycles ---------------------------------------------------------------------------------------

def test_modelarts_progress_follows_the_scenario_clock(sim):
    client = sim.modelarts_client()
    created = datetime.fromtimestamp(sim.tasks[MA_OK].created_at, timezone.utc)
    first = client.get_export_task(sim.dataset_id, MA_OK)
    assert (first.state, first.raw_status, first.progress, first.finished_samples) == (
        TaskState.RUNNING, "RUNNING", 0.0, 0)

    sim.clock.advance(4)
    half = client.get_export_task(sim.dataset_id, MA_OK)
    assert (half.state, half.progress, half.finished_samples, half.total_samples) == (
        TaskState.RUNNING, 50.0, 2406, 4812)

    sim.clock.advance(4)
    done = client.get_export_task(sim.dataset_id, MA_OK)
    assert (done.state, done.raw_status, done.progress, done.finished_samples) == (
        TaskState.SUCCEEDED, "SUCCESSED", 100.0, 4812)
    assert done.created_at == created and done.finished_at == created + timedelta(seconds=8)
    assert done.destination == "/drive-exports/hard-cases-may/" and done.dataset_id == sim.dataset_id


def test_modelarts_search_conditions_survive_the_round_trip(sim):
    task = fetch(sim, "modelarts", MA_OK)
    params = task.export_params
    assert params.sample_state == "ALL" and params.export_dest == "DIR" and params.clear_hard_property is False
    first, second = task.search_conditions
    car, pedestrian = first.label_list.labels
    assert (car.name, car.type, car.property) == ("car", 1, {"color": ["red", "blue"], "occluded": ["false"]})
    assert pedestrian.property == {"@modelarts:hard": ["true"]} and first.label_list.op == "OR"
    assert first.metadata.props == {"camera": ["front-left", "front-right"], "weather": ["rain"]}
    assert (first.sample_time, first.hard, first.sample_dir) == ("20240501-20240530", "1", "/drive-logs/2024-05/front/")
    assert (second.sample_time, second.hard, second.label_list.labels[0].name) == ("month", "0", "cyclist")
    assert task.raw["export_type"] == 3


def test_modelarts_init_then_running(sim):
    client = sim.modelarts_client()
    pending = client.get_export_task(sim.dataset_id, MA_INIT)
    assert (pending.state, pending.raw_status, pending.total_samples) == (TaskState.PENDING, "INIT", None)
    sim.clock.advance(6 + 6)
    running = client.get_export_task(sim.dataset_id, MA_INIT)
    assert (running.state, running.progress, running.finished_samples) == (TaskState.RUNNING, 50.0, 1024)


def test_modelarts_failure_carries_the_error_code(sim):
    sim.clock.advance(60)
    task = fetch(sim, "modelarts", MA_FAIL)
    assert (task.state, task.progress, task.finished_samples, task.total_samples) == (
        TaskState.FAILED, 60.0, 1980, 3300)
    assert (task.error_code, task.error_message) == ("ModelArts.4311", "OBS bucket does not exist")
    assert task.finished_at == datetime.fromtimestamp(sim.tasks[MA_FAIL].created_at + 9, timezone.utc)


def test_modelarts_stop_and_stall(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "stopper", duration=10, outcome="stop", stop_at=30))
    empty_sim.add_task(TaskSpec("modelarts", "staller", duration=10, outcome="stall", stall_at=70))
    empty_sim.clock.advance(3600)
    client = empty_sim.modelarts_client()
    stopped = client.get_export_task(empty_sim.dataset_id, "stopper")
    stalled = client.get_export_task(empty_sim.dataset_id, "staller")
    assert (stopped.state, stopped.progress, stopped.is_terminal) == (TaskState.STOPPED, 30.0, True)
    assert (stalled.state, stalled.progress, stalled.is_terminal) == (TaskState.RUNNING, 70.0, False)


def test_qianfan_success_with_download_url(sim):
    client = sim.qianfan_client()
    sim.clock.advance(5)
    running = client.get_export_task(QF_OK)
    assert (running.state, running.raw_status, running.progress, running.finished_at) == (
        TaskState.RUNNING, "Exporting", 50.0, None)
    assert running.download_url is None and running.raw["finishTime"] == "" and running.raw["progress"] == "50%"
    sim.clock.advance(5)
    done = client.get_export_task(QF_OK)
    assert (done.state, done.progress, done.finished_samples, done.total_samples, done.size_mb) == (
        TaskState.SUCCEEDED, 100.0, 55000, 55000, 842.37)
    assert done.download_url.startswith(f"{sim.url}/bos/qianfan-exports/ds-1042/v3/export-20240601.zip"
                                        "?authorization=bce-auth-v1%2F")  # the simulator serves the file itself
    created = datetime.fromtimestamp(sim.tasks[QF_OK].created_at, timezone.utc)
    assert done.created_at == created and done.finished_at == created + timedelta(seconds=10)
    assert done.created_at.utcoffset() == timedelta(hours=8)  # Qianfan shows Beijing time


def test_qianfan_failure(sim):
    sim.clock.advance(60)
    task = fetch(sim, "qianfan", QF_FAIL)
    assert (task.state, task.raw_status, task.progress, task.download_url) == (
        TaskState.FAILED, "ExportFailed", 0.0, None)
    assert task.raw["progress"] == 0 and task.is_terminal


@pytest.mark.parametrize("provider,raw", [("modelarts", "QUEUING"), ("qianfan", "ExportQueued")])
def test_unknown_status_is_unknown_with_raw_status_kept(sim, provider, raw):
    sim.set_faults(TASK_FOR[provider], [Fault("unknown_status")])
    task = fetch(sim, provider)
    assert (task.state, task.raw_status, task.is_terminal) == (TaskState.UNKNOWN, raw, False)


# -- error answers ----------------------------------------------------------------------------------------

def test_qianfan_error_inside_http_200_raises(sim):
    error = fault_error(sim, "qianfan", Fault("error_in_200", code="DatasetBusy", message="dataset is busy"))
    assert type(error) is APIError
    assert (error.http_status, error.code, error.message) == (200, "DatasetBusy", "dataset is busy")
    assert error.request_id and not error.transient
    throttled = fault_error(sim, "qianfan", Fault("qps_limit"))
    assert isinstance(throttled, RateLimitedError)
    assert (throttled.http_status, throttled.code) == (200, "QPSLimitReached")


def test_wrong_keys_are_authentication_errors(sim):
    with pytest.raises(AuthenticationError) as info:
        fetch(sim, "modelarts", sk="WrongSecretKey0123456789abcdefghijklmn")
    assert (info.value.http_status, info.value.code) == (401, "APIGW.0301")
    with pytest.raises(AuthenticationError) as info:
        fetch(sim, "modelarts", ak="HPUAUNKNOWNAK0000001")
    assert info.value.http_status == 401 and info.value.request_id
    with pytest.raises(AuthenticationError) as info:
        fetch(sim, "qianfan", sk="0" * 32)
    assert (info.value.http_status, info.value.code) == (403, "SignatureDoesNotMatch")
    with pytest.raises(AuthenticationError) as info:
        fetch(sim, "qianfan", ak="f" * 32)
    assert (info.value.http_status, info.value.code) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize("provider,code", [("modelarts", "APIGW.0302"), ("qianfan", "AccessDenied")])
def test_revoked_credentials_are_403(sim, provider, code):
    error = fault_error(sim, provider, Fault("auth_revoked"))
    assert isinstance(error, AuthenticationError) and (error.http_status, error.code) == (403, code)


def test_missing_tasks_are_task_not_found(sim):
    with pytest.raises(TaskNotFoundError) as info:
        fetch(sim, "modelarts", "NoSuchTask000000001")
    assert (info.value.http_status, info.value.code) == (400, "ModelArts.4359")
    with pytest.raises(TaskNotFoundError) as info:
        sim.modelarts_client().get_export_task("NoSuchDataset", MA_OK)
    assert info.value.code == "ModelArts.4352"
    with pytest.raises(TaskNotFoundError) as info:
        fetch(sim, "qianfan", "task-does-not-exist")
    assert (info.value.http_status, info.value.code) == (404, "ResourceNotFound")
    error = fault_error(sim, "modelarts", Fault("not_found", status=404))
    assert isinstance(error, TaskNotFoundError) and error.http_status == 404


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
def test_429_with_retry_after(sim, provider):
    error = fault_error(sim, provider, Fault("rate_limit", retry_after=7))
    assert isinstance(error, RateLimitedError) and error.http_status == 429 and error.retry_after == 7.0
    assert error.transient
    assert fetch(sim, provider).task_id == TASK_FOR[provider]  # the fault fired once; the next call works


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
def test_429_without_retry_after(sim, provider):
    error = fault_error(sim, provider, Fault("rate_limit_no_retry_after"))
    assert isinstance(error, RateLimitedError) and error.retry_after is None


def test_apig_throttling(sim):
    error = fault_error(sim, "modelarts", Fault("apig_throttle"))
    assert isinstance(error, RateLimitedError) and (error.http_status, error.code) == (429, "APIG.0308")
    assert "throttling threshold" in error.message and error.request_id


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_are_transient_api_errors(sim, provider, status):
    error = fault_error(sim, provider, Fault("server_error", status=status))
    assert type(error) is APIError and error.http_status == status and error.transient
    assert_one_line(error)


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
def test_html_error_pages_read_in_one_line(sim, provider):
    error = fault_error(sim, provider, Fault("html", status=502))
    assert type(error) is APIError and error.http_status == 502 and error.transient
    assert "502 Bad Gateway" in str(error) and "<" not in str(error)
    assert_one_line(error)
    error = fault_error(sim, provider, Fault("html", status=200))
    assert isinstance(error, ResponseFormatError) and "text/html" in str(error)
    assert_one_line(error)


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
def test_unreadable_bodies_are_response_format_errors(sim, provider, kind):
    error = fault_error(sim, provider, Fault(kind))
    assert isinstance(error, ResponseFormatError) and error.http_status == 200
    assert_one_line(error)


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("kind", ["drop", "reset_mid_body", "timeout"])
def test_broken_transport_is_transport_error(sim, provider, kind):
    error = fault_error(sim, provider, Fault(kind, seconds=30), timeout=(2.0, 0.3))
    assert isinstance(error, TransportError) and error.transient and error.provider == provider
    assert_one_line(error)
    assert fetch(sim, provider, timeout=(2.0, 0.3)).task_id == TASK_FOR[provider]  # and it recovers


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
def test_odd_but_valid_bodies_still_parse(sim, provider):
    sim.set_faults(TASK_FOR[provider], [Fault("missing_fields")])
    sparse = fetch(sim, provider)
    assert sparse.state is TaskState.RUNNING and sparse.progress is None and sparse.total_samples is None
    sim.set_faults(TASK_FOR[provider], [Fault("ill_typed")])
    odd = fetch(sim, provider)
    assert odd.state is TaskState.RUNNING and odd.total_samples is None
    sim.set_faults(TASK_FOR[provider], [Fault("huge_body", size=4_000_000)])
    assert fetch(sim, provider).task_id == TASK_FOR[provider]


# -- authentication modes ------------------------------------------------------------------------------------

def test_iam_token_auth(sim):
    task = fetch(sim, "modelarts", token=sim.token)
    assert task.task_id == MA_OK
    assert sim.requests[-1].auth_ok is True
    with pytest.raises(AuthenticationError) as info:
        fetch(sim, "modelarts", token="MIIwrong-token-0000000000")
    assert info.value.http_status == 401


def test_temporary_credentials_need_their_security_token(sim):
    creds = sim.credentials
    task = fetch(sim, "modelarts", ak=creds.temp_ak, sk=creds.temp_sk, security_token=creds.security_token)
    assert task.task_id == MA_OK
    for token in (None, "gQpjbi1ub3J0aC00-wrong-token-0000"):
        with pytest.raises(AuthenticationError):
            fetch(sim, "modelarts", ak=creds.temp_ak, sk=creds.temp_sk, security_token=token)
    with pytest.raises(AuthenticationError):  # a permanent key must not carry a security token
        fetch(sim, "modelarts", security_token=creds.security_token)


@pytest.mark.parametrize("provider,status,code", [("modelarts", 401, "APIGW.0301"), ("qianfan", 400, "RequestExpired")])
def test_a_client_clock_20_minutes_off_is_rejected(sim, provider, status, code):
    skewed = lambda: datetime.now(timezone.utc) - timedelta(minutes=20)  # noqa: E731
    with pytest.raises(AuthenticationError) as info:
        fetch(sim, provider, clock=skewed)
    assert (info.value.http_status, info.value.code) == (status, code)
    assert sim.requests[-1].auth_ok is False


# -- listing ------------------------------------------------------------------------------------------------

def test_list_follows_page_index_pagination_with_export_type(empty_sim):
    for number in range(23):
        empty_sim.add_task(TaskSpec("modelarts", f"list-task-{number:02d}", export_type=number % 4,
                                    created_at=empty_sim.clock.now() - number))
    client = empty_sim.modelarts_client()
    conditional = client.list_export_tasks(empty_sim.dataset_id, export_type=3, page_size=2)
    expected = [f"list-task-{n:02d}" for n in range(23) if n % 4 == 3]  # newest first
    assert [t.task_id for t in conditional] == expected and all(t.raw["export_type"] == 3 for t in conditional)
    assert empty_sim.request_count(provider="modelarts") == math.ceil(len(expected) / 2) == 3

    empty_sim.requests.clear()
    everything = client.list_export_tasks(empty_sim.dataset_id, page_size=10)
    assert len({t.task_id for t in everything}) == 23
    assert [r.operation for r in empty_sim.requests] == ["GetExportTasksStatusOfDataset"] * 3


# -- configuration ------------------------------------------------------------------------------------------

def test_credentials_and_endpoint_come_from_the_environment(sim):
    env = sim.env
    ma = ModelArtsClient(environ=env)  # endpoint from EXPORT_WIDGETS_MODELARTS_ENDPOINT
    assert ma.base_url == sim.url and ma.project_id == sim.project_id and ma.credentials.source == "environment"
    assert ma.get_export_task(sim.dataset_id, MA_OK).task_id == MA_OK
    qf = QianfanClient(environ=env)
    assert qf.base_url == sim.url and qf.get_export_task(QF_OK).task_id == QF_OK


def test_explicit_arguments_beat_the_environment(sim):
    creds = sim.credentials
    wrong = {**sim.env, "HUAWEICLOUD_SDK_SK": "WrongSecret000000000000", "QIANFAN_SECRET_KEY": "0" * 32,
             "QIANFAN_CONSOLE_API_BASE_URL": "http://127.0.0.1:9"}
    ma = ModelArtsClient(endpoint=sim.url, ak=creds.modelarts_ak, sk=creds.modelarts_sk, environ=wrong)
    assert ma.get_export_task(sim.dataset_id, MA_OK).task_id == MA_OK
    qf = QianfanClient(ak=creds.qianfan_ak, sk=creds.qianfan_sk, endpoint=sim.url, environ=wrong)
    assert qf.get_export_task(QF_OK).task_id == QF_OK and qf.credentials.source == "argument"


def test_defaults_apply_when_nothing_is_set():
    assert QianfanClient(ak="a" * 32, sk="b" * 32, environ={}).base_url == "https://qianfan.baidubce.com"


@pytest.mark.parametrize("make,names", [
    (lambda: ModelArtsClient(project_id="0" * 32, endpoint="http://127.0.0.1:9", environ={}),
     ["HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"]),
    (lambda: ModelArtsClient(endpoint="http://127.0.0.1:9", ak="A" * 20, sk="S" * 40, environ={}),
     ["HUAWEICLOUD_SDK_PROJECT_ID"]),
    (lambda: QianfanClient(environ={}), ["QIANFAN_ACCESS_KEY", "QIANFAN_SECRET_KEY"]),
    (lambda: QianfanClient(ak="a" * 32, environ={}), ["QIANFAN_SECRET_KEY"]),
])
def test_missing_credentials_name_the_env_var(make, names):
    with pytest.raises(ConfigError) as info:
        make()
    for name in names:
        assert name in str(info.value)
    assert_one_line(info.value)


@pytest.mark.parametrize("region,endpoint", [
    ("cn-north-4", "https://modelarts.cn-north-4.myhuaweicloud.com"),
    ("ap-southeast-1", "https://modelarts.ap-southeast-1.myhuaweicloud.cn"),
    ("ap-southeast-3", "https://modelarts.ap-southeast-3.myhuaweicloud.com"),
])
def test_region_maps_to_the_endpoint(region, endpoint):
    client = ModelArtsClient(project_id="0" * 32, region=region, ak="A" * 20, sk="S" * 40, environ={})
    assert client.base_url == endpoint


def test_otc_region_asks_for_the_endpoint():
    with pytest.raises(ConfigError) as info:
        ModelArtsClient(project_id="0" * 32, region="eu-de", ak="A" * 20, sk="S" * 40, environ={})
    assert "endpoint=" in str(info.value) and "otc.t-systems.com" in str(info.value)


# -- secrets never leak -------------------------------------------------------------------------------------

def test_no_message_or_repr_contains_keys_or_the_signed_url_query(sim):
    creds = sim.credentials
    secrets = [creds.modelarts_ak, creds.modelarts_sk, creds.qianfan_ak, creds.qianfan_sk, creds.token,
               creds.temp_sk, creds.security_token, "authorization=", "bce-auth-v1%2F"]
    texts = []
    for provider in ("modelarts", "qianfan"):
        for fault in (Fault("rate_limit"), Fault("server_error", status=503), Fault("html"), Fault("auth_revoked"),
                      Fault("malformed_json"), Fault("not_found"), Fault("drop")):
            error = fault_error(sim, provider, fault, timeout=(2.0, 0.5))
            texts += [str(error), repr(error)]
        with pytest.raises(AuthenticationError) as info:
            fetch(sim, provider, clock=lambda: datetime.now(timezone.utc) - timedelta(hours=1))
        texts += [str(info.value), repr(info.value)]
    sim.clock.advance(60)
    done = fetch(sim, "qianfan", QF_OK)
    assert "authorization=" in done.download_url  # the raw URL is there for whoever asks for it...
    texts += [repr(done), str(done), repr(sim.modelarts_client()), repr(sim.qianfan_client()),
              repr(sim.modelarts_client().credentials), repr(sim.credentials)]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text)  # ...but no message or repr shows it


# -- the documented example responses ------------------------------------------------------------------------

def test_documented_modelarts_running_example_parses_exactly():
    data = json.loads((RESPONSES / "modelarts_running.json").read_text())
    task = modelarts_provider.parse_export_task(data, dataset_id="gfghHSokody6AJigS5A")
    assert task == ExportTask(
        provider="modelarts",
        task_id="TZMuy7OKbClkGCAc3gb",
        state=TaskState.RUNNING,
        raw_status="RUNNING",
        progress=0.0,
        finished_samples=None,
        total_samples=None,
        created_at=datetime(2020, 11, 23, 3, 50, 24, 662000, tzinfo=timezone.utc),
        updated_at=datetime(2020, 11, 23, 3, 51, 34, 124000, tzinfo=timezone.utc),
        finished_at=None,
        destination="/test-obs/daoChu/",
        size_mb=None,
        download_url=None,
        error_code=None,
        error_message=None,
        export_params=ExportParams(sample_state="", export_dest="DIR", clear_hard_property=True,
                                   clear_difficult=False, ratio_sample_usage=False, train_sample_ratio="1.0"),
        dataset_id="gfghHSokody6AJigS5A",
        export_type=3,
        export_format=2,
        version_format="Default",
    )
    assert task.raw == data and not task.is_terminal and task.search_conditions == ()


def test_documented_qianfan_finished_example_parses_exactly():
    data = json.loads((RESPONSES / "qianfan_export_finished.json").read_text())
    task = qianfan_provider.parse_export_task(data["result"], requested_id="task-xxx")
    shanghai = ZoneInfo("Asia/Shanghai")
    assert task == ExportTask(
        provider="qianfan",
        task_id="task-xxx",
        state=TaskState.SUCCEEDED,
        raw_status="ExportFinished",
        progress=100.0,
        finished_samples=55,
        total_samples=55,
        created_at=datetime(2024, 8, 1, 10, 31, 48, tzinfo=shanghai),
        updated_at=datetime(2024, 8, 1, 10, 31, 58, tzinfo=shanghai),
        finished_at=datetime(2024, 8, 1, 10, 31, 58, tzinfo=shanghai),
        destination="bos:/bucketName/some/path/exportFileName.zip",
        size_mb=0.05,
        download_url=data["result"]["downloadUrl"],
        error_code=None,
        error_message=None,
        export_params=None,
        dataset_id=None,
    )
    assert "authorization" not in repr(task) and task.is_terminal


def test_documented_qianfan_access_denied_matches_the_simulator_and_the_client(sim):
    documented = json.loads((RESPONSES / "qianfan_access_denied.json").read_text())
    error = fault_error(sim, "qianfan", Fault("auth_revoked"))
    assert isinstance(error, AuthenticationError)
    assert (error.code, error.message) == (documented["code"], documented["message"])
    assert error.request_id  # the simulator's answer has the documented shape: requestId, code, message
