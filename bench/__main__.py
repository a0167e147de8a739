"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks, print a table, write JSON.

Every figure is a ratio against a baseline measured in the same run (or an absolute budget where the issue
sets one), the median of repeated runs with min–max beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import bench_download, bench_history, bench_import, bench_poll, bench_store, bench_sweep, bench_widget

SUITES = {"poll": bench_poll.run, "sweep": bench_sweep.run, "batch": bench_sweep.run_batched,
          "history": bench_history.run, "widget": bench_widget.run, "import": bench_import.run,
          "download": bench_download.run, "store": bench_store.run}
RESULTS = Path(__file__).resolve().parent / "results"


def _table(rows: list[list[str]]) -> str:
    headers = ["benchmark", "median", "min–max", "target", "met", "note"]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (smoke run)")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITES), help="run only these suites")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = []
    for name, suite in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.extend(suite(quick=args.quick))
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    header = f"{datetime.now(timezone.utc):%Y-%m-%d}, {machine}, {time.monotonic() - started:.0f} s"
    print(f"\n{header}\n\n{_table([r.row() for r in results])}")
    RESULTS.mkdir(exist_ok=True)
    payload = {"date": datetime.now(timezone.utc).isoformat(), "machine": machine, "quick": args.quick,
               "results": [dataclasses.asdict(r) for r in results]}
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten {RESULTS / 'latest.json'}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
