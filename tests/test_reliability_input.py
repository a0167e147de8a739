"""Bad input: odd task ids, unknown providers, bad endpoints, bad numbers.

Each gets a one-line :class:`ExportWidgetsError` (``ConfigError``) -- a ``UsageError`` in the magic -- or is
sent safely encoded; no input ever makes a request to a path other than the two the APIs define (asserted on
the simulator's request log).
"""

from __future__ import annotations

import math
import random
import re

import pytest
from ipshell import magic_shell
from IPython.core.error import UsageError

from export_widgets import ModelArtsClient, QianfanClient, TaskState, watch
from export_widgets.errors import ConfigError, ExportWidgetsError, TaskNotFoundError
from export_widgets.monitor import ExportMonitor
from export_widgets.simulator import TaskSpec

BAD_IDS = ["", " ", "a b", "a/b", "../x", "..", "a..b", "x/../y", "%2F", "a%2Fb", "a?b=1", "a#b", "a\nb", "a\tb",
           "a\x00b", "émoji😀", "任务", "a;b", "a\\b", "-leading-dash", ".hidden", "a" * 200, None, 123]
QIANFAN_REJECTED = ["", " ", "a b", "task-a b", "a\nb", "a\tb", "a\x00b", "\u3000", None, 123]
QIANFAN_ENCODED = ["task-a/b", "../../etc/passwd", "task-../..", "task-é😀", "任务-1", "task-?Action=Other",
                   "task-%2F%2e%2e", 'task-"quoted"', "task-\\back", "task-&x=1", "task-<b>"]


def allowed_path(sim, path: str) -> bool:
    """The only paths a client may ever ask for."""
    modelarts = rf"/v2/{re.escape(sim.project_id)}/datasets/[A-Za-z0-9_.\-]+/export-tasks(/[A-Za-z0-9_.\-]+)?"
    return bool(re.fullmatch(modelarts, path) or path == "/v2/dataset")


@pytest.fixture(autouse=True)
def only_intended_paths(request):
    """After each test, every request the simulator saw went to one of the two API paths."""
    sims = [request.getfixturevalue(name) for name in ("sim", "empty_sim") if name in request.fixturenames]
    yield  # (set up after the simulators, so this runs before they stop)
    for sim in sims:
        bad = [r.path for r in sim.requests if not allowed_path(sim, r.path)]
        assert not bad, f"requests to unintended paths: {bad}"


def assert_one_line(error):
    text = str(error)
    assert text and "\n" not in text and "\r" not in text and len(text) < 500, text


# -- task ids ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_modelarts_ids_are_config_errors_before_any_request(sim, bad):
    client = sim.modelarts_client()
    for call in (lambda: client.get_export_task(sim.dataset_id, bad),
                 lambda: client.get_export_task(bad, "rF9NNoB56k5rtYKg2Y7"),
                 lambda: client.list_export_tasks(bad)):
        with pytest.raises(ConfigError) as info:
            call()
        assert_one_line(info.value)
    assert sim.request_count() == 0


@pytest.mark.parametrize("bad", ["", "a/b", "../p", "p?x", "p p", None])
def test_bad_project_ids_are_config_errors(sim, bad):
    with pytest.raises(ConfigError) as info:
        sim.modelarts_client(project_id=bad)
    assert_one_line(info.value)


@pytest.mark.parametrize("bad", ["a/b", "../x", "a b", "", "émoji😀"], ids=repr)
def test_a_monitor_on_a_bad_id_ends_with_a_config_error_and_no_request(sim, bad):
    monitor = ExportMonitor(sim.modelarts_client(), bad, sim.dataset_id, start=False, clock=sim.clock.now)
    assert monitor.poll_once() is None
    assert monitor.status == "error" and isinstance(monitor.error, ConfigError)
    assert [r.outcome for r in monitor.history] == ["config_error"]
    assert_one_line(monitor.error)
    assert sim.request_count() == 0


@pytest.mark.parametrize("bad", QIANFAN_REJECTED, ids=repr)
def test_blank_or_control_qianfan_ids_are_config_errors(sim, bad):
    with pytest.raises(ConfigError) as info:
        sim.qianfan_client().get_export_task(bad)
    assert_one_line(info.value)
    assert sim.request_count() == 0


@pytest.mark.parametrize("odd", QIANFAN_ENCODED, ids=repr)
def test_odd_qianfan_ids_travel_in_the_json_body_intact(sim, odd):
    """Qianfan ids go in the JSON body, never in the URL: any printable id is safe and arrives unchanged."""
    with pytest.raises(TaskNotFoundError) as info:
        sim.qianfan_client().get_export_task(odd)
    assert_one_line(info.value)
    seen = sim.requests[-1]
    assert (seen.path, seen.operation, seen.task_id, seen.auth_ok) == ("/v2/dataset", "DescribeExportTask", odd, True)


def test_an_odd_qianfan_id_that_exists_is_found_and_watched(empty_sim):
    odd = "task-é😀/../<b>"
    empty_sim.add_task(TaskSpec("qianfan", odd, duration=4))
    monitor = ExportMonitor(empty_sim.qianfan_client(), odd, start=False, clock=empty_sim.clock.now,
                            rng=random.Random(0))
    while (delay := monitor.poll_once()) is not None:
        empty_sim.clock.advance(delay)
    assert monitor.latest.state is TaskState.SUCCEEDED and monitor.latest.task_id == odd
    assert {r.task_id for r in empty_sim.requests} == {odd}


# -- providers, endpoints, numbers ----------------------------------------------------------------------------

@pytest.mark.parametrize("client", ["modelarts", None, object(), 42], ids=repr)
def test_something_that_is_not_a_client_is_a_config_error(client):
    with pytest.raises(ConfigError) as info:
        watch(client, "T1", "DS1")
    assert_one_line(info.value)


BAD_ENDPOINTS = ["ftp://h", "h:8080", "127.0.0.1:8080", "http://", "http://:80", "http://h:99999", "http://h:-1",
                 "http://h:port", "http://h/?a=1", "http://h#frag", "javascript:alert(1)", "file:///etc/passwd",
                 "http://u:p@h", "   "]


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
def test_bad_endpoints_are_config_errors(endpoint):
    with pytest.raises(ConfigError) as info:
        ModelArtsClient(project_id="p" * 32, endpoint=endpoint, ak="A" * 20, sk="S" * 40, environ={})
    assert_one_line(info.value)
    with pytest.raises(ConfigError) as info:
        QianfanClient(ak="A" * 32, sk="S" * 32, endpoint=endpoint, environ={})
    assert_one_line(info.value)


@pytest.mark.parametrize("region", ["../evil", "cn-north-4/../x", "mars-1", "", "eu-de"])
def test_bad_regions_are_config_errors(region):
    with pytest.raises(ConfigError) as info:
        ModelArtsClient(project_id="p" * 32, region=region, ak="A" * 20, sk="S" * 40, environ={})
    assert_one_line(info.value)


@pytest.mark.parametrize("name", ["interval", "timeout", "stall_after", "max_interval"])
@pytest.mark.parametrize("value", [-1, 0, -0.0, math.nan, "abc"])
def test_bad_numbers_are_config_errors(sim, name, value):
    with pytest.raises((ConfigError, TypeError, ValueError)) as info:
        ExportMonitor(sim.qianfan_client(), "task-7f3a9c1e2b", start=False, **{name: value})
    if isinstance(info.value, ConfigError):
        assert_one_line(info.value)
    assert sim.request_count() == 0


# -- the magic ------------------------------------------------------------------------------------------------

@pytest.fixture
def shell(sim, monkeypatch):
    for name, value in sim.env.items():
        monkeypatch.setenv(name, value)
    with magic_shell() as ip:
        yield ip


@pytest.mark.parametrize("line, message", [
    ('--provider modelarts --dataset {ds} --endpoint {url} "../../x"', "not a valid id"),
    ('--provider modelarts --dataset {ds} --endpoint {url} "a/b"', "not a valid id"),
    ('--provider modelarts --dataset "../{ds}" --endpoint {url} T1', "not a valid id"),
    ('--provider modelarts --dataset {ds} --endpoint {url} "émoji😀"', "not a valid id"),
    ('--provider qianfan "task-a b"', "not a valid Qianfan task id"),
    ('--provider qianfan ""', "not a valid Qianfan task id"),
    ('""', "cannot tell the provider"),
    ("--provider azure task-1", "invalid choice"),
    ("--provider modelarts --dataset D --endpoint ftp://h T1", "not a valid base URL"),
    ("--provider qianfan --endpoint http://h:99999 task-1 --once", "not a valid base URL"),
    ("task-1 --interval -1", "--interval must be a positive"),
    ("task-1 --interval 0", "--interval must be a positive"),
    ("task-1 --interval nan", "--interval must be a positive"),
    ("task-1 --interval inf", "interval must be a positive"),
    ("task-1 --timeout -5", "--timeout must be a positive"),
    ("task-1 --interval abc", "invalid float value"),
])
def test_magic_bad_input_is_a_one_line_usage_error(shell, sim, line, message):
    line = line.replace("{ds}", sim.dataset_id).replace("{url}", sim.url)
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("export_status", line)
    assert message in str(info.value)
    assert_one_line(info.value)
    assert sim.request_count() == 0


def test_magic_odd_qianfan_id_is_sent_encoded(shell, sim):
    with pytest.raises(UsageError, match="ResourceNotFound"):
        shell.run_line_magic("export_status", '--provider qianfan "task-../../x?Action=Other" --once')
    assert [(r.path, r.operation, r.task_id) for r in sim.requests] == [
        ("/v2/dataset", "DescribeExportTask", "task-../../x?Action=Other")]


def test_every_error_type_is_an_export_widgets_error():
    assert issubclass(ConfigError, ExportWidgetsError) and issubclass(ConfigError, ValueError)
