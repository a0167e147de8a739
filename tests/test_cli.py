"""The ``export-widgets`` command: ``status`` and ``simulate``, in-process and as real subprocesses."""

from __future__ import annotations

import io
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from export_widgets import ExportTask, ModelArtsClient, QianfanClient, TaskState
from export_widgets.cli import main
from export_widgets.render import task_table as format_table
from export_widgets.simulator import ENDPOINT_ENV, Fault

MA_OK, MA_FAIL, QF_OK = "rF9NNoB56k5rtYKg2Y7", "Hn2cX5yR8uJ4tGv6kDq", "task-7f3a9c1e2b"


def run(argv, environ=None):
    """``main(argv)`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err, environ={} if environ is None else environ)
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(err: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("export-widgets") and "Traceback" not in err, err


# -- format_table (pure) ---------------------------------------------------------------------------------------

def test_format_table_columns_and_redaction():
    url = "https://b.bj.bcebos.com/x/export.zip?authorization=bce-auth-v1%2Fabc%2F2024%2F86400%2Fhost%2Fsig"
    tasks = [
        ExportTask("modelarts", "M1", TaskState.RUNNING, "RUNNING", 45.04, 2166, 4812, destination="/bucket/out/"),
        ExportTask("modelarts", "M2", TaskState.FAILED, "FAILED", 60.0, 1980, 3300, destination="/missing/",
                   error_code="ModelArts.4311", error_message="OBS bucket does not exist"),
        ExportTask("qianfan", "task-q", TaskState.SUCCEEDED, "ExportFinished", 100.0, 55, 55,
                   destination="bos:/b/x/export.zip", download_url=url),
        ExportTask("modelarts", "M3", TaskState.UNKNOWN, "QUEUING"),
    ]
    lines = format_table(tasks).splitlines()
    assert lines[0].split() == ["TASK", "ID", "STATE", "PROGRESS", "DONE/TOTAL", "DESTINATION", "ERROR", "DOWNLOAD"]
    assert lines[2].split() == ["M1", "RUNNING", "45.0%", "2,166/4,812", "/bucket/out/", "-", "-"]
    assert "ModelArts.4311 OBS bucket does not exist" in lines[3]
    assert "https://b.bj.bcebos.com/x/export.zip?***" in lines[4] and "authorization" not in "\n".join(lines)
    assert lines[5].split()[:4] == ["M3", "UNKNOWN", "(QUEUING)", "-"]
    assert "DOWNLOAD" not in format_table(tasks[:2])


# -- status ----------------------------------------------------------------------------------------------------

def test_status_prints_a_table(sim):
    sim.clock.advance(60)
    code, out, err = run(["status", "--provider", "modelarts", "--dataset", sim.dataset_id, MA_OK, MA_FAIL], sim.env)
    assert (code, err) == (0, "")
    assert re.search(rf"{MA_OK}\s+SUCCEEDED\s+100\.0%\s+4,812/4,812", out)
    assert re.search(rf"{MA_FAIL}\s+FAILED\s+60\.0%\s+1,980/3,300\s+/missing-bucket/exports/\s+ModelArts\.4311", out)
    code, out, err = run(["status", "--provider", "qianfan", QF_OK], sim.env)
    assert code == 0 and "?***" in out and "authorization" not in out


def test_status_exit_1_with_one_line_per_failed_task(sim):
    sim.set_faults(QF_OK, [Fault("server_error", status=503)])
    code, out, err = run(["status", "--provider", "qianfan", QF_OK, "task-nope", "task-c41d09e8a6"], sim.env)
    assert code == 1 and "task-c41d09e8a6" in out
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"export-widgets status: {QF_OK}: Qianfan DescribeExportTask "
                                                   "failed (HTTP 503")
    assert "ResourceNotFound" in lines[1]


def test_status_uses_explicit_flags_over_the_environment(sim):
    env = {**sim.env, ENDPOINT_ENV: "http://127.0.0.1:9", "HUAWEICLOUD_SDK_PROJECT_ID": "0" * 32}
    code, out, err = run(["status", "--provider", "modelarts", "--dataset", sim.dataset_id, "--endpoint", sim.url,
                          "--project", sim.project_id, MA_OK], env)
    assert (code, err) == (0, "") and MA_OK in out


@pytest.mark.parametrize("argv,env_drop,needle", [
    (["status", "--provider", "modelarts", MA_OK], (), "--dataset"),
    (["status", "--provider", "modelarts", "--dataset", "d", MA_OK], (ENDPOINT_ENV,), "--region"),
    (["status", "--provider", "modelarts", "--dataset", "d", "--region", "eu-de", MA_OK], (), "endpoint"),
    (["status", "--provider", "qianfan", "--region", "cn-north-4", QF_OK], (), "modelarts only"),
    (["status", "--provider", "qianfan", QF_OK], ("QIANFAN_ACCESS_KEY",), "QIANFAN_ACCESS_KEY"),
    (["status", "--provider", "modelarts", "--dataset", "d", MA_OK], ("HUAWEICLOUD_SDK_SK",), "HUAWEICLOUD_SDK_SK"),
    (["status", "--provider", "qianfan", "--endpoint", "ftp://x", QF_OK], (), "not a valid base URL"),
])
def test_status_config_errors_are_one_line_exit_2(sim, argv, env_drop, needle):
    env = {k: v for k, v in sim.env.items() if k not in env_drop}
    code, out, err = run(argv, env)
    assert code == 2 and out == "" and needle in err
    assert_one_error_line(err)


def test_status_as_a_subprocess(sim):
    sim.clock.advance(4)
    result = subprocess.run([sys.executable, "-m", "export_widgets", "status", "--provider", "modelarts",
                             "--dataset", sim.dataset_id, MA_OK, "NoSuchTask"],
                            env={**os.environ, **sim.env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert re.search(rf"{MA_OK}\s+RUNNING\s+50\.0%\s+2,406/4,812", result.stdout)
    assert_one_error_line(result.stderr)
    assert "NoSuchTask" in result.stderr and "ModelArts.4359" in result.stderr


# -- arguments ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["status"],
    ["status", "--provider", "aws", "x"],
    ["status", "--provider", "qianfan"],
    ["status", "--provider", "qianfan", "--request-timeout", "-1", "t"],
    ["simulate", "--port", "http"],
    ["simulate", "--port", "70000"],
    ["simulate", "--duration-scale", "0"],
    ["simulate", "--bogus"],
])
def test_bad_arguments_are_one_line_exit_2(argv):
    code, out, err = run(argv)
    assert code == 2 and out == ""
    assert_one_error_line(err)
    assert "--help" in err


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["simulate", "--help"]])
def test_help_everywhere(argv, capsys):
    code, _, _ = run(argv)
    assert code == 0 and "usage: export-widgets" in capsys.readouterr().out


def test_bad_scenario_file_and_busy_port(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    code, _, err = run(["simulate", "--scenario", str(broken)])
    assert code == 2 and "broken.json" in err
    assert_one_error_line(err)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = run(["simulate", "--port", str(taken.getsockname()[1])])
    assert code == 2 and "pick another --port" in err
    assert_one_error_line(err)


# -- simulate as a real process ---------------------------------------------------------------------------------

class Lines:
    """Lines of a subprocess stream, read by a thread so every wait is bounded."""

    def __init__(self, stream) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, pattern: str, timeout: float = 30.0) -> list[str]:
        """Lines up to and including the first one matching ``pattern``."""
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if re.search(pattern, line):
                return seen
        raise AssertionError(f"no line matching {pattern!r} in {seen}")

    def rest(self, timeout: float = 10.0) -> list[str]:
        """The remaining lines, once the stream has ended."""
        seen = []
        while (line := self._queue.get(timeout=timeout)) is not None:
            seen.append(line)
        return seen


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_simulate_serves_until_signalled(tmp_path, stop_signal):
    scenario = tmp_path / "two.json"
    scenario.write_text('{"name": "two", "tasks": ['
                        '{"provider": "modelarts", "task_id": "cli-ma", "duration": 600},'
                        '{"provider": "qianfan", "task_id": "task-cli", "duration": 600}]}')
    proc = subprocess.Popen([sys.executable, "-m", "export_widgets", "simulate", "--port", "0",
                             "--scenario", str(scenario), "--duration-scale", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = Lines(proc.stdout)
    try:
        lines = output.until(r"^Then, for example")
        url = re.search(r"http://127\.0\.0\.1:\d+", lines[0]).group(0)
        env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                   for line in lines if line.startswith("export "))
        assert env[ENDPOINT_ENV] == url and env["QIANFAN_CONSOLE_API_BASE_URL"] == url
        assert any("cli-ma" in line and "succeeds after 300 s" in line for line in lines)
        assert any("simulator" in line.lower() and "not real secrets" in line for line in lines)

        ma = ModelArtsClient(endpoint=env[ENDPOINT_ENV], environ=env).get_export_task("gfghHSokody6AJigS5A", "cli-ma")
        qf = QianfanClient(environ=env).get_export_task("task-cli")
        assert ma.state is TaskState.RUNNING and qf.state is TaskState.RUNNING
        assert ma.created_at <= datetime.now(timezone.utc)  # the CLI runs on the wall clock
    finally:
        proc.send_signal(stop_signal)
        try:
            code = proc.wait(timeout=10)
        finally:
            proc.kill()
    errors = proc.stderr.read()
    assert (code, errors) == (0, "")
    assert output.rest()[-1] == "export-widgets simulator stopped (2 requests served)"
