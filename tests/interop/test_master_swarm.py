"""The fake-worker swarm on Locust's own distributed mode: a working two-process demo (docs/master-swarm.md).

A swarm master and two swarm worker processes (Locust 2.47, harness/peers/swarm_locustfile.py: each user one fake
worker on a green DEALER; harness.master_catalog.swarm starts them) drive SWARM fake workers against the real Locust
master under test. The master under test registers every one of them; the swarm's own CSV aggregates the heartbeat
reply latency of all of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.launcher import WorkerProcess
from harness.master_catalog.master_log import events
from harness.master_catalog.masters import HOST, Launch, MasterCommand, free_port
from harness.master_catalog.swarm import run_swarm, wait_listening
from tests.foreign_peers import locust_or_skip

locust_or_skip()

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]
SWARM = 40
RUN_S = 10


def test_a_swarm_on_two_locust_workers_registers_with_the_master_under_test(tmp_path: Path) -> None:
    port = free_port()
    under_test = MasterCommand("locust@2.47.0").render(port, Launch(), tmp_path / "under-test")  # waits, runs no test
    with WorkerProcess(under_test, tmp_path / "under-test.log") as master:
        wait_listening(master, port)
        result = run_swarm(f"tcp://{HOST}:{port}", SWARM, RUN_S, tmp_path, processes=2, rate=SWARM)
        registered = {e.node for e in events(master.lines()) if e.kind == "ready" and e.node.startswith("swarm-")}
    assert result.finished, (tmp_path / "swarm-master.log").read_text()[-3000:]
    assert len(registered) == SWARM, master.output(40)
    # every fake worker heartbeats about once a second for most of the run, and each reply comes back
    assert result.judged >= SWARM * (RUN_S - 4), result
    assert result.lost == 0, result
    assert result.p99_ms is not None and result.p99_ms < 500, result
