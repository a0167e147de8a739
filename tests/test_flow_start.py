"""Starting exports (issue 15): validation before any request, both create operations over real HTTP, the
not-found grace after a create, and the reuse of an identical start within the window."""

from __future__ import annotations

import pytest

from export_widgets import TaskState
from export_widgets.errors import APIError, ConfigError, TaskNotFoundError
from export_widgets.monitor import ExportMonitor, MonitorStatus
from export_widgets.providers import CreatesExports, TaskRef, make_client
from export_widgets.simulator import serve
from export_widgets.start import StartedExport, forget_started, start_export


@pytest.fixture(autouse=True)
def _fresh_memory():
    forget_started()
    yield
    forget_started()


@pytest.fixture
def csim(clock):
    """A fake-clock simulator whose creates finish after 10 scenario seconds."""
    with serve([], clock=clock, create={"template": {"duration": 10, "size_mb": 1.0}}) as sim:
        yield sim
        assert not sim.errors


@pytest.fixture
def clients(csim):
    ma = make_client("modelarts", endpoint=csim.url, environ=csim.env)
    qf = make_client("qianfan", endpoint=csim.url, environ=csim.env)
    yield ma, qf
    ma.close()
    qf.close()


# -- validation: one line, before any request -------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({"path": "obs://bkt/out/", "export_type": 7}, "unknown export type 7: use 0 labeled, 1 unlabeled"),
    ({"path": "obs:///out/"}, "names no valid bucket"),
    ({"path": "bkt/out/"}, "must look like obs://bucket/dir/"),
    ({"path": "obs://bkt/out/", "export_format": 3}, "unknown export format 3"),
    ({"path": "obs://bkt/out/", "sample_state": "LABELED"}, "unknown sample state 'LABELED'"),
    ({"path": "obs://bkt/out/", "export_type": 3}, "needs search_conditions"),
    ({"path": "obs://bkt/out/", "export_dest": "NEW_DATASET"}, "needs new_dataset_name"),
    ({"path": "obs://bkt/out/", "train_sample_ratio": 1.5}, "between 0 and 1"),
    ({"path": "obs://bkt/out/", "version_format": "Parquet"}, "unknown version format"),
])
def test_modelarts_bad_input_is_one_line_before_any_request(csim, clients, fields, message):
    ma, _ = clients
    with pytest.raises(ConfigError, match=message) as caught:
        ma.create_export_task(csim.dataset_id, **fields)
    assert "\n" not in str(caught.value)
    assert csim.request_count() == 0


@pytest.mark.parametrize("args, fields, message", [
    (("abc",), {}, "has the wrong shape: dataset version ids look like ds-"),
    (("ds-1",), {"bos_path": "bos:/bkt/x/", "sys_storage": True}, "not both"),
    (("ds-1",), {"bos_path": "bkt/x/"}, "must start with bos:/"),
    (("ds-1",), {"bos_path": "bos://bkt/x/"}, "must start with bos:/ \\(one slash\\)"),
    (("ds-1",), {"bos_path": "bos:/B!/x/"}, "names no valid bucket"),
])
def test_qianfan_bad_input_is_one_line_before_any_request(csim, clients, args, fields, message):
    _, qf = clients
    with pytest.raises(ConfigError, match=message) as caught:
        qf.create_export_task(*args, **fields)
    assert "\n" not in str(caught.value)
    assert csim.request_count() == 0


def test_bodies_are_what_the_vendors_document(clients):
    ma, qf = clients
    request = ma.export_request("DS1", path="obs://bkt/a/b", export_type=0, sample_state="ALL",
                                train_sample_ratio=0.8)
    assert dict(request.body) == {"path": "/bkt/a/b/", "export_type": 0,
                                  "export_params": {"sample_state": "ALL", "train_sample_ratio": "0.80"}}
    assert dict(qf.export_request("ds-1", bos_path="bos:/bkt/x").body) == {
        "versionId": "ds-1", "storageType": "BOS", "storagePath": "bos:/bkt/x/"}
    assert dict(qf.export_request("ds-1").body) == {"versionId": "ds-1", "storageType": "sysStorage"}


def test_flag_mapping_rejects_the_other_providers_options(clients):
    ma, qf = clients
    assert isinstance(ma, CreatesExports) and isinstance(qf, CreatesExports)
    with pytest.raises(ConfigError, match="--bos apply to Qianfan exports"):
        ma.create_arguments({"dataset": "D", "path": "obs://b/x/", "bos": "bos:/b/"})
    with pytest.raises(ConfigError, match="--dataset, --path apply to ModelArts exports"):
        qf.create_arguments({"dataset": "D", "path": "obs://bkt/x/", "version": "ds-1"})
    with pytest.raises(ConfigError, match="needs --path"):
        ma.create_arguments({"dataset": "D"})
    assert qf.create_arguments({"version": "ds-1", "sys_storage": True}) == (("ds-1",), {"bos_path": None,
                                                                                        "sys_storage": True})


# -- creates over HTTP ------------------------------------------------------------------------------------

def test_both_creates_start_tasks_the_status_call_finds(csim, clients):
    ma, qf = clients
    ref = ma.create_export_task(csim.dataset_id, path="obs://bkt/out/", export_type=0)
    assert ref.provider == "modelarts" and ref.dataset_id == csim.dataset_id
    assert ma.fetch(ref).destination == "/bkt/out/"
    qref = qf.create_export_task("ds-abc", bos_path="bos:/bkt/x/")
    assert qref.task_id.startswith("task-") and qf.fetch(qref).state is TaskState.RUNNING
    csim.clock.advance(11)
    assert qf.fetch(qref).state is TaskState.SUCCEEDED
    assert csim.request_count(operation="create") == 2


def test_vendor_create_errors_are_typed(csim, clients):
    ma, qf = clients
    csim.app.set_create_policy({"template": {"duration": 10}, "running_limit": 1})
    ma.create_export_task(csim.dataset_id, path="obs://bkt/out/")
    with pytest.raises(APIError, match="ModelArts.4409") as caught:
        ma.create_export_task(csim.dataset_id, path="obs://bkt/out/")
    assert not caught.value.transient
    qf.create_export_task("ds-abc")
    with pytest.raises(APIError, match="ExportTaskLimitExceeded"):  # inside HTTP 200
        qf.create_export_task("ds-abc")


def test_not_found_right_after_a_create_is_retried_within_the_grace(csim, clients):
    ma, _ = clients
    csim.app.set_create_policy({"template": {"duration": 10}, "read_lag_requests": 2})
    ref = ma.create_export_task(csim.dataset_id, path="obs://bkt/out/")
    graced = ExportMonitor(ma, ref.task_id, ref.dataset_id, start=False, not_found_grace=60)
    assert graced.poll_once() is not None and graced.poll_once() is not None  # two lagging reads, retried
    assert graced.status is MonitorStatus.RUNNING and graced.latest is None
    graced.poll_once()
    assert graced.latest is not None and graced.latest.state in (TaskState.PENDING, TaskState.RUNNING)

    csim.app.set_create_policy({"template": {"duration": 10}, "read_lag_requests": 1})
    ref = ma.create_export_task(csim.dataset_id, path="obs://bkt/out/")
    strict = ExportMonitor(ma, ref.task_id, ref.dataset_id, start=False)  # default: no grace
    assert strict.poll_once() is None
    assert strict.status is MonitorStatus.ERROR and isinstance(strict.error, TaskNotFoundError)


def test_grace_ends_and_not_found_is_permanent_again(clients, csim):
    ma, _ = clients
    now = [1000.0]
    monitor = ExportMonitor(ma, "NoSuchTask0000000001", csim.dataset_id, start=False, not_found_grace=30,
                            clock=lambda: now[0])
    monitor.poll_once()
    assert monitor.status is MonitorStatus.RUNNING
    now[0] += 31
    monitor.poll_once()
    assert monitor.status is MonitorStatus.ERROR and isinstance(monitor.error, TaskNotFoundError)


# -- reuse ------------------------------------------------------------------------------------------------

def test_an_identical_start_reuses_the_export_and_says_so(csim, clients):
    _, qf = clients
    notes: list[str] = []
    now = [5000.0]
    first = start_export(qf, "ds-abc", bos_path="bos:/bkt/x/", start=False, notify=notes.append,
                         clock=lambda: now[0])
    assert isinstance(first, StartedExport) and not first.reused
    assert notes == [f"started export {first.task_id} (version ds-abc to bos:/bkt/x/)"]
    now[0] += 185
    again = start_export(qf, "ds-abc", bos_path="bos:/bkt/x", start=False, notify=notes.append, clock=lambda: now[0],
                         new_hint="pass --new for another")
    assert again.task_id == first.task_id and again.reused
    assert notes[-1] == f"reusing export {first.task_id} started 3m 05s ago; pass --new for another"
    assert csim.request_count(operation="create") == 1

    other = start_export(qf, "ds-abc", sys_storage=True, start=False, notify=notes.append, clock=lambda: now[0])
    forced = start_export(qf, "ds-abc", bos_path="bos:/bkt/x/", new=True, start=False, notify=notes.append,
                          clock=lambda: now[0])
    assert len({first.task_id, other.task_id, forced.task_id}) == 3
    assert csim.request_count(operation="create") == 3


def test_reuse_ends_with_the_window_and_never_takes_a_failed_export(csim, clients):
    _, qf = clients
    now = [5000.0]
    first = start_export(qf, "ds-abc", start=False, notify=lambda _: None, clock=lambda: now[0], reuse_window=60)
    now[0] += 61
    later = start_export(qf, "ds-abc", start=False, notify=lambda _: None, clock=lambda: now[0], reuse_window=60)
    assert later.task_id != first.task_id

    csim.app.set_create_policy({"template": {"duration": 2, "outcome": "fail", "fail_at": 50}})
    failing = start_export(qf, "ds-fail", start=False, notify=lambda _: None)
    csim.clock.advance(5)
    failing.poll_once()
    assert failing.latest is not None and failing.latest.state is TaskState.FAILED
    retried = start_export(qf, "ds-fail", start=False, notify=lambda _: None)
    assert retried.task_id != failing.task_id and not retried.reused


def test_a_finished_reused_export_gets_a_fresh_watch(csim, clients):
    ma, _ = clients
    first = start_export(ma, csim.dataset_id, path="obs://bkt/out/", start=False, notify=lambda _: None)
    csim.clock.advance(11)
    first.poll_once()
    assert first.done and first.latest is not None and first.latest.state is TaskState.SUCCEEDED
    again = start_export(ma, csim.dataset_id, path="obs://bkt/out/", start=False, notify=lambda _: None,
                         interval=7)
    assert again is not first and again.reused and again.task_id == first.task_id
    assert again.backoff.floor == 7 and not again.done
    assert again.ref == TaskRef("modelarts", first.task_id, csim.dataset_id)


def test_reuse_is_per_account(csim, clients):
    _, qf = clients
    other_env = {**csim.env, "QIANFAN_ACCESS_KEY": csim.env["QIANFAN_ACCESS_KEY"] + "x"}
    other = make_client("qianfan", endpoint=csim.url, environ=other_env)  # another account, same endpoint
    first = start_export(qf, "ds-abc", start=False, notify=lambda _: None)
    try:
        start_export(other, "ds-abc", start=False, notify=lambda _: None)
    except APIError:
        pass  # the simulator does not know that key: what matters is that a create was attempted
    finally:
        other.close()
    assert csim.request_count(operation="create") == 2
    assert start_export(qf, "ds-abc", start=False, notify=lambda _: None).task_id == first.task_id
