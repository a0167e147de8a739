"""Careless inputs and odd server text (issue 12): credentials, endpoints, what servers send, redaction, logs.

Parsers are exercised through real HTTP on 127.0.0.1 where the issue names an HTTP path (a raw-socket server
answering one canned task), and directly where the parser alone is the subject.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest
from hostile import RawServer, answer

from export_widgets import ModelArtsClient, QianfanClient, frames
from export_widgets.config import clean_credential, normalise_endpoint, resolve_credentials
from export_widgets.errors import ConfigError, TaskNotFoundError
from export_widgets.models import TaskState
from export_widgets.providers import modelarts as ma
from export_widgets.providers import qianfan as qf
from export_widgets.redact import redact_text, redact_url, register_secret

TOKEN = "MIIinput-iam-token-" + "t" * 40
AK, SK = "INPUTAKEXAMPLE000001", "input-secret-key-" + "k" * 24


def ma_server(task: dict) -> RawServer:
    return RawServer(answer("200 OK", json.dumps(task).encode()))


def ma_poll(url: str, **kwargs):
    kwargs.setdefault("token", TOKEN)
    client = ModelArtsClient(project_id="p1", endpoint=url, environ={}, **kwargs)
    return client.get_export_task("DS1", "T1")


# -- credentials ------------------------------------------------------------------------------------------

def test_a_credential_read_from_a_file_works_despite_its_newline(sim):
    creds = sim.credentials
    task_id = "MA-no-such-task"  # an authenticated request is what matters
    client = sim.modelarts_client(token=creds.token + "\n")
    with pytest.raises(TaskNotFoundError):  # authenticated: the simulator just knows no such task
        client.get_export_task(sim.dataset_id, task_id)
    client = sim.qianfan_client(ak=" " + creds.qianfan_ak + "\r\n", sk=creds.qianfan_sk + "\n")
    with pytest.raises(TaskNotFoundError):
        client.get_export_task("task-nothing")


@pytest.mark.parametrize("bad", ["\u00e9", "\u4e2d", "\x00", "\x1b", "\x7f", "a\nb", "\ud83d"])
def test_an_invalid_character_is_a_config_error_naming_the_source_not_the_value(bad):
    secret = "SECRETVALUE" + bad + "1234567890"
    with pytest.raises(ConfigError, match="token=") as info:
        ModelArtsClient(project_id="p1", endpoint="http://127.0.0.1:9", token=secret, environ={})
    assert "SECRETVALUE" not in "".join(traceback.format_exception(info.value))
    env = {"QIANFAN_ACCESS_KEY": "AK" + secret, "QIANFAN_SECRET_KEY": "sk" * 10}
    with pytest.raises(ConfigError, match="env QIANFAN_ACCESS_KEY") as info:
        QianfanClient(endpoint="http://127.0.0.1:9", environ=env)
    assert "SECRETVALUE" not in str(info.value)
    with pytest.raises(ConfigError, match="env HUAWEICLOUD_SDK_SECURITY_TOKEN"):
        resolve_credentials("ModelArts", ma.ENV, ak=AK, sk=SK, environ={"HUAWEICLOUD_SDK_SECURITY_TOKEN": secret})


def test_clean_credential():
    assert clean_credential("  abc\n", "ak=") == "abc"
    assert clean_credential("   ", "ak=") is None and clean_credential(None, "ak=") is None
    assert clean_credential("has inner space", "ak=") == "has inner space"  # legal in a header value


# -- endpoints ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/base?", "http://127.0.0.1:8080/base#",
                                 "http://127.0.0.1:8080/?a=1", "https://user:pass@host.example",
                                 "https://@host.example", "https://user@host.example/base"])
def test_an_endpoint_with_a_query_fragment_or_user_info_is_refused(url):
    with pytest.raises(ConfigError, match="not a valid base URL") as info:
        normalise_endpoint(url)
    assert "user@" not in str(info.value) and "user:" not in str(info.value) and ":pass" not in str(info.value)


def test_plain_http_to_a_remote_host_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="export_widgets")
    for _ in range(3):
        ModelArtsClient(project_id="p1", endpoint="http://modelarts.plain-http.example", token=TOKEN, environ={})
    for local in ("http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "https://secure.example"):
        ModelArtsClient(project_id="p1", endpoint=local, token=TOKEN, environ={})
    lines = [r.getMessage() for r in caplog.records if "plain http://" in r.getMessage()]
    assert len(lines) == 1 and "modelarts.plain-http.example" in lines[0] and "\n" not in lines[0]


# -- what servers send ----------------------------------------------------------------------------------------

def test_lone_surrogates_are_replaced_at_parse_time_in_every_field():
    lone = "\ud83d"
    task = {"task_id": "T1", "status": "FAILED", "progress": 10, "path": f"/bucket/{lone}/",
            "error_code": f"E{lone}", "error_msg": f"broke {lone}", "version_format": lone,
            "export_params": {"export_new_dataset_name": f"n{lone}", "samples": [lone],
                              "search_conditions": [{"sample_name": lone, "label_list": {
                                  "labels": [{"name": lone, "property": {lone: [lone]}}]}}]}}
    body = json.dumps(task).encode()
    with RawServer(answer("200 OK", body)) as server:
        parsed = ma_poll(server.url)
    texts = [parsed.destination, parsed.error_code, parsed.error_message, parsed.version_format,
             parsed.export_params.export_new_dataset_name, *parsed.export_params.samples,
             parsed.search_conditions[0].sample_name, parsed.search_conditions[0].label_list.labels[0].name,
             *parsed.search_conditions[0].label_list.labels[0].property]
    for text in texts:
        text.encode("utf-8")  # what jupyter_client and to_csv do
    json.dumps(parsed.raw, ensure_ascii=False).encode("utf-8")
    frames.summary(parsed).to_csv()
    frames.filters(parsed).to_csv()
    frames.params(parsed).to_csv()
    result = qf.parse_export_task({"exportStatus": "Exporting", "errorMessage": lone, "storagePath": lone},
                                  requested_id="task-1")
    assert result.error_message == "\ufffd" and result.destination == "\ufffd"


@pytest.mark.parametrize("raw_time", ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "1000-01-01 00:00:00"])
def test_qianfan_times_outside_pandas_range_become_missing(raw_time):
    task = qf.parse_export_task({"exportStatus": "ExportFinished", "startTime": raw_time, "finishTime": raw_time},
                                requested_id="task-1")
    assert task.created_at is None and task.finished_at is None and task.raw["startTime"] == raw_time
    frame = frames.summary(task)
    assert frame["created_at"].isna().all()


@pytest.mark.parametrize("epoch_ms", [-1, -62135596800000, 253402300799000, 10**17, "1e300"])
def test_modelarts_times_outside_pandas_range_become_missing(epoch_ms):
    with RawServer(answer("200 OK", json.dumps({"status": "RUNNING", "progress": 5, "create_time": epoch_ms,
                                                "update_time": epoch_ms}).encode())) as server:
        task = ma_poll(server.url)
    assert task.created_at is None and task.raw["create_time"] == epoch_ms
    frames.summary(task)  # used to raise OutOfBoundsDatetime


ODD = [5, True, "text", [1, [2]], {"k": {"n": 1}}, None, 1.5]


@pytest.mark.parametrize("odd", ODD, ids=[type(v).__name__ + str(i) for i, v in enumerate(ODD)])
def test_optional_nested_fields_of_odd_types_never_fail_the_parse(odd):
    shapes = [
        {"export_params": odd},
        {"export_params": {"search_conditions": odd}},
        {"export_params": {"samples": odd}},
        {"export_params": {"search_conditions": [odd]}},
        {"export_params": {"search_conditions": [{"label_list": odd}]}},
        {"export_params": {"search_conditions": [{"label_list": {"labels": odd}}]}},
        {"export_params": {"search_conditions": [{"label_list": {"labels": [odd]}}]}},
        {"export_params": {"search_conditions": [{"label_list": {"labels": [{"property": odd}]}}]}},
        {"export_params": {"search_conditions": [{"label_list": {"labels": [{"property": {"p": odd}}]}}]}},
        {"export_params": {"search_conditions": [{"metadata": odd}]}},
        {"export_params": {"search_conditions": [{"metadata": {"props": odd}}]}},
        {"export_params": {"search_conditions": [{"metadata": {"props": {"p": odd}}}]}},
        {"version_id": odd, "export_type": odd, "export_format": odd, "version_format": odd},
    ]
    for shape in shapes:
        task = ma.parse_export_task({"status": "RUNNING", "progress": 30, **shape})
        assert task.state is TaskState.RUNNING and task.progress == 30.0
        frames.summary(task), frames.filters(task), frames.params(task)


def test_modelarts_stopping_is_not_terminal():
    task = ma.parse_export_task({"status": "STOPPING", "progress": 40})
    assert task.state is TaskState.STOPPING and not task.is_terminal and task.finished_at is None
    assert ma.parse_export_task({"status": "STOPPED"}).is_terminal
    assert isinstance(TaskState.STOPPING, str) and TaskState("STOPPING") is TaskState.STOPPING


def test_modelarts_version_fields_are_on_the_task_and_in_the_summary():
    body = {"status": "SUCCESSED", "progress": 100, "version_id": "V9", "export_type": 3, "export_format": 1,
            "version_format": "CarbonData"}
    with RawServer(answer("200 OK", json.dumps(body).encode())) as server:
        task = ma_poll(server.url)
    assert (task.version_id, task.export_type, task.export_format, task.version_format) == ("V9", 3, 1,
                                                                                             "CarbonData")
    row = frames.summary(task).iloc[0]
    assert (row["version_id"], row["export_type"], row["export_format"], row["version_format"]) == (
        "V9", 3, 1, "CarbonData")
    assert list(frames.summary(task).columns[-4:]) == ["version_id", "export_type", "export_format",
                                                       "version_format"]


# -- redaction ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, secret", [
    ("see https://user:hunter2pass@files.example/x", "hunter2pass"),
    ("ftp://admin:hunter2pass@ftp.example", "hunter2pass"),
    ("obs://bucket/export.zip?AccessKeyId=AKX&Expires=1&Signature=obsSIGvalue", "obsSIGvalue"),
    ("s3://bucket/k.zip?X-Amz-Credential=c&X-Amz-Signature=s3SIGvalue", "s3SIGvalue"),
    ("path /x.zip?X-Amz-Signature=s3SIGvalue&a=b", "s3SIGvalue"),
    ("retry with Signature=bareSIGvalue please", "bareSIGvalue"),
    ("authorization=bce-auth-v1/ak/2024/300//sigBAREvalue", "sigBAREvalue"),
    ("X-Amz-Security-Token=tokVALUEvalue", "tokVALUEvalue"),
])
def test_redact_text_masks(text, secret):
    assert secret not in redact_text(text)
    assert redact_text("plain words, a=b and obs://bucket/dir/") == "plain words, a=b and obs://bucket/dir/"


def test_every_shown_field_is_redacted_at_one_boundary_whatever_field_it_came_in():
    ak = "ECHOEDACCESSKEY12345"
    register_secret(ak)
    signed = "obs://bucket/x.zip?AccessKeyId=k&Signature=obsSIGvalue"
    body = {"task_id": "T1", "status": "FAILED", "progress": 10, "error_code": f"Auth.{ak}",
            "error_msg": "see https://user:hunter2pass@host.example/x and Signature=bareSIGvalue",
            "path": signed,
            "export_params": {"export_dest": "NEW_DATASET", "export_new_dataset_name": f"copy-{ak}",
                              "export_new_dataset_work_path": "s3://b/w?X-Amz-Signature=s3SIGvalue"}}
    with RawServer(answer("200 OK", json.dumps(body).encode())) as server:
        task = ma_poll(server.url)
    shown = [repr(task), frames.summary(task).to_csv(), frames.params(task).to_csv(),
             frames.filters(task).to_csv(), str(task.destination)]
    for text in shown:
        for secret in (ak, "hunter2pass", "obsSIGvalue", "bareSIGvalue", "s3SIGvalue"):
            assert secret not in text, (secret, text)
    assert task.destination == "new dataset copy-***"
    assert redact_url(signed) == "obs://bucket/x.zip?***"
    qtask = qf.parse_export_task({"exportStatus": "ExportFailed", "errorCode": ak,
                                  "storagePath": "bos://b/x?authorization=bce-auth-v1/a/b"}, requested_id="t")
    assert ak not in (qtask.error_code or "") and "bce-auth-v1/a" not in (qtask.destination or "")


def test_http_library_debug_logs_carry_no_signed_query(caplog):
    caplog.set_level(logging.DEBUG)
    with RawServer(answer("200 OK", b'{"status": "RUNNING"}')) as server:
        ma_poll(server.url)  # creating a client installs the filter
    pool = logging.getLogger("urllib3.connectionpool")
    pool.debug('%s://%s:%s "%s %s %s" %s %s', "https", "obs.example", 443, "GET",
               "/x.zip?AccessKeyId=k&Signature=logSIGvalue", "HTTP/1.1", 200, 10)
    logging.getLogger("urllib3.poolmanager").info("Redirecting %s -> %s", "https://a.example/x",
                                                  "https://b.example/y?X-Amz-Signature=logSIGvalue2")
    text = caplog.text
    assert "GET /v2/p1/datasets/DS1/export-tasks/T1" in text  # the stack's own lines are still there
    assert "logSIGvalue" not in text and "Signature=***" in text
