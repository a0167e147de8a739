"""Fault matrix: every simulator fault, both providers, through real HTTP, at the level of the monitor.

Each scenario drives an :class:`ExportMonitor` with ``poll_once()`` and the simulator's FakeClock (the monitor
reads the same clock and the test advances it by exactly the delay the monitor asked for), so ten simulated
minutes take milliseconds. For every fault we check the three promises of the monitor:

* **transient** faults: the monitor keeps going, backs off, and reaches the task's final state once the fault
  clears; **permanent** ones end it at once with one clear one-line error (``monitor.error``,
  ``status == "error"``) and no further request;
* every poll, failed or not, is one row of ``monitor.history`` (rows == requests the simulator saw, plus the
  polls that never reached it), with the right outcome;
* the request rate stays bounded under a persistent transient fault (counted by the simulator).

Classification (the monitor's ``_outcome_of`` plus ``APIError.transient``). The rule: retry what a later
identical request can fix without anyone acting; stop on what needs a person (keys, clock, id, arguments)::

    transient  timeouts, refused/reset connections, 429 (+/- Retry-After), APIG.0308, QPSLimitReached,
               ModelArts.4395/6101, 5xx, HTML error pages, empty or malformed 2xx bodies, server-side error
               codes inside HTTP 200 (InternalError, ModelArts.6101), slow answers
    answered   unknown status strings, missing or ill-typed fields, huge bodies: rows with outcome "ok"
               (state UNKNOWN or fields None), the monitor goes on
    permanent  401/403 (expired signature, wrong or revoked keys), missing task (ModelArts.4359 / 404),
               other 4xx and client-side error codes inside HTTP 200, invalid arguments (ConfigError)
"""

from __future__ import annotations

import random
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from export_widgets import TaskState
from export_widgets.errors import APIError, AuthenticationError, TaskNotFoundError
from export_widgets.monitor import Backoff, ExportMonitor
from export_widgets.simulator import (
    DEFAULT_PROJECT_ID,
    FakeClock,
    Fault,
    Simulator,
    SimulatorCredentials,
    TaskSpec,
    serve,
)

PROVIDERS = ("modelarts", "qianfan")
TEN_MINUTES = 600.0


def tid(provider: str, name: str) -> str:
    """A valid task id for ``provider`` (Qianfan ids look like ``task-...``)."""
    return f"MA-{name}" if provider == "modelarts" else f"task-{name}"


def client_for(sim, provider, **kwargs):
    return sim.modelarts_client(**kwargs) if provider == "modelarts" else sim.qianfan_client(**kwargs)


def make_monitor(sim, provider, task_id, client=None, **kwargs):
    client = client or client_for(sim, provider)
    kwargs.setdefault("rng", random.Random(7))
    return ExportMonitor(client, task_id, sim.dataset_id if provider == "modelarts" else None, start=False,
                         clock=sim.clock.now, **kwargs)


def drive(sim, monitor, *, until=None, limit=400):
    """Poll, then move the scenario clock by the delay the monitor asked for; repeat until it ends (or
    the scenario clock passes ``until``). Returns the delays."""
    delays = []
    start = sim.clock.now()
    for _ in range(limit):
        if until is not None and sim.clock.now() - start >= until:
            return delays
        delay = monitor.poll_once()
        if delay is None:
            return delays
        assert delay > 0, f"the monitor asked for a zero/negative delay: {delay}"
        delays.append(delay)
        sim.clock.advance(delay)
    raise AssertionError(f"monitor did not end after {limit} polls: {monitor!r}")


def outcomes(monitor):
    return [row.outcome for row in monitor.history]


def assert_one_line(text):
    text = str(text)
    assert text and "\n" not in text and "\r" not in text and len(text) < 400, text


def assert_permanent(sim, monitor, task_id, error_type, outcome, *, requests=1):
    assert monitor.poll_once() is None, "a permanent error must end the monitor"
    assert monitor.status == "error" and monitor.done
    assert isinstance(monitor.error, error_type), repr(monitor.error)
    assert_one_line(monitor.error)
    assert outcomes(monitor) == [outcome]
    assert sim.request_count(task_id=task_id) == requests == len(monitor.history)
    sim.clock.advance(3600)
    assert monitor.poll_once() is None and sim.request_count(task_id=task_id) == requests  # no retry, ever


# -- transient faults: the monitor rides them out and reaches the end ------------------------------------------

# (fault, outcome of the spoiled polls, client kwargs). Each fault spoils the first three polls.
TRANSIENT = [
    pytest.param(Fault("rate_limit", retry_after=3, times=3), "rate_limited", {}, id="429-retry-after"),
    pytest.param(Fault("rate_limit_no_retry_after", times=3), "rate_limited", {}, id="429-no-retry-after"),
    pytest.param(Fault("qps_limit", times=3), "rate_limited", {}, id="qps-limit"),
    pytest.param(Fault("server_error", status=500, times=3), "server_error", {}, id="500"),
    pytest.param(Fault("server_error", status=502, times=3), "server_error", {}, id="502"),
    pytest.param(Fault("server_error", status=503, times=3), "server_error", {}, id="503"),
    pytest.param(Fault("server_error", status=504, times=3), "server_error", {}, id="504"),
    pytest.param(Fault("html", status=502, times=3), "server_error", {}, id="html-502"),
    pytest.param(Fault("html", status=200, times=3), "bad_response", {}, id="html-200"),
    pytest.param(Fault("empty_body", times=3), "bad_response", {}, id="empty-body"),
    pytest.param(Fault("malformed_json", times=3), "bad_response", {}, id="malformed-json"),
    pytest.param(Fault("drop", times=3), "transport_error", {}, id="drop"),
    pytest.param(Fault("reset_mid_body", times=3), "transport_error", {}, id="reset-mid-body"),
    # read timeout: the server holds the request 1.5 s, the client gives up after 0.3 s
    pytest.param(Fault("timeout", seconds=1.5, times=3), "transport_error", {"timeout": (2.0, 0.3)},
                 id="read-timeout"),
    # slow drip past the read timeout
    pytest.param(Fault("slow", seconds=1.0, times=3), "transport_error", {"timeout": (2.0, 0.3)},
                 id="slow-past-timeout"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault, outcome, client_kwargs", TRANSIENT)
def test_transient_fault_is_ridden_out(empty_sim, provider, fault, outcome, client_kwargs):
    task_id = tid(provider, "transient")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=60, total_samples=600))
    empty_sim.set_faults(task_id, [fault])
    monitor = make_monitor(empty_sim, provider, task_id, client_for(empty_sim, provider, **client_kwargs))
    delays = drive(empty_sim, monitor)
    assert monitor.status == "finished" and monitor.error is None and monitor.last_poll_error is None
    assert monitor.latest.state is TaskState.SUCCEEDED and monitor.latest.progress == 100.0
    got = outcomes(monitor)
    assert got[:3] == [outcome] * 3 and set(got[3:]) == {"ok"}, got
    assert len(monitor.history) == empty_sim.request_count(task_id=task_id)  # every poll is a row
    for row in list(monitor.history)[:3]:
        assert_one_line(row.error_message)
        assert row.state is None and row.progress is None  # a failed poll does not invent a state
    # errors back off: 2, 4, 8 s (±20 %), never a retry storm; Retry-After wins when it is longer
    retry_after = fault.retry_after or 0
    for got_delay, want in zip(delays, (2, 4, 8), strict=False):
        assert max(want * 0.8, retry_after) <= got_delay <= max(want * 1.2, retry_after), delays


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_codes_inside_http_200_are_transient(empty_sim, provider):
    """ModelArts.6101 "system busy" / Qianfan InternalError arriving in an HTTP 200 body: back off, not stop."""
    task_id = tid(provider, "busy200")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=30))
    empty_sim.set_faults(task_id, [Fault("error_in_200", times=2)])
    monitor = make_monitor(empty_sim, provider, task_id)
    drive(empty_sim, monitor)
    assert monitor.status == "finished" and monitor.latest.state is TaskState.SUCCEEDED
    got = outcomes(monitor)
    assert got[0] in ("rate_limited", "server_error") and got[:2] == [got[0]] * 2 and set(got[2:]) == {"ok"}
    assert monitor.history.row(0).error_code == ("ModelArts.6101" if provider == "modelarts" else "InternalError")
    assert len(monitor.history) == empty_sim.request_count(task_id=task_id)


def test_apig_throttling_is_ridden_out(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "MA-apig", duration=30))
    empty_sim.set_faults("MA-apig", [Fault("apig_throttle", times=3)])
    monitor = make_monitor(empty_sim, "modelarts", "MA-apig")
    drive(empty_sim, monitor)
    assert monitor.status == "finished" and monitor.latest.state is TaskState.SUCCEEDED
    assert [r.error_code for r in monitor.history][:3] == ["APIG.0308"] * 3
    assert outcomes(monitor)[:3] == ["rate_limited"] * 3
    assert len(monitor.history) == empty_sim.request_count(task_id="MA-apig")


def test_retry_after_is_never_cut_short(empty_sim):
    empty_sim.add_task(TaskSpec("qianfan", "task-ra", duration=600))
    empty_sim.set_faults("task-ra", [Fault("rate_limit", retry_after=45, times=2)])
    monitor = make_monitor(empty_sim, "qianfan", "task-ra", interval=1.0)
    first, second, third = monitor.poll_once(), monitor.poll_once(), monitor.poll_once()
    assert first >= 45 and second >= 45 and third == pytest.approx(1.0, rel=0.21)


# -- answers that are odd but still answers --------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["unknown_status", "missing_fields", "ill_typed", "huge_body", "slow"])
def test_odd_answers_are_recorded_and_the_watch_goes_on(empty_sim, provider, kind):
    task_id = tid(provider, "odd")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=40, total_samples=400))
    fault = Fault(kind, times=3, seconds=0.2 if kind == "slow" else None)
    empty_sim.set_faults(task_id, [fault])
    monitor = make_monitor(empty_sim, provider, task_id)
    started = time.perf_counter()
    drive(empty_sim, monitor)
    assert time.perf_counter() - started < 60  # hang guard: a 5 MB body or a slow answer must not block
    assert monitor.status == "finished" and monitor.latest.state is TaskState.SUCCEEDED
    assert outcomes(monitor) == ["ok"] * len(monitor.history)
    assert len(monitor.history) == empty_sim.request_count(task_id=task_id)
    odd = list(monitor.history)[:3]
    if kind == "unknown_status":
        assert {r.state for r in odd} == {TaskState.UNKNOWN}
        assert {r.raw_status for r in odd} == {"QUEUING" if provider == "modelarts" else "ExportQueued"}
    elif kind == "missing_fields":
        assert all(r.progress is None and r.total_samples is None for r in odd)
    elif kind == "ill_typed":
        assert all(r.total_samples is None for r in odd)  # -1 / null counts are dropped, not shown
    elif kind == "slow":
        assert all(r.latency_s >= 0.2 for r in odd)


# -- permanent faults: one clear error, no further request -----------------------------------------------------

PERMANENT = [
    pytest.param(Fault("auth_revoked"), AuthenticationError, "auth_error", id="revoked"),
    pytest.param(Fault("not_found"), TaskNotFoundError, "not_found", id="not-found"),
    pytest.param(Fault("error_in_200", code="AccessDenied", message="Access denied."), AuthenticationError,
                 "auth_error", id="auth-in-200"),
    pytest.param(Fault("error_in_200", code="InvalidParameter", message="taskId is invalid"), APIError,
                 "api_error", id="bad-param-in-200"),
    pytest.param(Fault("html", status=403), AuthenticationError, "auth_error", id="html-403"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault, error_type, outcome", PERMANENT)
def test_permanent_fault_ends_the_monitor_with_one_error(empty_sim, provider, fault, error_type, outcome):
    task_id = tid(provider, "permanent")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=60))
    empty_sim.set_faults(task_id, [fault])
    monitor = make_monitor(empty_sim, provider, task_id)
    assert_permanent(empty_sim, monitor, task_id, error_type, outcome)
    assert monitor.last_poll_error == monitor.history.row(-1).error_message


@pytest.mark.parametrize("provider, words", [("modelarts", "15 minutes"), ("qianfan", "expired")])
@pytest.mark.parametrize("skew", [-20, 20], ids=["clock-behind", "clock-ahead"])
def test_expired_signature_is_permanent(empty_sim, provider, words, skew):
    task_id = tid(provider, "skew")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=60))
    skewed = client_for(empty_sim, provider,
                        clock=lambda: datetime.now(timezone.utc) + timedelta(minutes=skew))
    monitor = make_monitor(empty_sim, provider, task_id, skewed)
    assert_permanent(empty_sim, monitor, task_id, AuthenticationError, "auth_error")
    assert words in str(monitor.error) or "future" in str(monitor.error)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_secret_key_is_permanent(empty_sim, provider):
    task_id = tid(provider, "wrongkey")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=60))
    wrong = client_for(empty_sim, provider, sk="WrongSecretKey0123456789abcdefghijklmn")
    monitor = make_monitor(empty_sim, provider, task_id, wrong)
    assert_permanent(empty_sim, monitor, task_id, AuthenticationError, "auth_error")


def test_a_task_that_vanishes_mid_watch_ends_it(empty_sim):
    empty_sim.add_task(TaskSpec("modelarts", "MA-gone", duration=600))
    monitor = make_monitor(empty_sim, "modelarts", "MA-gone")
    for _ in range(3):
        empty_sim.clock.advance(monitor.poll_once())
    empty_sim.remove_task("MA-gone")
    assert monitor.poll_once() is None
    assert monitor.status == "error" and isinstance(monitor.error, TaskNotFoundError)
    assert outcomes(monitor) == ["ok"] * 3 + ["not_found"]
    assert monitor.latest.state is TaskState.RUNNING  # the last good answer is kept for inspection


# -- connection-level faults (no simulator answers at all) -----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_then_the_server_comes_up(provider):
    """A closed port (refused at once) is transient: when a server appears on it, the watch completes."""
    port, clock = _free_port(), FakeClock()
    task_id = tid(provider, "refused")
    spec = TaskSpec(provider, task_id, duration=30, created_at=clock.now())
    sim = Simulator([spec], port=port, clock=clock)  # not started yet: nothing listens on the port
    url = f"http://127.0.0.1:{port}"
    creds = sim.credentials
    if provider == "modelarts":
        from export_widgets import ModelArtsClient
        client = ModelArtsClient(project_id=sim.project_id, endpoint=url, ak=creds.modelarts_ak,
                                 sk=creds.modelarts_sk, environ={}, timeout=(1.0, 1.0))
    else:
        from export_widgets import QianfanClient
        client = QianfanClient(ak=creds.qianfan_ak, sk=creds.qianfan_sk, endpoint=url, environ={},
                               timeout=(1.0, 1.0))
    monitor = ExportMonitor(client, task_id, sim.dataset_id if provider == "modelarts" else None, start=False,
                            clock=clock.now, rng=random.Random(3))
    for _ in range(3):
        started = time.perf_counter()
        clock.advance(monitor.poll_once())
        assert time.perf_counter() - started < 10  # hang guard: a refused port fails at once, not at timeout
    assert outcomes(monitor) == ["transport_error"] * 3 and not monitor.done
    assert "connection failed" in monitor.last_poll_error
    with sim:
        delays = []
        while (delay := monitor.poll_once()) is not None:
            delays.append(delay)
            clock.advance(delay)
        assert monitor.status == "finished" and monitor.latest.state is TaskState.SUCCEEDED
        assert len(monitor.history) == 3 + sim.request_count(task_id=task_id)  # 3 polls never reached it
    client.close()


@pytest.fixture
def black_hole():
    """A port whose accept queue is full: connects hang until the client's connect timeout (a real one)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for sock in (*fillers, listener):
        sock.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connect_timeout_is_transient_and_bounded(black_hole, provider):
    clock = FakeClock()
    url = f"http://127.0.0.1:{black_hole}"
    creds = SimulatorCredentials()
    if provider == "modelarts":
        from export_widgets import ModelArtsClient
        client = ModelArtsClient(project_id=DEFAULT_PROJECT_ID, endpoint=url, ak=creds.modelarts_ak,
                                 sk=creds.modelarts_sk, environ={}, timeout=(0.3, 1.0))
    else:
        from export_widgets import QianfanClient
        client = QianfanClient(ak=creds.qianfan_ak, sk=creds.qianfan_sk, endpoint=url, environ={},
                               timeout=(0.3, 1.0))
    monitor = ExportMonitor(client, tid(provider, "hole"), "DS1" if provider == "modelarts" else None,
                            start=False, clock=clock.now, rng=random.Random(3))
    started = time.perf_counter()
    delays = [monitor.poll_once() for _ in range(2)]
    assert time.perf_counter() - started < 20  # hang guard: each poll is cut by the 0.3 s connect timeout
    assert outcomes(monitor) == ["transport_error"] * 2 and not monitor.done
    assert "timed out" in monitor.last_poll_error
    assert delays[1] > delays[0] >= 1.6  # and it backs off
    client.close()


# -- request rate under a persistent transient fault ------------------------------------------------------------

def max_requests(window: float, backoff: Backoff | None = None) -> int:
    """The most polls the backoff allows in ``window`` seconds of consecutive errors (jitter at its lowest)."""
    backoff = backoff or Backoff()
    t, n = 0.0, 0
    while t <= window:
        n += 1
        t += backoff.after_error(n) * (1 - backoff.jitter)
    return n


PERSISTENT = [
    pytest.param(Fault("server_error", status=503, times=None), id="503"),
    pytest.param(Fault("rate_limit_no_retry_after", times=None), id="429"),
    pytest.param(Fault("rate_limit", retry_after=1, times=None), id="429-retry-after-1"),
    pytest.param(Fault("malformed_json", times=None), id="malformed-json"),
    pytest.param(Fault("drop", times=None), id="drop"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", PERSISTENT)
def test_ten_minutes_of_a_persistent_fault_cost_few_requests(empty_sim, provider, fault):
    task_id = tid(provider, "storm")
    empty_sim.add_task(TaskSpec(provider, task_id, duration=3600))
    empty_sim.set_faults(task_id, [fault])
    monitor = make_monitor(empty_sim, provider, task_id, interval=2.0)
    drive(empty_sim, monitor, until=TEN_MINUTES)
    seen = empty_sim.request_count(task_id=task_id)
    assert seen == len(monitor.history) and not monitor.done
    bound = max_requests(TEN_MINUTES)
    assert bound <= 18  # 2, 4, 8, 16, 32, then one a minute: far fewer than one every 10 s (60)
    assert 8 <= seen <= bound, seen
    assert set(outcomes(monitor)) == {"server_error" if fault.kind == "server_error" else
                                      "rate_limited" if fault.kind.startswith("rate") else
                                      "bad_response" if fault.kind == "malformed_json" else "transport_error"}
    # when the fault clears, the next poll succeeds and the interval snaps back to the floor
    empty_sim.clear_faults(task_id)
    assert monitor.poll_once() == pytest.approx(2.0, rel=0.21)
    assert outcomes(monitor)[-1] == "ok" and monitor.last_poll_error is None


# -- the shell survives ------------------------------------------------------------------------------------------

def test_the_shell_survives_every_fault_and_keeps_working(monkeypatch, capsys):
    """%export_status --wait through transient faults finishes; a permanent one is a one-line UsageError; the
    shell runs the next cell either way."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    specs = [TaskSpec("qianfan", "task-shaky", duration=0.4), TaskSpec("modelarts", "MA-shaky", duration=0.4),
             TaskSpec("qianfan", "task-revoked", duration=60)]
    with serve(specs) as sim:
        for name, value in sim.env.items():
            monkeypatch.setenv(name, value)
        # (each transient error costs a real 2 s of backoff here, so one per task)
        sim.set_faults("task-shaky", [Fault("drop", times=1)])
        sim.set_faults("MA-shaky", [Fault("malformed_json", times=1)])
        sim.set_faults("task-revoked", [Fault("server_error", status=502, times=1), Fault("auth_revoked", times=None)])
        config = Config()
        config.HistoryAccessor.enabled = False
        shell = InteractiveShell(config=config)
        shell.run_line_magic("load_ext", "export_widgets")
        try:
            ok = shell.run_cell("%export_status task-shaky --interval 0.05 --wait -o a")
            ok2 = shell.run_cell(f"%export_status --dataset {sim.dataset_id} --endpoint {sim.url} MA-shaky "
                                 "--interval 0.05 --wait -o b")
            bad = shell.run_cell("%export_status task-revoked --interval 0.05 --wait -o c")
            after = shell.run_cell("40 + 2")
        finally:
            shell.run_line_magic("unload_ext", "export_widgets")
        assert ok.success and ok2.success and not bad.success and after.result == 42
        a, b, c = (shell.user_ns[k] for k in "abc")
        assert a.latest.state is TaskState.SUCCEEDED and b.latest.state is TaskState.SUCCEEDED
        assert [r.outcome for r in a.history][0] == "transport_error"
        assert [r.outcome for r in b.history][0] == "bad_response"
        assert len(a.history) == sim.request_count(task_id="task-shaky")
        assert len(b.history) == sim.request_count(task_id="MA-shaky")
        assert c.status == "error" and [r.outcome for r in c.history] == ["server_error", "auth_error"]
        err = capsys.readouterr().err
        usage = [line for line in err.splitlines() if line.startswith("UsageError")]
        assert len(usage) == 1 and "AccessDenied" in usage[0] and "Traceback" not in err
