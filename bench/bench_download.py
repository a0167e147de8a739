"""6. Downloading a finished Qianfan export: ``download_export`` vs a plain ``requests`` stream of the same file.

The simulator serves the file from a child process (so neither its CPU nor its allocations count as ours);
rounds run ours, a plain stream and a plain stream that fsyncs (as ours does before its rename) on the same
pre-signed URL, rotating who goes first. Also: the peak of Python allocations (tracemalloc)
during one whole download of the large file, which must stay flat (chunks, never the file).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from .common import Result

MIB = 1024 * 1024
TASK = "task-bench0001"
CHUNK = 256 * 1024


def _serve(size: int, ready: Any, stop: Any) -> None:
    from export_widgets.simulator import FakeClock, TaskSpec, serve

    clock = FakeClock()
    spec = TaskSpec("qianfan", TASK, duration=1, size_bytes=size, created_at=clock.now() - 60)
    with serve([spec], clock=clock) as sim:
        sim.app.export_file(TASK).crc32()  # the one-off CRC pass happens before anything is timed
        ready.send((sim.url, dict(sim.env)))
        stop.wait(3600)


def _plain(url: str, target: Path, *, fsync: bool) -> float:
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=60) as response, open(target, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_content(CHUNK):
            out.write(chunk)
        if fsync:  # what ours does before its rename
            out.flush()
            os.fsync(out.fileno())
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Result]:
    from export_widgets.download import download_export
    from export_widgets.providers import TaskRef, make_client

    size = (64 if quick else 256) * MIB
    rounds = 3 if quick else 7
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    stop = context.Event()
    server = context.Process(target=_serve, args=(size, child, stop), daemon=True)
    server.start()
    try:
        url_base, env = parent.recv()
        client = make_client("qianfan", endpoint=url_base, environ=env)
        ref = TaskRef("qianfan", TASK)
        task = client.fetch(ref)
        times: dict[str, list[float]] = {"ours": [], "plain": [], "synced": []}
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)

            def ours() -> float:
                started = time.perf_counter()
                result = download_export(client, ref, directory, task=task, chunk_size=CHUNK)
                elapsed = time.perf_counter() - started
                assert result.path is not None and result.size == size
                result.path.unlink()
                return elapsed

            def plain(fsync: bool) -> float:
                elapsed = _plain(task.download_url or "", directory / "plain.zip", fsync=fsync)
                (directory / "plain.zip").unlink()
                return elapsed

            contenders: dict[str, Callable[[], float]] = {"ours": ours, "plain": lambda: plain(False),
                                                          "synced": lambda: plain(True)}
            names = list(contenders)
            for round_number in range(rounds):  # rotate who goes first: page-cache writeback favours no one
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    times[name].append(contenders[name]())
            tracemalloc.start()
            try:
                download_export(client, ref, directory, task=task, chunk_size=CHUNK)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        client.close()
    finally:
        stop.set()
        server.join(10)
    rate = [size / MIB / seconds for seconds in times["ours"]]
    rate_plain = [size / MIB / seconds for seconds in times["plain"]]
    rate_synced = [size / MIB / seconds for seconds in times["synced"]]
    ratio = statistics.median(rate) / statistics.median(rate_plain)
    ratio_synced = statistics.median(rate) / statistics.median(rate_synced)
    return [
        Result(f"download {size // MIB} MiB: ours / plain requests stream", ratio, "x", "report", True,
               [o / p for o, p in zip(rate, rate_plain, strict=True)],
               f"{statistics.median(rate):.0f} vs {statistics.median(rate_plain):.0f} MiB/s; ours fsyncs before "
               "its atomic rename, the plain stream does not"),
        Result(f"download {size // MIB} MiB: ours / plain stream + fsync", ratio_synced, "x", ">= 0.8x",
               ratio_synced >= 0.8, [o / p for o, p in zip(rate, rate_synced, strict=True)],
               f"{statistics.median(rate):.0f} vs {statistics.median(rate_synced):.0f} MiB/s (same file, same "
               "server, order rotated)"),
        Result(f"download {size // MIB} MiB: peak Python allocations", peak / MIB, "MiB", "<= 4 MiB",
               peak <= 4 * MIB, [peak / MIB], f"tracemalloc over one whole download, chunk {CHUNK // 1024} KiB"),
    ]
