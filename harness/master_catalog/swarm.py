"""A fake-worker swarm on Locust's own distributed mode (docs/master-swarm.md): a swarm master and ``processes`` swarm
worker processes (harness/peers/swarm_locustfile.py: each Locust user one fake worker on a green DEALER) drive
``users`` fake workers against the master under test at ``target``. Every process runs in its own process group and
is reaped; the swarm's own CSV gives the heartbeat reply latency of all of them."""

from __future__ import annotations

import contextlib
import csv
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.launcher import PEERS, WorkerProcess
from harness.master_catalog.masters import HOST, free_port, listening

SWARM_LOCUSTFILE = PEERS / "swarm_locustfile.py"
LISTEN_WITHIN = 60.0  # seconds the swarm master may take to bind


@dataclass(frozen=True)
class SwarmResult:
    """What the swarm measured: heartbeats judged (each either answered or timed out; those still in flight when the
    run stopped are not counted), replies lost (none within the locustfile's timeout), the reply round trip's
    percentiles (ms), and whether the swarm master ended its run by itself."""

    judged: int
    lost: int
    p50_ms: float | None
    p99_ms: float | None
    finished: bool


def wait_listening(process: WorkerProcess, port: int, within: float = LISTEN_WITHIN) -> None:
    """Return once ``process`` listens on ``port``; RuntimeError (with its output) if it ends or takes too long."""
    deadline = time.monotonic() + within
    while not listening(process, port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after {within:g} s: {process.output(20)}")
        time.sleep(0.05)


def run_swarm(target: str, users: int, seconds: int, folder: Path, processes: int = 2, rate: int | None = None) -> SwarmResult:
    """Run ``users`` fake workers against ``target`` (``tcp://host:port``) for ``seconds``, spread over ``processes``
    swarm worker processes, joining at ``rate`` per second (default: all within a second or two)."""
    locust = f"{shlex.quote(sys.executable)} -m locust -f {shlex.quote(str(SWARM_LOCUSTFILE))} --loglevel INFO"
    port = free_port()
    master = (
        f"{locust} --master --master-bind-host {HOST} --master-bind-port {port} --headless -u {users} "
        f"-r {rate or max(1, users // 2)} -t {seconds}s --expect-workers {processes} "
        f"--csv {shlex.quote(str(folder / 'swarm'))} --only-summary"
    )
    worker = f"{locust} --worker --master-host {HOST} --master-port {port}"
    with WorkerProcess(master, folder / "swarm-master.log") as swarm:
        wait_listening(swarm, port)
        with contextlib.ExitStack() as stack:
            workers = [
                stack.enter_context(WorkerProcess(worker, folder / f"swarm-worker-{i}.log", {"LC_TARGET": target}))
                for i in range(1, processes + 1)
            ]
            finished = swarm.wait(seconds + 90) is not None
            for process in workers:
                process.wait(15)
    return _read(folder / "swarm_stats.csv", finished)


def _read(path: Path, finished: bool) -> SwarmResult:
    try:
        with path.open(newline="") as handle:
            row = next((r for r in csv.DictReader(handle) if r.get("Name") == "heartbeat-reply"), None)
    except OSError:
        row = None
    if row is None:
        return SwarmResult(0, 0, None, None, finished)
    return SwarmResult(int(row["Request Count"]), int(row["Failure Count"]), float(row["50%"]), float(row["99%"]), finished)
