"""Property tests (hypothesis): parsers, the clients' whole response handling, both signers, redaction and the
monitor's bookkeeping. The one property everywhere: only the project's own typed errors
(:class:`ExportWidgetsError` subclasses) may escape, whatever a server sends.

Example counts are moderate (the whole reliability suite stays well under 90 s); ``HYPOTHESIS_PROFILE=deep``
runs ten times as many.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from export_widgets import ExportTask, ModelArtsClient, QianfanClient, TaskState, frames, render
from export_widgets.errors import ExportWidgetsError, Outcome, ResponseFormatError, TransportError
from export_widgets.monitor import Backoff, ExportMonitor, _outcome_of
from export_widgets.providers import modelarts as ma
from export_widgets.providers import qianfan as qf
from export_widgets.redact import redact_text, redact_url
from export_widgets.signing import BceAuth, SdkHmacAuth
from export_widgets.simulator import serve
from export_widgets.simulator.verify import verify_bce, verify_sdk_hmac

settings.register_profile("reliability", max_examples=80, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reliability"))

# -- strategies -----------------------------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=16)
_numbers = st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
_scalars = st.none() | st.booleans() | _numbers | _text | st.sampled_from(
    ["45%", "100%", "0", "", " 12.5 % ", "1e400", "-1", "NaN", "inf", "2024-06-01 12:00:00", "1717243200000"])
json_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(_text, kids, max_size=4), max_leaves=12)


def _objects(keys):
    return st.fixed_dictionaries({}, optional={key: json_values for key in keys}) | st.dictionaries(
        st.sampled_from(keys) | _text, json_values, max_size=6)


_labels = st.fixed_dictionaries({}, optional={"labels": json_values | st.lists(_objects(
    ["name", "type", "op", "property"]), max_size=3), "op": json_values})
_conditions = st.lists(st.fixed_dictionaries({}, optional={
    "label_list": _labels | json_values, "metadata": _objects(["op", "props"]) | json_values,
    "frame_in_video": json_values, "sample_dir": json_values, "score": json_values}) | json_values, max_size=3)
_params = st.fixed_dictionaries({}, optional={
    "search_conditions": _conditions | json_values, "samples": json_values, "sample_state": json_values,
    "export_dest": json_values, "export_new_dataset_name": json_values, "train_sample_ratio": json_values,
    "clear_hard_property": json_values, "ratio_sample_usage": json_values})
MA_KEYS = ["task_id", "status", "progress", "finished_sample_count", "total_sample_count", "create_time",
           "update_time", "path", "error_code", "error_msg", "error_message", "export_type", "export_format"]
QF_KEYS = ["taskId", "exportStatus", "progress", "sampleCount", "sizeMB", "startTime", "finishTime",
           "storagePath", "downloadUrl", "errorCode", "errorMessage", "code", "message"]
modelarts_tasks = st.builds(lambda base, params: {**base, **({"export_params": params} if params else {})},
                            _objects(MA_KEYS), st.none() | _params | json_values)
qianfan_results = _objects(QF_KEYS)


def _check_task(task: ExportTask) -> None:
    """Invariants of any parsed task, and everything that displays one must work on it."""
    assert isinstance(task.state, TaskState) and isinstance(task.raw_status, str)
    assert task.progress is None or 0.0 <= task.progress <= 100.0
    for count in (task.finished_samples, task.total_samples):
        assert count is None or (isinstance(count, int) and count >= 0)
    assert task.size_mb is None or math.isfinite(task.size_mb)
    for moment in (task.created_at, task.updated_at, task.finished_at):
        assert moment is None or moment.tzinfo is not None
    repr(task)
    render.status_line(task.provider, task.task_id, task, _no_figures())
    render.details_html(task)
    render.task_table([task])
    frame = frames.summary([task])
    assert len(frame) == 1
    frame.to_csv()
    if task.export_params is not None:
        frames.filters(task)
        frames.params(task)


def _no_figures():
    from export_widgets.figures import compute_figures

    return compute_figures(None, [], [], now=0.0, first_poll=None, stall_after=300.0)


# -- the parsers ----------------------------------------------------------------------------------------------

@given(data=modelarts_tasks)
def test_modelarts_parser_never_raises_on_any_object(data):
    _check_task(ma.parse_export_task(data, dataset_id="DS1", requested_id="T1"))


@given(data=qianfan_results)
def test_qianfan_parser_never_raises_on_any_object(data):
    _check_task(qf.parse_export_task(data, requested_id="task-1"))


@given(data=json_values.filter(lambda v: not isinstance(v, dict)))
def test_parsers_reject_non_objects_with_a_typed_error(data):
    for parse in (lambda: ma.parse_export_task(data), lambda: qf.parse_export_task(data, requested_id="t")):
        with pytest.raises(ResponseFormatError):
            parse()


# -- the clients' whole response handling (status, headers, body bytes) ---------------------------------------

class CannedAdapter(requests.adapters.BaseAdapter):
    """Answers every request with one canned response, without a socket."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__()
        self.status, self.headers, self.body = status, headers, body

    def send(self, request, **kwargs):  # noqa: ANN001
        response = requests.Response()
        response.status_code = self.status
        response.headers = CaseInsensitiveDict(self.headers)
        response._content = self.body
        response.url, response.request, response.reason = request.url, request, "Canned"
        response.elapsed = timedelta(milliseconds=1)
        return response

    def close(self) -> None:
        pass


def _session(status, headers, body):
    session = requests.Session()
    session.mount("http://", CannedAdapter(status, headers, body))
    return session


_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    modelarts_tasks.map(lambda v: json.dumps(v).encode()),
    qianfan_results.map(lambda v: json.dumps({"requestId": "r", "result": v}).encode()),
    st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values, "requestId": json_values,
                                        "result": json_values, "error_code": json_values,
                                        "error_msg": json_values}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"", b"<html><body>502</body></html>", b"{", b"null", b"[]", b'"x"', b"\xff\xfe",
                     b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000]),
)
_statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504]) | \
    st.integers(100, 599)
_headers = st.fixed_dictionaries({}, optional={
    "Retry-After": _text | st.sampled_from(["5", "-3", "1e9", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT",
                                            "Mon, 99 Foo 99999 99:99:99 GMT", "0"]),
    "Content-Type": st.sampled_from(["application/json", "text/html", "text/plain; charset=utf-8", ""]) | _text,
    "X-Request-Id": _text, "X-Bce-Request-Id": _text, "X-Bce-Error-Code": _text, "X-Bce-Error-Message": _text})


def _call(provider, status, headers, body):
    session = _session(status, headers, body)
    if provider == "modelarts":
        client = ModelArtsClient(project_id="p" * 32, endpoint="http://fuzz.invalid", ak="A" * 20, sk="S" * 40,
                                 environ={}, session=session)
        return lambda: client.get_export_task("DS1", "T1")
    client = QianfanClient(ak="a" * 32, sk="s" * 32, endpoint="http://fuzz.invalid", environ={}, session=session)
    return lambda: client.get_export_task("task-1")


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@given(status=_statuses, headers=_headers, body=_bodies)
def test_clients_turn_any_answer_into_a_task_or_a_typed_error(provider, status, headers, body):
    call = _call(provider, status, headers, body)
    try:
        task = call()
    except ExportWidgetsError as exc:
        text = str(exc)
        assert text and "\n" not in text, text
        outcome, _permanent = _outcome_of(exc)
        assert outcome != Outcome.INTERNAL  # the monitor can classify it
        retry_after = getattr(exc, "retry_after", None)
        assert retry_after is None or 0.0 <= retry_after <= 3600.0
    else:
        assert 200 <= status < 300
        _check_task(task)


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("depth", [900, 100_000])
def test_deeply_nested_json_is_a_task_or_a_typed_error(provider, status, depth):
    """A body nested deeper than the JSON decoder's recursion limit must not escape as RecursionError."""
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"{}" + b"}" * depth):
        try:
            task = _call(provider, status, {"Content-Type": "application/json"}, body)()
        except ExportWidgetsError as exc:
            assert "\n" not in str(exc)
        else:  # a (deep but parseable) object with no task fields is a task with nothing known
            assert status == 200 and provider == "modelarts" and task.state is TaskState.UNKNOWN


# -- the signers verify in the simulator's verifier -------------------------------------------------------------

AK, SK = "HPUAFUZZAK0000000001", "FuzzSecretKey0123456789abcdefghijklmnopq"
_ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=16)
_pairs = st.lists(st.tuples(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
                            st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)),
                  max_size=4)
_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])


def _secret_for(ak):
    return SK if ak == AK else None


def _wire(prepared):
    """(raw path, raw query) as they go on the wire (the request target urllib3 sends)."""
    target = prepared.path_url
    path, _, query = target.partition("?")
    return path, query


@given(method=_methods, segments=st.lists(_ids, min_size=1, max_size=3), pairs=_pairs,
       body=st.none() | st.binary(max_size=32), token=st.none() | st.text(
           alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=8, max_size=20))
def test_sdk_hmac_signatures_verify_for_arbitrary_paths_and_queries(method, segments, pairs, body, token):
    assume(all(s not in (".", "..") for s in segments))
    url = "http://127.0.0.1:8080/v2/" + "/".join(quote(s, safe="") for s in segments)
    prepared = requests.Request(method, url, params=pairs, data=body,
                                headers={"Content-Type": "application/json", "User-Agent": "fuzz"}).prepare()
    SdkHmacAuth(AK, SK, token)(prepared)
    path, query = _wire(prepared)
    raw_body = prepared.body.encode() if isinstance(prepared.body, str) else (prepared.body or b"")
    verdict = verify_sdk_hmac(method, path, query, dict(prepared.headers), raw_body, _secret_for, time.time())
    assert verdict.ok, (verdict, path, query)
    tampered = verify_sdk_hmac(method, path + "x", query, dict(prepared.headers), raw_body, _secret_for,
                               time.time())
    assert not tampered.ok


@given(method=_methods, segments=st.lists(_ids, min_size=1, max_size=3), pairs=_pairs,
       expiration=st.integers(1, 3600))
def test_bce_signatures_verify_for_arbitrary_paths_and_queries(method, segments, pairs, expiration):
    assume(all(s not in (".", "..") for s in segments))
    url = "http://127.0.0.1:8080/v2/" + "/".join(quote(s, safe="") for s in segments)
    prepared = requests.Request(method, url, params=pairs, data=b"{}",
                                headers={"Content-Type": "application/json"}).prepare()
    BceAuth(AK, SK, expiration=expiration)(prepared)
    path, query = _wire(prepared)
    verdict = verify_bce(method, path, query, dict(prepared.headers), _secret_for, time.time())
    assert verdict.ok, (verdict, path, query)
    assert not verify_bce(method, path, query + "&x=1", dict(prepared.headers), _secret_for, time.time()).ok


@pytest.fixture(scope="module")
def fuzz_sim():
    with serve([]) as sim:
        yield sim


@settings(max_examples=40)
@given(task_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,40}", fullmatch=True).filter(lambda s: ".." not in s),
       dataset_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,20}", fullmatch=True))
def test_modelarts_requests_for_any_valid_id_pass_the_gateway(fuzz_sim, task_id, dataset_id):
    client = fuzz_sim.modelarts_client()
    with pytest.raises(ExportWidgetsError):  # no such task/dataset, but the signature was accepted
        client.get_export_task(dataset_id, task_id)
    seen = fuzz_sim.requests[-1]
    assert seen.auth_ok is True and seen.task_id == task_id and seen.operation == "GetExportTaskStatusOfDataset"
    client.close()


@settings(max_examples=40)
@given(task_id=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
                       min_size=1, max_size=24))
def test_qianfan_requests_for_any_printable_id_pass_the_gateway(fuzz_sim, task_id):
    assume(task_id.strip() == task_id and not any(ch.isspace() for ch in task_id))
    client = fuzz_sim.qianfan_client()
    with pytest.raises(ExportWidgetsError):
        client.get_export_task(task_id)
    seen = fuzz_sim.requests[-1]
    assert (seen.auth_ok, seen.task_id, seen.path) == (True, task_id, "/v2/dataset")
    client.close()


# -- redaction --------------------------------------------------------------------------------------------------

_sig = st.text(alphabet="0123456789abcdef", min_size=24, max_size=40).map(lambda s: "SIG" + s)


@given(text=_text | st.text(max_size=200))
def test_redaction_never_raises(text):
    assert isinstance(redact_text(text), str)
    assert redact_url(text) is None or isinstance(redact_url(text), str)


@given(host=st.from_regex(r"[a-z][a-z0-9\-]{0,12}(\.[a-z]{2,5}){0,2}", fullmatch=True),
       port=st.none() | st.integers(-5, 99999).map(str) | st.sampled_from(["abc", "", "8o80"]),
       path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz/._-", max_size=20), sig=_sig,
       scheme=st.sampled_from(["http", "https", "HTTPS"]))
def test_a_signed_url_never_shows_its_query(host, port, path, sig, scheme):
    url = f"{scheme}://{host}{'' if port is None else ':' + port}/{path}?authorization=bce-auth-v1%2Fak%2F{sig}"
    for shown in (redact_url(url), redact_text(f"download it from {url} now"),
                  repr(ExportTask(provider="qianfan", task_id="t", state=TaskState.SUCCEEDED, download_url=url))):
        assert sig not in shown and "authorization=" not in shown, shown
    task = ExportTask(provider="qianfan", task_id="t", state=TaskState.SUCCEEDED, download_url=url)
    assert sig not in frames.summary([task]).to_csv() and sig not in render.details_html(task)


# -- the monitor's bookkeeping under any sequence of answers ---------------------------------------------------

_answers = st.lists(st.one_of(
    qianfan_results.map(lambda r: ("task", r)),
    st.sampled_from(["transport", "rate", "rate_retry", "server", "format", "config", "bug"]).map(lambda k: (k, None)),
), min_size=1, max_size=25)


class _ScriptedClient:
    provider = "qianfan"

    def __init__(self, answers):
        self.answers, self.calls = list(answers), 0

    def get_export_task(self, task_id):
        from export_widgets.errors import APIError, ConfigError, RateLimitedError

        kind, data = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        common = dict(provider="qianfan", operation="DescribeExportTask", code="X", message="m")
        if kind == "task":
            return qf.parse_export_task(data, requested_id=task_id)
        raise {"transport": TransportError("down"), "rate": RateLimitedError(http_status=429, **common),
               "rate_retry": RateLimitedError(http_status=429, retry_after=3600.0, **common),
               "server": APIError(http_status=503, **common),
               "format": ResponseFormatError(http_status=200, **common),
               "config": ConfigError("bad"), "bug": KeyError("surprise")}[kind]


@given(answers=_answers)
def test_every_poll_is_one_row_and_the_monitor_never_raises(answers):
    from export_widgets.simulator import FakeClock

    clock, client = FakeClock(), _ScriptedClient(answers)
    monitor = ExportMonitor(client, "task-fuzz", start=False, clock=clock.now, rng=random.Random(0),
                            timeout=7 * 24 * 3600)
    for _ in range(len(answers)):
        before = len(monitor.history)
        delay = monitor.poll_once()
        if monitor.done:
            assert delay is None
            break
        assert len(monitor.history) == before + 1 == client.calls
        # never a zero or runaway delay; Retry-After (capped at an hour) is honoured, plus jitter
        assert delay is not None and 0 < delay <= 3600.0 * 1.2 and math.isfinite(delay)
        clock.advance(delay)
    assert len(monitor.history) == client.calls
    if monitor.status == "error":
        assert isinstance(monitor.error, ExportWidgetsError) and "\n" not in str(monitor.error)
    frames.history(monitor).to_csv()
    render.snapshot_html(monitor)


@given(consecutive=st.integers(0, 10**9), floor=st.floats(0.01, 100), cap=st.floats(0.01, 3600),
       retry_after=st.none() | st.floats(0, 3600))
def test_backoff_stays_between_floor_and_cap(consecutive, floor, cap, retry_after):
    backoff = Backoff(floor=floor, cap=max(floor, cap))
    delay = backoff.after_error(consecutive, retry_after)
    assert backoff.floor <= delay <= max(backoff.cap, retry_after or 0.0)
    jittered = backoff.jittered(delay, random.Random(consecutive))
    assert backoff.floor <= jittered <= delay * (1 + backoff.jitter) + 1e-9
