"""Downloading a finished export (issue 15): real HTTP against the simulator's pre-signed BOS URLs.

The simulator serves a deterministic zip of the advertised size; faults drop the connection after N bytes,
ignore Range, answer 503; its clock makes the URL expire. Every test checks the exact bytes (SHA-256) or that
no file exists under the final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest

from export_widgets import frames
from export_widgets.download import (
    DownloadError,
    DownloadProgress,
    TextDownloadView,
    download_export,
    expected_size_range,
)
from export_widgets.providers import TaskRef, make_client
from export_widgets.simulator import Fault, TaskSpec, serve

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def finished(clock):
    """A simulator (fake clock) with one finished Qianfan export of 3 MiB and a short URL lifetime."""
    spec = TaskSpec("qianfan", "task-dl01", duration=1, size_bytes=3 * MIB + 12_345, created_at=clock.now() - 60)
    with serve([spec], clock=clock, download_ttl=120) as sim:
        client = make_client("qianfan", endpoint=sim.url, environ=sim.env)
        yield sim, client, TaskRef("qianfan", "task-dl01")
        client.close()
        assert not sim.errors


def test_download_is_whole_atomic_and_a_valid_zip(finished, tmp_path):
    sim, client, ref = finished
    lines: list[str] = []
    result = download_export(client, ref, tmp_path / "out", progress=TextDownloadView(write=lines.append, every=0))
    assert result.path == tmp_path / "out" / "task-dl01-export.zip"
    assert _sha(result.path) == sim.app.export_file("task-dl01").sha256()
    assert result.size == 3 * MIB + 12_345
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["task-dl01-export.zip"]  # no .part left
    assert zipfile.ZipFile(result.path).testzip() is None
    assert lines[-1].startswith("Qianfan task-dl01 download 100.0%") and "done in" in lines[-1]
    assert sim.request_count(operation="download") == 1


def test_run_all_again_keeps_a_whole_file_and_fetches_nothing(finished, tmp_path):
    sim, client, ref = finished
    first = download_export(client, ref, tmp_path)
    stamp = first.path.stat().st_mtime_ns
    reports: list[DownloadProgress] = []
    again = download_export(client, ref, tmp_path, progress=reports.append)
    assert again.already and again.path == first.path and again.size == first.size
    assert str(again) == (f"task-dl01 is already downloaded to {first.path} (3.01 MiB): delete it to download it "
                          "again")
    assert sim.request_count(operation="download") == 1 and first.path.stat().st_mtime_ns == stamp
    assert reports[-1].finished and reports[-1].percent == 100.0 and reports[-1].rate is None  # no made-up rate
    assert reports[-1].line().endswith("3.0 / 3.0 MiB already there"), reports[-1].line()

    forced = download_export(client, ref, tmp_path, overwrite=True)
    assert not forced.already and sim.request_count(operation="download") == 2

    with open(first.path, "r+b") as handle:  # a file of another size under the name is not this export
        handle.truncate(MIB)
    redone = download_export(client, ref, tmp_path)
    assert not redone.already and _sha(redone.path) == sim.app.export_file("task-dl01").sha256()
    assert sim.request_count(operation="download") == 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interrupted_at_random_bytes_resumes_to_the_exact_bytes(finished, tmp_path, seed):
    sim, client, ref = finished
    size = sim.app.export_file("task-dl01").size
    rng = random.Random(seed)
    cuts = [rng.randrange(1, size // 3) for _ in range(3)]
    sim.set_faults("task-dl01", [Fault("download_cut", size=cut) for cut in cuts])
    result = download_export(client, ref, tmp_path, chunk_size=64 * 1024, sleep=lambda s: None)
    assert _sha(result.path) == sim.app.export_file("task-dl01").sha256(), f"seed {seed}, cuts {cuts}"
    assert sim.request_count(operation="download") == 4  # three cut, then the rest
    assert sim.request_count(operation="download", status=206) == 3  # every retry asked for the remainder only
    assert result.progress is not None and result.progress.attempts == 4


def test_a_server_ignoring_range_restarts_cleanly(finished, tmp_path):
    sim, client, ref = finished
    sim.set_faults("task-dl01", [Fault("download_cut", size=1_000_003), Fault("download_no_range")])
    result = download_export(client, ref, tmp_path, sleep=lambda s: None)
    assert _sha(result.path) == sim.app.export_file("task-dl01").sha256()


def test_an_interrupted_part_file_is_resumed_by_the_next_call(finished, tmp_path):
    sim, client, ref = finished
    file = sim.app.export_file("task-dl01")
    (tmp_path / ".task-dl01-export.zip.part").write_bytes(file.read(0, 777_777))
    result = download_export(client, ref, tmp_path)
    assert _sha(result.path) == file.sha256()
    assert result.progress is not None and result.progress.resumed_from == 777_777
    assert sim.request_count(operation="download", status=206) == 1


def test_an_expired_url_is_refreshed_by_fetching_the_task_again(finished, tmp_path):
    sim, client, ref = finished
    task = client.fetch(ref)
    sim.clock.advance(600)  # past the 120 s lifetime of the URL in `task`
    statuses_before = sim.request_count(operation="status")
    result = download_export(client, ref, tmp_path, task=task)
    assert _sha(result.path) == sim.app.export_file("task-dl01").sha256()
    assert sim.request_count(operation="download", status=403) == 1
    assert sim.request_count(operation="status") == statuses_before + 1  # one fetch for a fresh link
    assert result.progress is not None and result.progress.refreshes == 1


def test_transient_server_errors_are_retried(finished, tmp_path):
    sim, client, ref = finished
    sim.set_faults("task-dl01", [Fault("download_error", status=503, times=2)])
    sleeps: list[float] = []
    result = download_export(client, ref, tmp_path, sleep=sleeps.append)
    assert _sha(result.path) == sim.app.export_file("task-dl01").sha256()
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # backs off


def test_a_size_that_contradicts_size_mb_is_an_error_and_no_file(finished, tmp_path):
    sim, client, ref = finished
    task = client.fetch(ref)
    wrong = dataclasses.replace(task, size_mb=(task.size_mb or 0) + 1.0)
    with pytest.raises(DownloadError, match="sizeMB"):
        download_export(client, ref, tmp_path, task=wrong)
    assert list(tmp_path.iterdir()) == []


def test_size_mb_is_read_as_a_rounded_mib_figure():
    low, high = expected_size_range(3.01)  # type: ignore[misc]
    assert low <= 3.01 * MIB - 5_000 and high >= 3.01 * MIB + 5_000  # the 2-decimal rounding is allowed
    assert low > 3.0 * MIB and high < 3.02 * MIB  # but not a neighbouring figure
    assert expected_size_range(None) is None


def test_unfinished_export_is_a_clear_error(clock, tmp_path):
    with serve([TaskSpec("qianfan", "task-run01", duration=100)], clock=clock) as sim:
        client = make_client("qianfan", endpoint=sim.url, environ=sim.env)
        with pytest.raises(DownloadError, match="RUNNING, not SUCCEEDED: wait"):
            download_export(client, TaskRef("qianfan", "task-run01"), tmp_path)
        assert sim.request_count(operation="download") == 0


def test_modelarts_gives_the_copy_command(clock, tmp_path):
    spec = TaskSpec("modelarts", "MaDone01", duration=1, path="/bucket-a/exports/run 1/", created_at=clock.now() - 60)
    with serve([spec], clock=clock) as sim:
        client = make_client("modelarts", endpoint=sim.url, environ=sim.env)
        result = download_export(client, TaskRef("modelarts", "MaDone01", sim.dataset_id), tmp_path / "data")
    assert result.path is None and result.source == "obs://bucket-a/exports/run 1/"
    assert result.command == f"obsutil cp -r -f 'obs://bucket-a/exports/run 1/' {tmp_path / 'data'}/"
    assert "copy it with" in str(result)


def test_the_signed_url_is_in_no_output_log_error_or_frame(finished, tmp_path, caplog, capsys):
    sim, client, ref = finished
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line at DEBUG
    sim.set_faults("task-dl01", [Fault("download_cut", size=500_000)])
    result = download_export(client, ref, tmp_path, progress=TextDownloadView(every=0))
    task = client.fetch(ref)
    sim.set_faults("task-dl01", [Fault("download_error", status=404)])
    with pytest.raises(DownloadError) as failure:
        download_export(client, ref, tmp_path / "again", task=task)
    sim.stop()  # now every attempt is refused: the give-up error names the cause, not the link
    with pytest.raises(DownloadError, match="Connection refused") as refused:
        download_export(client, ref, tmp_path / "again", task=task, sleep=lambda s: None)
    import traceback

    shown = "\n".join([
        capsys.readouterr().out, caplog.text, str(result), repr(result), repr(task),
        "".join(traceback.format_exception(failure.value)), "".join(traceback.format_exception(refused.value)),
        frames.summary([task]).to_string(), frames.summary([task]).to_csv(),
    ])
    query = (task.download_url or "").split("?", 1)[1]
    signature = query.rsplit("%2F", 1)[1]
    assert "/bos/" in caplog.text  # the request lines were logged ...
    for secret in (query, signature, unquote(query), unquote(signature)):
        assert secret not in shown  # ... without their signed query


def test_memory_stays_flat_while_downloading(clock, tmp_path):
    spec = TaskSpec("qianfan", "task-big01", duration=1, size_bytes=48 * MIB, created_at=clock.now() - 60)
    with serve([spec], clock=clock) as sim:
        client = make_client("qianfan", endpoint=sim.url, environ=sim.env)
        sim.app.export_file("task-big01").crc32()  # the simulator's one-off CRC pass is not ours to measure
        tracemalloc.start()
        try:
            result = download_export(client, TaskRef("qianfan", "task-big01"), tmp_path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.size == 48 * MIB
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB for a 48 MiB download"


# -- the disk: full, read-only (in a child process: a file-size limit, another user) -------------------------

_CHILD = textwrap.dedent("""
    import os, resource, signal, sys
    from pathlib import Path
    from export_widgets.download import DownloadError, download_export
    from export_widgets.providers import TaskRef, make_client
    from export_widgets.simulator import FakeClock, TaskSpec, serve

    mode, target = sys.argv[1], Path(sys.argv[2])
    clock = FakeClock()
    spec = TaskSpec("qianfan", "task-disk01", duration=1, size_bytes=6 * 1024 * 1024, created_at=clock.now() - 60)
    with serve([spec], clock=clock) as sim:
        client = make_client("qianfan", endpoint=sim.url, environ=sim.env)
        client.fetch(TaskRef("qianfan", "task-disk01"))  # imports done before privileges drop (stdlib may be root-only)
        if mode == "full":  # writes past 2 MiB fail with EFBIG, as a full disk fails with ENOSPC
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, resource.RLIM_INFINITY))
        elif os.geteuid() == 0:
            os.setgid(65534); os.setuid(65534)  # root writes anywhere: become nobody
        try:
            download_export(client, TaskRef("qianfan", "task-disk01"), target)
        except DownloadError as exc:
            print("ERROR", exc)
        except Exception:
            print("SIMULATOR", sim.errors)
            raise
        else:
            print("OK")
        print("REQUESTS", sim.request_count(operation="download"))
""")


def _child(mode: str, target: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, str(target)], capture_output=True, text=True,
                          timeout=120, env=env, cwd="/")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_a_full_disk_is_a_clear_error_and_leaves_no_file(tmp_path):
    out = _child("full", tmp_path)
    assert "ERROR disk full while writing .task-disk01-export.zip.part" in out
    assert "free some space or choose another directory" in out
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a useless part file


def test_a_read_only_directory_is_a_clear_error_before_any_download(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o555)
    tmp_path.chmod(0o755)
    try:
        out = _child("readonly", target)
    finally:
        target.chmod(0o755)
    assert f"ERROR cannot write to {target} (read-only or no permission)" in out
    assert "REQUESTS 0" in out
    assert list(target.iterdir()) == []


def test_progress_figures():
    progress = DownloadProgress("task-1", total=10 * MIB, done=5 * MIB, resumed_from=1 * MIB, started=0.0,
                                ended=2.0)
    assert progress.rate == 2 * MIB and progress.eta == 2.5 and progress.percent == 50.0
    assert "50.0%" in progress.line() and "2.0 MiB/s" in progress.line() and "resumed at 1.0 MiB" in progress.line()


def test_a_retry_after_on_503_is_honoured(tmp_path):
    """A raw loopback server: 503 with Retry-After: 7 once, then the file."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from export_widgets.models import ExportTask, TaskState

    body = b"z" * 100_000
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status = 503 if not answers else 200
            answers.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0" if status == 503 else str(len(body)))
            if status == 503:
                self.send_header("Retry-After", "7")
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/bucket/file.zip?authorization=bce-auth-v1%2Fx"
        task = ExportTask("qianfan", "task-ra01", TaskState.SUCCEEDED, download_url=url, size_mb=0.1)
        client = make_client("qianfan", endpoint="http://127.0.0.1:9", environ={"QIANFAN_ACCESS_KEY": "a" * 16,
                                                                              "QIANFAN_SECRET_KEY": "b" * 16})
        sleeps: list[float] = []
        result = download_export(client, TaskRef("qianfan", "task-ra01"), tmp_path, task=task, sleep=sleeps.append)
    finally:
        server.shutdown()
        server.server_close()
    assert answers == [503, 200] and sleeps == [7.0]
    assert result.path is not None and result.path.read_bytes() == body and result.path.name == "task-ra01-file.zip"
