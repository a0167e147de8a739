"""Sweeps: many ModelArts tasks of a dataset polled with a few list pages (real HTTP against the simulator).

Most tests run a sweep by hand on a recording poller (``ManualPoller``), so every request is caused by a step
of the test and counted by the simulator per operation; one test runs the real background poller.
"""

from __future__ import annotations

import random

import pytest

from export_widgets import TaskState
from export_widgets.errors import APIError, Outcome, TaskNotFoundError
from export_widgets.monitor import ExportMonitor, MonitorGroup, watch_many
from export_widgets.poller import Poller
from export_widgets.providers import TaskRef
from export_widgets.providers.base import FetchesMany
from export_widgets.simulator import Fault, TaskSpec
from export_widgets.sweep import DatasetSweep, plan_last_page

DATASET = "dsSweep0000000000001"
T0 = 1_717_243_200.0  # the FakeClock's start (2024-06-01T12:00:00Z)


class ManualPoller:
    """Records what is scheduled; the test runs it (no threads, no timing)."""

    _closed = False

    def __init__(self) -> None:
        self.jobs: list[object] = []

    def schedule(self, job: object, delay: float = 0.0) -> bool:
        self.jobs.append(job)
        return True

    def cancel(self, job: object) -> None:
        pass

    def run_gets(self) -> int:
        """Run the per-task status jobs a sweep handed out; returns how many ran."""
        gets = [job for job in self.jobs if not isinstance(job, (DatasetSweep, ExportMonitor))]
        self.jobs = [job for job in self.jobs if job not in gets]
        for job in gets:
            job.run()  # type: ignore[attr-defined]
        return len(gets)


def _add(sim, count, *, prefix="T", dataset=DATASET, duration=600.0, start=0):
    """``count`` running tasks created in order (the last one is the newest, so the first on page 0)."""
    for i in range(start, start + count):
        sim.add_task(TaskSpec("modelarts", f"{prefix}{i:05d}", dataset_id=dataset, duration=duration,
                              created_at=T0 - 1 + i * 1e-4))


def _group(sim, task_ids, *, dataset=DATASET, client=None, **kw):
    poller = ManualPoller()
    client = client or sim.modelarts_client()
    kw.setdefault("rng", random.Random(0))
    monitors = [ExportMonitor(client, task_id, dataset, start=False, clock=sim.clock.now, poller=poller, **kw)
                for task_id in task_ids]
    group = MonitorGroup(monitors)
    assert len(group.sweeps) == 1
    sweep = group.sweeps[0]
    assert not sweep._due  # made with start=False: nothing is polled before start()
    for monitor in group:
        monitor.start()
    return group, sweep, poller


def _sweep(group, sweep, poller, *, refresh=True):
    """One sweep with every member due (as a dashboard's "Refresh all"), its status jobs included."""
    if refresh:
        for monitor in group:
            monitor.refresh()
    sweep.run()
    poller.run_gets()


def _counts(sim):
    return sim.request_count(operation="list"), sim.request_count(operation="status")


def test_the_modelarts_client_fetches_many_qianfan_does_not(sim):
    assert isinstance(sim.modelarts_client(), FetchesMany)
    assert not isinstance(sim.qianfan_client(), FetchesMany)  # no list operation in Qianfan's v2 API


def test_many_tasks_of_one_dataset_are_answered_by_pages(empty_sim):
    _add(empty_sim, 250)
    group, sweep, poller = _group(empty_sim, [f"T{i:05d}" for i in range(250)])
    assert sweep.page_size == 100
    _sweep(group, sweep, poller, refresh=False)  # the members were started (scheduled) by _group
    assert _counts(empty_sim) == (3, 0)  # 250 tasks: pages 0, 1, 2 and not one status call
    assert all(len(m.history) == 1 and m.history.row(-1).fetched_by == "list" for m in group)
    assert all(m.latest.state is TaskState.RUNNING for m in group)
    empty_sim.clock.advance(30)
    _sweep(group, sweep, poller)
    assert _counts(empty_sim) == (6, 0)
    frame = group.history_frame()
    assert len(frame) == 500 and set(frame["fetched_by"]) == {"list"}
    group.stop()


def test_pages_stop_once_every_due_task_was_seen(empty_sim):
    _add(empty_sim, 1000)
    newest = [f"T{i:05d}" for i in range(1000 - 120, 1000)]  # on pages 0 and 1 (the list is newest first)
    group, sweep, poller = _group(empty_sim, newest)
    _sweep(group, sweep, poller, refresh=False)
    assert _counts(empty_sim) == (2, 0)  # not the 10 pages of the whole list
    empty_sim.clock.advance(30)
    _sweep(group, sweep, poller)
    assert _counts(empty_sim) == (4, 0)  # their places are remembered: the same two pages
    group.stop()


def test_few_tasks_in_a_big_dataset_use_status_calls(empty_sim):
    _add(empty_sim, 10_000)
    oldest = ["T00000", "T00001"]
    group, sweep, poller = _group(empty_sim, oldest)
    _sweep(group, sweep, poller, refresh=False)
    # The first sweep reads page 0 once to learn total_count (10,000 = 100 pages), then asks each task.
    assert _counts(empty_sim) == (1, 2)
    assert [m.history.row(-1).fetched_by for m in group] == ["get", "get"]
    for _ in range(3):
        empty_sim.clock.advance(30)
        _sweep(group, sweep, poller)
    assert _counts(empty_sim) == (1, 8)  # from then on: status calls only
    assert all(len(m.history) == 4 and m.latest.state is TaskState.RUNNING for m in group)
    group.stop()


def test_a_lone_task_keeps_its_own_request_and_later_ones_join_a_sweep(empty_sim):
    _add(empty_sim, 50)
    poller, client = ManualPoller(), empty_sim.modelarts_client()

    def monitor(task_id):
        return ExportMonitor(client, task_id, DATASET, clock=empty_sim.clock.now, poller=poller)

    alone = MonitorGroup([monitor("T00007")])
    assert alone.sweeps == [] and poller.jobs == [alone[0]]  # scheduled on the poller, exactly as before
    pair = MonitorGroup([monitor("T00008"), monitor("T00009")])
    late = MonitorGroup([monitor("T00010")])
    assert len(pair.sweeps) == 1 and late.sweeps == pair.sweeps and len(pair.sweeps[0]) == 3
    pair.sweeps[0].run()
    assert _counts(empty_sim) == (1, 0)  # one page answered the three of them
    for group in (alone, pair, late):
        group.stop()


def test_a_task_missing_from_the_pages_gets_one_status_call(empty_sim):
    _add(empty_sim, 150)
    client = empty_sim.modelarts_client()
    listed = client.list_page

    def racing_list_page(dataset_id, page):  # T00149 is created between the list and the status call
        result = listed(dataset_id, page)
        return type(result)(result.page, tuple(t for t in result.tasks if t.task_id != "T00149"),
                            result.total_count)

    client.list_page = racing_list_page
    watched = [f"T{i:05d}" for i in range(100, 150)]
    group, sweep, poller = _group(empty_sim, watched, client=client)
    _sweep(group, sweep, poller, refresh=False)
    assert _counts(empty_sim) == (1, 1)  # page 0 had the other 49; one status call for the missing one
    assert empty_sim.request_count("T00149", operation="status") == 1
    by_id = {m.task_id: m for m in group}
    assert by_id["T00149"].history.row(-1).fetched_by == "get" and by_id["T00149"].latest is not None
    assert {m.history.row(-1).fetched_by for m in group if m.task_id != "T00149"} == {"list"}
    group.stop()


def test_a_deleted_task_ends_with_not_found_the_others_go_on(empty_sim):
    _add(empty_sim, 30)
    group, sweep, poller = _group(empty_sim, [f"T{i:05d}" for i in range(30)])
    _sweep(group, sweep, poller, refresh=False)
    empty_sim.remove_task("T00003")
    empty_sim.clock.advance(10)
    _sweep(group, sweep, poller)
    assert _counts(empty_sim) == (2, 1)  # not on the page: asked once, and the answer is "does not exist"
    gone = group[3]
    assert gone.status == "error" and isinstance(gone.error, TaskNotFoundError)
    assert gone.history.row(-1).outcome == "not_found" and gone.history.row(-1).fetched_by == "get"
    assert all(m.status == "running" for m in group if m is not gone)
    empty_sim.clock.advance(10)
    _sweep(group, sweep, poller)
    assert _counts(empty_sim) == (3, 1)  # the ended one is not asked again
    assert len(sweep) == 29
    group.stop()


def test_a_failed_page_is_a_failed_poll_of_each_task_it_was_for(empty_sim):
    _add(empty_sim, 40)
    group, sweep, poller = _group(empty_sim, [f"T{i:05d}" for i in range(40)])
    empty_sim.set_faults("*", [Fault("server_error", status=503, times=1)])
    _sweep(group, sweep, poller, refresh=False)
    assert _counts(empty_sim) == (1, 0)
    for monitor in group:
        row = monitor.history.row(-1)
        assert (row.outcome, row.fetched_by) == ("server_error", "list")
        assert monitor.status == "running" and monitor.last_poll_error
    assert all(m._consecutive_errors == 1 for m in group)  # each task backs off on its own
    empty_sim.set_faults("*", [Fault("rate_limit", retry_after=7, times=1)])
    delays = []
    group[0].on_update(lambda m: None)
    original = group[0].record

    def spy(answer, **kw):
        delay = original(answer, **kw)
        delays.append(delay)
        return delay

    group[0].record = spy
    _sweep(group, sweep, poller)
    assert delays and delays[0] >= 7  # the server's Retry-After holds for every task of the page
    assert all(m._consecutive_errors == 2 for m in group)
    _sweep(group, sweep, poller)
    assert all(m._consecutive_errors == 0 and m.last_poll_error is None for m in group)
    assert [r.outcome for r in group[5].history] == ["server_error", "rate_limited", "ok"]
    group.stop()


def test_history_eta_and_changes_per_task_as_with_status_calls(empty_sim):
    for i in range(12):
        empty_sim.add_task(TaskSpec("modelarts", f"E{i:02d}", dataset_id=DATASET, duration=10 + i,
                                    total_samples=1000, created_at=T0 - 50 + i))
        empty_sim.add_task(TaskSpec("modelarts", f"S{i:02d}", dataset_id="dsSolo", duration=10 + i,
                                    total_samples=1000, created_at=T0 - 50 + i))
    group, sweep, poller = _group(empty_sim, [f"E{i:02d}" for i in range(12)])
    solo = [ExportMonitor(empty_sim.modelarts_client(), f"S{i:02d}", "dsSolo", start=False,
                          clock=empty_sim.clock.now, rng=random.Random(0)) for i in range(12)]
    changes: dict[str, int] = {}
    for monitor in group:
        monitor.on_change(lambda task: changes.__setitem__(task.task_id, changes.get(task.task_id, 0) + 1))
    for _ in range(30):
        _sweep(group, sweep, poller)
        for monitor in solo:
            monitor.poll_once()
        if group.done:
            break
        empty_sim.clock.advance(1)
    assert group.done and all(m.status == "finished" for m in group)
    for batched, alone in zip(group, solo, strict=True):
        # Same task shape, same poll instants: the same rows, the same figures, the same changes.
        assert [(r.state, r.progress, r.finished_samples) for r in batched.history] == \
            [(r.state, r.progress, r.finished_samples) for r in alone.history]
        assert batched.figures().rate_pct_per_s == pytest.approx(alone.figures().rate_pct_per_s)
        assert changes[batched.task_id] == len(batched.history)  # every poll moved progress
    requests_at_end = _counts(empty_sim)
    _sweep(group, sweep, poller)
    assert _counts(empty_sim) == requests_at_end  # ended monitors are not polled
    assert len(sweep) == 0


def test_eta_while_running_from_list_answers(empty_sim):
    _add(empty_sim, 20, duration=100)
    group, sweep, poller = _group(empty_sim, [f"T{i:05d}" for i in range(20)])
    for _ in range(5):
        _sweep(group, sweep, poller)
        empty_sim.clock.advance(10)
    figures = group[0].figures()
    assert figures.eta_s is not None and figures.eta_s > 0
    assert figures.rate_pct_per_s == pytest.approx(1.0, rel=0.2)  # 1 % a second over 100 s
    group.stop()


def test_timeout_and_stop_work_for_swept_monitors(empty_sim):
    _add(empty_sim, 10)
    group, sweep, poller = _group(empty_sim, [f"T{i:05d}" for i in range(10)], timeout=5)
    _sweep(group, sweep, poller, refresh=False)
    group[0].stop()
    empty_sim.clock.advance(6)
    for monitor in group:
        if not monitor.done:
            monitor.refresh()
    sweep.run()
    assert _counts(empty_sim) == (1, 0)  # every one timed out before asking: no request
    assert group[0].status == "stopped" and all(m.status == "timed_out" for m in group[1:])
    assert len(sweep) == 0


def test_qianfan_monitors_keep_their_own_requests(sim):
    poller = ManualPoller()
    client = sim.qianfan_client()
    group = watch_many([(client, "task-abc123"), (client, "task-abc124")], poller=poller, interval=60)
    assert group.sweeps == [] and poller.jobs == list(group)  # each monitor schedules itself, as before
    group.stop()


def test_background_sweeps_to_the_end():
    from export_widgets.simulator import serve

    specs = [TaskSpec("modelarts", f"B{i:03d}", dataset_id=DATASET, duration=0.6 + i / 100) for i in range(60)]
    specs += [TaskSpec("modelarts", f"O{i}", dataset_id="dsOther", duration=0.5) for i in range(2)]
    specs += [TaskSpec("qianfan", f"task-q{i}", duration=0.5) for i in range(2)]
    poller = Poller(budget=4, idle_exit=0.5)
    try:
        with serve(specs) as sim:
            ma, qf = sim.modelarts_client(), sim.qianfan_client()
            targets = [(ma, s.task_id, s.dataset_id) if s.provider == "modelarts" else (qf, s.task_id)
                       for s in specs]
            group = watch_many(targets, interval=0.05, poller=poller)
            assert len(group.sweeps) == 2
            group.wait(timeout=60)
            assert group.done and all(t.state is TaskState.SUCCEEDED for t in group.latest)
            swept = [m for m in group if m.task_id.startswith("B")]
            polls = sum(len(m.history) for m in swept)
            lists = sim.request_count(operation="list")
            assert polls >= 120 and lists < polls / 5  # a page answers many polls
            assert sum(1 for m in swept for r in m.history if r.fetched_by == "list") > polls / 2
            assert all(len(m.history) == sim.request_count(m.task_id) for m in group if m.task_id.startswith("task"))
    finally:
        poller.shutdown()
    assert not poller.threads()


def test_fetch_many_in_one_call(empty_sim):
    _add(empty_sim, 300)
    client = empty_sim.modelarts_client()
    many = [TaskRef("modelarts", f"T{i:05d}", DATASET) for i in range(300)]
    answers = client.fetch_many(many)
    assert _counts(empty_sim) == (3, 0) and all(answers[r].task_id == r.task_id for r in many)
    few = [TaskRef("modelarts", "T00000", DATASET), TaskRef("modelarts", "nope", DATASET)]
    answers = client.fetch_many(few)
    assert _counts(empty_sim) == (4, 2)  # page 0 to learn the size; then one call each (3 pages > 2 tasks)
    assert answers[few[0]].task_id == "T00000" and isinstance(answers[few[1]], TaskNotFoundError)
    empty_sim.set_faults("*", [Fault("server_error", status=500, times=1)])
    answers = client.fetch_many(many[:5])
    assert all(isinstance(answers[r], APIError) and answers[r].outcome == Outcome.SERVER_ERROR for r in many[:5])


def test_plan_last_page():
    # Unknown size: page 0 when it may answer two tasks.
    assert plan_last_page(0, [None, None], None, 100) == 0
    assert plan_last_page(0, [None], None, 100) == -1
    # 300 unplaced tasks in 3 pages: all pages; 2 unplaced tasks in 100 pages: none.
    assert plan_last_page(1, [None] * 200, 300, 100) == 2
    assert plan_last_page(1, [None, None], 10_000, 100) == 0
    # Known places: read up to the page where they are, if that is cheaper than asking each.
    assert plan_last_page(0, [0, 0, 1, 1, 1], 10_000, 100) == 1
    assert plan_last_page(0, [0, 50], 10_000, 100) == -1  # page 0 for one task is a tie: ask each
    assert plan_last_page(0, [], 10_000, 100) == -1


def test_history_stays_small_per_poll():
    from export_widgets.history import History
    from export_widgets.models import ExportTask

    history = History("modelarts", "T")
    task = ExportTask(provider="modelarts", task_id="T", state=TaskState.RUNNING, progress=5.0)
    for i in range(1000):
        history.record_task(float(i), 0.01, task, fetched_by="list" if i % 2 else "get")
    assert history.nbytes() / len(history) <= 150
    assert [history.row(i).fetched_by for i in range(2)] == ["get", "list"]


def test_callbacks_wait_until_the_sweep_gives_its_request_slot_back(empty_sim):
    _add(empty_sim, 5)
    group, sweep, poller = _group(empty_sim, [f"T{i:05d}" for i in range(5)])
    seen: list[str] = []
    group.on_update(lambda monitor: seen.append(monitor.task_id))
    sweep.run_in_slot()  # what the poller runs while it holds one of the provider's request slots
    assert seen == [] and all(len(m.history) == 1 for m in group)
    sweep.deliver()  # what it runs after giving the slot back
    assert sorted(seen) == [f"T{i:05d}" for i in range(5)]
    group.stop()
