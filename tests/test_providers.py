"""The provider contract: registry, factory, one classifier, and a third provider added with one module + one line."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import export_widgets
from export_widgets import ExportTask, QianfanClient, TaskState, providers, watch
from export_widgets.cli import main
from export_widgets.errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    Outcome,
    RateLimitedError,
    ResponseFormatError,
    TaskNotFoundError,
    TransportError,
    classify_error,
)
from export_widgets.monitor import ExportMonitor, MonitorStatus
from export_widgets.providers import ClientSettings, EnvNames, ProviderClient, TaskRef
from export_widgets.providers.modelarts import ERROR_CODES as MA_CODES
from export_widgets.providers.qianfan import ERROR_CODES as QF_CODES
from export_widgets.simulator import TaskSpec, serve

README = Path(__file__).resolve().parents[1] / "README.md"


# -- a third provider: this class plus one registry line is all it takes ---------------------------------------

class FakeClient:
    """An in-memory provider: every fetch moves a task 50 points on, so it succeeds on the second poll."""

    name: ClassVar[str] = "fake"
    label: ClassVar[str] = "Fake"
    needs_dataset: ClassVar[bool] = False
    env: ClassVar[EnvNames] = EnvNames(access_key="FAKE_AK", secret_key="FAKE_SK", endpoint="FAKE_ENDPOINT")
    settings_used: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    fetched: ClassVar[list[TaskRef]] = []

    def __init__(self, endpoint: str) -> None:
        self.base_url = endpoint

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> FakeClient:
        endpoint = settings.endpoint or (settings.environ or {}).get("FAKE_ENDPOINT")
        if not endpoint:
            raise ConfigError("Fake needs --endpoint URL (or env FAKE_ENDPOINT)")
        return cls(endpoint)

    @classmethod
    def claims_task_id(cls, task_id: str) -> bool:
        return task_id.startswith("fake-")

    def fetch(self, ref: TaskRef) -> ExportTask:
        self.fetched.append(ref)
        if ref.task_id == "fake-missing":
            raise TaskNotFoundError(provider=self.name, operation="Describe", http_status=404, code="NoSuchTask")
        progress = min(100.0, 50.0 * sum(seen == ref for seen in self.fetched))
        state = TaskState.SUCCEEDED if progress >= 100 else TaskState.RUNNING
        return ExportTask(provider=self.name, task_id=ref.task_id, state=state, raw_status=state.value,
                          progress=progress, finished_samples=int(progress), total_samples=100)

    def close(self) -> None:
        pass


@pytest.fixture
def fake_provider() -> Iterator[type[FakeClient]]:
    FakeClient.fetched = []
    providers.register(FakeClient)  # the one line a new provider adds to providers/__init__.py
    yield FakeClient
    del providers.REGISTRY[FakeClient.name]


def test_the_fake_client_meets_the_contract(fake_provider):
    assert isinstance(FakeClient("x"), ProviderClient)
    assert providers.get_provider("FAKE") is FakeClient
    assert providers.provider_label("fake") == "Fake"
    assert providers.infer_provider("fake-1") == "fake"


def test_a_third_provider_is_watched_through_watch(fake_provider):
    client = providers.make_client("fake", endpoint="mem://fake")
    monitor = watch(client, "fake-1", interval=0.05)
    assert monitor.wait(timeout=30) is not None
    assert monitor.status is MonitorStatus.FINISHED and monitor.latest.state is TaskState.SUCCEEDED
    assert [r.outcome for r in monitor.history] == ["ok", "ok"]
    assert monitor.ref == TaskRef("fake", "fake-1")


def test_a_third_provider_is_watched_through_the_magic(fake_provider):
    config = Config()
    config.HistoryAccessor.enabled = False
    shell = InteractiveShell(config=config)
    shell.run_line_magic("load_ext", "export_widgets")
    try:
        shell.run_line_magic("export_status", "--provider fake --endpoint mem://fake fake-2 --interval 0.05 "
                                              "--wait -o mon")
        monitor = shell.user_ns["mon"]
        assert isinstance(monitor, ExportMonitor) and monitor.latest.state is TaskState.SUCCEEDED
        # the provider is inferred from the id, and its errors are one-line UsageErrors like everyone's
        with pytest.raises(UsageError, match="Fake Describe failed.*NoSuchTask"):
            shell.run_line_magic("export_status", "--endpoint mem://fake fake-missing --wait")
        with pytest.raises(UsageError, match=r"invalid choice 'nope' \(choose from modelarts, qianfan, fake\)"):
            shell.run_line_magic("export_status", "--provider nope T1")
    finally:
        shell.run_line_magic("unload_ext", "export_widgets")


def test_a_third_provider_is_watched_through_the_cli(fake_provider):
    out, err = io.StringIO(), io.StringIO()
    code = main(["watch", "--provider", "fake", "--interval", "0.05", "fake-3"], stdout=out, stderr=err,
                environ={"FAKE_ENDPOINT": "mem://fake"})
    assert code == 0, err.getvalue()
    assert re.search(r"Fake fake-3 SUCCEEDED 100\.0%", out.getvalue())
    code = main(["status", "--provider", "fake", "--region", "cn-north-4", "fake-3"], stdout=out, stderr=err,
                environ={"FAKE_ENDPOINT": "mem://fake"})
    assert code == 2 and "--region applies to --provider modelarts only" in err.getvalue()


# -- the factory ---------------------------------------------------------------------------------------------

def test_the_factory_builds_each_provider_from_settings_then_environment():
    with serve([TaskSpec("modelarts", "MaOne", duration=1), TaskSpec("qianfan", "task-one", duration=1)]) as sim:
        ma = providers.make_client("modelarts", environ=sim.env)  # endpoint, project and keys from the env
        qf = providers.make_client("qianfan", ClientSettings(endpoint=sim.url, environ=sim.env))
        assert ma.fetch(TaskRef("modelarts", "MaOne", sim.dataset_id)).task_id == "MaOne"
        assert qf.fetch(TaskRef("qianfan", "task-one")).task_id == "task-one"
    with pytest.raises(ConfigError, match="ModelArts needs a project id"):
        providers.make_client("modelarts", environ={})
    with pytest.raises(ConfigError, match="unknown provider 'azure'"):
        providers.make_client("azure")


# -- one classifier, plain attributes ------------------------------------------------------------------------

@pytest.mark.parametrize(("codes", "status", "code", "error_class", "outcome", "transient"), [
    (MA_CODES, 429, "", RateLimitedError, Outcome.RATE_LIMITED, True),
    (MA_CODES, 400, "APIG.0308", RateLimitedError, Outcome.RATE_LIMITED, True),
    (MA_CODES, 401, "APIGW.0301", AuthenticationError, Outcome.AUTH, False),
    (MA_CODES, 400, "ModelArts.4359", TaskNotFoundError, Outcome.NOT_FOUND, False),
    (MA_CODES, 503, "", APIError, Outcome.SERVER_ERROR, True),
    (MA_CODES, 400, "ModelArts.4201", APIError, Outcome.API_ERROR, False),
    (QF_CODES, 200, "InternalError", APIError, Outcome.SERVER_ERROR, True),
    (QF_CODES, 200, "QPSLimitReached", RateLimitedError, Outcome.RATE_LIMITED, True),
    (QF_CODES, 403, "AccessDenied", AuthenticationError, Outcome.AUTH, False),
    (QF_CODES, 404, "", TaskNotFoundError, Outcome.NOT_FOUND, False),
])
def test_one_classifier_sets_plain_attributes(codes, status, code, error_class, outcome, transient):
    error = classify_error(codes, provider="x", operation="Op", http_status=status, code=code, message="m",
                           request_id="r-1")
    assert type(error) is error_class
    assert (error.outcome, error.transient, error.code, error.request_id) == (outcome, transient, code, "r-1")


@pytest.mark.parametrize("status", [429, 502, 503, 504])
@pytest.mark.parametrize("header", ["7", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_read_on_every_status_that_carries_it(status, header):
    error = classify_error(MA_CODES, provider="modelarts", operation="Op", http_status=status, code="",
                           message="", request_id="", headers={"Retry-After": header})
    assert error.retry_after == (7.0 if header == "7" else 3600.0)  # an HTTP date far ahead is capped


class _Unavailable(BaseHTTPRequestHandler):
    """A gateway in maintenance: 503 with ``Retry-After: 9`` to everything."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"requestId": "r-503", "code": "ServiceUnavailable", "message": "maintenance"}'
        self.send_response(503)
        self.send_header("Retry-After", "9")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_retry_after_on_a_503_is_honoured_by_the_monitor():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = QianfanClient(ak="A" * 32, sk="S" * 32, endpoint=f"http://127.0.0.1:{server.server_port}",
                               environ={})
        monitor = ExportMonitor(client, "task-503", start=False)
        delay = monitor.poll_once()
        assert monitor.history.row(-1).outcome == "server_error" and monitor.status is MonitorStatus.RUNNING
        assert delay is not None and delay >= 9.0  # without the header the first retry comes after ~2 s
    finally:
        server.shutdown()
        server.server_close()


def test_every_error_class_says_how_a_poll_is_recorded():
    common = {"provider": "qianfan", "operation": "Op", "http_status": 200}
    assert ConfigError("x").outcome is Outcome.CONFIG and not ConfigError("x").transient
    assert TransportError("x").outcome is Outcome.TRANSPORT and TransportError("x").transient
    assert ResponseFormatError(**common).outcome is Outcome.BAD_RESPONSE and ResponseFormatError(**common).transient
    assert [outcome.label for outcome in Outcome][:3] == ["ok", "transport_error", "rate_limited"]
    assert MonitorStatus.RUNNING == "running" and str(MonitorStatus.TIMED_OUT) == "timed_out"


# -- the public API --------------------------------------------------------------------------------------------

def test_the_public_names_are_sorted_importable_and_documented():
    names = export_widgets.__all__
    assert names == sorted(names)
    readme = README.read_text(encoding="utf-8")
    for name in names:
        assert getattr(export_widgets, name) is not None
        if not name.startswith("__"):
            assert f"`{name}" in readme or f"{name}(" in readme or f" {name}," in readme, name
