"""Interop with the real Locust 2.47: our worker under its master, its worker under our master."""

from __future__ import annotations

import csv
import re
import socket
import sys
from pathlib import Path

import pytest

from fakemaster.script import load_script
from harness.launcher import PEERS, WorkerProcess
from harness.protocol.messages import Direction
from harness.protocol.schema import check_payload
from harness.scenario import run_scenario
from harness.trace import Kind
from harness.verdicts import Verdict
from tests.foreign_peers import locust_or_skip

locust_or_skip()

pytestmark = [
    pytest.mark.interop,
]
INTERVAL = 0.25
DEFAULT_SCRIPT = (
    Path(__file__).resolve().parents[2] / "harness" / "scenarios" / "lifecycle.json"
)  # both sides compressed 4x: the master marks a worker missing after 1.0-1.25 s of silence


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reference_worker_under_real_master(tmp_path: Path) -> None:
    """The real master counts exactly the requests our worker made and never marks it missing."""
    port = free_port()
    master_cmd = (
        f"env LC_HEARTBEAT_INTERVAL={INTERVAL} {sys.executable} -m locust -f {PEERS}/locustfile.py --master "
        f"--master-bind-host 127.0.0.1 --master-bind-port {port} --headless -u 4 -r 4 -t 5s --expect-workers 1 "
        f"--csv {tmp_path}/run --loglevel INFO --stop-timeout 0"
    )
    worker_cmd = f"{sys.executable} -m worker --master-port {port} --heartbeat-interval {INTERVAL} --fail-every 7"
    with (
        WorkerProcess(master_cmd, tmp_path / "master.log") as master,
        WorkerProcess(worker_cmd, tmp_path / "worker.log") as worker,
    ):
        master_code = master.wait(40)
        worker_code = worker.wait(10)
    master_log, worker_log = master.output(), worker.output()
    assert master_code == 1, master_log  # the failures we injected (--fail-every 7) set Locust's error exit code
    assert worker_code == 0, worker_log
    assert "missing" not in master_log, master_log
    assert "Traceback" not in master_log and "Uncaught exception" not in master_log, master_log
    assert "Discarded report" not in master_log, master_log
    made = re.search(r"requests made: (\d+), failures: (\d+)", worker_log)
    assert made, worker_log
    requests, failures = int(made.group(1)), int(made.group(2))
    assert requests > 20
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["Aggregated"]["Request Count"]) == requests
    assert int(rows["Aggregated"]["Failure Count"]) == failures > 0
    assert int(rows["/ConformanceUser"]["Request Count"]) == requests


def test_real_worker_under_fake_master(tmp_path: Path) -> None:
    """The real worker completes the lifecycle script; every message it sends fits the schema."""
    outcome = run_scenario("locust", load_script(DEFAULT_SCRIPT), tmp_path)
    assert outcome.verdict is Verdict.OK, outcome.reason
    assert outcome.findings == [], outcome.reason
    assert outcome.worker_exit == 0
    assert outcome.violations == []
    trace = [line for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert trace, "no trace written"
    assert (tmp_path / "worker.log").read_text().count("Got quit message from master") == 1


def test_real_worker_stats_decode_and_validate(tmp_path: Path) -> None:
    """Stats from the real worker decode with int-keyed maps and pass our schema, with requests counted."""
    from fakemaster.master import FakeMaster
    from harness.launcher import render_command
    from harness.protocol.timing import LOCUST_TIMING

    with FakeMaster(timing=LOCUST_TIMING.compressed(INTERVAL)) as fake:
        cmd = render_command("locust", fake.host, fake.port, INTERVAL)
        with WorkerProcess(cmd, tmp_path / "worker.log") as proc:
            fake.expect("client_ready", 20)
            fake.spawn({"ConformanceUser": 2})
            fake.expect("spawning_complete", 5)
            record = fake.expect(
                "stats", 5, where=lambda r: r.message is not None and r.message.data["stats_total"]["num_requests"] > 0
            )
            fake.send("quit")
            fake.expect("quit", 5)
            assert proc.wait(10) == 0, proc.output()
    assert record.message is not None
    entry = record.message.data["stats"][0]
    assert all(isinstance(k, int) for k in entry["response_times"])
    assert all(isinstance(k, int) for k in entry["num_reqs_per_sec"])
    for r in fake.trace.records():
        if r.kind is Kind.RECV and r.message is not None:
            assert check_payload(r.message, Direction.WORKER_TO_MASTER) == [], r.message
