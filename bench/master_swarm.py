"""Fake-worker swarms against the real Locust 2.47 master: the master catalog's own (one thread), Locust's distributed
mode (docs/master-swarm.md), and bench/swarm.py's epoll swarm as the baseline, in the same run.

    python bench/master_swarm.py [--workers 1000] [--seconds 10] [--out bench/results-master-swarm.json]

Rows, each against a fresh real master (headless, waiting for more workers than will come, so it runs no test):

- catalog: ``locust-conformance master-run --master locust@2.47.0 --cases load --swarm N``: N FakeWorkerCores on
  DEALERs pumped by one thread (harness/master_catalog/workers.py); registered, replies, reply p50/p99 over 6 s.
- locust-distributed: a swarm Locust master and two swarm worker processes (harness/peers/swarm_locustfile.py, each
  user one fake worker on a green DEALER), ``-u N -r N/2 -t SECONDS``; registered (the master under test's log),
  replies and reply p50/p99 from the swarm's own CSV (``heartbeat-reply``).
- baseline: ``bench/swarm.py --sizes N --masters real --steady SECONDS``: its steady-window reply p50/p99.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import BENCH_DIR, environment, print_table, write_json

ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from harness.launcher import WorkerProcess  # noqa: E402
from harness.master_catalog.master_log import events  # noqa: E402
from harness.master_catalog.masters import HOST, Launch, MasterCommand, free_port  # noqa: E402
from harness.master_catalog.swarm import run_swarm, wait_listening  # noqa: E402


def catalog_row(workers: int, folder: Path) -> dict[str, Any]:
    report = folder / "catalog"
    command = [sys.executable, "-m", "harness.cli", "master-run", "--master", "locust@2.47.0", "--cases", "load"]
    with WorkerProcess(shlex.join([*command, "--swarm", str(workers), "--report", str(report)]), folder / "catalog.log") as run:
        run.wait(300)
    case = json.loads((report / "results.json").read_text())["cases"][0]
    swarm = case["measurements"]["swarm"]
    return {
        "swarm": "catalog (one thread)",
        "registered": swarm["registered"],
        "replies": swarm["replies"],
        "heartbeats": swarm["heartbeats"],
        "p50_ms": swarm["reply_p50_ms"],
        "p99_ms": swarm["reply_p99_ms"],
        "verdict": case["verdict"],
    }


def distributed_row(workers: int, seconds: int, folder: Path) -> dict[str, Any]:
    port = free_port()
    under_test = MasterCommand("locust@2.47.0").render(port, Launch(), folder / "under-test")  # waits, runs no test
    with WorkerProcess(under_test, folder / "under-test.log") as master:
        wait_listening(master, port)
        result = run_swarm(f"tcp://{HOST}:{port}", workers, seconds + 2, folder, processes=2)
        registered = {e.node for e in events(master.lines()) if e.kind == "ready" and e.node.startswith("swarm-")}
    return {
        "swarm": "locust-distributed (2 processes)",
        "registered": len(registered),
        "replies": result.judged - result.lost,
        "heartbeats": result.judged,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "verdict": f"{result.lost} lost",
    }


def baseline_row(workers: int, seconds: int, folder: Path) -> dict[str, Any]:
    out = folder / "baseline.json"
    command = [sys.executable, str(BENCH_DIR / "swarm.py"), "--sizes", str(workers), "--masters", "real"]
    with WorkerProcess(shlex.join([*command, "--steady", str(seconds), "--out", str(out)]), folder / "baseline.log") as run:
        run.wait(300)
    result = json.loads(out.read_text())["runs"][0]
    return {
        "swarm": "baseline: bench/swarm.py (epoll)",
        "registered": result.get("acked"),
        "replies": result.get("steady_samples"),
        "heartbeats": result.get("heartbeats_sent"),
        "p50_ms": result.get("p50_ms"),
        "p99_ms": result.get("p99_ms"),
        "verdict": f"{result.get('unanswered')} unanswered",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="master-swarm-") as tmp:
        makers: list[Callable[[Path], dict[str, Any]]] = [
            lambda f: catalog_row(args.workers, f),
            lambda f: distributed_row(args.workers, args.seconds, f),
            lambda f: baseline_row(args.workers, args.seconds, f),
        ]
        for make in makers:
            folder = Path(tempfile.mkdtemp(dir=tmp))
            try:
                rows.append(make(folder))
            except Exception as exc:  # a row that failed says so; the others still print
                rows.append({"swarm": f"failed: {exc!r}"[:200]})
    headers = ["swarm", "registered", "heartbeats", "replies", "p50_ms", "p99_ms", "verdict"]
    print(f"{args.workers} fake workers against the real Locust 2.47 master")
    print_table(headers, [[row.get(h, "") for h in headers] for row in rows])
    write_json(args.out, {"environment": environment(), "workers": args.workers, "seconds": args.seconds, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
