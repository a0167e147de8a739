"""A loopback server that answers every request after a fixed delay: "50 ms of server latency" and nothing
else, so a sweep measures the client side (the simulator's own signature checks cost ~2 ms of CPU a request
under one GIL, which on two cores would be measured as ours).

Run as ``python -m bench.latency_server SECONDS``; it prints its URL and serves until killed.
"""

from __future__ import annotations

import json
import sys
from http.server import ThreadingHTTPServer

from .common import FastHandler

MODELARTS = json.dumps({"task_id": "T", "status": "RUNNING", "progress": 10.0, "finished_sample_count": 100,
                        "total_sample_count": 1000, "create_time": 1700000000000}).encode()
QIANFAN = json.dumps({"requestId": "r", "result": {"exportStatus": "Exporting", "progress": "10%",
                                                   "sampleCount": 1000, "startTime": "2024-08-01 10:31:48"}}).encode()


class _Handler(FastHandler):
    def body(self) -> bytes:
        return QIANFAN if self.path.startswith("/v2/dataset") else MODELARTS


def main() -> None:
    _Handler.delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
