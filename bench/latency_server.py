"""A loopback server that answers every request after a fixed delay: "50 ms of server latency" and nothing
else, so a sweep measures the client side (the simulator's own signature checks cost ~2 ms of CPU a request
under one GIL, which on two cores would be measured as ours).

It also answers the ModelArts list operation with pages: every dataset has ``PER_DATASET`` tasks named
``{dataset}t0000``, ``{dataset}t0001``, ... (``offset`` is a page index, as in the real API).

Run as ``python -m bench.latency_server SECONDS [PER_DATASET]``; it prints its URL and serves until killed.
"""

from __future__ import annotations

import json
import sys
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from .common import FastHandler

TASK = {"task_id": "T", "status": "RUNNING", "progress": 10.0, "finished_sample_count": 100,
        "total_sample_count": 1000, "create_time": 1700000000000}
MODELARTS = json.dumps(TASK).encode()
QIANFAN = json.dumps({"requestId": "r", "result": {"exportStatus": "Exporting", "progress": "10%",
                                                   "sampleCount": 1000, "startTime": "2024-08-01 10:31:48"}}).encode()


def task_id(dataset_id: str, index: int) -> str:
    """The id of the ``index``-th task of ``dataset_id`` (what the benchmark watches)."""
    return f"{dataset_id}t{index:04d}"


class _Handler(FastHandler):
    per_dataset = 100

    def body(self) -> bytes:
        if self.path.startswith("/v2/dataset"):
            return QIANFAN
        path, _, query = self.path.partition("?")
        parts = path.split("/")  # "", "v2", project, "datasets", dataset, "export-tasks"[, task]
        if len(parts) == 6 and parts[5] == "export-tasks":
            params = parse_qs(query)
            limit, page = int(params.get("limit", ["10"])[0]), int(params.get("offset", ["0"])[0])
            rows = range(page * limit, min((page + 1) * limit, self.per_dataset))
            return json.dumps({"total_count": self.per_dataset,
                               "export_tasks": [dict(TASK, task_id=task_id(parts[4], i)) for i in rows]}).encode()
        return MODELARTS


def main() -> None:
    _Handler.delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
    _Handler.per_dataset = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
